"""A worker tells its router that a call runs when the call's body first waits; a body
that ends without waiting goes from received straight to its end."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator

import pytest
import trio

from celery_actors import App
from celery_actors._protocol import Run, RunEnded, TaskStarted
from jumpstarter import ActorSystem, handler

from .stand_in import StandInRouter

app = App("test-started-news")
TIMEOUT = 30.0


@app.task
async def instant(n: int) -> int:
    return n + 1


@app.task
async def waits(n: int) -> int:
    await trio.sleep(0.001)
    return n + 1


@app.task
def threaded(n: int) -> int:
    return n + 1


@app.task
async def fails_at_once() -> None:
    raise LookupError("no such thing")


class NewsRouter(StandInRouter):
    """Keeps, per call id, the names of the messages a worker told about it."""

    def __init__(self, news: dict[str, list[str]], ended: trio.Event, expected: int) -> None:
        super().__init__()
        self.news = news
        self.ended = ended
        self.expected = expected

    @handler
    def task_started(self, msg: TaskStarted) -> None:
        self.news.setdefault(msg.id, []).append("started")

    @handler
    def run_ended(self, msg: RunEnded) -> None:
        self.news.setdefault(msg.result.id, []).append(msg.result.state)
        if sum(state != "started" for told in self.news.values() for state in told) == (
            self.expected
        ):
            self.ended.set()


@pytest.fixture
async def system() -> AsyncIterator[ActorSystem]:
    async with ActorSystem("test-started-news", registry=app.registry) as system:
        yield system


async def test_a_call_is_announced_running_only_once_its_body_waits(system: ActorSystem) -> None:
    news: dict[str, list[str]] = {}
    ended = trio.Event()
    calls = {
        "instant": instant.make_call((1,)),
        "waits": waits.make_call((1,)),
        "threaded": threaded.make_call((1,)),
        "fails_at_once": fails_at_once.make_call(()),
    }
    router = await system.spawn(
        functools.partial(NewsRouter, news, ended, len(calls)), name="router"
    )
    worker = await app.start_worker(system, router)
    for call in calls.values():
        await worker.tell(Run(call))
    with trio.fail_after(TIMEOUT):
        await ended.wait()
    told = {name: news[call.id] for name, call in calls.items()}
    assert told["instant"] == ["succeeded"]
    assert told["waits"] == ["started", "succeeded"]
    assert told["threaded"] == ["started", "succeeded"]
    assert told["fails_at_once"][-1] in ("retrying", "failed")
    assert "started" not in told["fails_at_once"]
