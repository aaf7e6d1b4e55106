"""The worker is an idempotent receiver: a ``Run`` it receives twice (by call id and
attempt) runs once, and both asks get the same result."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import attrs
import pytest
import trio

from celery_actors import App, TaskResult
from celery_actors._protocol import Run
from jumpstarter import ActorRef, ActorSystem

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


async def start_worker(system: ActorSystem, **options: int) -> ActorRef:
    router = await app.start_router(system)
    return await app.start_worker(system, router, **options)


@pytest.fixture
async def system() -> AsyncIterator[ActorSystem]:
    async with ActorSystem("test-idempotent") as system:
        yield system


async def ask_run(worker: ActorRef, run: Run) -> TaskResult:
    result: TaskResult = await worker.ask(run, timeout=TIMEOUT)
    return result


async def test_a_run_received_twice_while_running_runs_once_and_both_get_its_result(system, caplog):
    worker = await start_worker(system)
    gates["running"] = trio.Event()
    call = counted.make_call(("running",))
    results: list[TaskResult] = []

    async def ask() -> None:
        results.append(await ask_run(worker, Run(call)))

    with caplog.at_level(logging.WARNING, logger="celery_actors.worker"):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(ask)
            nursery.start_soon(ask)
            with trio.fail_after(TIMEOUT):
                while runs.get("running", 0) == 0 or len(caplog.records) == 0:  # noqa: ASYNC110
                    await trio.sleep(0.01)
            gates["running"].set()
    assert runs["running"] == 1
    assert len(results) == 2 and results[0] == results[1]
    assert results[0].state == "succeeded" and results[0].value == "running ran"
    assert f"[{call.id}]" in caplog.text and "already running" in caplog.text


async def test_a_run_received_again_after_it_finished_gets_the_remembered_result(system, caplog):
    worker = await start_worker(system)
    call = counted.make_call(("finished",))
    first = await ask_run(worker, Run(call))
    with caplog.at_level(logging.WARNING, logger="celery_actors.worker"):
        again = await ask_run(worker, Run(call))
    assert runs["finished"] == 1
    assert again == first and again.value == "finished ran"
    assert f"[{call.id}]" in caplog.text and "finished on this worker recently" in caplog.text


async def test_another_attempt_of_the_same_call_runs_again(system):
    worker = await start_worker(system)
    call = counted.make_call(("attempts",))
    first = await ask_run(worker, Run(call))
    second = await ask_run(worker, Run(attrs.evolve(call, attempt=1)))
    assert runs["attempts"] == 2
    assert (first.attempt, second.attempt) == (0, 1)


async def test_the_worker_remembers_only_the_last_recent_ids_runs(system):
    worker = await start_worker(system, recent_ids=2)
    calls = [counted.make_call((f"window-{n}",)) for n in range(3)]
    for call in calls:
        await ask_run(worker, Run(call))
    for call in reversed(calls):  # the last two are remembered; the first runs again
        await ask_run(worker, Run(call))
    assert [runs[f"window-{n}"] for n in range(3)] == [2, 1, 1]


async def test_with_recent_ids_zero_a_finished_run_runs_again_but_a_running_one_does_not(
    system,
):
    worker = await start_worker(system, recent_ids=0)
    gates["zero"] = trio.Event()
    call = counted.make_call(("zero",))
    results: list[TaskResult] = []

    async def ask() -> None:
        results.append(await ask_run(worker, Run(call)))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(ask)
        nursery.start_soon(ask)
        with trio.fail_after(TIMEOUT):
            while runs.get("zero", 0) == 0:  # noqa: ASYNC110 - the task counts
                await trio.sleep(0.01)
        await trio.testing.wait_all_tasks_blocked()
        gates["zero"].set()
    assert runs["zero"] == 1 and results[0] == results[1]
    await ask_run(worker, Run(call))
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
