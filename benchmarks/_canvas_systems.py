"""The systems the ``canvas`` suite compares: how each starts, and its measurement.

Both get the same processes: two that run tasks, each at its system's default
concurrency, holding up to four calls per task slot (Celery's default prefetch
multiplier). celery_actors runs a router process and two worker processes
(``jumpstart run``), linked peer-to-peer over AMQP 1.0, each running up to 10 calls at
once (its default ``--concurrency``: the no-op tasks are ``async def``, run as
coroutines), and keeps its workflows in the router's durable SQLite store (the
default; here a file in a temporary directory). Celery runs one prefork worker with
two child processes, each running one task at a time (prefork's only way), on RabbitMQ,
with a Redis server of the measurement's own as its result backend, which its chords
need.

Celery is imported only inside its function: the suite's table and plan do not need it.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final

import attrs

from ._canvas_measure import Workload, measure_async, measure_sync
from ._tasks_services import (
    RABBITMQ_URL,
    START_TIMEOUT,
    Service,
    delete_queues,
    import_with_env,
    python_command,
    redis,
    require_rabbitmq,
    service,
)

__all__ = ["SYSTEMS", "WORKER_PROCESSES", "System", "system"]

WORKER_PROCESSES: Final = 2
"""Processes that run tasks, in both systems: celery_actors worker processes, Celery
prefork child processes."""

CELERY_TASKS_PER_PROCESS: Final = 1
"""Tasks a Celery prefork child runs at once."""

CELERY_ACTORS_CONCURRENCY: Final = 10
"""Calls a celery_actors worker process runs at once: ``jumpstart run``'s default."""

PREFETCH: Final = 4
"""Calls each of them holds per task it runs at once: Celery's default prefetch
multiplier (celery_actors' ``--prefetch``)."""

_ADDRESS = re.compile(r"router at amqp://127\.0\.0\.1:(\d+)/")


@attrs.frozen
class System:
    """One system the suite measures.

    Attributes:
        key: its name in jobs, results and ``--only``.
        label: its name in the table.
        short: its name in the ratio column's heading.
        setup: how it runs (processes, concurrency, stores), shown in the table.
        run: its measurement function.
        ours: the celery_actors system (the others are compared with it).
    """

    key: str
    label: str
    short: str
    setup: str
    run: Callable[[Workload], dict[str, Any]]
    ours: bool = False


def _celery_actors_client(
    workload: Workload, router: str, services: Sequence[Service]
) -> dict[str, Any]:
    """Measure as a client of the celery_actors router at ``router`` (``HOST:PORT``)."""
    import trio

    from celery_actors import Canvas, ResultTimeout, WorkflowResult, chain, chord, group

    from ._canvas_app import app, count, inc, noop

    def build(kind: str, n: int) -> Canvas:
        if kind == "chord":
            return chord(group([noop.s() for _ in range(n)]), count.s())
        return chain(inc.si(0), *[inc.s() for _ in range(n - 1)])

    async def client() -> dict[str, Any]:
        async with app.connect(router) as connected:

            async def start(canvas: Canvas) -> WorkflowResult:
                return await connected.start_workflow(canvas)

            async def wait(result: WorkflowResult, timeout: float) -> tuple[bool, Any]:
                try:
                    return True, await result.get(timeout=timeout)
                except ResultTimeout:
                    return False, None

            return await measure_async(workload, build, start, wait, services)

    figures: dict[str, Any] = trio.run(client)
    return figures


def celery_actors_p2p(workload: Workload) -> dict[str, Any]:
    """celery_actors peer-to-peer: a router process and two worker processes, linked
    over AMQP 1.0, the workflows in a SQLite file; this process is the client."""
    run = ("-m", "jumpstarter", "run", "benchmarks._canvas_app:app")
    with tempfile.TemporaryDirectory(prefix="bench-canvas-") as scratch:
        store = Path(scratch) / "bench-canvas.workflows.sqlite3"
        router_command = python_command(
            *run, "--role", "router", "--router", "127.0.0.1:0", "--workflows", str(store)
        )
        with service("celery_actors router", router_command) as router:
            port = router.wait_for(
                lambda out: (m := _ADDRESS.search(out)) and m.group(1),
                "its address",
                START_TIMEOUT,
            )
            worker_command = python_command(
                *run,
                "--role",
                "worker",
                "--router",
                f"127.0.0.1:{port}",
                "--concurrency",
                str(CELERY_ACTORS_CONCURRENCY),
                "--prefetch",
                str(PREFETCH),
            )
            with contextlib.ExitStack() as stack:
                workers = [
                    stack.enter_context(service(f"celery_actors worker {i}", worker_command))
                    for i in range(1, WORKER_PROCESSES + 1)
                ]
                for worker in workers:
                    worker.wait_for(
                        lambda out: "worker at" in out or None, "its address", START_TIMEOUT
                    )
                return _celery_actors_client(workload, f"127.0.0.1:{port}", [router, *workers])


def celery_prefork(workload: Workload) -> dict[str, Any]:
    """Celery 5: one prefork worker on RabbitMQ, results (and chord counters) in a
    Redis server of the measurement's own; this process is the client."""
    require_rabbitmq()
    queue = f"bench-canvas-celery-{os.getpid()}"
    with redis() as redis_url:
        module = "benchmarks._canvas_celery"
        env = {
            "BENCH_CELERY_QUEUE": queue,
            "BENCH_REDIS_URL": redis_url,
            "BENCH_BROKER_URL": RABBITMQ_URL,
        }
        app_module = import_with_env(module, env)
        from celery import chain, chord, group
        from celery.exceptions import TimeoutError as CeleryTimeout
        from celery.result import AsyncResult

        noop, count, inc = app_module.noop, app_module.count, app_module.inc

        def build(kind: str, n: int) -> Any:
            if kind == "chord":
                return chord(group([noop.s() for _ in range(n)]), count.s())
            return chain(inc.si(0), *[inc.s() for _ in range(n - 1)])

        def start(canvas: Any) -> AsyncResult:
            return canvas.apply_async()

        def wait(result: AsyncResult, timeout: float) -> tuple[bool, Any]:
            try:
                return True, result.get(timeout=timeout)
            except CeleryTimeout:
                return False, None

        delete_queues([queue])
        command = python_command(
            "-m",
            "celery",
            "-A",
            module,
            "worker",
            "--pool",
            "prefork",
            "--concurrency",
            str(WORKER_PROCESSES * CELERY_TASKS_PER_PROCESS),
            "--prefetch-multiplier",
            str(PREFETCH),
            "--queues",
            queue,
            "--hostname",
            f"bench-canvas-{os.getpid()}@%h",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--loglevel",
            "WARNING",
        )
        try:
            with service("celery worker --pool prefork", command, env) as worker:
                return measure_sync(workload, build, start, wait, [worker])
        finally:
            app_module.app.close()
            delete_queues([queue])


SYSTEMS: Final = (
    System(
        "celery-actors-p2p",
        "celery_actors, peer-to-peer",
        "celery_actors",
        f"a router and {WORKER_PROCESSES} worker processes; --concurrency "
        f"{CELERY_ACTORS_CONCURRENCY} (the default; async tasks) --prefetch {PREFETCH}; "
        "workflows in the router's SQLite "
        "store (the default, a file in a temp dir)",
        celery_actors_p2p,
        ours=True,
    ),
    System(
        "celery-prefork",
        "Celery, prefork pool",
        "Celery",
        f"1 worker, --pool prefork --concurrency "
        f"{WORKER_PROCESSES * CELERY_TASKS_PER_PROCESS} "
        f"(child processes), --prefetch-multiplier {PREFETCH}; RabbitMQ, results and "
        "chord counters in Redis",
        celery_prefork,
    ),
)
"""Every system, celery_actors first; the table keeps this order."""


def system(key: str) -> System:
    """The system named ``key``."""
    for candidate in SYSTEMS:
        if candidate.key == key:
            return candidate
    raise KeyError(f"no system {key!r}; choose from {', '.join(s.key for s in SYSTEMS)}")
