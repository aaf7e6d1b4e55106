"""The trio driver: one small read-process-write loop per AMQP connection.

A :class:`Link` and :class:`Connection` pair is all the I/O there is around the
sans-IO :class:`~jumpstarter._amqp._protocol.AMQPConnection`:

* a *reader* task takes whatever the socket has (up to 64 KiB at a time), feeds it
  to the protocol, and dispatches every event that follows before it reads again;
* on a plain TCP socket, what tasks gave the protocol to send is written at the
  end of the scheduler turn in which they did, before the run looks for I/O (see
  :class:`_TurnWriter`): many messages sent in one turn leave in one write, and no
  task has to wake up for it; the reader writes what dispatching produced (an
  answer, a settlement) as soon as it has dispatched;
* a *writer* task writes what that could not (the rest of a full socket buffer,
  anything on a TLS stream, the last words before closing) with ``send_all``;
* a *ticker* task calls ``tick`` by the deadline the protocol asks for, which sends
  heartbeats and notices a silent peer;
* while connections are open, the run polls for a while before it sleeps
  (``busy_poll``, see :mod:`._idle_poll`), so that a quick answer does not pay for
  waking a sleeping CPU.

Events about links this side opened are turned into awaitable results (a sender
waits for credit, a delivery for its outcome); events the owner must decide on
(a link the peer opened, a message that arrived, the connection closing) go to
its :class:`ConnectionHandler`, whose methods are plain calls made from the
reader task: they may issue protocol commands, but must not block.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import attrs
import trio

from ._amqp._events import (
    ConnectionClosed,
    CreditAvailable,
    DeliveryId,
    DeliveryUpdated,
    ErrorCondition,
    LinkClosed,
    LinkId,
    LinkOpened,
    LinkRequested,
    MessageReceived,
    Outcome,
    TransportClosed,
)
from ._amqp._exceptions import RemoteProtocolError
from ._amqp._protocol import AMQPConnection
from ._amqp._tls import TLSConfig
from ._idle_poll import IdlePoller

__all__ = ["Connection", "ConnectionHandler", "ConnectionLost", "LinkRefused", "SenderLink"]

READ_SIZE = 65536


class ConnectionLost(ConnectionError):
    """The connection closed (or the peer vanished) before the operation finished."""


class LinkRefused(ConnectionError):
    """The peer refused or closed a link we opened.

    Attributes:
        condition: the AMQP error the peer gave, if any (``amqp:not-found``...).
    """

    def __init__(self, message: str, condition: ErrorCondition | None) -> None:
        super().__init__(message)
        self.condition = condition


class ConnectionHandler(Protocol):
    """What the owner of a connection decides; called from its reader task."""

    def link_requested(self, connection: Connection, event: LinkRequested) -> None:
        """Accept or refuse a link the peer opened."""

    def message_received(self, connection: Connection, event: MessageReceived) -> None:
        """Take a message that arrived on a link the peer opened or we opened."""

    def connection_closed(self, connection: Connection, error: str | None) -> None:
        """The connection is over (closed cleanly, or lost with ``error``)."""

    def delivery_updated(self, connection: Connection, event: DeliveryUpdated) -> None:
        """The peer settled a message we sent that no one awaits (see ``send_and_wait``)."""


@attrs.define(eq=False)
class _LinkState:
    opened: trio.Event = attrs.Factory(trio.Event)
    address: str | None = None
    properties: Mapping[str, Any] | None = None
    credit_changed: trio.Event = attrs.Factory(trio.Event)
    closed: ErrorCondition | bool | None = False
    outcomes: dict[int, tuple[trio.Event, list[Outcome]]] = attrs.Factory(dict)


class SenderLink:
    """A link this side opened to send messages to an address on the peer."""

    def __init__(self, connection: Connection, link: LinkId, address: str) -> None:
        self.connection = connection
        self.link = link
        self.address = address

    @property
    def credit(self) -> int:
        """How many messages may be sent now without waiting."""
        try:
            return self.connection._credit(self.link)
        except (ConnectionLost, LinkRefused):
            return 0

    @property
    def properties(self) -> Mapping[str, Any]:
        """The link properties the peer attached when it accepted the link."""
        return self.connection._link_state(self.link).properties or {}

    async def wait_for_credit(self, above: int = 0) -> None:
        """Wait until the link's credit exceeds ``above``.

        Raises:
            ConnectionLost: the connection closed first.
            LinkRefused: the peer closed the link.
        """
        connection = self.connection
        state = connection._link_state(self.link)
        while connection._credit(self.link) <= above:
            changed = state.credit_changed
            if changed.is_set():  # a new one, shared by every task waiting for credit
                changed = state.credit_changed = trio.Event()
            await changed.wait()

    def send_now(self, body: bytes, *, settled: bool = False, urgent: bool = False) -> DeliveryId:
        """Send one encoded message, credit or not: for callers that count credit
        themselves (the peer then sees it as a protocol violation if they miscount).

        ``urgent`` writes it to the socket at once, when the socket takes it without
        waiting, instead of with whatever else is queued by the next scheduler tick:
        for a message someone waits on, such as an ask.
        """
        return self.connection._send(self.link, body, settled, urgent=urgent)

    async def send(self, body: bytes, *, settled: bool = False) -> DeliveryId:
        """Send one encoded message, waiting for credit; returns its delivery id.

        Raises:
            ConnectionLost: the connection closed first.
            LinkRefused: the peer closed the link.
        """
        await self.wait_for_credit()
        return self.connection._send(self.link, body, settled)

    def send_nowait(self, body: bytes, *, settled: bool = False) -> DeliveryId:
        """Send one encoded message now; raises ``trio.WouldBlock`` without credit."""
        connection = self.connection
        if connection._credit(self.link) <= 0:
            raise trio.WouldBlock(f"no credit on the link to {self.address}")
        return connection._send(self.link, body, settled)

    async def send_and_wait(self, body: bytes) -> Outcome:
        """Send one message unsettled and return the peer's outcome once it settles it."""
        state = self.connection._link_state(self.link)
        delivery = await self.send(body)
        done = trio.Event()
        box: list[Outcome] = []
        state.outcomes[delivery.number] = (done, box)
        try:
            await done.wait()
        finally:
            state.outcomes.pop(delivery.number, None)
        if not box:
            self.connection._check_usable(self.link)
            raise ConnectionLost(f"the connection closed before {self.address} settled the message")
        return box[0]

    async def close(self) -> None:
        """Close the link (the connection stays open)."""
        self.connection.protocol.close_link(self.link)
        self.connection._kick()
        await trio.lowlevel.checkpoint()


class _TurnWriter(trio.abc.Instrument):
    """Writes the output of connections at the end of each turn of their trio run.

    A trio run goes in turns: it runs every task that is ready, then waits for I/O
    (or only polls, if tasks are ready again). Just before that, this writes what the
    turn's tasks gave each connection to send, without waiting (what the socket does
    not take goes to the connection's writer task). Compared with waking a writer
    task, it saves a task switch per turn, and the bytes leave a turn earlier.

    Then, with nothing left to write, it lets the run poll before it sleeps (see
    :class:`~jumpstarter._idle_poll.IdlePoller`): after the writes, so that polling
    never holds back what the turn sent.

    One per trio run (see :meth:`for_this_run`).
    """

    _current: trio.lowlevel.RunVar[_TurnWriter] = trio.lowlevel.RunVar("jumpstarter.turn_writer")

    def __init__(self) -> None:
        self.dirty: dict[Connection, None] = {}  # in the order they asked
        self.idle = IdlePoller()

    @classmethod
    def for_this_run(cls) -> _TurnWriter:
        try:
            return cls._current.get()
        except LookupError:
            writer = cls()
            trio.lowlevel.add_instrument(writer)
            cls._current.set(writer)
            return writer

    def add(self, connection: Connection) -> None:
        self.dirty[connection] = None

    def before_io_wait(self, timeout: float) -> None:
        dirty = self.dirty
        if dirty:
            self.dirty = {}
            woke = False
            for connection in dirty:
                woke |= connection._flush()
            if self.dirty:  # a connection that flushed asks again only if it has more
                self.dirty = {c: None for c in self.dirty if c._has_output()}
            if woke or self.dirty:  # tasks became ready after the run decided how to wait
                trio.lowlevel.current_trio_token().run_sync_soon(_nothing)
                return
        self.idle.before_io_wait(timeout)

    def after_io_wait(self, timeout: float) -> None:
        self.idle.after_io_wait()


def _nothing() -> None:
    pass


class Connection:
    """Drives one :class:`AMQPConnection` over a trio stream until it closes."""

    def __init__(
        self,
        stream: trio.abc.Stream,
        protocol: AMQPConnection,
        handler: ConnectionHandler,
        *,
        name: str = "",
        busy_poll: float = 0.0,
    ) -> None:
        self.stream = stream
        self.protocol = protocol
        self.handler = handler
        self.name = name
        self.closed = False
        self.error: str | None = None
        self.opened = trio.Event()
        self.finished = trio.Event()
        self._dirty = trio.Event()
        self._links: dict[LinkId, _LinkState] = {}
        self._tick_changed = trio.Event()
        self._before_write: list[Callable[[], None]] = []
        self._in_reader = False
        self._wants_write = False
        self._sending = False
        self._leftover = b""  # what could not be written at once (see _flush)
        self._failure: BaseException | None = None  # from a flush, for the writer to raise
        self._fd = stream.socket.fileno() if isinstance(stream, trio.SocketStream) else -1
        self._turn_writer: _TurnWriter | None = None
        self._busy_poll = busy_poll
        self.receivers: dict[LinkId, Callable[[Connection, MessageReceived], None]] = {}
        """Where the owner routes messages by link (the driver only keeps the table)."""
        self.context: Any = None
        """The owner's state for this connection (the driver never reads it)."""

    def __repr__(self) -> str:
        return f"<Connection {self.name or id(self)}{' closed' if self.closed else ''}>"

    # -- running ------------------------------------------------------------------

    async def run(self) -> None:
        """Read, dispatch and write until the connection closes; closes the stream."""
        writer_done = trio.Event()
        turn_writer = _TurnWriter.for_this_run()
        if self._fd >= 0:
            self._turn_writer = turn_writer
        turn_writer.idle.hold(self, self._busy_poll)

        async def write() -> None:
            try:
                await self._writer()
            finally:
                writer_done.set()

        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(write)
                nursery.start_soon(self._ticker)
                await self._reader()
                # the writer sends the last words (a close frame, a TLS alert) and returns
                with trio.move_on_after(1):
                    await writer_done.wait()
                nursery.cancel_scope.cancel()
        finally:
            turn_writer.idle.release(self)
            self._finish(self.error)
            with trio.CancelScope(shield=True), trio.move_on_after(1):
                await self.stream.aclose()

    async def _receive(self) -> bytes:
        """The next bytes from the peer (``b""`` at the end).

        On a socket this waits for readability first and then reads, so a reply that
        is awaited costs one read, not a failed read, a wait and a read.
        """
        fd = self._fd
        if fd < 0:
            return bytes(await self.stream.receive_some(READ_SIZE))
        await trio.lowlevel.wait_readable(fd)
        while True:
            try:
                return os.read(fd, READ_SIZE)
            except BlockingIOError:  # a spurious wake-up
                await trio.lowlevel.wait_readable(fd)

    async def _reader(self) -> None:
        protocol = self.protocol
        receive = self._receive
        while not self.closed:
            try:
                data = await receive()
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
                self.error = self.error or f"the connection broke: {exc}"
                data = b""
            protocol.receive_data(data)
            self._in_reader = True
            try:
                self._dispatch()
            finally:
                self._in_reader = False
            if not data:
                self._kick()
                self.error = self.error or "the peer closed the connection"
                return
            if self._wants_write or protocol.has_data_to_send():
                self._wants_write = False
                if self._can_write_at_once():  # answer at once: the peer may be waiting
                    self._write_now()
                else:
                    self._kick()

    def _write_now(self) -> bool:
        """Write what the protocol has to send now, as far as the socket takes it
        without waiting; the writer sends the rest. (A task that waited to write
        could deadlock with a peer doing the same.)

        Returns whether it scheduled a task (the writer, or one woken by an event).
        """
        data = self.protocol.data_to_send()
        # producing output can surface events (a refused login)
        woke = self._dispatch()
        if not data:
            return woke
        try:
            written = os.write(self._fd, data)
        except BlockingIOError:
            written = 0
        except OSError as exc:
            self.error = self.error or f"the connection broke: {exc}"
            self._finish(self.error)
            return True
        if written < len(data):
            self._leftover = data[written:]
            self._dirty.set()
            return True
        return woke

    def _run_write_hooks(self) -> None:
        """Call the hooks waiting for the next write (see :meth:`before_next_write`)."""
        if self._before_write:
            hooks, self._before_write = self._before_write, []
            for hook in hooks:
                hook()

    def _writer_has_socket(self) -> bool:
        """Whether only the writer task may write now: it is writing, has the rest of
        a write or the last words to send."""
        return self.closed or self._sending or bool(self._leftover)

    def _can_write_at_once(self) -> bool:
        """Whether this task may write the protocol's bytes itself, now: on a plain
        socket, with no hook waiting to add to them and nothing the writer holds."""
        return self._fd >= 0 and not (self._sending or self._before_write or self._leftover)

    def _has_output(self) -> bool:
        return bool(self._before_write) or self.protocol.has_data_to_send()

    def _flush(self) -> bool:
        """Called by the :class:`_TurnWriter`: run the hooks waiting for the next write,
        then write. Returns whether it scheduled a task."""
        if self._writer_has_socket():
            self._dirty.set()
            return True
        try:
            self._run_write_hooks()
            return self._write_now()
        except BaseException as exc:  # for the writer to raise in its task, which it ends
            self._failure = exc
            self._dirty.set()
            return True

    async def _writer(self) -> None:
        protocol = self.protocol
        while True:
            await self._dirty.wait()
            self._dirty = trio.Event()
            if self._failure is not None:
                failure, self._failure = self._failure, None
                raise failure
            self._run_write_hooks()
            data = protocol.data_to_send()
            if self._leftover:
                data, self._leftover = self._leftover + data, b""
            self._dispatch()  # producing output can surface events (a refused login)
            if data:
                self._sending = True
                try:
                    await self.stream.send_all(data)
                except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
                    self.error = self.error or f"the connection broke: {exc}"
                    self._finish(self.error)
                    return
                finally:
                    self._sending = False
            if self.closed:
                rest = protocol.data_to_send()  # the last words: a close frame, say
                if not rest:
                    return
                self._leftover += rest
                self._dirty.set()

    async def _ticker(self) -> None:
        while True:
            deadline = self.protocol.tick(trio.current_time())
            self._dispatch()
            self._kick()
            self._tick_changed = trio.Event()
            with trio.move_on_at(deadline if deadline is not None else math.inf):
                await self._tick_changed.wait()

    def _kick(self) -> None:
        """Have the protocol's bytes written soon: at the end of this scheduler turn
        (see :class:`_TurnWriter`), or by the writer. While the reader dispatches, it
        writes them itself once it is done."""
        if self._in_reader:
            self._wants_write = True
        elif self._turn_writer is not None and not self._writer_has_socket():
            self._turn_writer.add(self)
        else:
            self._dirty.set()

    def before_next_write(self, hook: Callable[[], None]) -> None:
        """Call ``hook()`` once, just before the writer next takes the protocol's bytes
        (to send, in one go, messages queued meanwhile)."""
        self._before_write.append(hook)
        self._kick()

    # -- events -------------------------------------------------------------------

    def _dispatch(self) -> bool:
        """Handle every event the protocol has; returns whether there was any."""
        protocol = self.protocol
        handler = self.handler
        event = protocol.next_event()
        if event is None:
            return False
        while event is not None:
            if isinstance(event, MessageReceived):
                handler.message_received(self, event)
            elif isinstance(event, CreditAvailable):
                state = self._links.get(event.link)
                if state is not None:
                    state.credit_changed.set()
            elif isinstance(event, DeliveryUpdated):
                self._delivery_updated(event)
            elif isinstance(event, LinkRequested):
                handler.link_requested(self, event)
            elif isinstance(event, LinkOpened):
                state = self._link_state(event.link)
                state.address = event.address
                state.properties = event.properties
                state.opened.set()
            elif isinstance(event, LinkClosed):
                self._link_closed(event)
            elif isinstance(event, ConnectionClosed):
                self.error = self.error or _describe(event.error)
            elif isinstance(event, TransportClosed):
                self.error = self.error or event.error
                self._finish(self.error)
            else:  # ConnectionOpened
                self.opened.set()
            event = protocol.next_event()
        return True

    def _delivery_updated(self, event: DeliveryUpdated) -> None:
        if not event.settled:
            return
        state = self._links.get(event.delivery.link)
        if state is None:
            return
        waiter = state.outcomes.get(event.delivery.number)
        if waiter is not None:
            if event.outcome is not None:
                waiter[1].append(event.outcome)
            waiter[0].set()
        else:
            self.handler.delivery_updated(self, event)

    def _link_closed(self, event: LinkClosed) -> None:
        state = self._link_state(event.link)
        state.closed = event.error if event.error is not None else True
        state.opened.set()
        state.credit_changed.set()
        for done, _ in state.outcomes.values():
            done.set()

    def _finish(self, error: str | None) -> None:
        if self.closed:
            return
        self.closed = True
        self.error = error
        for state in self._links.values():
            state.opened.set()
            state.credit_changed.set()
            for done, _ in state.outcomes.values():
                done.set()
        self.opened.set()
        self.finished.set()
        self._kick()
        self.handler.connection_closed(self, error)

    def _link_state(self, link: LinkId) -> _LinkState:
        state = self._links.get(link)
        if state is None:
            state = self._links[link] = _LinkState()
        return state

    def _check_usable(self, link: LinkId) -> None:
        if self.closed:
            raise ConnectionLost(f"the connection is closed: {self.error or 'closed'}")
        closed = self._link_state(link).closed
        if closed is not False:
            condition = closed if isinstance(closed, ErrorCondition) else None
            raise LinkRefused(
                f"the peer closed the link: {_describe(condition) or 'no reason given'}",
                condition,
            )

    # -- commands -----------------------------------------------------------------

    def _credit(self, link: LinkId) -> int:
        """The link's credit; raises if the link or the connection is unusable."""
        self._check_usable(link)
        try:
            return self.protocol.link_credit(link)
        except RemoteProtocolError as exc:  # the transport failed: news not read yet
            self._dispatch()
            raise ConnectionLost(f"the connection is closed: {exc}") from exc

    def _send(
        self, link: LinkId, body: bytes, settled: bool, *, urgent: bool = False
    ) -> DeliveryId:
        self._check_usable(link)
        try:
            delivery = self.protocol.send(link, body, settled=settled)
        except RemoteProtocolError as exc:  # the transport failed: news not read yet
            self._dispatch()
            raise ConnectionLost(f"the connection is closed: {exc}") from exc
        if urgent:
            self.write_now()
        else:
            self._kick()
        return delivery

    def write_now(self) -> None:
        """Write what the protocol has to send at once, as far as the socket takes it
        without waiting (the writer sends the rest); for callers that will not yield
        to the scheduler soon, or whose peer waits on these bytes."""
        if not self._in_reader and self._can_write_at_once():
            self._write_now()
        else:
            self._kick()

    async def open_sender(
        self,
        address: str,
        *,
        presettled: bool = False,
        properties: Mapping[str, Any] | None = None,
        durable: bool = False,
    ) -> SenderLink:
        """Open a link to ``address`` on the peer and wait until it is attached.

        Raises:
            LinkRefused: the peer refused it (for an unknown address: ``amqp:not-found``).
            ConnectionLost: the connection closed first.
        """
        link = self.protocol.open_sender(
            address, presettled=presettled, properties=properties, durable=durable
        )
        state = self._link_state(link)
        self._kick()
        await state.opened.wait()
        self._check_usable(link)
        return SenderLink(self, link, address)

    def open_receiver(self, address: str, *, credit: int, durable: bool = False) -> LinkId:
        """Open a link to receive from ``address``; messages go to the handler."""
        link = self.protocol.open_receiver(address, credit=credit, durable=durable)
        self._link_state(link)
        self._kick()
        return link

    async def open_dynamic_receiver(self, *, credit: int) -> tuple[LinkId, str]:
        """Open a link from a node the peer makes for us (a reply address); wait for it.

        Returns the link and the node's address, to give out as a reply-to.

        Raises:
            LinkRefused: the peer refused it, or gave it no address.
            ConnectionLost: the connection closed first.
        """
        link = self.protocol.open_receiver(None, credit=credit)
        state = self._link_state(link)
        self._kick()
        await state.opened.wait()
        self._check_usable(link)
        if state.address is None:
            raise LinkRefused("the peer gave the dynamic link no address", None)
        return link, state.address

    def accept_link(
        self,
        link: LinkId,
        *,
        credit: int = 0,
        address: str | None = None,
        properties: Mapping[str, Any] | None = None,
    ) -> None:
        """Accept a link the peer opened (call from ``link_requested``)."""
        self.protocol.accept_link(link, credit=credit, address=address, properties=properties)
        self._link_state(link)
        self._kick()

    def refuse_link(self, link: LinkId, error: ErrorCondition) -> None:
        """Refuse a link the peer opened, with the reason."""
        self.protocol.refuse_link(link, error)
        self._kick()

    def grant_credit(self, link: LinkId, n: int) -> None:
        """Let the peer send ``n`` more messages on ``link``."""
        if n > 0 and not self.closed:
            self.protocol.grant_credit(link, n)
            self._kick()

    def settle(self, delivery: DeliveryId, outcome: Outcome) -> None:
        """Settle a received delivery with ``outcome``."""
        if not self.closed:
            self.protocol.settle(delivery, outcome)
            self._kick()

    async def aclose(self, error: ErrorCondition | None = None) -> None:
        """Close the connection cleanly and wait until the peer has answered."""
        if not self.closed:
            self.protocol.close(error)
            self._kick()
            with trio.move_on_after(5):
                await self.finished.wait()
        await trio.lowlevel.checkpoint()


def _describe(error: ErrorCondition | None) -> str | None:
    if error is None:
        return None
    return f"{error.name}: {error.description}" if error.description else error.name


async def connect(
    host: str,
    port: int,
    handler: ConnectionHandler,
    nursery: trio.Nursery,
    *,
    container_id: str,
    idle_timeout: float | None = None,
    sasl: Any = None,
    tls: TLSConfig | None = None,
    busy_poll: float = 0.0,
    protocol_factory: Callable[..., AMQPConnection] = AMQPConnection,
) -> Connection:
    """Open a TCP connection to ``host:port``, start its driver in ``nursery``, wait for open.

    With ``tls``, the connection runs over TLS and the server's certificate is
    checked (by default against the name ``host``). While it is open, the run polls
    up to ``busy_poll`` seconds before it sleeps (see :class:`IdlePoller`).

    Raises:
        OSError: the TCP connection failed.
        ConnectionLost: the AMQP handshake failed (the TLS handshake, too).
        ValueError: ``tls`` cannot be used (see :class:`TLSConfig`).
    """
    protocol = protocol_factory(
        container_id=container_id,
        role="client",
        hostname=host,
        idle_timeout=idle_timeout,
        sasl=sasl,
        tls=tls,
    )
    stream = await trio.open_tcp_stream(host, port)
    protocol.open()
    connection = Connection(stream, protocol, handler, name=f"{host}:{port}", busy_poll=busy_poll)
    nursery.start_soon(connection.run)
    connection._kick()
    await connection.opened.wait()
    if connection.closed:
        hint = ""
        if tls is not None:
            trusted = "ca_file" if tls.ca_file is not None else "the system's trust store"
            hint = (
                f" (with TLS: does the server use TLS, is its certificate signed by a CA "
                f"in {trusted}, and does it name {tls.peer_hostname(host)!r}?)"
            )
        raise ConnectionLost(
            f"could not open an AMQP connection to {host}:{port}: {connection.error}{hint}"
        )
    return connection


async def serve(
    host: str,
    port: int,
    handler: ConnectionHandler,
    *,
    container_id: str,
    idle_timeout: float | None = None,
    tls: TLSConfig | None = None,
    busy_poll: float = 0.0,
    task_status: trio.TaskStatus[list[trio.SocketListener]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Accept AMQP connections on ``host:port`` forever, one driver per connection.

    ``task_status.started`` receives the listeners (port 0 picks a free port).
    With ``tls``, only TLS clients are accepted (with client certificates if
    ``tls.require_client_certificate``); a failed handshake ends only that connection.
    ``busy_poll`` is as for :func:`connect`, for each connection accepted.

    Raises:
        OSError: the address is in use or cannot be bound.
        ValueError: ``tls`` cannot be used by a server (no certificate, say).
    """
    if tls is not None:
        tls.ssl_domain("server")  # a configuration error surfaces now, not per client

    async def drive(stream: trio.SocketStream) -> None:
        protocol = AMQPConnection(
            container_id=container_id, role="server", idle_timeout=idle_timeout, tls=tls
        )
        protocol.open()
        try:
            peer = stream.socket.getpeername()
        except OSError:  # the client hung up already
            await stream.aclose()
            return
        connection = Connection(
            stream, protocol, handler, name=f"{peer[0]}:{peer[1]}", busy_poll=busy_poll
        )
        connection._kick()
        await connection.run()

    await trio.serve_tcp(drive, port, host=host, task_status=task_status)
