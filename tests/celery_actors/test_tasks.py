"""Tasks end to end in one process: ``app.local()`` runs a router and workers in the
test's own trio run, through the same actors as separate processes."""

from __future__ import annotations

import functools
import threading

import pytest
import trio

from celery_actors import (
    NO_RETRY,
    App,
    MemorySink,
    NotConnected,
    ResultTimeout,
    RetryPolicy,
    TaskCall,
    TaskFailed,
    TaskResult,
    TaskRevoked,
    poisonous,
    retry,
)
from celery_actors._clock import wall_time
from celery_actors._protocol import Run, RunEnded, Terminate, Withdraw
from jumpstarter import ActorRef, handler

from .stand_in import StandInWorker

app = App("test-tasks")
runs: dict[str, int] = {}


@app.task
async def add(x: int, y: int) -> int:
    return x + y


@app.task
def multiply(x: int, y: int) -> tuple[int, str]:
    return x * y, threading.current_thread().name


@app.task(retry=RetryPolicy(max_retries=2, interval_start=0, interval_step=0, jitter=0))
async def flaky(key: str, failures: int) -> int:
    runs[key] = runs.get(key, 0) + 1
    if runs[key] <= failures:
        raise ConnectionError(f"failure {runs[key]}")
    return runs[key]


@app.task(retry=NO_RETRY)
async def broken() -> None:
    raise ValueError("always broken")


@app.task
async def poisoned(key: str) -> None:
    runs[key] = runs.get(key, 0) + 1
    with poisonous():
        raise KeyError("bad input")


@app.task(retry=NO_RETRY)
async def own_policy(key: str) -> None:
    runs[key] = runs.get(key, 0) + 1
    with retry(max_retries=1, interval_start=0, interval_step=0, jitter=0):
        raise OSError("try once more")


@app.task
async def sleeper(seconds: float) -> str:
    await trio.sleep(seconds)
    return "woke"


@app.task(time_limit=1.0, retry=NO_RETRY)
async def too_slow() -> None:
    await trio.sleep(10)


@app.task(name="named.echo")
async def echo(value: object) -> object:
    return value


async def test_an_async_task_runs_and_its_result_comes_back():
    async with app.local():
        result = await add.delay(2, 3)
        assert await result.get(timeout=5) == 5
        assert result.state == "succeeded"
        assert await result.refresh() == "succeeded"


async def test_a_def_task_runs_in_a_worker_thread():
    async with app.local():
        value, thread = await (await multiply.delay(6, 7)).get(timeout=5)
    assert value == 42
    assert thread != threading.main_thread().name


async def test_calling_the_task_object_runs_the_function_here():
    assert await add(1, 2) == 3
    assert multiply(2, 2)[0] == 4


async def test_many_calls_run_concurrently_and_each_gets_its_own_result():
    async with app.local(workers=2, concurrency=20):
        results = [await add.apply_async((i, i)) for i in range(200)]
        assert [await r.get(timeout=10) for r in results] == [2 * i for i in range(200)]


async def test_arguments_and_results_are_plain_values():
    value = {"list": [1, 2.5, "three", None, True], "bytes": b"\x00\x01", "nested": {"a": []}}
    async with app.local():
        assert await (await echo.delay(value)).get(timeout=5) == value


async def test_a_failing_call_retries_by_its_policy_then_succeeds(autojump_clock):
    async with app.local():
        result = await flaky.delay("twice", 2)
        assert await result.get(timeout=30) == 3
        assert result.document is not None and result.document.attempt == 2


async def test_a_call_failing_past_its_retries_fails_and_is_quarantined(autojump_clock):
    async with app.local():
        result = await flaky.delay("always", 100)
        with pytest.raises(TaskFailed, match=r"quarantined.*ConnectionError: failure 3") as info:
            await result.get(timeout=30)
    assert runs["always"] == 3  # the first run and two retries
    assert info.value.result.quarantined
    assert "ConnectionError" in info.value.traceback


async def test_a_task_without_retries_fails_at_once():
    async with app.local():
        with pytest.raises(TaskFailed, match="ValueError: always broken"):
            await (await broken.delay()).get(timeout=5)


async def test_a_poisonous_step_fails_at_once_even_with_retries_left():
    async with app.local():
        with pytest.raises(TaskFailed, match="quarantined"):
            await (await poisoned.delay("p")).get(timeout=5)
    assert runs["p"] == 1


async def test_a_retry_block_gives_its_failures_their_own_policy():
    async with app.local():
        with pytest.raises(TaskFailed, match="OSError"):
            await (await own_policy.delay("own")).get(timeout=5)
    assert runs["own"] == 2


async def test_a_task_past_its_time_limit_is_cancelled_and_fails(autojump_clock):
    async with app.local():
        with pytest.raises(TaskFailed, match="TimeLimitExceeded"):
            await (await too_slow.delay()).get(timeout=30)


async def test_get_times_out_while_the_call_goes_on(autojump_clock):
    async with app.local():
        result = await sleeper.delay(10)
        with pytest.raises(ResultTimeout):
            await result.get(timeout=1)
        assert await result.refresh() == "running"
        assert await result.get(timeout=30) == "woke"


async def test_revoking_a_running_call_with_terminate_cancels_it(autojump_clock):
    async with app.local():
        result = await sleeper.delay(1000)
        await trio.sleep(1)
        assert await result.refresh() == "running"
        assert await result.revoke(terminate=True)
        with pytest.raises(TaskRevoked):
            await result.get(timeout=5)
        assert result.state == "revoked"


class EndsRetryingWorker(StandInWorker):
    """A stand-in worker whose run of each call ends ``retrying`` just as the router
    terminates it: the end crosses the router's ``Terminate`` on the way."""

    def __init__(self, router: ActorRef, runs: list[TaskCall]) -> None:
        super().__init__(router, app.tasks, capacity=1)
        self.runs = runs

    @handler
    def run(self, msg: Run) -> None:
        self.runs.append(msg.call)

    @handler
    def withdraw(self, msg: Withdraw) -> bool:
        return False  # it has started

    @handler
    async def terminate(self, msg: Terminate) -> None:
        call = next(call for call in self.runs if call.id == msg.id)
        ended = TaskResult.of(call, "retrying", wall_time(), retry_in=0.1)
        await self.router.tell(RunEnded(ended, self.ref.address))


async def test_a_call_terminated_is_not_run_again_when_its_run_had_just_ended_retrying(
    autojump_clock,
):
    async with app.local(workers=0, default=False) as client:
        calls: list[TaskCall] = []
        await client.system.spawn(functools.partial(EndsRetryingWorker, client.router, calls))
        result = await client.submit(add.make_call((1, 2)))
        while not calls:  # noqa: ASYNC110 - the stand-in's list
            await trio.sleep(0.01)
        assert await result.revoke(terminate=True)
        with pytest.raises(TaskRevoked):
            await result.get(timeout=5)
        await trio.sleep(5)  # a retry would have been sent by now
    assert len(calls) == 1


async def test_a_call_revoked_before_it_starts_never_runs(autojump_clock):
    async with app.local(concurrency=1):
        blocker = await sleeper.delay(100)
        waiting = await flaky.delay("never", 0)
        assert await waiting.refresh() == "pending"
        assert await waiting.revoke()
        with pytest.raises(TaskRevoked):
            await waiting.get(timeout=5)
        await blocker.revoke(terminate=True)
    assert "never" not in runs


async def test_a_countdown_delays_the_start(autojump_clock):
    async with app.local():
        start = trio.current_time()
        result = await add.apply_async((1, 1), countdown=60)
        assert await result.refresh() == "pending"
        assert await result.get(timeout=120) == 2
        assert trio.current_time() - start >= 59.9  # the eta is wall-clock time


async def test_an_expired_call_is_revoked_instead_of_run(autojump_clock):
    sink = MemorySink()
    async with app.local(concurrency=1, sinks=[sink]):
        blocker = await sleeper.delay(10)
        late = await flaky.apply_async(("expired", 0), expires=1)
        with pytest.raises(TaskRevoked, match="expired"):
            await late.get(timeout=30)
        await blocker.get(timeout=30)
        stored = await sink.load(late.id)
    assert "expired" not in runs
    assert stored is not None and stored.state == "revoked"


async def test_higher_priority_calls_start_first():
    order: list[int] = []
    started, gate = trio.Event(), trio.Event()
    prio = App("test-priority")

    @prio.task
    async def note(n: int) -> None:
        order.append(n)

    @prio.task
    async def hold() -> None:
        started.set()
        await gate.wait()

    async with prio.local(concurrency=1):
        held = await hold.delay()
        await started.wait()  # the only slot is taken: the calls below wait in the router
        results = [await note.apply_async((n,), priority=n % 3) for n in range(9)]
        gate.set()
        await held.get(timeout=5)
        for result in results:
            await result.get(timeout=5)
    assert order == [2, 5, 8, 1, 4, 7, 0, 3, 6]  # by priority, then in the order sent


async def test_a_call_sent_twice_with_the_same_id_runs_once():
    async with app.local():
        first = await flaky.apply_async(("once", 0), task_id="same-id")
        second = await flaky.apply_async(("once", 0), task_id="same-id")
        assert await first.get(timeout=5) == 1
        assert await second.get(timeout=5) == 1
    assert runs["once"] == 1


async def test_calling_a_task_with_no_client_open_says_what_to_do():
    with pytest.raises(NotConnected, match=r"app\.local"):
        await add.delay(1, 2)


def test_two_tasks_cannot_share_a_name():
    with pytest.raises(ValueError, match="already registered"):

        @app.task(name="named.echo")
        async def other() -> None:
            pass
