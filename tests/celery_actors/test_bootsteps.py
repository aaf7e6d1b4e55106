"""Boot steps: a worker starts through actors with dependencies; mandatory steps that
fail stop its start, optional ones are retried while it runs degraded."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import AsyncIterator

import attrs
import pytest
import trio

from celery_actors import App, BootStepError, BootStepFailed, WorkerContext
from jumpstarter import Actor, ActorSystem, handler
from tests.celery_actors.test_processes import REPO

TIMEOUT = 30.0

failing_app = App("failing-boot")
"""Run by a test with ``jumpstart run``: its worker cannot start."""


@failing_app.boot_step(name="database")
@contextlib.asynccontextmanager
async def database(context: WorkerContext) -> AsyncIterator[None]:
    raise ConnectionRefusedError("no database at 127.0.0.1:1")
    yield


@attrs.frozen
class Hello:
    pass


def recording_app(events: list[str]) -> App:
    app = App("boot")

    @app.task
    async def add(x: int, y: int) -> int:
        return x + y

    def step(name: str) -> None:
        @contextlib.asynccontextmanager
        async def start(context: WorkerContext) -> AsyncIterator[None]:
            events.append(f"start {name}")
            try:
                yield
            finally:
                events.append(f"stop {name}")

        app.boot_step(name=name, requires=requires[name])(start)

    requires = {"cache": ["db"], "db": [], "metrics": ["announce"]}
    for name in ("cache", "db", "metrics"):
        step(name)
    return app


async def test_steps_start_after_what_they_require_and_stop_before_it():
    events: list[str] = []
    app = recording_app(events)
    async with app.local() as client:
        (add,) = (task for name, task in app.tasks.items() if not name.startswith("celery."))
        assert await (await add.delay(1, 2)).get(timeout=TIMEOUT) == 3
        system = client.system
        paths = set(system.actors)
        for step in ("control", "pool", "announce", "db", "cache", "metrics"):
            assert f"/user/worker-1/{step}" in paths
        report = await client.control(system.actors["/user/worker-1"].address).stats()
        assert report.steps == dict.fromkeys(
            ["control", "db", "cache", "pool", "announce", "metrics"], "up"
        )
    assert events == [
        "start db",
        "start cache",
        "start metrics",
        "stop metrics",
        "stop cache",
        "stop db",
    ]


async def test_the_worker_takes_calls_once_its_mandatory_steps_are_up():
    app = App("boot-order")
    seen: list[bool] = []

    @app.boot_step(name="slow")
    @contextlib.asynccontextmanager
    async def slow(context: WorkerContext) -> AsyncIterator[None]:
        stats = await context.router.ask(_router_stats())
        seen.append(any(worker.capacity for worker in stats.workers))
        yield

    @app.task
    async def one() -> int:
        return 1

    async with app.local() as client:
        assert await (await one.delay()).get(timeout=TIMEOUT) == 1
        stats = await client.stats()
        assert [worker.capacity > 0 for worker in stats.workers] == [True]
    assert seen == [False]


def _router_stats() -> object:
    from celery_actors._protocol import GetStats

    return GetStats()


async def test_an_actor_class_is_a_step_with_handlers_of_its_own():
    app = App("boot-actor")

    @app.boot_step(name="greeter", requires=["control"])
    class Greeter(Actor):
        def __init__(self, context: WorkerContext) -> None:
            self.worker = context.worker

        @handler
        def hello(self, msg: Hello) -> str:
            return f"hello from {self.worker.path}"

    async with app.local() as client:
        greeter = client.system.lookup("/user/worker-1/greeter")
        assert await greeter.ask(Hello()) == "hello from /user/worker-1"


async def test_a_mandatory_step_that_fails_stops_the_start_and_names_the_step():
    app = App("boot-fails")
    app.boot_step(name="database")(database)
    async with ActorSystem("boot-fails") as system:
        router = await app.start_router(system)
        with pytest.raises(BootStepFailed, match=r"'database'.*ConnectionRefusedError") as info:
            await app.start_worker(system, router)
        assert info.value.step == "database"
        assert "/user/worker" not in system.actors


def test_a_worker_whose_mandatory_step_fails_exits_non_zero_under_jumpstart_run():
    process = subprocess.run(
        [
            sys.executable,
            "-m",
            "jumpstarter",
            "run",
            "tests.celery_actors.test_bootsteps:failing_app",
            "--role",
            "worker",
            "--router",
            "127.0.0.1:1",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert process.returncode != 0
    assert "BootStepFailed" in process.stderr
    assert "worker boot step 'database' failed to start" in process.stderr
    assert "no database at 127.0.0.1:1" in process.stderr


async def test_an_optional_step_that_fails_is_retried_while_the_worker_runs_degraded():
    app = App("boot-optional")
    attempts: list[int] = []
    retried = trio.Event()
    may_start = trio.Event()

    @app.boot_step(name="metrics", optional=True)
    @contextlib.asynccontextmanager
    async def metrics(context: WorkerContext) -> AsyncIterator[None]:
        attempts.append(1)
        if len(attempts) == 2:
            retried.set()
        if not may_start.is_set():
            raise OSError("the metrics server is down")
        yield

    @app.task
    async def one() -> int:
        return 1

    async with app.local() as client:
        system = client.system
        worker = system.actors["/user/worker-1"]
        with trio.fail_after(TIMEOUT):
            await system.wait_for_state(worker, "started.running.degraded")
        assert await (await one.delay()).get(timeout=TIMEOUT) == 1  # it runs calls
        report = await client.control(worker.address).stats()
        assert report.steps["metrics"] == "down"
        with trio.fail_after(TIMEOUT):
            await retried.wait()  # tried again, and failed again
        may_start.set()
        with trio.fail_after(TIMEOUT):
            await system.wait_for_state(worker, "started.running.healthy")
        assert "/user/worker-1/metrics" in system.actors
        assert (await client.control(worker.address).stats()).steps["metrics"] == "up"


@pytest.mark.parametrize(
    ("declare", "message"),
    [
        (lambda app: app.boot_step(name="a", requires=["nowhere"]), "requires 'nowhere'"),
        (
            lambda app: (
                app.boot_step(name="a", optional=True),
                app.boot_step(name="b", requires=["a"]),
            ),
            "mandatory boot step 'b' requires the optional step 'a'",
        ),
        (
            lambda app: (
                app.boot_step(name="a", requires=["b"]),
                app.boot_step(name="b", requires=["a"]),
            ),
            "cycle",
        ),
    ],
)
async def test_steps_declared_wrong_are_refused_with_what_to_fix(declare, message):
    app = App("boot-wrong")

    @contextlib.asynccontextmanager
    async def step(context: WorkerContext) -> AsyncIterator[None]:
        yield

    decorators = declare(app)
    for decorator in decorators if isinstance(decorators, tuple) else (decorators,):
        decorator(step)
    async with ActorSystem("boot-wrong") as system:
        router = await app.start_router(system)
        with pytest.raises(BootStepError, match=message):
            await app.start_worker(system, router)


def test_a_built_in_step_name_or_a_name_used_twice_is_refused():
    app = App("boot-names")

    @contextlib.asynccontextmanager
    async def step(context: WorkerContext) -> AsyncIterator[None]:
        yield

    with pytest.raises(ValueError, match="built-in"):
        app.boot_step(name="pool")(step)
    app.boot_step(name="mine")(step)
    with pytest.raises(ValueError, match="already declared"):
        app.boot_step(name="mine")(step)
