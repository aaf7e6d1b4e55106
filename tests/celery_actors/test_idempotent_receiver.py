"""The worker is an idempotent receiver: a ``Run`` it receives twice (by call id and
attempt) runs once, and its router hears of the result once per run received."""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator

import attrs
import pytest
import trio

from celery_actors import App, TaskResult
from celery_actors._protocol import Run, RunEnded, TaskStarted
from jumpstarter import ActorRef, ActorSystem, handler

from .stand_in import StandInRouter

app = App("test-idempotent")
runs: dict[str, int] = {}
gates: dict[str, trio.Event] = {}
TIMEOUT = 30.0


@app.task
async def counted(key: str) -> str:
    runs[key] = runs.get(key, 0) + 1
    if key in gates:
        await gates[key].wait()
    return f"{key} ran"


@attrs.define
class Reports:
    """What a stand-in router heard: the results workers reported, in order."""

    results: list[TaskResult] = attrs.Factory(list)
    arrived: trio.Event = attrs.Factory(trio.Event)


class ReportingRouter(StandInRouter):
    """Keeps the results a worker reports."""

    def __init__(self, reports: Reports) -> None:
        super().__init__()
        self.reports = reports

    @handler
    def task_started(self, msg: TaskStarted) -> None:
        pass

    @handler
    def run_ended(self, msg: RunEnded) -> None:
        self.reports.results.append(msg.result)
        self.reports.arrived.set()


@attrs.define
class Setup:
    worker: ActorRef
    router: Reports

    async def run(self, run: Run, count: int = 1) -> list[TaskResult]:
        """Tell the worker ``run``; wait until the router holds ``count`` results."""
        await self.worker.tell(run)
        return await self.results(count)

    async def results(self, count: int) -> list[TaskResult]:
        with trio.fail_after(TIMEOUT):
            while len(self.router.results) < count:
                self.router.arrived = trio.Event()
                await self.router.arrived.wait()
        return self.router.results[:count]


async def start_worker(system: ActorSystem, **options: int) -> Setup:
    reports = Reports()
    router = await system.spawn(functools.partial(ReportingRouter, reports), name="router")
    worker = await app.start_worker(system, router, **options)
    return Setup(worker, reports)


@pytest.fixture
async def system() -> AsyncIterator[ActorSystem]:
    async with ActorSystem("test-idempotent", registry=app.registry) as system:
        yield system


async def test_a_run_received_twice_while_running_runs_once_and_is_reported_once(system, caplog):
    setup = await start_worker(system)
    gates["running"] = trio.Event()
    call = counted.make_call(("running",))
    with caplog.at_level(logging.WARNING, logger="celery_actors.worker"):
        await setup.worker.tell(Run(call))
        await setup.worker.tell(Run(call))
        with trio.fail_after(TIMEOUT):
            while runs.get("running", 0) == 0 or len(caplog.records) == 0:  # noqa: ASYNC110
                await trio.sleep(0.01)
        gates["running"].set()
        [result] = await setup.results(1)
        await trio.testing.wait_all_tasks_blocked()
    assert runs["running"] == 1 and len(setup.router.results) == 1
    assert result.state == "succeeded" and result.value == "running ran"
    assert f"[{call.id}]" in caplog.text and "already running" in caplog.text


async def test_a_run_received_again_after_it_finished_gets_the_remembered_result(system, caplog):
    setup = await start_worker(system)
    call = counted.make_call(("finished",))
    [first] = await setup.run(Run(call))
    with caplog.at_level(logging.WARNING, logger="celery_actors.worker"):
        [_, again] = await setup.run(Run(call), 2)
    assert runs["finished"] == 1
    assert again == first and again.value == "finished ran"
    assert f"[{call.id}]" in caplog.text and "finished on this worker recently" in caplog.text


async def test_another_attempt_of_the_same_call_runs_again(system):
    setup = await start_worker(system)
    call = counted.make_call(("attempts",))
    await setup.run(Run(call))
    [first, second] = await setup.run(Run(attrs.evolve(call, attempt=1)), 2)
    assert runs["attempts"] == 2
    assert (first.attempt, second.attempt) == (0, 1)


async def test_the_worker_remembers_only_the_last_recent_ids_runs(system):
    setup = await start_worker(system, recent_ids=2)
    calls = [counted.make_call((f"window-{n}",)) for n in range(3)]
    for number, call in enumerate(calls, 1):
        await setup.run(Run(call), number)
    for number, call in enumerate(reversed(calls), 4):  # the last two are remembered
        await setup.run(Run(call), number)
    assert [runs[f"window-{n}"] for n in range(3)] == [2, 1, 1]


async def test_with_recent_ids_zero_a_finished_run_runs_again_but_a_running_one_does_not(
    system,
):
    setup = await start_worker(system, recent_ids=0)
    gates["zero"] = trio.Event()
    call = counted.make_call(("zero",))
    await setup.worker.tell(Run(call))
    await setup.worker.tell(Run(call))
    with trio.fail_after(TIMEOUT):
        while runs.get("zero", 0) == 0:  # noqa: ASYNC110 - the task counts
            await trio.sleep(0.01)
    await trio.testing.wait_all_tasks_blocked()
    gates["zero"].set()
    await setup.results(1)
    assert runs["zero"] == 1
    await setup.run(Run(call), 2)
    assert runs["zero"] == 2


async def test_duplicate_calls_through_the_router_still_run_once():
    async with app.local():
        first = await counted.apply_async(("routed",), task_id="routed-id")
        second = await counted.apply_async(("routed",), task_id="routed-id")
        assert await first.get(timeout=TIMEOUT) == await second.get(timeout=TIMEOUT)
    assert runs["routed"] == 1


async def test_a_negative_recent_ids_is_refused(system):
    router = await app.start_router(system)
    with pytest.raises(Exception, match="recent_ids=-1"):
        await app.start_worker(system, router, recent_ids=-1)
