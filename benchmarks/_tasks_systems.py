"""The systems the ``tasks`` suite compares: how each starts, and its scenario function.

Each system is one :class:`System`: a key (the job's peer name), what the table
shows, and ``run(scenario)``, which starts the system's processes, measures with
:mod:`benchmarks._tasks_measure`, stops everything and returns the figures. A new
system is one more function and one more entry in :data:`SYSTEMS`.

Celery and Dramatiq are imported only inside their functions: the suite's table
and plan do not need them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from typing import Any, Final

import attrs

from ._tasks_measure import Scenario, measure_async, measure_sync
from ._tasks_services import (
    CELERY_ACTORS_APP_ENV,
    CELERY_ACTORS_BROKER_ENV,
    RABBITMQ_AMQP10_URL,
    RABBITMQ_URL,
    START_TIMEOUT,
    Service,
    delete_queues,
    delete_queues_with_rabbitmqctl,
    import_with_env,
    python_command,
    redis,
    require_rabbitmq,
    service,
)

__all__ = ["SYSTEMS", "System", "Targets", "system"]

CELERY_ACTORS_CONCURRENCY: Final = 8
"""Calls the celery_actors worker runs at once (``--concurrency``)."""

CELERY_ACTORS_PREFETCH: Final = 4
"""The celery_actors worker holds up to concurrency x this many calls (``--prefetch``):
Celery's default prefetch multiplier."""

CELERY_PREFORK_CONCURRENCY: Final = 2
"""Child processes of the Celery prefork worker (Celery's default: the CPU count)."""

CELERY_THREADS_CONCURRENCY: Final = 8
"""Threads of the Celery threads-pool worker."""

DRAMATIQ_THREADS: Final = 8
"""Worker threads of the one Dramatiq worker process (Dramatiq's default)."""


@attrs.frozen
class Targets:
    """Goals for a celery_actors system: a throughput floor and a p50 ceiling."""

    tasks_per_s: float
    p50_ms: float


@attrs.frozen
class System:
    """One system the suite measures.

    Attributes:
        key: its name in jobs, results and ``--only``.
        label: its name in the table.
        setup: how it runs (processes, concurrency), shown in the table.
        run: its scenario function.
        ours: a celery_actors system (compared with every other one).
        targets: what a celery_actors system should reach.
    """

    key: str
    label: str
    setup: str
    run: Callable[[Scenario], dict[str, Any]]
    ours: bool = False
    targets: Targets | None = None


P2P_TARGETS: Final = Targets(tasks_per_s=20_000, p50_ms=0.5)
BROKER_TARGETS: Final = Targets(tasks_per_s=5_000, p50_ms=1.0)
"""For celery_actors through RabbitMQ."""

_ADDRESS = re.compile(r"router at amqp://127\.0\.0\.1:(\d+)/")


def _celery_actors_client(
    scenario: Scenario, router: str, services: Sequence[Service]
) -> dict[str, Any]:
    """Measure as a client of the celery_actors router at ``router`` (``HOST:PORT``).

    The app is imported here, so that it reads the environment the system's
    function set (its name and broker).
    """
    import trio

    from celery_actors import AsyncResult, ResultTimeout

    from ._tasks_app import app, noop

    async def wait(result: AsyncResult, timeout: float) -> bool:
        try:
            await result.get(timeout=timeout)
        except ResultTimeout:
            return False
        return True

    async def client() -> dict[str, Any]:
        async with app.connect(router):
            return await measure_async(scenario, noop.delay, wait, services)

    figures: dict[str, Any] = trio.run(client)
    return figures


def _celery_actors(scenario: Scenario, router_options: Sequence[str] = ()) -> dict[str, Any]:
    """Start a celery_actors router (with ``router_options``) and a worker process, and
    measure as their client."""
    run = ("-m", "jumpstarter", "run", "benchmarks._tasks_app:app")
    router_command = python_command(
        *run,
        "--role",
        "router",
        "--router",
        "127.0.0.1:0",
        "--workflows",
        "memory",
        *router_options,
    )
    with service("celery_actors router", router_command) as router:
        port = router.wait_for(
            lambda out: (m := _ADDRESS.search(out)) and m.group(1), "its address", START_TIMEOUT
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
            str(CELERY_ACTORS_PREFETCH),
        )
        with service("celery_actors worker", worker_command) as worker:
            worker.wait_for(lambda out: "worker at" in out or None, "its address", START_TIMEOUT)
            return _celery_actors_client(scenario, f"127.0.0.1:{port}", [router, worker])


def celery_actors_p2p(scenario: Scenario) -> dict[str, Any]:
    """celery_actors peer-to-peer: a router process and a worker process, linked over
    AMQP 1.0; this process is the client."""
    return _celery_actors(scenario)


def celery_actors_rabbitmq(scenario: Scenario) -> dict[str, Any]:
    """celery_actors through RabbitMQ: this process publishes the calls to the app's
    queue over AMQP 1.0, the router consumes them there and publishes the results
    back through RabbitMQ; the worker links to the router peer-to-peer.

    The app's name is the measurement's own, and so is its durable queue, which is
    deleted before the measurement and after it.
    """
    require_rabbitmq()
    name = f"bench-tasks-{os.getpid()}"
    queues = [f"{name}.default"]
    # Read by this process's app (imported later) and by the peers, which inherit it.
    os.environ[CELERY_ACTORS_APP_ENV] = name
    os.environ[CELERY_ACTORS_BROKER_ENV] = RABBITMQ_AMQP10_URL
    delete_queues_with_rabbitmqctl(queues)
    try:
        return _celery_actors(scenario, ("--broker", RABBITMQ_AMQP10_URL))
    finally:
        delete_queues_with_rabbitmqctl(queues)


def _celery(pool: str, concurrency: int) -> Callable[[Scenario], dict[str, Any]]:
    def run(scenario: Scenario) -> dict[str, Any]:
        require_rabbitmq()
        queue = f"bench-celery-{pool}-{os.getpid()}"
        with redis() as redis_url:
            module = "benchmarks._tasks_celery"
            env = {
                "BENCH_CELERY_QUEUE": queue,
                "BENCH_REDIS_URL": redis_url,
                "BENCH_BROKER_URL": RABBITMQ_URL,
            }
            app_module = import_with_env(module, env)
            from celery.exceptions import TimeoutError as CeleryTimeout
            from celery.result import AsyncResult

            def wait(result: AsyncResult, timeout: float) -> bool:
                try:
                    result.get(timeout=timeout)
                except CeleryTimeout:
                    return False
                return True

            delete_queues([queue])
            command = python_command(
                "-m",
                "celery",
                "-A",
                module,
                "worker",
                "--pool",
                pool,
                "--concurrency",
                str(concurrency),
                "--queues",
                queue,
                "--hostname",
                f"bench-{os.getpid()}@%h",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "--loglevel",
                "WARNING",
            )
            try:
                with service(f"celery worker --pool {pool}", command, env) as worker:
                    return measure_sync(scenario, app_module.noop.delay, wait, [worker])
            finally:
                app_module.app.close()
                delete_queues([queue])

    return run


def dramatiq_rabbitmq(scenario: Scenario) -> dict[str, Any]:
    """Dramatiq: one worker process on RabbitMQ, results in Redis."""
    require_rabbitmq()
    queue = f"bench-dramatiq-{os.getpid()}"
    queues = [queue, f"{queue}.DQ", f"{queue}.XQ"]
    with redis() as redis_url:
        module = "benchmarks._tasks_dramatiq"
        env = {
            "BENCH_DRAMATIQ_QUEUE": queue,
            "BENCH_REDIS_URL": redis_url,
            "BENCH_BROKER_URL": RABBITMQ_URL,
        }
        app_module = import_with_env(module, env)
        from dramatiq import Message
        from dramatiq.results import ResultTimeout

        def wait(message: Message[Any], timeout: float) -> bool:
            try:
                # Whole seconds: Redis's blocking pop does not take less.
                message.get_result(block=True, timeout=max(1000, int(timeout * 1000)))
            except ResultTimeout:
                return False
            return True

        delete_queues(queues)
        command = python_command(
            "-m",
            "dramatiq",
            module,
            "--processes",
            "1",
            "--threads",
            str(DRAMATIQ_THREADS),
            "--queues",
            queue,
        )
        try:
            with service("dramatiq worker", command, env) as worker:
                return measure_sync(scenario, app_module.noop.send, wait, [worker])
        finally:
            app_module.broker.close()
            delete_queues(queues)


SYSTEMS: Final = (
    System(
        "celery-actors-p2p",
        "celery_actors, peer-to-peer",
        "a router and a worker process; "
        f"--concurrency {CELERY_ACTORS_CONCURRENCY} --prefetch {CELERY_ACTORS_PREFETCH}; "
        "async def task",
        celery_actors_p2p,
        ours=True,
        targets=P2P_TARGETS,
    ),
    System(
        "celery-actors-rabbitmq",
        "celery_actors, through RabbitMQ",
        "a router (--broker, AMQP 1.0) and a worker process; "
        f"--concurrency {CELERY_ACTORS_CONCURRENCY} --prefetch {CELERY_ACTORS_PREFETCH}; "
        "async def task",
        celery_actors_rabbitmq,
        ours=True,
        targets=BROKER_TARGETS,
    ),
    System(
        "celery-prefork",
        "Celery, prefork pool",
        f"1 worker; --pool prefork --concurrency {CELERY_PREFORK_CONCURRENCY} (child processes)",
        _celery("prefork", CELERY_PREFORK_CONCURRENCY),
    ),
    System(
        "celery-threads",
        "Celery, threads pool",
        f"1 worker; --pool threads --concurrency {CELERY_THREADS_CONCURRENCY}",
        _celery("threads", CELERY_THREADS_CONCURRENCY),
    ),
    System(
        "dramatiq",
        "Dramatiq",
        f"1 worker process; --processes 1 --threads {DRAMATIQ_THREADS}",
        dramatiq_rabbitmq,
    ),
)
"""Every system, celery_actors first; the table keeps this order."""


def system(key: str) -> System:
    """The system named ``key``."""
    for candidate in SYSTEMS:
        if candidate.key == key:
            return candidate
    raise KeyError(f"no system {key!r}; choose from {', '.join(s.key for s in SYSTEMS)}")
