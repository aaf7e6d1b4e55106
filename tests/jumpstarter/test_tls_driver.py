"""TLS over real loopback sockets: the trio driver's ``serve`` and ``connect`` with a TLSConfig."""

from __future__ import annotations

import attrs
import proton
import pytest
import trio

from jumpstarter import TLSConfig
from jumpstarter._amqp._events import (
    Accepted,
    DeliveryUpdated,
    ErrorCondition,
    LinkRequested,
    MessageReceived,
)
from jumpstarter._amqp_driver import Connection, ConnectionLost, connect, serve
from jumpstarter._certs import DevCertificates, write_dev_certificates

HANG_GUARD = 30  # seconds; only ever reached if something hangs


def encoded(body: object) -> bytes:
    return bytes(proton.Message(body=body).encode())


def decoded(data: bytes) -> object:
    message = proton.Message()
    message.decode(data)
    return message.body


@attrs.define
class Inbox:
    """A server-side handler: accepts links to /inbox, records and accepts messages."""

    received: list[object] = attrs.Factory(list)
    arrived: trio.Event = attrs.Factory(trio.Event)
    closed: list[str | None] = attrs.Factory(list)
    connection_ended: trio.Event = attrs.Factory(trio.Event)

    def link_requested(self, connection: Connection, event: LinkRequested) -> None:
        if event.address == "/inbox":
            connection.accept_link(event.link, credit=10)
        else:
            connection.refuse_link(event.link, ErrorCondition(name="amqp:not-found"))

    def message_received(self, connection: Connection, event: MessageReceived) -> None:
        self.received.append(decoded(event.body))
        self.arrived.set()
        connection.grant_credit(event.link, 1)
        if not event.settled:
            connection.settle(event.delivery, Accepted())

    def delivery_updated(self, connection: Connection, event: DeliveryUpdated) -> None:
        pass

    def connection_closed(self, connection: Connection, error: str | None) -> None:
        self.closed.append(error)
        self.connection_ended.set()


class Client:
    def link_requested(self, connection: Connection, event: LinkRequested) -> None:
        connection.refuse_link(event.link, ErrorCondition(name="amqp:not-allowed"))

    def message_received(self, connection: Connection, event: MessageReceived) -> None:
        pass

    def delivery_updated(self, connection: Connection, event: DeliveryUpdated) -> None:
        pass

    def connection_closed(self, connection: Connection, error: str | None) -> None:
        pass


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> DevCertificates:
    return write_dev_certificates(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def other_certs(tmp_path_factory: pytest.TempPathFactory) -> DevCertificates:
    return write_dev_certificates(tmp_path_factory.mktemp("other"))


async def start_server(nursery: trio.Nursery, inbox: Inbox, tls: TLSConfig | None) -> int:
    listeners = await nursery.start(
        lambda task_status: serve(
            "127.0.0.1", 0, inbox, container_id="server", tls=tls, task_status=task_status
        )
    )
    return int(listeners[0].socket.getsockname()[1])


async def round_trip(nursery: trio.Nursery, inbox: Inbox, port: int, tls: TLSConfig) -> None:
    """Connect with ``tls``, send one message and wait for the server's outcome."""
    connection = await connect("127.0.0.1", port, Client(), nursery, container_id="client", tls=tls)
    sender = await connection.open_sender("/inbox")
    outcome = await sender.send_and_wait(encoded("over TLS"))
    assert isinstance(outcome, Accepted)
    assert inbox.received[-1] == "over TLS"
    await connection.aclose()


async def test_a_message_makes_a_round_trip_over_tls(certs: DevCertificates) -> None:
    inbox = Inbox()
    with trio.fail_after(HANG_GUARD):
        async with trio.open_nursery() as nursery:
            port = await start_server(nursery, inbox, certs.server_tls())
            await round_trip(nursery, inbox, port, certs.client_tls())
            nursery.cancel_scope.cancel()


async def test_mutual_tls_round_trip_and_a_client_without_a_certificate_turned_away(
    certs: DevCertificates,
) -> None:
    inbox = Inbox()
    with trio.fail_after(HANG_GUARD):
        async with trio.open_nursery() as nursery:
            port = await start_server(
                nursery, inbox, certs.server_tls(require_client_certificate=True)
            )
            with pytest.raises(ConnectionLost, match="certificate required"):
                await connect(
                    "127.0.0.1", port, Client(), nursery, container_id="c", tls=certs.client_tls()
                )
            await round_trip(nursery, inbox, port, certs.client_tls(with_certificate=True))
            nursery.cancel_scope.cancel()


async def test_a_plain_text_client_fails_cleanly_and_the_server_serves_the_next_one(
    certs: DevCertificates,
) -> None:
    inbox = Inbox()
    with trio.fail_after(HANG_GUARD):
        async with trio.open_nursery() as nursery:
            port = await start_server(nursery, inbox, certs.server_tls())
            with pytest.raises(ConnectionLost):
                await connect("127.0.0.1", port, Client(), nursery, container_id="plain")
            await inbox.connection_ended.wait()
            assert inbox.closed == [
                "amqp:connection:policy-error: Client connection unencrypted - forbidden"
            ]
            await round_trip(nursery, inbox, port, certs.client_tls())
            nursery.cancel_scope.cancel()


async def test_a_server_from_an_unknown_ca_fails_the_client_with_a_hint(
    certs: DevCertificates, other_certs: DevCertificates
) -> None:
    inbox = Inbox()
    with trio.fail_after(HANG_GUARD):
        async with trio.open_nursery() as nursery:
            port = await start_server(nursery, inbox, other_certs.server_tls())
            with pytest.raises(ConnectionLost) as caught:
                await connect(
                    "127.0.0.1", port, Client(), nursery, container_id="c", tls=certs.client_tls()
                )
            message = str(caught.value)
            assert "certificate verify failed" in message
            assert "signed by a CA in ca_file" in message
            assert "'127.0.0.1'" in message
            await round_trip(nursery, inbox, port, other_certs.client_tls())
            nursery.cancel_scope.cancel()


async def test_a_tls_client_fails_cleanly_against_a_plain_text_server(
    certs: DevCertificates,
) -> None:
    inbox = Inbox()
    with trio.fail_after(HANG_GUARD):
        async with trio.open_nursery() as nursery:
            port = await start_server(nursery, inbox, None)
            with pytest.raises(ConnectionLost, match="SSL Failure"):
                await connect(
                    "127.0.0.1", port, Client(), nursery, container_id="c", tls=certs.client_tls()
                )
            nursery.cancel_scope.cancel()


async def test_serving_tls_without_a_certificate_fails_before_listening(
    certs: DevCertificates,
) -> None:
    with pytest.raises(ValueError, match="a TLS server needs cert_file"):
        await serve("127.0.0.1", 0, Inbox(), container_id="server", tls=certs.client_tls())
