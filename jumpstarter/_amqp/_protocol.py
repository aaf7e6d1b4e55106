"""A sans-IO AMQP 1.0 connection: bytes and commands in, events and bytes out.

Theory of operation
===================

What proton does
----------------
proton's C engine implements AMQP 1.0: it parses and writes frames, runs the
open/begin/attach/detach/end/close handshakes, keeps the session windows and the link
credit, and remembers every unsettled delivery. Three of its objects matter here:

* the ``Connection`` holds the endpoint tree (connection → sessions → links →
  deliveries), each endpoint with a local and a remote state;
* the ``Transport`` turns that tree into bytes and back: ``push()`` feeds received
  bytes in (never more than ``capacity()`` at a time), ``peek()``/``pop()`` take the
  bytes to write, ``tick(now)`` sends heartbeats and detects a silent peer;
* the ``Collector`` queues what changed, as proton events.

proton never touches a socket or a clock here: we do not use its reactor.

What we do
----------
:class:`AMQPConnection` owns one of each and is driven like h11: the I/O code calls
:meth:`~AMQPConnection.receive_data` with what it read, drains
:meth:`~AMQPConnection.next_event` until ``None``, issues commands (``open_sender``,
``send``, ``settle``, ...), writes :meth:`~AMQPConnection.data_to_send`, and calls
:meth:`~AMQPConnection.tick` by the deadline it returns. Nothing here blocks, sleeps
or does I/O, so the same object runs under trio, in a thread, or in a test that joins
two connections with a byte pipe.

proton events are translated lazily, inside ``next_event``: each proton event becomes
zero or more of our events, and whatever protocol housekeeping it calls for is done
right then: answering the peer's ``begin``, answering a close with a close, copying a
finished message out of proton's buffers, settling what both sides have settled.
Commands therefore act on the state the caller has seen so far; a command that races
with news not yet read (a link the peer just closed) is still accepted, and the news
follows as an event.

Why our own events
------------------
proton's events point at wrapper objects that are rebuilt for every event (so ``is``
never works, and holding one keeps C memory alive), carry a dozen fields we do not
need, and use proton's vocabulary. Our events are frozen ``attrs`` values that name
links and deliveries by small ids (:data:`LinkId`, :class:`DeliveryId`): safe to
queue, compare and hand to other tasks, and independent of proton, so the hot path
can later move to proton's low-level ``cproton`` binding without changing callers.
The protocol state proper (endpoint states, windows, credit) lives in proton; we
keep only a table of links, each with its unsettled deliveries.

Credit
------
AMQP flow control is per link: the receiver grants credit (``open_receiver(credit=)``,
:meth:`~AMQPConnection.grant_credit`), each transfer uses one. On the sending side
a :class:`CreditAvailable` event reports the peer's grant, and
:meth:`~AMQPConnection.send` raises :class:`LocalProtocolError` rather than queue a
message without credit, so credit never goes negative and a full mailbox on the far
side pushes back on the sender.

Settlement
----------
A delivery ends when both ends have settled it; until then proton keeps it in memory.
The receiver of an unsettled message calls :meth:`~AMQPConnection.settle` with an
outcome (:class:`Accepted`, :class:`Rejected`, :class:`Released`, :class:`Modified`),
which settles its end at once; the sender sees :class:`DeliveryUpdated` with
``settled=True`` and we settle the sender's end. Pre-settled messages (``settled=True``
or a ``presettled`` link: at most once) are settled on both ends as soon as they
are sent or received.

The hot path
------------
proton's Python wrappers build several objects for every event, every delivery and
every attribute read, which costs more than the C engine's own work. Events about
deliveries and credit, and sending and settling, therefore call proton's low-level
binding (``cproton``, the C functions) with the engine's own pointers: links are
found by pointer in a table, and unsettled deliveries are kept as pointers until we
settle them. The rarer events (opening, closing) go through the wrappers. This ties
the module to the proton version the project pins.

Closing
-------
Every link id ends with one :class:`LinkClosed` when both ends have detached (unless
the whole connection ends first); then
its remaining deliveries are settled without an outcome and forgotten, and proton
frees the link. Once we have closed a receiving link, messages still in flight on it
are released, not reported. The peer's ``end`` of a session closes its links; the
peer's ``close`` is answered with ours. :class:`TransportClosed` is always the last
event: after a clean close with ``error=None``, else with what went wrong (a
:class:`RemoteProtocolError` for every later command).
"""

from __future__ import annotations

import collections
import enum
from collections.abc import Callable, Mapping
from typing import Any, Final, Literal, final

import attrs
import cproton  # type: ignore[import-untyped]
import proton
from cproton_ffi import ffi, lib  # type: ignore[import-not-found]

from ._events import (
    Accepted,
    ConnectionClosed,
    ConnectionOpened,
    CreditAvailable,
    DeliveryId,
    DeliveryUpdated,
    ErrorCondition,
    Event,
    LinkClosed,
    LinkId,
    LinkOpened,
    LinkRequested,
    MessageReceived,
    Modified,
    Outcome,
    Rejected,
    Released,
    TransportClosed,
)
from ._exceptions import LocalProtocolError, RemoteProtocolError
from ._tls import TLSConfig

__all__ = ["AMQPConnection", "ConnectionStatistics", "SASLConfig"]

SASLConfig = None | Literal["anonymous"] | tuple[Literal["plain"], str, str]
"""``None`` (no SASL layer), ``"anonymous"``, or ``("plain", user, password)``."""

# Attribute names stored in proton's per-object record (they survive wrapper rebuilds).
_LINK_ID: Final = "jumpstarter_link_id"

# proton counts time in whole milliseconds, truncating; nudging ``now`` by half a
# millisecond makes a tick at a returned deadline land on (not just before) it.
_HALF_MILLISECOND: Final = 0.0005

_LOCAL_UNINIT: Final = proton.Endpoint.LOCAL_UNINIT
_LOCAL_CLOSED: Final = proton.Endpoint.LOCAL_CLOSED
_REMOTE_CLOSED: Final = proton.Endpoint.REMOTE_CLOSED

_ACCEPTED: Final = Accepted()
_RELEASED: Final = Released()


class _LinkState(enum.Enum):
    OPENING = "opening"  # we attached; waiting for the peer's attach
    REQUESTED = "requested"  # the peer attached; waiting for accept_link / refuse_link
    OPEN = "open"
    CLOSING = "closing"  # we detached; waiting for the peer's detach


@attrs.define(eq=False)
class _Link:
    id: LinkId
    pn: proton.Link
    is_sender: bool
    state: _LinkState
    presettled: bool = False
    credit: int = 0  # sender: the credit last reported or left after our last send
    next_number: int = 0
    # unsettled deliveries on our end, as proton's own pointers (see "The hot path")
    unsettled: dict[int, Any] = attrs.Factory(dict)
    numbers: dict[Any, int] = attrs.Factory(dict)  # sender: delivery pointer -> number
    partial: bytearray | None = None  # the body so far of a message arriving in pieces

    @property
    def impl(self) -> Any:
        return self.pn._impl


@attrs.frozen(kw_only=True)
class ConnectionStatistics:
    """A snapshot of a connection's bookkeeping (see :meth:`AMQPConnection.statistics`).

    Attributes:
        links: links not yet closed on both ends.
        unsettled_deliveries: deliveries proton still holds unsettled on our end.
    """

    links: int
    unsettled_deliveries: int


@final
class AMQPConnection:
    """One AMQP 1.0 connection, without I/O.

    Example (the whole driver loop; ``sock`` is any byte stream)::

        conn = AMQPConnection(container_id="node-a", role="client")
        conn.open()
        done = False
        while True:
            while (event := conn.next_event()) is not None:
                done |= isinstance(event, TransportClosed)  # always the last event
                ...  # react; commands only change state
            data = conn.data_to_send()  # writing may surface events: loop back
            if data:
                sock.send_all(data)
            elif done:
                break
            else:
                conn.receive_data(sock.receive_some())  # b"" at EOF

    Both ends call :meth:`open`; a server may do so before the client's bytes arrive.
    Heartbeats need :meth:`tick` to be called by the deadline it returns.

    Args:
        container_id: our AMQP container id; unique per peer (link names derive from it).
        role: ``"client"`` for the end that connected, ``"server"`` for the end that
            accepted.
        hostname: the virtual host a client asks for (the server's DNS name usually).
        idle_timeout: seconds of silence after which we give up on the peer; the peer
            is asked to send at least every ``idle_timeout / 2`` seconds.
        max_frame_size: the largest frame we accept, in bytes (proton's default: 32 KiB).
        sasl: ``None`` for no SASL layer, ``"anonymous"``, or ``("plain", user,
            password)`` (client only: proton's built-in SASL cannot check passwords).
            A server accepts clients with and without SASL either way.
        tls: run the connection over TLS with these certificates (see
            :class:`TLSConfig`); a client checks the server's certificate against
            ``tls.server_hostname`` or else ``hostname``. A failed handshake ends the
            connection with :class:`TransportClosed` and OpenSSL's reason.
    """

    def __init__(
        self,
        *,
        container_id: str,
        role: Literal["client", "server"],
        hostname: str | None = None,
        idle_timeout: float | None = None,
        max_frame_size: int | None = None,
        sasl: SASLConfig = None,
        tls: TLSConfig | None = None,
    ) -> None:
        if role not in ("client", "server"):
            raise ValueError(f"role must be 'client' or 'server', not {role!r}")
        self._container_id = container_id
        self._connection = proton.Connection()
        self._connection.container = container_id
        if hostname is not None:
            self._connection.hostname = hostname
        self._collector = proton.Collector()  # the connection holds only a weakref
        self._connection.collect(self._collector)
        mode = proton.Transport.SERVER if role == "server" else proton.Transport.CLIENT
        self._transport = proton.Transport(mode)
        if idle_timeout is not None:
            self._transport.idle_timeout = idle_timeout
        if max_frame_size is not None:
            self._transport.max_frame_size = max_frame_size
        if sasl is not None:
            self._configure_sasl(sasl, role)
        if tls is not None:
            self._configure_tls(tls, role, hostname)
        self._transport.bind(self._connection)

        self._session: proton.Session | None = None
        self._links: dict[LinkId, _Link] = {}
        self._by_impl: dict[Any, _Link] = {}  # proton's link pointer -> our link
        self._next_link_id = 0
        self._events: collections.deque[Event] = collections.deque()
        self._closed = False  # closed by us or by the peer, cleanly or not
        self._transport_closed = False  # TransportClosed has been emitted
        self._transport_error: str | None = None

    def _configure_sasl(self, sasl: SASLConfig, role: str) -> None:
        layer = self._transport.sasl()
        if sasl == "anonymous":
            layer.allowed_mechs("ANONYMOUS")
        elif isinstance(sasl, tuple) and len(sasl) == 3 and sasl[0] == "plain":
            if role == "server":
                raise ValueError(
                    "proton's built-in SASL cannot check PLAIN passwords on a server; "
                    "use sasl='anonymous' (with TLS client certificates) or None"
                )
            _, user, password = sasl
            self._connection.user = user
            self._connection.password = password
            layer.allowed_mechs("PLAIN")
            layer.allow_insecure_mechs = True  # PLAIN over a stream we may not encrypt
        else:
            raise ValueError(
                f"sasl must be None, 'anonymous' or ('plain', user, password), not {sasl!r}"
            )

    def _configure_tls(self, tls: TLSConfig, role: str, hostname: str | None) -> None:
        if role == "server":
            proton.SSL(self._transport, tls.ssl_domain("server"))
            return
        peer_hostname = tls.peer_hostname(hostname)
        if peer_hostname is None and tls.verify_server and tls.check_hostname:
            raise ValueError(
                "a TLS client that checks the server's name needs it: pass hostname= "
                "or TLSConfig(server_hostname=...)"
            )
        layer = proton.SSL(self._transport, tls.ssl_domain("client"))
        if peer_hostname is not None:
            layer.peer_hostname = peer_hostname  # checked on the certificate; sent as SNI

    # ------------------------------------------------------------------ bytes

    def receive_data(self, data: bytes) -> None:
        """Feed bytes read from the peer; ``b""`` means the peer closed the socket (EOF).

        Never raises because of what the bytes contain: a protocol error becomes a
        :class:`TransportClosed` event. Bytes that arrive after the input ended are
        dropped.
        """
        transport = self._transport
        impl = transport._impl
        if not data:
            if lib.pn_transport_capacity(impl) >= 0:
                transport.close_tail()
            return
        view = memoryview(data)
        while view:
            capacity = lib.pn_transport_capacity(impl)
            if capacity < 0:  # input ended: error, close frame or EOF
                return
            if capacity == 0:  # cannot happen with proton's growing buffer; never spin
                transport.condition = proton.Condition(
                    "amqp:connection:framing-error", "input buffer full"
                )
                transport.close_tail()
                return
            chunk = view[:capacity]
            if lib.pn_transport_push(impl, ffi.from_buffer(chunk), len(chunk)) < 0:
                transport.close_tail()  # pragma: no cover - capacity checked above
                return
            view = view[capacity:]

    def data_to_send(self, max_bytes: int | None = None) -> bytes:
        """Return the bytes to write to the peer now (``b""`` if none).

        proton notices some failures (a refused SASL login, for one) only while it
        produces output, so drain :meth:`next_event` after this too.

        Args:
            max_bytes: return at most this many; the rest waits for the next call.
        """
        impl = self._transport._impl
        chunks: list[bytes | bytearray] = []
        remaining = max_bytes
        while remaining is None or remaining > 0:
            pending = lib.pn_transport_pending(impl)
            if pending <= 0:  # nothing now, or the output has ended
                break
            if remaining is not None:
                pending = min(pending, remaining)
                remaining -= pending
            chunk = bytearray(pending)
            read = lib.pn_transport_peek(impl, ffi.from_buffer(chunk), pending)
            if read < 0:  # pragma: no cover - pending said there was output
                break
            lib.pn_transport_pop(impl, pending)
            if read:
                chunks.append(chunk if read == pending else chunk[:read])
        if len(chunks) == 1:
            return bytes(chunks[0])
        return b"".join(chunks)

    def has_data_to_send(self) -> bool:
        """Whether :meth:`data_to_send` has anything to do now: bytes to return, or the
        end of the output to notice (which may surface events). Cheaper than calling it."""
        return bool(lib.pn_transport_pending(self._transport._impl) != 0)

    def tick(self, now: float) -> float | None:
        """Send heartbeats that are due and check that the peer is alive.

        Args:
            now: the current time in seconds, from a monotonic clock (``trio.current_time()``).

        Returns:
            when to call again (same clock as ``now``), or ``None`` if no timer is running.
            A silent peer surfaces as :class:`TransportClosed`.
        """
        if self._transport_closed:
            return None
        deadline = self._transport.tick(now + _HALF_MILLISECOND)
        return deadline if deadline else None

    # ------------------------------------------------------------------ events

    def next_event(self) -> Event | None:
        """Return the next event, or ``None`` when there is none until more bytes arrive."""
        events = self._events
        collector = self._collector._impl
        peek = lib.pn_collector_peek
        while not events:
            raw = peek(collector)
            if raw == ffi.NULL:
                return None
            try:
                kind = lib.pn_event_type(raw)
                if kind == _PN_DELIVERY:
                    self._on_delivery(raw)
                elif kind == _PN_LINK_FLOW:
                    self._on_link_flow(raw)
                else:
                    handler = _HANDLERS.get(kind)
                    if handler is not None:
                        pn_event = proton.Event.wrap(raw)  # type: ignore[no-untyped-call]
                        if pn_event is not None:
                            handler(self, pn_event)
            finally:
                lib.pn_collector_pop(collector)
        return events.popleft()

    # ------------------------------------------------------------------ connection commands

    def open(self) -> None:
        """Open the connection (send our ``open`` frame)."""
        if self._connection.state & _LOCAL_UNINIT == 0:
            raise LocalProtocolError("the connection is already open")
        self._connection.open()

    def close(self, error: ErrorCondition | None = None) -> None:
        """Close the connection, with an error for the peer if given.

        The peer answers with its own close, then the transport closes
        (:class:`TransportClosed`). Closing a closed connection does nothing.
        """
        if self._closed or self._connection.state & _LOCAL_CLOSED:
            return
        if error is not None:
            self._connection.condition = _to_condition(error)
        self._connection.close()

    # ------------------------------------------------------------------ link commands

    def open_sender(
        self,
        target_address: str,
        *,
        name: str | None = None,
        presettled: bool = False,
        properties: Mapping[str, Any] | None = None,
        durable: bool = False,
    ) -> LinkId:
        """Open a link to send messages to ``target_address``.

        :class:`LinkOpened` follows when the peer attaches, then :class:`CreditAvailable`
        when it grants credit; a refusal is a :class:`LinkClosed` with the reason.

        Args:
            target_address: the peer's node (queue, actor path) to send to.
            name: the link name; by default derived from our container id.
            presettled: send every message settled (at most once, no outcomes).
            properties: link properties for the peer (symbol names to values), such
                as an extension both ends understand.
            durable: ask for a durable target (terminus durability
                ``configuration``): a broker that makes the node, such as RabbitMQ
                for ``/queue/NAME``, makes one that survives its restart.
        """
        link = self._new_link(name, is_sender=True)
        link.pn.target.address = target_address
        if durable:
            link.pn.target.durability = proton.Terminus.CONFIGURATION
        if properties:
            link.pn.properties = _symbol_keys(properties)
        if presettled:
            link.pn.snd_settle_mode = proton.Link.SND_SETTLED
            link.presettled = True
        link.pn.open()
        return link.id

    def open_receiver(
        self,
        source_address: str | None,
        *,
        name: str | None = None,
        credit: int = 0,
        durable: bool = False,
    ) -> LinkId:
        """Open a link to receive messages from ``source_address``.

        Args:
            source_address: the peer's node (queue, actor path) to receive from, or
                ``None`` for a *dynamic* node the peer creates for us (a reply
                address): its address comes in :attr:`LinkOpened.address`.
            name: the link name; by default derived from our container id.
            credit: how many messages the peer may send right away.
            durable: ask for a durable source (see :meth:`open_sender`).
        """
        _check_credit(credit)
        link = self._new_link(name, is_sender=False)
        if source_address is None:
            link.pn.source.dynamic = True
        else:
            link.pn.source.address = source_address
        if durable:
            link.pn.source.durability = proton.Terminus.CONFIGURATION
        link.pn.open()
        if credit:
            link.pn.flow(credit)
        return link.id

    def accept_link(
        self,
        link: LinkId,
        *,
        credit: int = 0,
        address: str | None = None,
        properties: Mapping[str, Any] | None = None,
    ) -> None:
        """Attach a link the peer opened (see :class:`LinkRequested`).

        Args:
            link: the requested link.
            credit: for a link we receive on, how many messages the peer may send now.
            address: for a dynamic request, the address of the node made for it.
            properties: link properties for the peer (see :meth:`open_sender`).
        """
        state = self._requested_link(link)
        pn = state.pn
        if credit and state.is_sender:
            raise LocalProtocolError(f"link {link} sends; only a receiving link grants credit")
        _check_credit(credit)
        pn.source.copy(pn.remote_source)
        pn.target.copy(pn.remote_target)
        if address is not None:
            terminus = pn.source if state.is_sender else pn.target
            terminus.dynamic = False
            terminus.address = address
        if properties:
            pn.properties = _symbol_keys(properties)
        pn.snd_settle_mode = pn.remote_snd_settle_mode
        pn.rcv_settle_mode = pn.remote_rcv_settle_mode
        state.presettled = pn.snd_settle_mode == proton.Link.SND_SETTLED
        pn.open()
        state.state = _LinkState.OPEN
        if credit:
            pn.flow(credit)
        elif state.is_sender and pn.credit > 0:  # the peer granted credit before we accepted
            state.credit = pn.credit
            self._events.append(CreditAvailable(link=link, credit=pn.credit))

    def refuse_link(self, link: LinkId, error: ErrorCondition) -> None:
        """Refuse a link the peer opened (see :class:`LinkRequested`).

        The peer sees its link closed with ``error`` (e.g. ``amqp:not-found``); a
        :class:`LinkClosed` follows here when it has answered.
        """
        state = self._requested_link(link)
        pn = state.pn
        # The spec's refusal: attach with a null terminus on our side, then detach.
        terminus = pn.source if state.is_sender else pn.target
        terminus.type = proton.Terminus.UNSPECIFIED
        pn.condition = _to_condition(error)
        pn.close()
        state.state = _LinkState.CLOSING

    def close_link(self, link: LinkId, error: ErrorCondition | None = None) -> None:
        """Close a link, with an error for the peer if given.

        :class:`LinkClosed` follows when the peer has answered.
        """
        state = self._link(link)
        if state.state is _LinkState.CLOSING:
            raise LocalProtocolError(f"link {link} is already closing")
        if error is not None:
            state.pn.condition = _to_condition(error)
        state.pn.close()
        state.state = _LinkState.CLOSING

    def grant_credit(self, link: LinkId, n: int) -> None:
        """Let the peer send ``n`` more messages on a link we receive on."""
        _check_credit(n)
        state = self._link(link)
        if state.is_sender:
            raise LocalProtocolError(f"link {link} sends; only a receiving link grants credit")
        if state.state is _LinkState.REQUESTED:
            raise LocalProtocolError(f"link {link} is not accepted yet: use accept_link(credit=)")
        if state.state is _LinkState.CLOSING:
            raise LocalProtocolError(f"link {link} is closing")
        if n:
            state.pn.flow(n)

    def link_credit(self, link: LinkId) -> int:
        """How many messages may be sent now on ``link``: on a link we send on, our
        credit; on a link we receive on, the credit we granted that the peer has not
        used by a transfer that reached us yet."""
        state = self._link(link)
        credit = int(lib.pn_link_credit(state.impl))
        if not state.is_sender:  # a delivery still arriving has used its credit too
            credit -= int(lib.pn_link_queued(state.impl))
        return credit

    # ------------------------------------------------------------------ message commands

    def send(
        self,
        link: LinkId,
        encoded_message: bytes,
        *,
        tag: bytes | None = None,
        settled: bool = False,
    ) -> DeliveryId:
        """Send one encoded AMQP message on a link we send on, using one credit.

        Args:
            link: an open sending link with credit (see :class:`CreditAvailable`).
            encoded_message: the whole message, all sections encoded (e.g.
                ``proton.Message.encode()``).
            tag: the delivery tag (unique among the link's unsettled deliveries); by
                default derived from the delivery number.
            settled: send it pre-settled (at most once); always so on a presettled link.

        Returns:
            the delivery's id; unless settled, :class:`DeliveryUpdated` events follow.

        Raises:
            LocalProtocolError: the link is not an open sending link, or has no credit.
        """
        state = self._link(link)
        if not state.is_sender:
            raise LocalProtocolError(f"link {link} receives; cannot send on it")
        if state.state is not _LinkState.OPEN:
            raise LocalProtocolError(f"link {link} is {state.state.value}, not open")
        impl = state.impl
        if lib.pn_link_credit(impl) <= 0:
            raise LocalProtocolError(f"link {link} has no credit: wait for CreditAvailable")
        number = state.next_number
        state.next_number = number + 1
        delivery = cproton.pn_delivery(impl, b"%x" % number if tag is None else tag)
        if cproton.pn_link_send(impl, encoded_message) < 0:  # pragma: no cover - checked above
            raise LocalProtocolError(f"proton refused to send on link {link}")
        lib.pn_link_advance(impl)
        state.credit = lib.pn_link_credit(impl)
        if settled or state.presettled:
            lib.pn_delivery_settle(delivery)
        else:
            state.unsettled[number] = delivery
            state.numbers[delivery] = number
        return DeliveryId(link, number)

    def settle(self, delivery: DeliveryId, outcome: Outcome) -> None:
        """Settle our end of an unsettled delivery with an outcome.

        The receiver of a message uses this to report what became of it; the sender
        learns of it as :class:`DeliveryUpdated`. A sender may also settle a message it
        gives up on. Settling a delivery whose link or connection has closed does
        nothing (its outcome can no longer reach the peer).

        Raises:
            LocalProtocolError: the delivery was never issued, or is already settled.
        """
        if self._closed:
            return
        state = self._links.get(delivery.link)
        if state is None:
            if 0 <= delivery.link < self._next_link_id:
                return  # the link has closed and its deliveries are gone
            raise LocalProtocolError(f"unknown delivery {delivery}")
        raw = state.unsettled.pop(delivery.number, None)
        if raw is None:
            raise LocalProtocolError(f"delivery {delivery} is not unsettled on our end")
        if state.numbers:
            state.numbers.pop(raw, None)
        if type(outcome) is Accepted:
            lib.pn_delivery_update(raw, _PN_ACCEPTED)
        else:
            _set_outcome(proton.Delivery.wrap(raw), outcome)  # type: ignore[no-untyped-call]
        lib.pn_delivery_settle(raw)

    # ------------------------------------------------------------------ introspection

    def statistics(self) -> ConnectionStatistics:
        """Count what the connection holds (for tests and metrics; not for the hot path)."""
        return ConnectionStatistics(
            links=len(self._links),
            unsettled_deliveries=sum(link.pn.unsettled for link in self._links.values()),
        )

    # ------------------------------------------------------------------ helpers

    def _check_usable(self) -> None:
        if self._transport_error is not None:
            raise RemoteProtocolError(f"the connection failed: {self._transport_error}")
        if self._closed:
            raise LocalProtocolError("the connection is closed")
        state = self._connection.state
        if state & _LOCAL_UNINIT:
            raise LocalProtocolError("call open() first")
        if state & _LOCAL_CLOSED:
            raise LocalProtocolError("the connection is closing")

    def _link(self, link: LinkId) -> _Link:
        self._check_usable()
        try:
            return self._links[link]
        except KeyError:
            state = "closed" if 0 <= link < self._next_link_id else "unknown"
            raise LocalProtocolError(f"link {link} is {state}") from None

    def _requested_link(self, link: LinkId) -> _Link:
        state = self._link(link)
        if state.state is not _LinkState.REQUESTED:
            raise LocalProtocolError(f"link {link} was not requested by the peer, or is answered")
        return state

    def _new_link(self, name: str | None, *, is_sender: bool) -> _Link:
        self._check_usable()
        session = self._session
        if session is None:
            session = self._session = self._connection.session()
            session.open()
        link_id = LinkId(self._next_link_id)
        self._next_link_id += 1
        if name is None:
            name = f"{self._container_id}-{link_id}"
        pn = session.sender(name) if is_sender else session.receiver(name)
        setattr(pn, _LINK_ID, link_id)
        link = _Link(id=link_id, pn=pn, is_sender=is_sender, state=_LinkState.OPENING)
        self._links[link_id] = link
        self._by_impl[pn._impl] = link
        return link

    def _link_of(self, pn: proton.Link | None) -> _Link | None:
        link_id: LinkId | None = getattr(pn, _LINK_ID, None)
        return None if link_id is None else self._links.get(link_id)

    def _forget_link(self, link: _Link) -> None:
        del self._links[link.id]
        self._by_impl.pop(link.impl, None)
        for raw in link.unsettled.values():
            lib.pn_delivery_settle(raw)
        link.unsettled.clear()
        link.numbers.clear()
        link.partial = None
        link.pn.free()  # proton still sends our detach; it frees the rest afterwards

    def _emit_transport_closed(self) -> None:
        if self._transport_closed:
            return
        self._transport_closed = self._closed = True
        condition = self._transport.condition
        error = None
        if condition is not None:
            error = condition.name
            if condition.description:
                error = f"{error}: {condition.description}"
        elif not self._connection.state & _REMOTE_CLOSED:
            # EOF before the peer's close frame. proton says so itself, except when the
            # EOF cuts a frame in half: then it closes the input without a word.
            error = "amqp:connection:framing-error: connection aborted"
        self._transport_error = error
        for link in list(self._links.values()):
            self._forget_link(link)
        self._events.append(TransportClosed(error=error))

    # ------------------------------------------------------------------ proton event handlers

    def _on_connection_remote_open(self, event: proton.Event) -> None:
        self._events.append(ConnectionOpened(remote_container_id=self._connection.remote_container))

    def _on_connection_remote_close(self, event: proton.Event) -> None:
        connection = self._connection
        error = _error_condition(connection.remote_condition)
        if not connection.state & _LOCAL_CLOSED:
            connection.close()
        self._closed = True
        self._events.append(ConnectionClosed(error=error))

    def _on_session_remote_open(self, event: proton.Event) -> None:
        session = event.session
        if session is None:  # pragma: no cover - proton always sets it
            return
        if session.state & _LOCAL_UNINIT:
            session.open()
        if self._session is None:
            self._session = session

    def _on_session_remote_close(self, event: proton.Event) -> None:
        session = event.session
        if session is None:  # pragma: no cover - proton always sets it
            return
        if not session.state & _LOCAL_CLOSED:
            session.close()
        if self._session == session:
            self._session = None
        error = _error_condition(session.remote_condition)
        for link in list(self._links.values()):
            if link.pn.session == session:
                self._forget_link(link)
                self._events.append(LinkClosed(link=link.id, error=error))

    def _on_link_remote_open(self, event: proton.Event) -> None:
        pn = event.link
        if pn is None:  # pragma: no cover - proton always sets it
            return
        link_id: LinkId | None = getattr(pn, _LINK_ID, None)
        if link_id is None:  # the peer opened it
            link_id = LinkId(self._next_link_id)
            self._next_link_id += 1
            setattr(pn, _LINK_ID, link_id)
            is_sender = pn.is_sender
            self._links[link_id] = self._by_impl[pn._impl] = _Link(
                id=link_id, pn=pn, is_sender=is_sender, state=_LinkState.REQUESTED
            )
            terminus = pn.remote_source if is_sender else pn.remote_target
            self._events.append(
                LinkRequested(
                    link=link_id,
                    role="sender" if is_sender else "receiver",
                    address=terminus.address,
                    name=pn.name,
                    dynamic=terminus.dynamic,
                    properties=_str_keys(pn.remote_properties),
                )
            )
            return
        link = self._links.get(link_id)
        if link is None or link.state is not _LinkState.OPENING:
            return
        terminus = pn.remote_target if link.is_sender else pn.remote_source
        if terminus.type == proton.Terminus.UNSPECIFIED:
            return  # a refusal: the detach with the reason follows
        link.state = _LinkState.OPEN
        self._events.append(
            LinkOpened(
                link=link_id,
                address=terminus.address,
                properties=_str_keys(pn.remote_properties),
            )
        )

    def _on_link_remote_close(self, event: proton.Event) -> None:
        pn = event.link
        link = self._link_of(pn)
        if pn is None or link is None:
            return
        error = _error_condition(pn.remote_condition)
        if not pn.state & _LOCAL_CLOSED:
            if event.type == proton.Event.LINK_REMOTE_DETACH:
                pn.detach()
            else:
                pn.close()
        self._forget_link(link)
        self._events.append(LinkClosed(link=link.id, error=error))

    def _on_link_flow(self, raw: Any) -> None:
        link = self._by_impl.get(lib.pn_event_link(raw))
        if link is None or not link.is_sender or link.state is not _LinkState.OPEN:
            return
        credit = lib.pn_link_credit(link.impl)
        if credit > link.credit:  # flow frames also come without new credit
            self._events.append(CreditAvailable(link=link.id, credit=credit))
        link.credit = credit

    def _on_delivery(self, raw: Any) -> None:
        delivery = lib.pn_event_delivery(raw)
        link = self._by_impl.get(lib.pn_delivery_link(delivery))
        if link is None:
            return
        if link.is_sender:
            self._on_outgoing_delivery(link, delivery)
        else:
            self._on_incoming_delivery(link, delivery)

    def _on_incoming_delivery(self, link: _Link, delivery: Any) -> None:
        if not lib.pn_delivery_readable(delivery):
            return  # an update to a message already handed out: nothing to report
        if lib.pn_delivery_aborted(delivery):
            link.partial = None
            lib.pn_delivery_settle(delivery)
            return
        impl = link.impl
        pending = lib.pn_delivery_pending(delivery)
        chunk = None
        if pending:
            read, chunk = cproton.pn_link_recv(impl, pending)
            if read < 0:
                chunk = None
        closing = link.state is _LinkState.CLOSING
        if lib.pn_delivery_partial(delivery):
            if chunk and not closing:
                if link.partial is None:
                    link.partial = bytearray(chunk)
                else:
                    link.partial += chunk
            return
        lib.pn_link_advance(impl)
        if closing:  # we closed the link: nothing more arrives on it
            link.partial = None
            if not lib.pn_delivery_settled(delivery):
                lib.pn_delivery_update(delivery, _PN_RELEASED)
            lib.pn_delivery_settle(delivery)
            return
        if link.partial is not None:
            if chunk:
                link.partial += chunk
            body = bytes(link.partial)
            link.partial = None
        else:
            body = bytes(chunk) if chunk else b""
        number = link.next_number
        link.next_number = number + 1
        settled = bool(lib.pn_delivery_settled(delivery))
        if settled:
            lib.pn_delivery_settle(delivery)
        else:
            link.unsettled[number] = delivery
        self._events.append(
            MessageReceived(
                link=link.id, delivery=DeliveryId(link.id, number), body=body, settled=settled
            )
        )

    def _on_outgoing_delivery(self, link: _Link, delivery: Any) -> None:
        number = link.numbers.get(delivery)
        if number is None:
            return  # pre-settled, or we settled it already
        state = lib.pn_delivery_remote_state(delivery)
        if state == _PN_ACCEPTED:
            outcome: Outcome | None = _ACCEPTED
        elif state == 0 or state == _PN_RECEIVED:
            outcome = None  # no state, or the non-terminal RECEIVED
        else:
            outcome = _outcome_of(proton.Delivery.wrap(delivery))  # type: ignore[no-untyped-call]
        settled = bool(lib.pn_delivery_settled(delivery))
        if settled:
            del link.unsettled[number]
            del link.numbers[delivery]
            lib.pn_delivery_settle(delivery)
        elif outcome is None:
            return
        self._events.append(
            DeliveryUpdated(
                link=link.id, delivery=DeliveryId(link.id, number), outcome=outcome, settled=settled
            )
        )

    def _on_transport_closed(self, event: proton.Event) -> None:
        self._emit_transport_closed()


_Handler = Callable[[AMQPConnection, proton.Event], None]

_HANDLERS: Final[dict[int, _Handler]] = {
    proton.Event.CONNECTION_REMOTE_OPEN.number: AMQPConnection._on_connection_remote_open,
    proton.Event.CONNECTION_REMOTE_CLOSE.number: AMQPConnection._on_connection_remote_close,
    proton.Event.SESSION_REMOTE_OPEN.number: AMQPConnection._on_session_remote_open,
    proton.Event.SESSION_REMOTE_CLOSE.number: AMQPConnection._on_session_remote_close,
    proton.Event.LINK_REMOTE_OPEN.number: AMQPConnection._on_link_remote_open,
    proton.Event.LINK_REMOTE_CLOSE.number: AMQPConnection._on_link_remote_close,
    proton.Event.LINK_REMOTE_DETACH.number: AMQPConnection._on_link_remote_close,
    proton.Event.TRANSPORT_ERROR.number: AMQPConnection._on_transport_closed,
    proton.Event.TRANSPORT_TAIL_CLOSED.number: AMQPConnection._on_transport_closed,
    proton.Event.TRANSPORT_CLOSED.number: AMQPConnection._on_transport_closed,
}
"""The events handled through proton's wrappers; deliveries and credit are not."""

_PN_DELIVERY: Final = lib.PN_DELIVERY
_PN_LINK_FLOW: Final = lib.PN_LINK_FLOW
_PN_ACCEPTED: Final = lib.PN_ACCEPTED
_PN_RECEIVED: Final = lib.PN_RECEIVED
_PN_RELEASED: Final = lib.PN_RELEASED


def _symbol_keys(properties: Mapping[str, Any]) -> dict[proton.symbol, Any]:
    return {proton.symbol(key): value for key, value in properties.items()}


def _str_keys(properties: Mapping[Any, Any] | None) -> dict[str, Any] | None:
    if not properties:
        return None
    return {str(key): value for key, value in properties.items()}


def _check_credit(n: int) -> None:
    if n < 0:
        raise LocalProtocolError(f"credit must be >= 0, not {n}")


def _to_condition(error: ErrorCondition) -> proton.Condition:
    return proton.Condition(error.name, error.description)


def _error_condition(condition: proton.Condition | None) -> ErrorCondition | None:
    if condition is None:
        return None
    return ErrorCondition(name=condition.name, description=condition.description)


def _outcome_of(delivery: proton.Delivery) -> Outcome | None:
    state = delivery.remote_state
    if state == proton.Delivery.ACCEPTED:
        return _ACCEPTED
    if state == proton.Delivery.REJECTED:
        return Rejected(error=_error_condition(delivery.remote.condition))
    if state == proton.Delivery.RELEASED:
        return _RELEASED
    if state == proton.Delivery.MODIFIED:
        remote = delivery.remote
        return Modified(delivery_failed=remote.failed, undeliverable_here=remote.undeliverable)
    return None  # no state, or the non-terminal RECEIVED


def _set_outcome(delivery: proton.Delivery, outcome: Outcome) -> None:
    match outcome:
        case Accepted():
            delivery.update(proton.Delivery.ACCEPTED)
        case Rejected(error=error):
            if error is not None:
                delivery.local.condition = _to_condition(error)
            delivery.update(proton.Delivery.REJECTED)
        case Released():
            delivery.update(proton.Delivery.RELEASED)
        case Modified(delivery_failed=failed, undeliverable_here=undeliverable):
            delivery.local.failed = failed
            delivery.local.undeliverable = undeliverable
            delivery.update(proton.Delivery.MODIFIED)
        case _:
            raise LocalProtocolError(f"not an outcome: {outcome!r}")
