"""Clients collect results from the router many at once (``Expect`` then ``Collect``)."""

from __future__ import annotations

import pytest
import trio

from celery_actors import App
from celery_actors._protocol import Collect, Expect
from celery_actors._router import CLIENT_IDLE
from jumpstarter import AskTimeout

app = App("test-collect")
gate = trio.Event()


@app.task(name="double")
async def double(n: int) -> int:
    return 2 * n


@app.task(name="held")
async def held() -> str:
    await gate.wait()
    return "let go"


async def test_one_collect_answers_with_every_result_ready_since_the_last():
    async with app.local(concurrency=20) as client:
        calls = [await double.delay(n) for n in range(10)]
        for call in calls:  # all final before anyone collects
            await call.get(timeout=10)
        router = client.router
        await router.tell(Expect("by-hand", [call.id for call in calls]))
        results = await router.ask(Collect("by-hand"), timeout=10)
    assert sorted(result.value for result in results) == [2 * n for n in range(10)]


async def test_a_newer_collect_answers_the_older_one_with_nothing(autojump_clock):
    async with app.local() as client:
        call = await held.delay()
        router = client.router
        await router.tell(Expect("by-hand", [call.id]))
        async with trio.open_nursery() as nursery:
            answers: list[object] = []

            async def collect() -> None:
                answers.append(await router.ask(Collect("by-hand"), timeout=60))

            nursery.start_soon(collect)
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(collect)
            await trio.testing.wait_all_tasks_blocked()
            assert answers == [[]]
            gate.set()
        assert [result.value for result in answers[1]] == ["let go"]  # type: ignore[attr-defined]


async def test_the_router_forgets_a_client_that_stopped_collecting(autojump_clock):
    async with app.local() as client:
        router = client.router
        call = await double.delay(1)
        await call.get(timeout=10)
        await router.tell(Expect("gone", [call.id]))  # ready, and never collected
        await router.tell(Expect("here", [call.id]))
        assert [result.value for result in await router.ask(Collect("here"), timeout=5)] == [2]
        await trio.sleep(CLIENT_IDLE * 2.5)
        with pytest.raises(AskTimeout):  # forgotten: nothing comes
            await router.ask(Collect("gone"), timeout=5)
