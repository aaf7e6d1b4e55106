"""Publishing to and consuming from a real RabbitMQ (AMQP 1.0 plugin) on 127.0.0.1:5672.

Where RabbitMQ 3.10 cannot produce an outcome (it never rejects a publish, and does
not know the modified outcome), a small broker made with the driver's own ``serve``
stands in for it.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import attrs
import proton
import pytest
import trio

from jumpstarter import (
    Actor,
    AddressRefused,
    BrokerConnectionError,
    BrokerError,
    BrokerSettings,
    Consumer,
    PendingReply,
    PublishRefused,
    TLSConfig,
    TypeRegistry,
    disable_logging,
    enable_logging,
    handler,
    open_broker,
)
from jumpstarter._amqp import (
    Accepted,
    Codec,
    DeliveryUpdated,
    ErrorCondition,
    LinkRequested,
    MessageReceived,
    Modified,
    Outcome,
    Rejected,
    Released,
    WireEnvelope,
)
from jumpstarter._amqp_driver import Connection, SenderLink, connect, serve
from jumpstarter._certs import write_dev_certificates

URL = "amqp://guest:guest@127.0.0.1:5672"
CHILD = Path(__file__).with_name("broker_child.py")
HANG_GUARD = 20  # seconds; only ever reached when something hangs

registry = TypeRegistry()


@registry.message
@attrs.frozen(kw_only=True)
class Job:
    n: int


codec = Codec(registry)


# -- helpers -------------------------------------------------------------------------------


async def rabbitmqctl(*args: str) -> str:
    result = await trio.run_process(["rabbitmqctl", "-q", *args], capture_stdout=True)
    return result.stdout.decode()


async def queue_counts(name: str, vhost: str = "/") -> tuple[int, int]:
    """(ready, unacknowledged) messages of a queue, as the broker counts them."""
    out = await rabbitmqctl(
        "list_queues", "-p", vhost, "name", "messages_ready", "messages_unacknowledged"
    )
    for line in out.splitlines():
        fields = line.split("\t")
        if fields[0] == name:
            return int(fields[1]), int(fields[2])
    raise AssertionError(f"no queue {name!r} in vhost {vhost!r}: {out}")


@pytest.fixture
def queue() -> Iterator[str]:
    """A fresh queue name; the queue is deleted after the test."""
    name = f"js-test-{uuid.uuid4().hex[:12]}"
    yield name
    subprocess.run(["rabbitmqctl", "-q", "delete_queue", name], capture_output=True, check=False)


async def wait_until(condition: Any) -> None:
    """Poll ``condition`` (for counters that have no event); the tests' fail_after
    bounds the wait."""
    while not condition():  # noqa: ASYNC110
        await trio.sleep(0.01)


class Recorder(Actor):
    """Records the jobs it handles; ``done`` is set once it has ``expected`` of them."""

    def __init__(self, seen: list[int], expected: int, done: trio.Event) -> None:
        self.seen = seen
        self.expected = expected
        self.done = done

    @handler
    def job(self, msg: Job) -> str:
        self.seen.append(msg.n)
        if len(self.seen) >= self.expected:
            self.done.set()
        return "ok"


@attrs.define
class Attempt:
    n: int
    ok: bool


class FailsFirst(Actor):
    """Raises the first time it sees a job; the log survives the actor's restarts."""

    def __init__(self, attempts: list[Attempt], done: trio.Event) -> None:
        self.attempts = attempts
        self.done = done

    @handler
    def job(self, msg: Job) -> None:
        first = all(a.n != msg.n for a in self.attempts)
        self.attempts.append(Attempt(msg.n, ok=not first))
        if first:
            raise RuntimeError(f"job {msg.n} fails the first time")
        self.done.set()


class Gated(Actor):
    """Handles each job only when the test lets it."""

    def __init__(self, gate: trio.MemoryReceiveChannel[None], seen: list[int]) -> None:
        self.gate = gate
        self.seen = seen

    @handler
    async def job(self, msg: Job) -> None:
        self.seen.append(msg.n)
        await self.gate.receive()


class Quiet:
    """A driver handler for a client that only publishes."""

    def link_requested(self, connection: Connection, event: LinkRequested) -> None:
        pass

    def message_received(self, connection: Connection, event: MessageReceived) -> None:
        pass

    def connection_closed(self, connection: Connection, error: str | None) -> None:
        pass

    def delivery_updated(self, connection: Connection, event: DeliveryUpdated) -> None:
        pass


async def publish_raw(address: str, body: bytes) -> None:
    """Publish bytes as they are, with the driver, bypassing the codec."""
    async with trio.open_nursery() as nursery:
        connection = await connect(
            "127.0.0.1",
            5672,
            Quiet(),
            nursery,
            container_id="raw",
            sasl=("plain", "guest", "guest"),
        )
        sender = await connection.open_sender(address)
        assert await sender.send_and_wait(body) == Accepted()
        await connection.aclose()


# -- a stand-in broker -----------------------------------------------------------------------


@attrs.define
class FakeBroker:
    """Settles every message published to it with ``outcome``; sends ``outbox`` to
    whoever consumes, recording how the consumer settled each."""

    nursery: trio.Nursery
    outcome: Outcome = attrs.Factory(Accepted)
    outbox: list[bytes] = attrs.Factory(list)
    settled: list[Outcome] = attrs.Factory(list)
    all_settled: trio.Event = attrs.Factory(trio.Event)

    def link_requested(self, connection: Connection, event: LinkRequested) -> None:
        if event.role == "receiver":
            connection.accept_link(event.link, credit=100)
        else:
            connection.accept_link(event.link)
            sender = SenderLink(connection, event.link, event.address or "")
            self.nursery.start_soon(self._send_outbox, sender)

    async def _send_outbox(self, sender: SenderLink) -> None:
        for body in self.outbox:
            self.settled.append(await sender.send_and_wait(body))
        self.all_settled.set()

    def message_received(self, connection: Connection, event: MessageReceived) -> None:
        connection.settle(event.delivery, self.outcome)

    def connection_closed(self, connection: Connection, error: str | None) -> None:
        pass

    def delivery_updated(self, connection: Connection, event: DeliveryUpdated) -> None:
        pass


@attrs.define
class SteppedBroker(FakeBroker):
    """Hands the link it sends on to the test, which sends one message at a time."""

    sender: SenderLink | None = None
    attached: trio.Event = attrs.Factory(trio.Event)

    def link_requested(self, connection: Connection, event: LinkRequested) -> None:
        if event.role == "receiver":
            super().link_requested(connection, event)
        else:
            connection.accept_link(event.link)
            self.sender = SenderLink(connection, event.link, event.address or "")
            self.attached.set()


@pytest.fixture
async def fake_broker(nursery: trio.Nursery) -> AsyncIterator[tuple[FakeBroker, int]]:
    broker = FakeBroker(nursery)
    port = await start_fake(nursery, broker)
    yield broker, port


async def start_fake(nursery: trio.Nursery, broker: FakeBroker, **options: Any) -> int:
    listeners = await nursery.start(
        lambda task_status: serve(
            "127.0.0.1", 0, broker, container_id="fake", task_status=task_status, **options
        )
    )
    return int(listeners[0].socket.getsockname()[1])


def envelope_bytes(body: Any, *, with_codec: Codec = codec) -> bytes:
    return with_codec.encode(
        WireEnvelope(
            message_id=str(uuid.uuid4()),
            type_name=with_codec.type_name_of(body),
            body=body,
            created=1.0,
        )
    )


# -- settings --------------------------------------------------------------------------------


def test_a_url_gives_host_port_login_and_virtual_host():
    settings = BrokerSettings.from_url("amqp://alice:s%40cret@broker.example:5673/orders%2Feu")
    assert (settings.host, settings.port) == ("broker.example", 5673)
    assert settings.sasl == ("plain", "alice", "s@cret")
    assert settings.vhost == "orders/eu"
    assert settings.hostname == "vhost:orders/eu"
    assert settings.tls is None
    assert "s@cret" not in repr(settings)
    assert settings.url == "amqp://alice@broker.example:5673/orders%2Feu"


def test_a_url_without_user_logs_in_anonymously_on_the_default_port_and_vhost():
    settings = BrokerSettings.from_url("amqp://127.0.0.1")
    assert (settings.port, settings.sasl, settings.vhost) == (5672, "anonymous", None)
    assert settings.hostname == "127.0.0.1"
    assert BrokerSettings.from_url("amqp://h/%2F").hostname == "vhost:/"


def test_amqps_means_tls_on_port_5671():
    settings = BrokerSettings.from_url("amqps://u:p@h")
    assert settings.port == 5671
    assert settings.tls == TLSConfig()


@pytest.mark.parametrize(
    "url",
    [
        "http://h:5672",
        "amqp://h:5672/a/b",
        "amqp://h:5672/?heartbeat=10",
        "amqp://:5672",
        "amqp://h:notaport",
    ],
)
def test_a_malformed_url_is_refused_with_the_password_hidden(url):
    with pytest.raises(ValueError) as info:
        BrokerSettings.from_url(url.replace("//", "//user:hunter2@"))
    assert "hunter2" not in str(info.value)


async def test_an_error_inside_the_block_propagates_as_is_and_the_connection_closes():
    with trio.fail_after(HANG_GUARD), pytest.raises(KeyError):
        async with open_broker(URL) as broker:
            raise KeyError("from the block")
    with pytest.raises(BrokerConnectionError, match="closed"):
        await broker.publish("/queue/anything", "too late")


async def test_a_registry_or_a_codec_not_both():
    with pytest.raises(ValueError, match="not both"):
        async with open_broker(URL, registry=registry, codec=codec):
            pass  # pragma: no cover


# -- publish and consume -----------------------------------------------------------------------


async def test_published_jobs_reach_the_actor_in_order_and_all_are_accepted(actor_system, queue):
    count = 500
    seen: list[int] = []
    done = trio.Event()
    recorder = await actor_system.spawn(Recorder, seen, count, done)
    with trio.fail_after(HANG_GUARD):
        async with open_broker(URL, registry=registry) as broker, trio.open_nursery() as nursery:
            for n in range(count):
                await broker.publish(f"/queue/{queue}", Job(n=n))
            assert await queue_counts(queue) == (count, 0)
            consumer = await nursery.start(broker.consume, f"/queue/{queue}", recorder)
            await done.wait()
            await wait_until(lambda: consumer.statistics().accepted == count)
            nursery.cancel_scope.cancel()
    assert seen == list(range(count))
    stats = consumer.statistics()
    assert (stats.received, stats.accepted, stats.in_flight) == (count, count, 0)
    assert await queue_counts(queue) == (0, 0)


async def test_prefetch_bounds_the_deliveries_in_flight(actor_system, queue):
    prefetch, count = 3, 10
    let_go, gate = trio.open_memory_channel[None](count)
    seen: list[int] = []
    gated = await actor_system.spawn(Gated, gate, seen)
    with trio.fail_after(HANG_GUARD):
        async with open_broker(URL, registry=registry) as broker, trio.open_nursery() as nursery:
            for n in range(count):
                await broker.publish(f"/queue/{queue}", Job(n=n))
            consumer = await nursery.start(
                lambda task_status: broker.consume(
                    f"/queue/{queue}", gated, prefetch=prefetch, task_status=task_status
                )
            )
            await wait_until(lambda: consumer.statistics().received == prefetch)
            # The broker holds back the rest until a delivery is settled.
            assert await queue_counts(queue) == (count - prefetch, prefetch)
            assert seen == [0]
            in_flight = [consumer.statistics().in_flight]
            for handled in range(1, count + 1):
                let_go.send_nowait(None)
                await wait_until(lambda h=handled: consumer.statistics().accepted == h)
                in_flight.append(consumer.statistics().in_flight)
            nursery.cancel_scope.cancel()
    assert seen == list(range(count))
    assert max(in_flight) == prefetch  # reached, never exceeded
    assert all(n <= prefetch for n in in_flight)
    assert await queue_counts(queue) == (0, 0)


class InFlightSampler(Actor):
    """Notes the consumer's deliveries in flight as it handles each job."""

    def __init__(self, consumers: list[Consumer], in_flight: list[int], count: int) -> None:
        self.consumers = consumers  # the consumer, once the test has it
        self.in_flight = in_flight
        self.count = count
        self.handled = 0
        self.done = trio.Event()

    @handler
    def job(self, msg: Job) -> None:
        for consumer in self.consumers:
            self.in_flight.append(consumer.statistics().in_flight)
        self.handled += 1
        if self.handled == self.count:
            self.done.set()


async def test_prefetch_bounds_the_deliveries_in_flight_of_a_fast_consumer(actor_system, queue):
    # Credit flows back while deliveries stream out of the queue: the case where
    # RabbitMQ 3.x miscounts credit granted while it still holds some.
    prefetch, count = 8, 400
    consumers: list[Consumer] = []
    in_flight: list[int] = []
    sampler = await actor_system.spawn(InFlightSampler, consumers, in_flight, count)
    with trio.fail_after(HANG_GUARD):
        async with open_broker(URL, registry=registry) as broker, trio.open_nursery() as nursery:
            await broker.publish_many([(f"/queue/{queue}", Job(n=n), f"{n}") for n in range(count)])
            consume = functools.partial(broker.consume, prefetch=prefetch)
            consumers.append(await nursery.start(consume, f"/queue/{queue}", sampler))
            await wait_until(lambda: consumers[0].statistics().accepted == count)
            nursery.cancel_scope.cancel()
    assert consumers[0].statistics().received == count
    assert in_flight and max(in_flight) <= prefetch


async def test_credit_goes_back_only_once_the_broker_has_used_all_it_had(actor_system, nursery):
    # A grant made while deliveries may be on their way is what RabbitMQ 3.x
    # miscounts; with no credit left at the broker, none can be.
    prefetch = 4
    fake = SteppedBroker(nursery)
    port = await start_fake(nursery, fake)
    seen: list[int] = []
    recorder = await actor_system.spawn(Recorder, seen, prefetch, trio.Event())
    jobs = [envelope_bytes(Job(n=n)) for n in range(prefetch)]
    with trio.fail_after(HANG_GUARD):
        async with (
            open_broker(f"amqp://127.0.0.1:{port}", registry=registry) as broker,
            trio.open_nursery() as consuming,
        ):
            consume = functools.partial(broker.consume, prefetch=prefetch)
            consumer = await consuming.start(consume, "/queue/q", recorder)
            await fake.attached.wait()
            sender = fake.sender
            assert sender is not None
            await sender.wait_for_credit()
            assert sender.credit == prefetch
            for job in jobs[:-1]:
                assert await sender.send_and_wait(job) == Accepted()
            assert sender.credit == 1  # three settled, none given back yet
            assert await sender.send_and_wait(jobs[-1]) == Accepted()
            await sender.wait_for_credit()
            assert sender.credit == prefetch  # all given back at once
            consuming.cancel_scope.cancel()
    assert seen == list(range(prefetch))
    assert consumer.statistics().accepted == prefetch


class Holder(Actor):
    """Answers every job later, all at once, when told to: it holds asks open."""

    def __init__(self, held: dict[int, PendingReply], arrived: trio.Event, count: int) -> None:
        self.held = held
        self.arrived = arrived
        self.count = count

    @handler
    def job(self, msg: Job) -> None:
        self.held[msg.n] = self.reply_later()
        if len(self.held) == self.count:
            self.arrived.set()


async def test_with_concurrency_the_asks_wait_together_and_each_is_settled_when_answered(
    actor_system, queue
):
    count = 5
    held: dict[int, PendingReply] = {}
    arrived = trio.Event()
    holder = await actor_system.spawn(Holder, held, arrived, count)
    with trio.fail_after(HANG_GUARD):
        async with open_broker(URL, registry=registry) as broker, trio.open_nursery() as nursery:
            for n in range(count):
                await broker.publish(f"/queue/{queue}", Job(n=n))
            consume = functools.partial(broker.consume, prefetch=10, concurrency=count)
            consumer = await nursery.start(consume, f"/queue/{queue}", holder)
            await arrived.wait()  # all five asks are open at once
            assert consumer.statistics().in_flight == count
            held.pop(3).succeed("done")
            await wait_until(lambda: consumer.statistics().accepted == 1)
            assert await queue_counts(queue) == (0, count - 1)
            for pending in held.values():
                pending.succeed("done")
            await wait_until(lambda: consumer.statistics().accepted == count)
            nursery.cancel_scope.cancel()
    assert await queue_counts(queue) == (0, 0)


async def test_asks_still_open_when_the_consumer_ends_go_back_to_the_queue(actor_system, queue):
    count = 4
    held: dict[int, PendingReply] = {}
    arrived = trio.Event()
    holder = await actor_system.spawn(Holder, held, arrived, count)
    with trio.fail_after(HANG_GUARD):
        async with open_broker(URL, registry=registry) as broker:
            for n in range(count):
                await broker.publish(f"/queue/{queue}", Job(n=n))
            async with trio.open_nursery() as nursery:
                consume = functools.partial(broker.consume, concurrency=count)
                consumer = await nursery.start(consume, f"/queue/{queue}", holder)
                await arrived.wait()
                nursery.cancel_scope.cancel()
            assert consumer.statistics().released == count
        # Nothing was lost: a new consumer gets all four again. (On a new connection:
        # RabbitMQ may have sent the released ones again on the old link before it
        # closed, and gives those back only when the connection closes.)
        seen: list[int] = []
        done = trio.Event()
        recorder = await actor_system.spawn(Recorder, seen, count, done)
        async with open_broker(URL, registry=registry) as broker, trio.open_nursery() as nursery:
            await nursery.start(broker.consume, f"/queue/{queue}", recorder)
            await done.wait()
            nursery.cancel_scope.cancel()
    assert sorted(seen) == list(range(count))


async def test_concurrency_must_be_between_one_and_the_prefetch(actor_system, queue):
    recorder = await actor_system.spawn(Recorder, [], 1, trio.Event())
    async with open_broker(URL, registry=registry) as broker:
        for concurrency in (0, 11):
            with pytest.raises(ValueError, match="concurrency must be between 1 and"):
                await broker.consume(
                    f"/queue/{queue}", recorder, prefetch=10, concurrency=concurrency
                )


async def test_durable_queues_declares_queues_that_survive_a_broker_restart(actor_system, queue):
    settings = BrokerSettings.from_url(URL, durable_queues=True)
    seen: list[int] = []
    done = trio.Event()
    recorder = await actor_system.spawn(Recorder, seen, 1, done)
    with trio.fail_after(HANG_GUARD):
        async with open_broker(settings, registry=registry) as broker:
            await broker.publish(f"/queue/{queue}", Job(n=1))
            async with trio.open_nursery() as nursery:
                await nursery.start(broker.consume, f"/queue/{queue}", recorder)
                await done.wait()
                nursery.cancel_scope.cancel()
    out = await rabbitmqctl("list_queues", "name", "durable")
    assert f"{queue}\ttrue" in out.splitlines()
    assert seen == [1]


async def test_a_job_whose_handler_failed_is_delivered_again(actor_system, queue):
    attempts: list[Attempt] = []
    done = trio.Event()
    flaky = await actor_system.spawn(FailsFirst, attempts, done)
    with trio.fail_after(HANG_GUARD):
        async with open_broker(URL, registry=registry) as broker, trio.open_nursery() as nursery:
            await broker.publish(f"/queue/{queue}", Job(n=7))
            consumer = await nursery.start(broker.consume, f"/queue/{queue}", flaky)
            await done.wait()
            await wait_until(lambda: consumer.statistics().accepted == 1)
            nursery.cancel_scope.cancel()
    assert attempts == [Attempt(7, ok=False), Attempt(7, ok=True)]
    stats = consumer.statistics()
    assert (stats.received, stats.failed, stats.accepted) == (2, 1, 1)
    assert await queue_counts(queue) == (0, 0)


@attrs.frozen(kw_only=True)
class Unregistered:
    n: int


async def test_unreadable_messages_are_rejected_and_logged_and_the_consumer_goes_on(
    actor_system, queue
):
    other = TypeRegistry()
    other.register(Unregistered, name="elsewhere.Unregistered")
    await publish_raw(f"/queue/{queue}", bytes(proton.Message(body="not ours").encode()))
    await publish_raw(f"/queue/{queue}", envelope_bytes(Unregistered(n=1), with_codec=Codec(other)))
    await publish_raw(f"/queue/{queue}", envelope_bytes(Job(n=3)))
    seen: list[int] = []
    done = trio.Event()
    recorder = await actor_system.spawn(Recorder, seen, 1, done)
    log = io.StringIO()
    enable_logging(log)
    try:
        with trio.fail_after(HANG_GUARD):
            async with (
                open_broker(URL, registry=registry) as broker,
                trio.open_nursery() as nursery,
            ):
                consumer = await nursery.start(broker.consume, f"/queue/{queue}", recorder)
                await done.wait()
                await wait_until(lambda: consumer.statistics().accepted == 1)
                nursery.cancel_scope.cancel()
    finally:
        disable_logging()
    assert seen == [3]
    stats = consumer.statistics()
    assert (stats.received, stats.rejected, stats.accepted) == (3, 2, 1)
    assert await queue_counts(queue) == (0, 0)  # rejected: not put back
    lines = [json.loads(line) for line in log.getvalue().splitlines()]
    rejected = [line for line in lines if line.get("message_type") == "jumpstarter:broker:rejected"]
    assert [line["address"] for line in rejected] == [f"/queue/{queue}"] * 2
    assert "elsewhere.Unregistered" in rejected[1]["reason"]


async def test_a_consumer_killed_before_settling_loses_nothing(actor_system, queue, tmp_path):
    text = f"survivor {uuid.uuid4()}"
    async with open_broker(URL) as broker:
        await broker.publish(f"/queue/{queue}", text)
    stderr = (tmp_path / "child.err").open("wb")
    child = await trio.lowlevel.open_process(
        [sys.executable, str(CHILD), URL, f"/queue/{queue}"],
        stdout=subprocess.PIPE,
        stderr=stderr,
    )
    try:
        with trio.fail_after(HANG_GUARD):
            output = b""
            assert child.stdout is not None
            while b"received" not in output:
                chunk = await child.stdout.receive_some()
                assert chunk, f"the child ended: {(tmp_path / 'child.err').read_text()}"
                output += chunk
        assert f"received {text}" in output.decode()
        assert await queue_counts(queue) == (0, 1)  # taken, not settled
        child.send_signal(signal.SIGKILL)
        assert await child.wait() == -signal.SIGKILL
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
        stderr.close()

    seen: list[str] = []
    done = trio.Event()

    class Keeper(Actor):
        @handler
        def take(self, message: str) -> None:
            seen.append(message)
            done.set()

    keeper = await actor_system.spawn(Keeper)
    with trio.fail_after(HANG_GUARD):
        async with open_broker(URL) as broker, trio.open_nursery() as nursery:
            consumer = await nursery.start(broker.consume, f"/queue/{queue}", keeper)
            await done.wait()
            await wait_until(lambda: consumer.statistics().accepted == 1)
            nursery.cancel_scope.cancel()
    assert seen == [text]
    assert await queue_counts(queue) == (0, 0)


async def test_a_message_the_actor_has_no_handler_for_is_rejected(actor_system, queue):
    seen: list[int] = []
    done = trio.Event()
    recorder = await actor_system.spawn(Recorder, seen, 1, done)
    with trio.fail_after(HANG_GUARD):
        async with open_broker(URL, registry=registry) as broker, trio.open_nursery() as nursery:
            await broker.publish(f"/queue/{queue}", "a string, not a Job")
            await broker.publish(f"/queue/{queue}", Job(n=1))
            consumer = await nursery.start(broker.consume, f"/queue/{queue}", recorder)
            await done.wait()
            await wait_until(lambda: consumer.statistics().accepted == 1)
            nursery.cancel_scope.cancel()
    assert seen == [1]
    assert consumer.statistics().rejected == 1
    assert await queue_counts(queue) == (0, 0)


async def test_the_consumer_of_a_stopped_actor_gives_the_message_back_and_ends(actor_system, queue):
    recorder = await actor_system.spawn(Recorder, [], 1, trio.Event())
    await actor_system.stop(recorder)
    with trio.fail_after(HANG_GUARD):
        async with open_broker(URL, registry=registry) as broker:
            await broker.publish(f"/queue/{queue}", Job(n=1))
            async with trio.open_nursery() as nursery:
                consumer = await nursery.start(broker.consume, f"/queue/{queue}", recorder)
            # consume returned by itself: the nursery closed
    stats = consumer.statistics()
    # The broker may deliver the released message again before the link is closed;
    # it is released again.
    assert stats.received >= 1
    assert (stats.released, stats.accepted, stats.in_flight) == (stats.received, 0, 0)
    assert await queue_counts(queue) == (1, 0)


async def test_a_lost_connection_ends_consumers_and_publishes_with_a_clear_error(
    actor_system, queue
):
    let_go, gate = trio.open_memory_channel[None](1)
    seen: list[int] = []
    gated = await actor_system.spawn(Gated, gate, seen)
    with trio.fail_after(HANG_GUARD):
        async with open_broker(URL, registry=registry) as broker:
            await broker.publish(f"/queue/{queue}", Job(n=1))

            async def cut_once_handling() -> None:
                await wait_until(lambda: seen == [1])
                # The network goes away under the connection.
                broker._connection.stream.socket.shutdown(socket.SHUT_RDWR)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(cut_once_handling)
                with pytest.raises(BrokerConnectionError) as info:
                    await broker.consume(f"/queue/{queue}", gated)
            assert "lost the connection" in str(info.value)
            with pytest.raises(BrokerConnectionError):
                await broker.publish(f"/queue/{queue}", Job(n=2))
    let_go.send_nowait(None)
    # The broker puts the unsettled message back.
    with trio.fail_after(HANG_GUARD):
        while await queue_counts(queue) != (1, 0):
            pass


# -- refusals ----------------------------------------------------------------------------------


async def test_publishing_to_a_missing_exchange_is_refused_and_consumers_carry_on(
    actor_system, queue
):
    seen: list[int] = []
    done = trio.Event()
    recorder = await actor_system.spawn(Recorder, seen, 2, done)
    missing = f"js-missing-{uuid.uuid4().hex[:8]}"
    with trio.fail_after(HANG_GUARD):
        async with open_broker(URL, registry=registry) as broker, trio.open_nursery() as nursery:
            consumer = await nursery.start(broker.consume, f"/queue/{queue}", recorder)
            await broker.publish(f"/queue/{queue}", Job(n=1))
            await wait_until(lambda: consumer.statistics().accepted == 1)
            while await queue_counts(queue) != (0, 0):  # until the broker has the outcome
                pass
            with pytest.raises(AddressRefused) as info:
                await broker.publish(f"/exchange/{missing}/key", Job(n=0))
            # RabbitMQ ended the session, and the consumer's link with it.
            await broker.publish(f"/queue/{queue}", Job(n=2))
            await done.wait()
            nursery.cancel_scope.cancel()
    assert info.value.condition is not None
    assert info.value.condition.name == "amqp:not-found"
    assert missing in str(info.value)
    assert seen == [1, 2]
    assert consumer.statistics().reattached == 1


async def test_consuming_from_a_queue_that_does_not_exist_is_refused(actor_system):
    recorder = await actor_system.spawn(Recorder, [], 1, trio.Event())
    missing = f"js-missing-{uuid.uuid4().hex[:8]}"
    with trio.fail_after(HANG_GUARD):
        async with open_broker(URL) as broker, trio.open_nursery() as nursery:
            with pytest.raises(AddressRefused) as info:
                await nursery.start(broker.consume, f"/amq/queue/{missing}", recorder)
    assert isinstance(info.value, BrokerError)
    assert info.value.address == f"/amq/queue/{missing}"
    assert "NOT_FOUND" in str(info.value)


async def test_a_wrong_password_is_a_clear_connection_error():
    with trio.fail_after(HANG_GUARD), pytest.raises(BrokerConnectionError) as info:
        async with open_broker("amqp://guest:not-the-password@127.0.0.1:5672"):
            pass  # pragma: no cover
    assert "unauthorized-access" in str(info.value)
    assert "not-the-password" not in str(info.value)


async def test_no_broker_at_the_address_is_a_clear_connection_error():
    with trio.socket.socket() as sock:
        await sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: connections are refused
        with trio.fail_after(HANG_GUARD), pytest.raises(BrokerConnectionError) as info:
            async with open_broker(f"amqp://127.0.0.1:{port}"):
                pass  # pragma: no cover
    assert f"127.0.0.1:{port}" in str(info.value)


# -- virtual hosts -----------------------------------------------------------------------------


@pytest.fixture
async def vhost() -> AsyncIterator[str]:
    name = f"js-test-{uuid.uuid4().hex[:8]}"
    await rabbitmqctl("add_vhost", name)
    try:
        await rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
        yield name
    finally:
        await rabbitmqctl("delete_vhost", name)


async def test_the_url_path_chooses_the_virtual_host(actor_system, vhost, queue):
    seen: list[int] = []
    done = trio.Event()
    recorder = await actor_system.spawn(Recorder, seen, 1, done)
    with trio.fail_after(HANG_GUARD):
        async with open_broker(f"{URL}/{vhost}", registry=registry) as broker:
            await broker.publish(f"/queue/{queue}", Job(n=5))
            assert await queue_counts(queue, vhost) == (1, 0)
            assert queue not in await rabbitmqctl("list_queues", "-p", "/", "name")
            async with trio.open_nursery() as nursery:
                await nursery.start(broker.consume, f"/queue/{queue}", recorder)
                await done.wait()
                nursery.cancel_scope.cancel()
    assert seen == [5]


async def test_an_unknown_virtual_host_is_a_clear_error():
    with trio.fail_after(HANG_GUARD):
        async with open_broker(f"{URL}/js-no-such-vhost") as broker:
            with pytest.raises(BrokerConnectionError) as info:
                await broker.publish("/queue/anything", "x")
    assert "refused" in str(info.value)


# -- outcomes RabbitMQ 3.10 cannot give --------------------------------------------------------


@pytest.mark.parametrize(
    ("outcome", "words"),
    [
        (
            Rejected(error=ErrorCondition(name="amqp:resource-limit-exceeded", description="full")),
            "full",
        ),
        (Released(), "released"),
        (Modified(delivery_failed=True), "modified"),
    ],
)
async def test_a_publish_the_broker_does_not_accept_raises_with_its_reason(
    fake_broker, outcome, words
):
    fake, port = fake_broker
    fake.outcome = outcome
    with trio.fail_after(HANG_GUARD):
        async with open_broker(f"amqp://127.0.0.1:{port}") as broker:
            with pytest.raises(PublishRefused) as info:
                await broker.publish("/queue/q", "hello")
    assert info.value.outcome == outcome
    assert info.value.address == "/queue/q"
    assert words in str(info.value)


async def test_failure_outcome_modified_counts_the_failed_delivery(actor_system, fake_broker):
    fake, port = fake_broker
    fake.outbox = [envelope_bytes(Job(n=1))]
    attempts: list[Attempt] = []
    flaky = await actor_system.spawn(FailsFirst, attempts, trio.Event())
    settings = BrokerSettings.from_url(f"amqp://127.0.0.1:{port}", failure_outcome="modified")
    with trio.fail_after(HANG_GUARD):
        async with open_broker(settings, codec=codec) as broker, trio.open_nursery() as nursery:
            await nursery.start(broker.consume, "/queue/q", flaky)
            await fake.all_settled.wait()
            nursery.cancel_scope.cancel()
    assert fake.settled == [Modified(delivery_failed=True)]


async def test_amqps_checks_the_broker_certificate_by_host_name_not_virtual_host(nursery, tmp_path):
    certs = write_dev_certificates(tmp_path)
    fake = FakeBroker(nursery)
    server_tls = TLSConfig(cert_file=certs.cert_file, key_file=certs.key_file)
    port = await start_fake(nursery, fake, tls=server_tls)
    url = f"amqps://localhost:{port}/orders"
    settings = BrokerSettings.from_url(url, tls=TLSConfig(ca_file=certs.ca_file))
    with trio.fail_after(HANG_GUARD):
        async with open_broker(settings) as broker:
            await broker.publish("/queue/q", "over TLS")


async def test_publish_many_sends_in_order_and_returns_every_outcome(actor_system, queue):
    count = 50
    seen: list[int] = []
    done = trio.Event()
    recorder = await actor_system.spawn(Recorder, seen, count, done)
    with trio.fail_after(HANG_GUARD):
        async with open_broker(URL, registry=registry) as broker:
            batch = [(f"/queue/{queue}", Job(n=n), f"job-{n}") for n in range(count)]
            outcomes = await broker.publish_many(batch)
            assert outcomes == [Accepted()] * count
            async with trio.open_nursery() as nursery:
                await nursery.start(broker.consume, f"/queue/{queue}", recorder)
                await done.wait()
                nursery.cancel_scope.cancel()
    assert seen == list(range(count))


async def test_a_broker_connection_that_drops_is_noticed_while_idle():
    # A relay between this client and RabbitMQ, cut on purpose: the broker's side of
    # the connection ends as if the broker had gone away.
    cut = trio.Event()

    async def relay(client: trio.SocketStream) -> None:
        upstream = await trio.open_tcp_stream("127.0.0.1", 5672)

        async def pump(source: trio.SocketStream, target: trio.SocketStream) -> None:
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                while data := await source.receive_some():
                    await target.send_all(data)

        async with client, upstream, trio.open_nursery() as nursery:
            nursery.start_soon(pump, client, upstream)
            nursery.start_soon(pump, upstream, client)
            await cut.wait()
            nursery.cancel_scope.cancel()

    with trio.fail_after(HANG_GUARD):
        async with trio.open_nursery() as nursery:
            serve = functools.partial(trio.serve_tcp, relay, 0, host="127.0.0.1")
            (listener,) = await nursery.start(serve)
            port = listener.socket.getsockname()[1]
            async with open_broker(f"amqp://guest:guest@127.0.0.1:{port}") as broker:
                assert not broker.closed
                cut.set()
                await broker.wait_closed()  # nothing sent or received: noticed all the same
                assert broker.closed
            nursery.cancel_scope.cancel()
