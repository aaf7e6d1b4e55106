"""The trio driver over real loopback sockets."""

from __future__ import annotations

import attrs
import proton
import pytest
import trio

from jumpstarter._amqp._events import (
    Accepted,
    DeliveryUpdated,
    ErrorCondition,
    LinkRequested,
    MessageReceived,
    Rejected,
)
from jumpstarter._amqp_driver import (
    Connection,
    ConnectionLost,
    LinkRefused,
    connect,
    serve,
)


def encoded(body: object) -> bytes:
    return bytes(proton.Message(body=body).encode())


def decoded(data: bytes) -> object:
    message = proton.Message()
    message.decode(data)
    return message.body


@attrs.define
class Inbox:
    """A server-side handler: accepts links to /inbox, records and settles messages."""

    credit: int = 100
    received: list[object] = attrs.Factory(list)
    arrived: trio.Event = attrs.Factory(trio.Event)
    reject: bool = False
    closed: list[str | None] = attrs.Factory(list)
    connections: list[Connection] = attrs.Factory(list)

    def link_requested(self, connection: Connection, event: LinkRequested) -> None:
        self.connections.append(connection)
        if event.address == "/inbox":
            connection.accept_link(event.link, credit=self.credit)
        else:
            connection.refuse_link(
                event.link, ErrorCondition(name="amqp:not-found", description=event.address)
            )

    def message_received(self, connection: Connection, event: MessageReceived) -> None:
        self.received.append(decoded(event.body))
        self.arrived.set()
        if self.credit:
            connection.grant_credit(event.link, 1)  # one taken, one given back
        if not event.settled:
            outcome = Rejected(error=None) if self.reject else Accepted()
            connection.settle(event.delivery, outcome)

    def connection_closed(self, connection: Connection, error: str | None) -> None:
        self.closed.append(error)

    def delivery_updated(self, connection: Connection, event: DeliveryUpdated) -> None:
        pass


class Client:
    def link_requested(self, connection: Connection, event: LinkRequested) -> None:
        connection.refuse_link(event.link, ErrorCondition(name="amqp:not-allowed"))

    def message_received(self, connection: Connection, event: MessageReceived) -> None:
        pass

    def connection_closed(self, connection: Connection, error: str | None) -> None:
        pass

    def delivery_updated(self, connection: Connection, event: DeliveryUpdated) -> None:
        pass


async def start_server(nursery: trio.Nursery, inbox: Inbox, **options) -> int:
    listeners = await nursery.start(
        lambda task_status: serve(
            "127.0.0.1", 0, inbox, container_id="server", task_status=task_status, **options
        )
    )
    return listeners[0].socket.getsockname()[1]


async def test_messages_sent_over_a_link_arrive_in_order():
    inbox = Inbox()
    async with trio.open_nursery() as nursery:
        port = await start_server(nursery, inbox)
        connection = await connect("127.0.0.1", port, Client(), nursery, container_id="client")
        sender = await connection.open_sender("/inbox")
        for n in range(500):
            await sender.send(encoded(n), settled=True)
        while len(inbox.received) < 500:
            inbox.arrived = trio.Event()
            await inbox.arrived.wait()
        assert inbox.received == list(range(500))
        await connection.aclose()
        nursery.cancel_scope.cancel()


async def test_a_sender_waits_for_credit():
    inbox = Inbox(credit=0)
    async with trio.open_nursery() as nursery:
        port = await start_server(nursery, inbox)
        connection = await connect("127.0.0.1", port, Client(), nursery, container_id="client")
        sender = await connection.open_sender("/inbox")
        assert sender.credit == 0
        with pytest.raises(trio.WouldBlock):
            sender.send_nowait(encoded("x"))
        sent = trio.Event()

        async def send_one() -> None:
            await sender.send(encoded("late"), settled=True)
            sent.set()

        nursery.start_soon(send_one)
        await trio.sleep(0.05)
        assert not sent.is_set()
        server_side = inbox.connections[0]
        server_side.grant_credit(next(iter(server_side._links)), 1)
        await sent.wait()
        await inbox.arrived.wait()
        assert inbox.received == ["late"]
        nursery.cancel_scope.cancel()


async def test_the_outcome_of_an_unsettled_delivery_reaches_the_sender():
    inbox = Inbox(reject=True)
    async with trio.open_nursery() as nursery:
        port = await start_server(nursery, inbox)
        connection = await connect("127.0.0.1", port, Client(), nursery, container_id="client")
        sender = await connection.open_sender("/inbox")
        outcome = await sender.send_and_wait(encoded("bad"))
        assert isinstance(outcome, Rejected)
        inbox.reject = False
        assert isinstance(await sender.send_and_wait(encoded("good")), Accepted)
        nursery.cancel_scope.cancel()


async def test_a_link_to_an_unknown_address_is_refused_with_not_found():
    inbox = Inbox()
    async with trio.open_nursery() as nursery:
        port = await start_server(nursery, inbox)
        connection = await connect("127.0.0.1", port, Client(), nursery, container_id="client")
        with pytest.raises(LinkRefused) as caught:
            await connection.open_sender("/nobody")
        assert caught.value.condition is not None
        assert caught.value.condition.name == "amqp:not-found"
        nursery.cancel_scope.cancel()


async def test_a_peer_that_vanishes_mid_delivery_fails_the_waiting_sender():
    class BlackHole(Inbox):
        def message_received(self, connection: Connection, event: MessageReceived) -> None:
            # never settles: then the peer's socket dies
            self.arrived.set()
            nursery.start_soon(connection.stream.aclose)

    inbox = BlackHole()
    async with trio.open_nursery() as nursery:
        port = await start_server(nursery, inbox)
        connection = await connect("127.0.0.1", port, Client(), nursery, container_id="client")
        sender = await connection.open_sender("/inbox")
        with pytest.raises(ConnectionLost):
            await sender.send_and_wait(encoded("lost"))
        with pytest.raises(ConnectionLost):
            await sender.send(encoded("after"))
        nursery.cancel_scope.cancel()


async def test_connecting_to_a_closed_port_raises_os_error():
    async with trio.open_nursery() as nursery:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = listeners[0].socket.getsockname()[1]
        await listeners[0].aclose()
        with pytest.raises(OSError):
            await connect("127.0.0.1", port, Client(), nursery, container_id="client")


async def test_garbage_from_a_client_closes_only_that_connection():
    inbox = Inbox()
    async with trio.open_nursery() as nursery:
        port = await start_server(nursery, inbox)
        async with await trio.open_tcp_stream("127.0.0.1", port) as garbage:
            await garbage.send_all(b"GET / HTTP/1.1\r\n\r\n" * 10)
            with trio.fail_after(5):
                while await garbage.receive_some(4096):
                    pass  # the server answers with its header, then closes
        connection = await connect("127.0.0.1", port, Client(), nursery, container_id="client")
        sender = await connection.open_sender("/inbox")
        await sender.send(encoded("still serving"), settled=True)
        await inbox.arrived.wait()
        assert inbox.received == ["still serving"]
        nursery.cancel_scope.cancel()


async def test_heartbeats_keep_an_idle_connection_open(
    autojump_clock,
):
    inbox = Inbox()
    async with trio.open_nursery() as nursery:
        port = await start_server(nursery, inbox, idle_timeout=2.0)
        connection = await connect(
            "127.0.0.1", port, Client(), nursery, container_id="client", idle_timeout=2.0
        )
        await trio.sleep(30)
        assert not connection.closed, "heartbeats kept it alive"
        nursery.cancel_scope.cancel()


async def test_what_a_busy_run_sends_leaves_at_the_end_of_each_turn():
    # The sender never lets the run go idle; its messages must still reach the peer.
    inbox = Inbox()
    async with trio.open_nursery() as nursery:
        port = await start_server(nursery, inbox)
        connection = await connect("127.0.0.1", port, Client(), nursery, container_id="client")
        sender = await connection.open_sender("/inbox")
        busy = trio.CancelScope()

        async def keep_busy() -> None:
            with busy:
                while True:
                    await trio.lowlevel.checkpoint()

        nursery.start_soon(keep_busy)
        sent = 0
        with trio.fail_after(10):
            while len(inbox.received) < 10:
                if sender.credit:
                    sender.send_nowait(encoded(sent), settled=True)
                    sent += 1
                await trio.lowlevel.checkpoint()
        busy.cancel()
        assert inbox.received == list(range(len(inbox.received)))
        nursery.cancel_scope.cancel()


async def test_a_hook_that_fails_before_a_write_ends_the_connection_with_its_error():
    class Broken(Exception):
        pass

    def broken() -> None:
        raise Broken("the hook failed")

    inbox = Inbox()
    with pytest.raises(BaseExceptionGroup) as raised:
        async with trio.open_nursery() as nursery:
            port = await start_server(nursery, inbox)
            connection = await connect("127.0.0.1", port, Client(), nursery, container_id="client")
            connection.before_next_write(broken)
            await trio.sleep_forever()
    assert raised.group_contains(Broken, match="the hook failed")
