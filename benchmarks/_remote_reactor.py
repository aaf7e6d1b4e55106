"""proton's own reactor across two processes: the same traffic as the jumpstarter side.

The server (:func:`serve`) is a ``proton.reactor.Container`` listening on
127.0.0.1 with one ``MessagingHandler`` that counts the messages it receives
(credit window ``prefetch=1000``) and answers each message that has a
``reply_to`` on the dynamic link the asker opened. The clients are
``MessagingHandler`` s too, written the way proton's examples write them:
``on_sendable`` sends while the link has credit, ``on_settled`` counts outcomes.
"""

from __future__ import annotations

import contextlib
import signal
import time
import uuid
from collections.abc import Callable
from typing import Any

from proton import Message
from proton.handlers import MessagingHandler
from proton.reactor import Container

from ._common import WARMUP_TELLS, clock, latency_summary
from ._remote_common import (
    BROKER_URL,
    PREFETCH,
    REACTOR_ADDRESS,
    broker_reachable,
    delete_queue,
    free_port,
    new_queue,
    not_measured,
    rate,
    server,
)

__all__ = ["PEER", "SCENARIOS", "serve"]

PEER = "reactor"


def ping(prefix: str, i: int, address: str) -> Message:
    """One ping as the reactor sends it: about the size of jumpstarter's envelope."""
    return Message(
        id=f"{prefix}-{i}",
        address=address,
        subject="bench.Ping",
        content_type="application/x-bench",
        creation_time=time.time(),
        properties={"type": "bench.Ping"},
        durable=True,
        body={"i": i},
    )


class _Failed(Exception):
    """The peer refused a message, or a connection failed."""


class _Handler(MessagingHandler):
    """Fails the run on a refused message or a transport error (instead of logging it)."""

    error: str | None = None

    def _fail(self, event: Any, why: str) -> None:
        self.error = why
        event.container.stop()

    def on_rejected(self, event: Any) -> None:
        self._fail(event, f"a message was rejected: {event.delivery.remote.condition}")

    def on_released(self, event: Any) -> None:
        self._fail(event, "a message was released")

    def on_transport_error(self, event: Any) -> None:
        self._fail(event, f"transport error: {event.transport.condition}")

    def run(self) -> None:
        Container(self).run()
        if self.error is not None:
            raise _Failed(self.error)


# -- the server process --------------------------------------------------------------------


class _Server(_Handler):
    def __init__(self, port: int, accept_after_handling: bool) -> None:
        super().__init__(prefetch=PREFETCH, auto_accept=not accept_after_handling)
        self.port = port
        self.accept_after_handling = accept_after_handling
        self.count = 0
        self.reply_links: dict[str, Any] = {}

    def on_start(self, event: Any) -> None:
        event.container.listen(f"127.0.0.1:{self.port}")
        event.container.schedule(0.1, _StopCheck())
        print(self.port, flush=True)

    def on_link_opening(self, event: Any) -> None:
        link = event.link
        if link.is_sender and link.remote_source and link.remote_source.dynamic:
            address = f"/bench/$reply/{uuid.uuid4()}"
            link.source.address = address
            self.reply_links[address] = link
        elif link.is_receiver and link.remote_target:
            link.target.address = link.remote_target.address

    def on_message(self, event: Any) -> None:
        self.count += 1
        request = event.message
        if request.reply_to is not None:
            link = self.reply_links.get(request.reply_to)
            if link is not None:
                link.send(
                    Message(
                        address=request.reply_to,
                        correlation_id=request.correlation_id,
                        body=self.count,
                    )
                )
        if self.accept_after_handling:
            self.accept(event.delivery)

    def on_transport_error(self, event: Any) -> None:
        pass  # a client went away: keep serving the others


class _Stop(Exception):
    pass


_stopping = False


def _stop(signum: int, frame: Any) -> None:
    global _stopping
    _stopping = True
    raise _Stop  # lost if it lands in one of proton's C callbacks: _StopCheck ends it then


class _StopCheck:
    """A timer that ends the container once a stop signal came, should the exception
    its handler raised have been swallowed by a callback from proton's C code."""

    def on_timer_task(self, event: Any) -> None:
        if _stopping:
            raise _Stop
        event.container.schedule(0.1, self)


def serve(mode: str) -> None:
    """Listen on a free port of 127.0.0.1, print it, serve until SIGTERM.

    ``mode`` ``tell_handled`` accepts each message after counting it
    (``auto_accept=False``); otherwise proton accepts it once ``on_message`` returned.
    """
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    with contextlib.suppress(_Stop):
        Container(_Server(free_port(), mode == "tell_handled")).run()


# -- the client measurements ---------------------------------------------------------------


class _Sender(_Handler):
    """Sends ``warmup`` messages, waits until all are settled, then times ``n`` more.

    It sends while the link has credit; the clock stops when the last one is settled.
    """

    def __init__(self, url: str, address: str, warmup: int, n: int) -> None:
        super().__init__(prefetch=0)
        self.url = url
        self.address = address
        self.warmup = warmup
        self.total = warmup + n
        self.limit = warmup
        self.sent = 0
        self.settled = 0
        self.prefix = str(uuid.uuid4())
        self.start = 0
        self.sent_at = 0
        self.elapsed = 0
        self.wire_bytes = len(ping(self.prefix, 0, address).encode())

    def on_start(self, event: Any) -> None:
        self.connected(event, event.container.connect(self.url))

    def connected(self, event: Any, connection: Any) -> None:
        if self.warmup == 0:
            self.start = clock()
            self.limit = self.total
        self.sender = event.container.create_sender(connection, self.address)

    def on_sendable(self, event: Any) -> None:
        self.send()

    def send(self) -> None:
        sender = self.sender
        prefix, address = self.prefix, self.address
        while sender.credit > 0 and self.sent < self.limit:
            sender.send(ping(prefix, self.sent, address))
            self.sent += 1
            if self.sent == self.total:
                self.sent_at = clock()

    def on_settled(self, event: Any) -> None:
        self.settled += 1
        if self.settled == self.total:
            self.elapsed = clock() - self.start
            event.connection.close()
        elif self.settled == self.warmup:
            self.start = clock()
            self.limit = self.total
            self.send()


def _tell(n: int, mode: str) -> dict[str, Any]:
    with server(PEER, mode) as port:
        client = _Sender(f"amqp://127.0.0.1:{port}", REACTOR_ADDRESS, WARMUP_TELLS, n)
        client.run()
    if client.settled != client.total:
        raise RuntimeError(f"{client.settled} of {client.total} messages were settled")
    return {
        "n": n,
        "seconds": client.elapsed / 1e9,
        "msgs_per_s": rate(n, client.elapsed),
        "sent_seconds": (client.sent_at - client.start) / 1e9,
        "wire_bytes": client.wire_bytes,
    }


def tell(n: int, warmup: int) -> dict[str, Any]:
    """``n`` messages, accepted by the server as they arrive; timed until all are settled."""
    return _tell(n, "tell")


def tell_handled(n: int, warmup: int) -> dict[str, Any]:
    """The same, accepted explicitly in ``on_message`` after counting (``auto_accept=False``)."""
    return _tell(n, "tell_handled")


class _Asker(_Handler):
    """Sequential request/reply over a dynamic reply link: one request in flight at a time."""

    def __init__(self, url: str, warmup: int, n: int) -> None:
        super().__init__(prefetch=PREFETCH)
        self.url = url
        self.warmup = warmup
        self.total = warmup + n
        self.samples: list[int] = []
        self.asked = 0
        self.answered = 0
        self.reply_to: str | None = None
        self.waiting = False
        self.start = 0
        self.last_answer: Any = None
        self.prefix = str(uuid.uuid4())

    def on_start(self, event: Any) -> None:
        connection = event.container.connect(self.url)
        self.sender = event.container.create_sender(connection, REACTOR_ADDRESS)
        self.receiver = event.container.create_receiver(connection, None, dynamic=True)

    def on_link_opened(self, event: Any) -> None:
        if event.receiver == self.receiver:
            self.reply_to = event.receiver.remote_source.address
            self.ask()

    def on_sendable(self, event: Any) -> None:
        self.ask()

    def ask(self) -> None:
        if self.waiting or self.reply_to is None or self.sender.credit <= 0:
            return
        request = ping(self.prefix, self.asked, REACTOR_ADDRESS)
        request.reply_to = self.reply_to
        request.correlation_id = self.asked
        self.waiting = True
        self.start = clock()
        self.sender.send(request)
        self.asked += 1

    def on_message(self, event: Any) -> None:
        elapsed = clock() - self.start
        if event.message.correlation_id != self.asked - 1:
            self._fail(event, f"answer {event.message.correlation_id} to {self.asked - 1}")
            return
        if self.answered >= self.warmup:
            self.samples.append(elapsed)
        self.answered += 1
        self.last_answer = event.message.body
        self.waiting = False
        if self.answered == self.total:
            event.connection.close()
        else:
            self.ask()


def ask(n: int, warmup: int) -> dict[str, Any]:
    """``n`` sequential request/replies, each timed, after ``warmup`` untimed ones."""
    with server(PEER, "ask") as port:
        client = _Asker(f"amqp://127.0.0.1:{port}", warmup, n)
        client.run()
    if client.last_answer != warmup + n:
        raise RuntimeError(f"the server counted {client.last_answer}, expected {warmup + n}")
    return latency_summary(client.samples)


class _Consumer(_Handler):
    """Receives ``n`` messages with a credit window of :data:`PREFETCH`, accepting each."""

    def __init__(self, url: str, address: str, n: int) -> None:
        super().__init__(prefetch=PREFETCH)
        self.url = url
        self.address = address
        self.n = n
        self.count = 0
        self.start = 0
        self.elapsed = 0

    def on_start(self, event: Any) -> None:
        event.container.connect(self.url, allowed_mechs="PLAIN ANONYMOUS")

    def on_connection_opened(self, event: Any) -> None:
        self.start = clock()
        event.container.create_receiver(event.connection, self.address)

    def on_message(self, event: Any) -> None:
        self.count += 1
        if self.count == self.n:
            self.elapsed = clock() - self.start
            event.connection.close()


class _Publisher(_Sender):
    """:class:`_Sender` to a broker queue, timed from the open connection."""

    def on_start(self, event: Any) -> None:
        event.container.connect(self.url, allowed_mechs="PLAIN ANONYMOUS")

    def on_connection_opened(self, event: Any) -> None:
        self.connected(event, event.connection)


def broker(n: int, warmup: int) -> dict[str, Any]:
    """Publish ``n`` messages to a fresh RabbitMQ queue, then consume them, each timed."""
    if not broker_reachable():
        return not_measured(n, f"no broker at {BROKER_URL.rsplit('@', 1)[1]}")
    name, address = new_queue()
    try:
        publisher = _Publisher(BROKER_URL, address, 0, n)
        publisher.run()
        if publisher.settled != n:
            raise RuntimeError(f"{publisher.settled} of {n} messages were settled")
        consumer = _Consumer(BROKER_URL, address, n)
        consumer.run()
        if consumer.count != n:
            raise RuntimeError(f"consumed {consumer.count} of {n} messages")
    finally:
        delete_queue(name)
    return {
        "n": n,
        "publish_seconds": publisher.elapsed / 1e9,
        "publish_msgs_per_s": rate(n, publisher.elapsed),
        "consume_seconds": consumer.elapsed / 1e9,
        "consume_msgs_per_s": rate(n, consumer.elapsed),
        "prefetch": PREFETCH,
        "wire_bytes": publisher.wire_bytes,
    }


SCENARIOS: dict[str, Callable[[int, int], dict[str, Any]]] = {
    "tell": tell,
    "tell_handled": tell_handled,
    "ask": ask,
    "broker": broker,
}
