"""The publisher: a message no broker will ever take is dropped with an error, and the
messages after it are still published, in order (at least once: one sent when the
broker ended the session may be sent again, under the same id)."""

from __future__ import annotations

import functools
import logging
import subprocess
import uuid
from collections.abc import Iterator

import pytest
import trio

from celery_actors import TaskCall
from celery_actors._publisher import Publish, Publisher, PublisherStatus, QueryPublisher
from jumpstarter import Actor, ActorSystem, handler, open_broker
from tests.celery_actors.test_brokers import DURABLE

TIMEOUT = 30.0


class Recorder(Actor):
    def __init__(self, seen: list[str], expected: set[str], done: trio.Event) -> None:
        self.seen = seen
        self.expected = expected
        self.done = done

    @handler
    def call(self, msg: TaskCall) -> None:
        self.seen.append(msg.id)
        if self.expected <= set(self.seen):
            self.done.set()


@pytest.fixture
def queue() -> Iterator[str]:
    name = f"ca-test-publisher-{uuid.uuid4().hex[:8]}"
    yield name
    subprocess.run(["rabbitmqctl", "-q", "delete_queue", name], capture_output=True, check=False)


async def test_a_refused_address_is_dropped_with_an_error_and_the_rest_is_published(caplog, queue):
    seen: list[str] = []
    done = trio.Event()
    with trio.fail_after(TIMEOUT):
        async with ActorSystem("publisher-test") as system:
            registry = system.registry
            registry.register(TaskCall, "celery.call.v1")
            publisher = await system.spawn(functools.partial(Publisher, [DURABLE], registry))
            calls = [TaskCall(id=f"call-{n}", task="t") for n in range(3)]
            with caplog.at_level(logging.ERROR, logger="celery_actors.publisher"):
                await publisher.tell(Publish(f"/queue/{queue}", calls[0], calls[0].id))
                await publisher.tell(
                    Publish("/exchange/no-such-exchange/key", calls[1], calls[1].id)
                )
                await publisher.tell(Publish(f"/queue/{queue}", calls[2], calls[2].id))
                recorder = await system.spawn(
                    functools.partial(Recorder, seen, {"call-0", "call-2"}, done)
                )
                async with (
                    open_broker(DURABLE, registry=registry) as broker,
                    trio.open_nursery() as nursery,
                ):
                    await nursery.start(broker.consume, f"/queue/{queue}", recorder)
                    await done.wait()
                    nursery.cancel_scope.cancel()
                status: PublisherStatus = await publisher.ask(QueryPublisher())
                while status.backlog:
                    await trio.sleep(0.01)
                    status = await publisher.ask(QueryPublisher())
    assert set(seen) == {"call-0", "call-2"}  # the refused one is gone, nothing else
    assert seen.index("call-0") < seen.index("call-2")  # in order
    assert status.connected is not None
    assert "no-such-exchange" in caplog.text and "dropped 1" in caplog.text
