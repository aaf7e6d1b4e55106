"""Consuming messages of other AMQP 1.0 programs (``consume(..., foreign=True)``) from
the real RabbitMQ on 127.0.0.1:5672, and rejecting a message by answering
``RejectDelivery``."""

from __future__ import annotations

import proton
import trio

from jumpstarter import (
    Actor,
    ForeignMessage,
    RejectDelivery,
    TypeRegistry,
    handler,
    open_broker,
)
from tests.jumpstarter.test_broker import (
    HANG_GUARD,
    URL,
    Job,
    publish_raw,
    queue,
    queue_counts,
    registry,
    wait_until,
)

__all__ = ["queue"]  # the fixture, used by name


class Keeper(Actor):
    """Keeps the foreign messages it gets; answers RejectDelivery for a body ``b"no"``."""

    def __init__(self, kept: list[ForeignMessage]) -> None:
        self.kept = kept

    @handler
    def foreign(self, msg: ForeignMessage) -> RejectDelivery | None:
        if msg.body == b"no":
            return RejectDelivery("not a document", condition="amqp:precondition-failed")
        self.kept.append(msg)
        return None


class Refuser(Actor):
    """Answers every job with RejectDelivery."""

    @handler
    def job(self, msg: Job) -> RejectDelivery:
        return RejectDelivery(f"job {msg.n} cannot be done")


async def test_foreign_messages_reach_the_actor_as_sent(actor_system, queue):
    address = f"/queue/{queue}"
    await publish_raw(
        address,
        bytes(
            proton.Message(
                id="order-1",
                subject="orders",
                content_type="application/json",
                properties={"tenant": "acme"},
                body=b'{"n": 1}',
                inferred=True,
            ).encode()
        ),
    )
    await publish_raw(address, bytes(proton.Message(body="a string").encode()))
    await publish_raw(address, bytes(proton.Message(id=7, body={"a": [1, 2]}).encode()))
    await publish_raw(address, bytes(proton.Message(body=b"no", inferred=True).encode()))
    kept: list[ForeignMessage] = []
    keeper = await actor_system.spawn(Keeper, kept)
    with trio.fail_after(HANG_GUARD):
        async with open_broker(URL, registry=TypeRegistry()) as broker, trio.open_nursery() as n:
            consumer = await n.start(
                lambda task_status: broker.consume(
                    address, keeper, foreign=True, task_status=task_status
                )
            )
            await wait_until(lambda: consumer.statistics().in_flight == 0 and len(kept) == 3)
            await wait_until(lambda: consumer.statistics().rejected == 1)
            n.cancel_scope.cancel()
    first, second, third = kept
    assert first == ForeignMessage(
        body=b'{"n": 1}',
        message_id="order-1",
        content_type="application/json",
        subject="orders",
        properties={"tenant": "acme"},
        address=address,
    )
    assert second.body == "a string" and second.message_id is None
    assert third.body == {"a": [1, 2]} and third.message_id == "7"
    stats = consumer.statistics()
    assert (stats.accepted, stats.rejected) == (3, 1)
    assert await queue_counts(queue) == (0, 0)


async def test_a_handler_that_answers_reject_delivery_has_its_message_rejected(actor_system, queue):
    address = f"/queue/{queue}"
    refuser = await actor_system.spawn(Refuser)
    with trio.fail_after(HANG_GUARD):
        async with open_broker(URL, registry=registry) as broker, trio.open_nursery() as n:
            await broker.publish(address, Job(n=1), durable=False)
            consumer = await n.start(broker.consume, address, refuser)
            await wait_until(lambda: consumer.statistics().rejected == 1)
            n.cancel_scope.cancel()
    stats = consumer.statistics()
    assert (stats.received, stats.accepted, stats.failed) == (1, 0, 0)
    assert await queue_counts(queue) == (0, 0)  # dropped, not delivered again
