"""A worker with a prefetch above 1 holds more calls than it runs; the calls waiting
there still start by priority, can be revoked, and expire."""

from __future__ import annotations

import pytest
import trio

from celery_actors import App, TaskRevoked

TIMEOUT = 10.0


def make_app() -> tuple[App, list[int], trio.Event, trio.Event]:
    app = App("test-prefetch")
    order: list[int] = []
    started, gate = trio.Event(), trio.Event()

    @app.task(name="note")
    async def note(n: int) -> None:
        order.append(n)

    @app.task(name="hold")
    async def hold() -> None:
        started.set()
        await gate.wait()

    return app, order, started, gate


async def test_calls_waiting_on_the_worker_start_by_priority():
    app, order, started, gate = make_app()
    async with app.local(concurrency=1, prefetch=4) as client:
        held = await app.tasks["hold"].delay()
        await started.wait()
        # The worker takes three more: they wait there, not in the router.
        results = [await app.tasks["note"].apply_async((n,), priority=n) for n in (0, 2, 1)]
        for result in results:
            with trio.fail_after(TIMEOUT):
                while await result.refresh() != "received":  # noqa: ASYNC110 - no event for it
                    await trio.sleep(0.01)
        assert (await client.stats()).states["received"] == 3
        gate.set()
        await held.get(timeout=TIMEOUT)
        for result in results:
            await result.get(timeout=TIMEOUT)
    assert order == [2, 1, 0]


async def test_a_call_waiting_on_the_worker_is_revoked_without_terminate():
    app, order, started, gate = make_app()
    async with app.local(concurrency=1, prefetch=2):
        held = await app.tasks["hold"].delay()
        await started.wait()
        waiting = await app.tasks["note"].delay(7)
        with trio.fail_after(TIMEOUT):
            while await waiting.refresh() != "received":  # noqa: ASYNC110 - no event for it
                await trio.sleep(0.01)
        assert await waiting.revoke()  # not started: withdrawn from the worker
        with pytest.raises(TaskRevoked, match="revoked before it started"):
            await waiting.get(timeout=TIMEOUT)
        gate.set()
        await held.get(timeout=TIMEOUT)
    assert order == []


async def test_a_call_waiting_on_the_worker_past_its_expiry_does_not_run(autojump_clock):
    app, order, started, gate = make_app()
    async with app.local(concurrency=1, prefetch=2):
        held = await app.tasks["hold"].delay()
        await started.wait()
        late = await app.tasks["note"].apply_async((7,), expires=60)
        await trio.sleep(120)
        gate.set()
        await held.get(timeout=TIMEOUT)
        with pytest.raises(TaskRevoked, match="expired before it could start"):
            await late.get(timeout=TIMEOUT)
    assert order == []


async def test_nothing_is_lost_with_a_large_prefetch():
    app = App("test-prefetch-many")

    @app.task(name="double")
    async def double(n: int) -> int:
        await trio.lowlevel.checkpoint()
        return 2 * n

    async with app.local(workers=2, concurrency=3, prefetch=8):
        results = [await double.delay(n) for n in range(200)]
        assert [await result.get(timeout=TIMEOUT) for result in results] == [
            2 * n for n in range(200)
        ]
