"""Soft time limits: ``SoftTimeLimitExceeded`` is raised inside the task, which may clean
up (awaiting, even returning a value) before the hard ``time_limit`` cancels it."""

from __future__ import annotations

import time

import pytest
import trio

from celery_actors import (
    NO_RETRY,
    App,
    RetryPolicy,
    SoftTimeLimitExceeded,
    TaskFailed,
    TaskRevoked,
)

app = App("test-soft-time-limit")
runs: dict[str, int] = {}
seen: dict[str, str] = {}
REAL_TIMEOUT = 60.0  # seconds of real time a def task waits for its interruption


@app.task(soft_time_limit=10, time_limit=20)
async def tidy(seconds: float) -> str:
    try:
        await trio.sleep(seconds)
    except SoftTimeLimitExceeded as exc:
        seen["tidy"] = str(exc)
        await trio.sleep(5)  # cleanup that awaits still runs
        return "cleaned up"
    return "finished"


@app.task(soft_time_limit=10, retry=RetryPolicy(max_retries=3, interval_start=0))
async def stubborn(key: str) -> None:
    runs[key] = runs.get(key, 0) + 1
    await trio.sleep(100)


@app.task(soft_time_limit=10, time_limit=20, retry=NO_RETRY)
async def slow_cleanup() -> None:
    try:
        await trio.sleep(100)
    except SoftTimeLimitExceeded:
        await trio.sleep(100)  # past the hard limit


@app.task(soft_time_limit=10)
async def cleanup_forever() -> None:
    try:
        await trio.sleep(100)
    except SoftTimeLimitExceeded:
        seen["cleanup_forever"] = "cleaning"
        await trio.sleep_forever()


@app.task(soft_time_limit=10, time_limit=20)
async def nested_scope() -> str:
    with trio.move_on_after(1000) as scope:
        try:
            await trio.sleep(100)
        except SoftTimeLimitExceeded:
            await trio.sleep(1)
            return f"inner scope cancelled: {scope.cancel_called}"
    return "not interrupted"


@app.task(soft_time_limit=10, retry=NO_RETRY)
async def with_children() -> None:
    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.sleep, 100)
        nursery.start_soon(trio.sleep, 100)


# def tasks run in real threads, so their tests run on the real clock: a mock clock
# would jump past every timeout while a thread works.


@app.task(soft_time_limit=0.2, time_limit=10_000)
def blocking(key: str) -> str:
    deadline = time.monotonic() + REAL_TIMEOUT
    try:
        while time.monotonic() < deadline:
            time.sleep(0.001)
    except SoftTimeLimitExceeded:
        return f"{key}: interrupted"
    return f"{key}: never interrupted"


@app.task(soft_time_limit=0.2, retry=RetryPolicy(max_retries=3, interval_start=0))
def blocking_uncaught(key: str) -> None:
    runs[key] = runs.get(key, 0) + 1
    deadline = time.monotonic() + REAL_TIMEOUT
    while time.monotonic() < deadline:
        time.sleep(0.001)


@app.task(soft_time_limit=0.001, retry=NO_RETRY)
def racing(x: int) -> int:
    """Its soft limit passes about when it returns: either may come first."""
    return sum(range(x * 1000))


@app.task
def plain(x: int) -> int:
    return x * 2


async def test_the_task_catches_the_soft_limit_cleans_up_and_returns_a_value(autojump_clock):
    async with app.local():
        start = trio.current_time()
        result = await tidy.delay(100)
        assert await result.get(timeout=60) == "cleaned up"
        assert 15 <= trio.current_time() - start < 20  # 10 s, then 5 s of cleanup
    assert "soft_time_limit=10" in seen["tidy"]


async def test_a_task_within_its_soft_limit_is_not_interrupted(autojump_clock):
    async with app.local():
        assert await (await tidy.delay(1)).get(timeout=60) == "finished"


async def test_an_uncaught_soft_limit_fails_the_call_without_retry(autojump_clock):
    async with app.local():
        result = await stubborn.delay("uncaught")
        with pytest.raises(TaskFailed, match="SoftTimeLimitExceeded") as info:
            await result.get(timeout=60)
    assert runs["uncaught"] == 1
    assert not info.value.result.quarantined


async def test_the_hard_limit_still_cancels_a_cleanup_that_runs_too_long(autojump_clock):
    async with app.local():
        result = await slow_cleanup.delay()
        with pytest.raises(TaskFailed, match="TimeLimitExceeded"):
            await result.get(timeout=60)


async def test_revoking_with_terminate_cancels_a_task_cleaning_up(autojump_clock):
    async with app.local():
        result = await cleanup_forever.delay()
        with trio.fail_after(60):
            while "cleanup_forever" not in seen:  # noqa: ASYNC110 - the task sets it
                await trio.sleep(1)
        assert await result.revoke(terminate=True)
        with pytest.raises(TaskRevoked):
            await result.get(timeout=60)


async def test_the_soft_limit_passes_through_the_task_s_own_cancel_scopes(autojump_clock):
    async with app.local():
        value = await (await nested_scope.delay()).get(timeout=60)
    assert value == "inner scope cancelled: False"


async def test_tasks_started_by_the_body_are_cancelled_and_the_call_fails(autojump_clock):
    async with app.local():
        with pytest.raises(TaskFailed, match="SoftTimeLimitExceeded"):
            await (await with_children.delay()).get(timeout=60)


async def test_a_def_task_gets_the_soft_limit_in_its_thread():
    async with app.local():
        results = [await blocking.delay(f"call-{n}") for n in range(3)]
        values = [await result.get(timeout=REAL_TIMEOUT) for result in results]
    assert values == [f"call-{n}: interrupted" for n in range(3)]


async def test_an_uncaught_soft_limit_in_a_def_task_fails_without_retry():
    async with app.local():
        with pytest.raises(TaskFailed, match="SoftTimeLimitExceeded"):
            await (await blocking_uncaught.delay("def-uncaught")).get(timeout=REAL_TIMEOUT)
    assert runs["def-uncaught"] == 1


async def test_a_soft_limit_racing_the_end_of_a_def_task_never_hits_later_work():
    async with app.local(threads=1):  # one thread runs every call, in turn
        for n in range(50):
            result = await racing.delay(n)
            try:
                assert await result.get(timeout=REAL_TIMEOUT) == sum(range(n * 1000))
            except TaskFailed as failure:
                assert "SoftTimeLimitExceeded" in str(failure)
        plain_results = [await plain.delay(n) for n in range(50)]
        assert [await r.get(timeout=REAL_TIMEOUT) for r in plain_results] == [
            2 * n for n in range(50)
        ]
        assert await (await blocking.delay("after")).get(timeout=REAL_TIMEOUT) == (
            "after: interrupted"
        )


def test_a_soft_limit_must_be_less_than_the_hard_limit():
    with pytest.raises(ValueError, match=r"soft_time_limit=20 must be less than time_limit=10"):

        @app.task(soft_time_limit=20, time_limit=10)
        async def wrong() -> None:
            pass


def test_limits_must_be_positive():
    with pytest.raises(ValueError, match=r"soft_time_limit=0 must be a positive number"):

        @app.task(soft_time_limit=0)
        async def instant() -> None:
            pass
