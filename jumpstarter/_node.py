"""The node: an actor system's presence on the network, and refs to actors elsewhere.

Theory of operation
===================

Every :class:`~jumpstarter.ActorSystem` has one :class:`Node`. It listens for AMQP
1.0 connections when the system was given ``listen=``, and opens connections to
other nodes when someone sends to a remote address. Both kinds of connection are
driven by :mod:`._amqp_driver`, with the node as their handler.

Addresses
---------
An actor's address is ``amqp://host:port/<system>/<path>``, for instance
``amqp://127.0.0.1:5000/bank/user/teller``. The AMQP *target* of the link that
carries messages to it is the address's path, ``/bank/user/teller``.

Sending
-------
A remote ref's cell is a :class:`RemoteCell`. It encodes each message with the
system's :class:`~jumpstarter.TypeRegistry` (and signs it, when the node has a
keyring), and sends it on a link opened once per target actor, over a connection
opened once per peer node (:class:`_Peer`). Sending waits for link credit, which is
how a full mailbox on the far side slows the sender down.

Consecutive tells to one actor are queued on its link (:class:`_OutLink`) and leave
as one *batch* transfer just before the connection next writes, when both ends agreed
to it when the link was attached; credit still counts messages.

An ``ask`` also needs a way back: the first ask over a connection opens a
*dynamic* receiving link, for which the peer makes up a reply address; the ask's
``reply-to`` is that address and its ``correlation-id`` names the waiting
:class:`~jumpstarter._messages.Reply`. Any AMQP client asks the same way.

A lost connection fails the asks still waiting on it (:class:`PeerUnreachable`);
the next message to that peer reconnects, with exponential backoff between
attempts, for up to ``connect_timeout`` seconds.

Receiving
---------
A peer that opens a link to ``/<system>/<path>`` gets credit for as many messages
as the actor's mailbox has room for, up to ``link_credit``. Each message is
decoded (after its signature is checked) and offered to the mailbox; the delivery
is then settled *accepted*. When the mailbox fills, the link stops granting
credit and waits for room (:meth:`ActorCell.wait_for_room`), so a slow actor
pushes back on a fast remote sender through AMQP flow control, and the memory a
link can hold is bounded by its credit.

A message sent with ``settle="after-handled"`` is settled only once its handler
returned (accepted) or raised (rejected); if the connection drops first, the
sending node sends it again once reconnected: at least once.

What cannot be delivered is refused with an AMQP error condition on the delivery:
``amqp:not-found`` (no such actor: the message also goes to this system's dead
letters), ``amqp:decode-error`` (unreadable, unknown type, too large) and
``amqp:unauthorized-access`` (unsigned, forged, stale or replayed). The sender's
ask fails with :class:`~jumpstarter.ActorNotFound` or
:class:`~jumpstarter.MessageRefused`; a refused tell is logged by the sender.
"""

from __future__ import annotations

import builtins
import contextlib
import itertools
import logging
import socket
import sys
import time
import uuid
import warnings
from collections import deque
from typing import TYPE_CHECKING, Any, Final, Literal, cast
from urllib.parse import urlsplit

import attrs
import eliot
import outcome
import trio

from ._amqp._codec import (
    BATCH_TYPE,
    DEFAULT_MAX_MESSAGE_SIZE,
    Codec,
    CodecError,
    RawMessage,
    RemoteErrorInfo,
    TypeRegistry,
    WireEnvelope,
)
from ._amqp._events import (
    Accepted,
    DeliveryId,
    DeliveryUpdated,
    ErrorCondition,
    LinkId,
    LinkRequested,
    MessageReceived,
    Rejected,
)
from ._amqp._exceptions import LocalProtocolError, ProtocolError
from ._amqp._signing import Keyring, SignatureError, Signer
from ._amqp._tls import TLSConfig
from ._amqp_driver import Connection, ConnectionLost, LinkRefused, SenderLink, connect, serve
from ._deadlines import ask_timeout_text
from ._exceptions import (
    ActorNotFound,
    AskTimeout,
    InvalidActorPath,
    JumpstarterError,
    MailboxFull,
    MessageRefused,
    PeerUnreachable,
    RemoteError,
)
from ._idle_poll import DEFAULT_BUSY_POLL, check_busy_poll
from ._logging import SWITCH, current_trace
from ._messages import Envelope, PendingReply, Reply
from ._ref import ActorRef

if TYPE_CHECKING:
    from ._cell import ActorCell
    from ._system import ActorSystem

__all__ = [
    "InsecureNodeWarning",
    "InspectRequest",
    "Node",
    "RemoteCell",
    "RemoteSettings",
    "parse_address",
]

NOT_FOUND: Final = "amqp:not-found"
DECODE_ERROR: Final = "amqp:decode-error"
UNAUTHORIZED: Final = "amqp:unauthorized-access"
HANDLER_FAILED: Final = "jumpstarter:handler-failed"

_ACCEPTED: Final = Accepted()
_REPLY_CREDIT: Final = 1000
_LOOPBACK: Final = frozenset({"127.0.0.1", "::1", "localhost"})
_logger = logging.getLogger("jumpstarter.node")

Settle = Literal["on-arrival", "after-handled"]


class InsecureNodeWarning(UserWarning):
    """A node listens beyond this machine with neither TLS nor message signing."""


@attrs.frozen(kw_only=True)
class RemoteSettings:
    """How an actor system talks to other nodes.

    Attributes:
        signing: sign every message sent and refuse every message received that is
            not signed with one of these keys (HMAC-SHA256, see
            :class:`~jumpstarter.Keyring`). Use it whenever the network is not
            entirely yours.
        max_message_age: with ``signing``, seconds after which a signed message is
            refused as stale (and the replay window).
        trusted: peers may send (and this node sends) message types that are not
            registered, pickled with cloudpickle. Unpickling runs arbitrary code:
            only between authenticated peers that trust each other.
        max_message_size: the largest encoded message sent or accepted, in bytes.
        link_credit: the most messages a peer may have in flight to one actor; the
            actual credit is also bounded by the room in the actor's mailbox.
        idle_timeout: seconds of silence after which a peer is considered gone
            (heartbeats are sent at half this interval); ``None`` to never check.
        connect_timeout: how long sending to an unreachable node keeps retrying
            before it raises :class:`~jumpstarter.PeerUnreachable`.
        reconnect_delay: first pause between connection attempts, doubled after each
            failure up to ``reconnect_max_delay``.
        tls: a :class:`~jumpstarter.TLSConfig` for TLS on the listener and on
            outgoing connections.
        busy_poll: while the system has connections, the most seconds its process
            polls for work before it sleeps, so that a peer's quick answer is handled
            without waking a sleeping CPU. The time actually polled adapts: it grows
            while waits end within this limit and falls to nothing when they last
            longer. ``0`` to sleep at once (Linux only; see "Waiting for the network"
            in the remote actors guide).
    """

    signing: Keyring | None = None
    max_message_age: float = 30.0
    trusted: bool = False
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    link_credit: int = 1000
    idle_timeout: float | None = 30.0
    connect_timeout: float = 10.0
    reconnect_delay: float = 0.05
    reconnect_max_delay: float = 2.0
    tls: TLSConfig | None = None
    busy_poll: float = attrs.field(default=DEFAULT_BUSY_POLL, validator=check_busy_poll)

    def __attrs_post_init__(self) -> None:
        if self.link_credit < 1:
            raise ValueError(f"link_credit must be at least 1, not {self.link_credit}")


@attrs.frozen(kw_only=True)
class InspectRequest:
    """Ask ``/system/inspector`` of a node for a description of its actors.

    The answer is a dict: ``{"system": name, "address": ..., "actors": {path:
    {"state", "mailbox", "received", "handled", "failed", "restarts"}}}``.
    """

    actors: bool = True


def parse_address(address: str) -> tuple[str, int, str, str]:
    """Split ``amqp://host:port/system/path`` into host, port, system name and path.

    Raises:
        InvalidActorPath: it is not such an address.
    """
    try:
        parts = urlsplit(address)
        port = parts.port
    except ValueError as exc:
        raise InvalidActorPath(f"{address!r} is not an actor address: {exc}") from None
    if parts.scheme not in ("amqp", "amqps") or not parts.hostname or port is None:
        raise InvalidActorPath(
            f"{address!r} is not a remote actor address: use amqp://host:port/system/path"
        )
    system, _, path = parts.path.lstrip("/").partition("/")
    if not system or not path:
        raise InvalidActorPath(
            f"{address!r} names no actor: use amqp://host:port/system/path "
            "(e.g. amqp://127.0.0.1:5000/bank/user/teller)"
        )
    return parts.hostname, port, system, "/" + path


def _remote_exception(info: RemoteErrorInfo) -> BaseException:
    """The exception to raise at the asker for a handler's exception on another node."""
    kind = _known_exception_type(info.type_name)
    error: RemoteError
    if kind is None or issubclass(kind, RemoteError):
        error = RemoteError(info.message)
    else:
        try:
            mixed = type(kind.__name__, (RemoteError, kind), {"__module__": kind.__module__})
            error = cast(RemoteError, BaseException.__new__(mixed))
            BaseException.__init__(error, info.message)
        except TypeError:  # a layout that cannot be mixed in
            error = RemoteError(info.message)
    error.remote_type = info.type_name
    error.remote_message = info.message
    error.remote_traceback = info.traceback
    return error


def _known_exception_type(type_name: str) -> type[Exception] | None:
    """The exception class named ``module.QualName``, if its module is imported already.

    Nothing is imported on a peer's say-so: only classes already loaded qualify.
    """
    module_name, _, qualname = type_name.rpartition(".")
    module = builtins if module_name == "builtins" else sys.modules.get(module_name)
    value: Any = module
    for part in qualname.split("."):
        value = getattr(value, part, None)
    if isinstance(value, type) and issubclass(value, Exception):
        return value
    return None


def _error_for(condition: ErrorCondition | None, address: str) -> BaseException:
    """The exception for a message the peer refused with ``condition``."""
    name = condition.name if condition is not None else ""
    description = (condition.description or "") if condition is not None else ""
    if name == NOT_FOUND:
        return ActorNotFound(f"no actor at {address}: {description or 'not found'}")
    return MessageRefused(
        f"{address} refused the message: {name}{': ' + description if description else ''}",
        name,
    )


class RemoteCell:
    """Stands in for an :class:`ActorCell` behind the ref of an actor on another node."""

    __slots__ = ("address", "node", "path", "peer", "settle_after_handled", "target")

    mailbox = None  # ActorRef.tell's inlined fast path is for local mailboxes only

    def __init__(self, node: Node, address: str, settle: Settle) -> None:
        host, port, system, path = parse_address(address)
        self.node = node
        self.address = address
        self.path = path
        self.target = f"/{system}{path}"
        self.peer = node.peer(host, port)
        self.settle_after_handled = settle == "after-handled"

    def __repr__(self) -> str:
        return f"<RemoteCell {self.address}>"

    def tell_nowait(self, message: Any, sender: ActorRef | None) -> None:
        link = self.peer.links.get(self.target)
        if link is None or link.budget <= 0 or link.sender.connection.closed:
            raise MailboxFull(
                f"no credit to send to {self.address} now (not connected yet, or its "
                "mailbox is full); use 'await ref.tell(msg)' to wait"
            )
        if link.batch_limit and sender is None and not SWITCH.enabled:
            entry = self.node.codec.encode_entry(message)
            if entry is not None and len(entry) <= link.bytes_limit:
                link.add(entry, self.settle_after_handled)
                return
        data = self.node.encode(message, self.address, sender, self.settle_after_handled)
        link.flush()
        if link.budget <= 0:
            raise MailboxFull(f"no credit to send to {self.address} now")
        link.send_now(data, 1, self.settle_after_handled)

    async def tell(self, message: Any, sender: ActorRef | None) -> None:
        node = self.node
        link = self.peer.links.get(self.target)
        if link is not None and link.batch_limit and sender is None and not SWITCH.enabled:
            # The common case: queued for the link's next batch, if the peer has room.
            system = node.system
            system.budget -= 1
            if system.budget <= 0:
                system.budget = system.BUDGET
                await trio.lowlevel.checkpoint()
            entry = node.codec.encode_entry(message)
            if entry is not None and len(entry) <= link.bytes_limit:
                with contextlib.suppress(ConnectionLost, LinkRefused):
                    await link.queue(entry, self.settle_after_handled)
                    return
        data = node.encode(message, self.address, sender, self.settle_after_handled)
        await self.peer.send(self.target, data, track=self.settle_after_handled)

    async def ask(self, message: Any, timeout: float | None, sender: ActorRef | None) -> Any:
        node = self.node
        system = node.system
        if timeout is None:
            timeout = system.ask_timeout
        deadline = trio.current_time() + timeout
        peer = self.peer
        reply = Reply()
        message_id = node.new_message_id()
        link = peer.links.get(self.target)
        if (
            link is not None
            and peer.reply is not None
            and peer.reply_connection is link.sender.connection
            and not link.pending
            and link.budget > 0
        ):
            # Connected, with a reply link and credit: nothing to wait for before sending.
            data = node.encode(
                message,
                self.address,
                sender,
                self.settle_after_handled,
                reply_to=peer.reply[1],
                message_id=message_id,
            )
            peer.pending[message_id] = (reply, self.address)
            try:
                delivery = link.send_now(data, 1, self.settle_after_handled, urgent=True)
            except (ConnectionLost, LinkRefused):
                del peer.pending[message_id]  # the connection went: the slow path reconnects
            else:
                peer.asks_by_delivery[delivery] = message_id
                system._deadlines.add(deadline, reply, self.address, message, timeout)
                try:
                    return await reply.wait()
                finally:
                    peer.pending.pop(message_id, None)
        with trio.move_on_at(deadline):
            reply_to = await peer.reply_address()
            data = node.encode(
                message,
                self.address,
                sender,
                self.settle_after_handled,
                reply_to=reply_to,
                message_id=message_id,
            )
            peer.pending[message_id] = (reply, self.address)
            try:
                delivery = await peer.send(
                    self.target, data, track=self.settle_after_handled, urgent=True
                )
                peer.asks_by_delivery[delivery] = message_id
                system._deadlines.add(deadline, reply, self.address, message, timeout)
                return await reply.wait()
            finally:
                peer.pending.pop(message_id, None)
        raise AskTimeout(ask_timeout_text(self.address, message, timeout))


BATCH_PROPERTY: Final = "jumpstarter:batch"
"""The link property by which both ends agree to batch small messages."""

_BATCH_LIMIT: Final = 256


class _OutLink:
    """The link to one remote actor: its credit, counted in messages, and the messages
    queued for its next batch.

    When both ends agree (:data:`BATCH_PROPERTY`), tells queue here and leave as one
    transfer (a :data:`BATCH_TYPE` message) just before the connection next writes,
    or once ``batch_limit`` are queued. The receiver grants credit in messages while
    each transfer uses one credit, so the messages this side may still send are the
    link's credit minus ``extra``, the messages sent beyond one per transfer.
    """

    __slots__ = (
        "address",
        "batch_limit",
        "bytes_limit",
        "extra",
        "inflight",
        "node",
        "peer",
        "pending",
        "pending_bytes",
        "pending_track",
        "sender",
        "target",
    )

    def __init__(self, peer: _Peer, target: str, sender: SenderLink) -> None:
        node = peer.node
        self.node = node
        self.peer = peer
        self.target = target
        self.sender = sender
        self.address = f"amqp://{peer.host}:{peer.port}{target}"
        limit = sender.properties.get(BATCH_PROPERTY)
        self.batch_limit = limit if type(limit) is int and limit > 0 else 0
        self.bytes_limit = node.settings.max_message_size - 2048  # room for the header
        self.extra = 0
        self.inflight: dict[int, tuple[bytes, int]] = {}  # at least once, until settled
        self.pending: list[bytes] = []
        self.pending_bytes = 0
        self.pending_track = False

    @property
    def budget(self) -> int:
        """How many more messages may be queued or sent now."""
        return self.sender.credit - self.extra - len(self.pending)

    async def queue(self, entry: bytes, track: bool) -> None:
        """Queue one encoded entry for the next batch, waiting for room over there."""
        if self.budget <= 0:
            self.flush()
            await self.sender.wait_for_credit(above=self.extra)
        self.add(entry, track)

    def add(self, entry: bytes, track: bool) -> None:
        pending = self.pending
        if pending and (
            track != self.pending_track or self.pending_bytes + len(entry) > self.bytes_limit
        ):
            self.flush()
        pending = self.pending
        pending.append(entry)
        self.pending_bytes += len(entry)
        self.pending_track = track
        if len(pending) >= self.batch_limit:
            self.flush()
        elif len(pending) == 1:
            self.sender.connection.before_next_write(self.flush)

    def flush(self) -> None:
        """Send what is queued, as one batch."""
        if not self.pending:
            return
        data, count = self._take_batch()
        try:
            self.send_now(data, count, self.pending_track)
        except (ConnectionLost, LinkRefused):  # never sent: send it on the next link
            self.peer.keep_unsent(self.target, data, count)

    def _take_batch(self) -> tuple[bytes, int]:
        """Seal what is queued as one batch message, emptying the queue."""
        pending, self.pending = self.pending, []
        self.pending_bytes = 0
        node = self.node
        data = node.seal(
            WireEnvelope(
                message_id=node.new_message_id(),
                type_name=BATCH_TYPE,
                body=pending,
                to=self.address,
                created=time.time(),
                settle_after_handled=self.pending_track,
            )
        )
        return data, len(pending)

    def send_now(self, data: bytes, count: int, track: bool, *, urgent: bool = False) -> DeliveryId:
        delivery = self.sender.send_now(data, urgent=urgent)
        self.extra += count - 1
        if track:
            self.inflight[delivery.number] = (data, count)
        return delivery

    async def send(
        self, data: bytes, count: int, track: bool, *, urgent: bool = False
    ) -> DeliveryId:
        """Send one transfer of ``count`` messages after what is queued, once there is
        room over there (for a batch sent again: room for one; the receiver holds the
        rest until its mailbox has room)."""
        self.flush()
        await self.sender.wait_for_credit(above=self.extra)
        return self.send_now(data, count, track, urgent=urgent)

    def unsent(self) -> list[tuple[bytes, int]]:
        """What must be sent again if the link breaks: the unsettled transfers of
        at-least-once messages, in order, then what was still queued."""
        kept = [self.inflight[number] for number in sorted(self.inflight)]
        if self.pending:
            kept.append(self._take_batch())
        return kept


class _Peer:
    """The connection to one other node, its sender links, and the asks awaiting it."""

    def __init__(self, node: Node, host: str, port: int) -> None:
        self.node = node
        self.host = host
        self.port = port
        self.connection: Connection | None = None
        self.connecting: trio.Event | None = None
        self.failure: BaseException | None = None
        self.links: dict[str, _OutLink] = {}
        self.by_link: dict[LinkId, _OutLink] = {}
        self.opening: dict[str, trio.Event] = {}
        self.reply: tuple[LinkId, str] | None = None
        self.reply_opening: trio.Event | None = None
        self.reply_taken = 0
        self.pending: dict[str, tuple[Reply, str]] = {}
        self.asks_by_delivery: dict[DeliveryId, str] = {}
        self.unsent: dict[str, deque[tuple[bytes, int]]] = {}
        self.redelivering = False

    def __repr__(self) -> str:
        return f"<peer {self.host}:{self.port}>"

    # -- connecting

    async def connect(self) -> Connection:
        """The open connection to the peer, connecting (with backoff) if need be."""
        while True:
            connection = self.connection
            if connection is not None and not connection.closed:
                return connection
            if self.connecting is not None:
                await self.connecting.wait()
                if self.connection is None or self.connection.closed:
                    assert self.failure is not None
                    raise self.failure
                continue
            self.connecting = trio.Event()
            try:
                self.connection = await self._connect_with_backoff()
                self.connection.context = self
                self.failure = None
            except PeerUnreachable as exc:
                self.failure = exc
                raise
            finally:
                self.connecting.set()
                self.connecting = None

    async def _connect_with_backoff(self) -> Connection:
        node = self.node
        settings = node.settings
        delay = settings.reconnect_delay
        deadline = trio.current_time() + settings.connect_timeout
        while True:
            try:
                return await connect(
                    self.host,
                    self.port,
                    node,
                    node.nursery,
                    container_id=f"{node.system.name}-{node.node_id}",
                    idle_timeout=settings.idle_timeout,
                    busy_poll=settings.busy_poll,
                    **node.tls_options(client=True),
                )
            except (OSError, ConnectionLost) as exc:
                if trio.current_time() + delay > deadline:
                    raise PeerUnreachable(
                        f"cannot reach the node at {self.host}:{self.port}: {exc}. Check "
                        "that it runs and listens there (jumpstart run --listen ...)"
                    ) from exc
                await trio.sleep(delay)
                delay = min(delay * 2, settings.reconnect_max_delay)

    # -- sending

    async def link(self, target: str) -> _OutLink:
        """The open sender link to ``target`` on the peer, opening it if need be."""
        while True:
            link = self.links.get(target)
            if link is not None and not link.sender.connection.closed:
                return link
            opening = self.opening.get(target)
            if opening is not None:
                await opening.wait()
                continue
            self.opening[target] = event = trio.Event()
            try:
                connection = await self.connect()
                try:
                    sender = await connection.open_sender(
                        target, properties={BATCH_PROPERTY: _BATCH_LIMIT}
                    )
                except LinkRefused as exc:
                    raise _error_for(exc.condition, f"{self.host}:{self.port}{target}") from exc
                except ConnectionLost:
                    continue
                link = _OutLink(self, target, sender)
                self.links[target] = self.by_link[sender.link] = link
                try:
                    await self._flush_unsent(target, link)
                except ConnectionLost:
                    continue
                return link
            finally:
                del self.opening[target]
                event.set()

    async def send(
        self, target: str, data: bytes, *, track: bool, urgent: bool = False
    ) -> DeliveryId:
        """Send one encoded message to ``target``, waiting for a connection and credit."""
        while True:
            link = await self.link(target)
            try:
                return await link.send(data, 1, track, urgent=urgent)
            except ConnectionLost:
                continue  # not sent: reconnect and send it again
            except LinkRefused as exc:
                self.links.pop(target, None)
                raise _error_for(exc.condition, f"{self.host}:{self.port}{target}") from exc

    def keep_unsent(self, target: str, data: bytes, count: int) -> None:
        self.unsent.setdefault(target, deque()).append((data, count))
        if not self.redelivering and not self.node.closing:
            self.node.nursery.start_soon(self._redeliver)

    async def _flush_unsent(self, target: str, link: _OutLink) -> None:
        unsent = self.unsent.get(target)
        while unsent:
            data, count = unsent[0]
            await link.send(data, count, True)
            unsent.popleft()
        self.unsent.pop(target, None)

    async def _redeliver(self) -> None:
        """Reconnect and send again what was in flight at least once when the link broke."""
        self.redelivering = True
        try:
            while self.unsent:
                target = next(iter(self.unsent))
                try:
                    await self.link(target)
                except PeerUnreachable:
                    await trio.sleep(self.node.settings.reconnect_max_delay)
                except (ActorNotFound, MessageRefused) as exc:
                    lost = self.unsent.pop(target, deque())
                    count = sum(n for _, n in lost)
                    self.node.log_refused(f"{self.host}:{self.port}{target}", str(exc), count)
        finally:
            self.redelivering = False

    # -- asking

    async def reply_address(self) -> str:
        """The address answers to this node's asks come back to, over this connection."""
        while True:
            connection = await self.connect()
            reply = self.reply
            if reply is not None and self.reply_connection is connection:
                return reply[1]
            if self.reply_opening is not None:
                await self.reply_opening.wait()
                continue
            self.reply_opening = trio.Event()
            try:
                link, address = await connection.open_dynamic_receiver(credit=_REPLY_CREDIT)
                connection.receivers[link] = self.answer_received
                self.reply = (link, address)
                self.reply_connection = connection
                self.reply_taken = 0
                return address
            except ConnectionLost:
                continue
            except LinkRefused as exc:
                raise MessageRefused(
                    f"the node at {self.host}:{self.port} does not answer asks: {exc}",
                    NOT_FOUND,
                ) from exc
            finally:
                self.reply_opening.set()
                self.reply_opening = None

    reply_connection: Connection | None = None

    def answer_received(self, connection: Connection, event: MessageReceived) -> None:
        if not event.settled:
            connection.settle(event.delivery, _ACCEPTED)
        self.reply_taken += 1
        if self.reply_taken >= _REPLY_CREDIT // 2:
            connection.grant_credit(event.link, self.reply_taken)
            self.reply_taken = 0
        node = self.node
        try:
            raw = node.codec.parse(event.body)
        except CodecError as exc:
            node.log_refused(f"{self.host}:{self.port}", f"unreadable answer: {exc}", 1)
            return
        correlation_id = raw.property(5)
        waiting = self.pending.get(correlation_id) if type(correlation_id) is str else None
        if waiting is None:
            return  # timed out or cancelled meanwhile
        reply, _ = waiting
        try:
            error, body = node.open_answer(raw)
        except (CodecError, SignatureError) as exc:
            reply.fail(exc)
            return
        if error is not None:
            reply.fail(_remote_exception(error))
        else:
            reply.succeed(body)

    # -- outcomes and failures

    def delivery_updated(self, event: DeliveryUpdated) -> None:
        delivery = event.delivery
        link = self.by_link.get(delivery.link)
        if link is not None and link.inflight:
            link.inflight.pop(delivery.number, None)
        message_id = self.asks_by_delivery.pop(delivery, None) if self.asks_by_delivery else None
        result = event.outcome
        if type(result) is Accepted:
            return
        condition = result.error if isinstance(result, Rejected) else None
        waiting = self.pending.get(message_id) if message_id is not None else None
        if waiting is not None:
            reply, address = waiting
            reply.fail(_error_for(condition, address))
            return
        why = condition.name if condition is not None else type(result).__name__
        if condition is not None and condition.description:
            why += f": {condition.description}"
        where = link.sender.address if link is not None else f"{self.host}:{self.port}"
        self.node.log_refused(where, why, 1)

    def connection_lost(self, connection: Connection, error: str | None) -> None:
        if connection is not self.connection:
            return
        self.connection = None
        self.reply = None
        self.reply_connection = None
        links, self.links = self.links, {}
        self.by_link = {}
        for target, link in links.items():
            kept = link.unsent()
            if kept:
                self.unsent.setdefault(target, deque()).extend(kept)
        self.asks_by_delivery.clear()
        reason = error or "the connection closed"
        for reply, address in list(self.pending.values()):
            reply.fail(
                PeerUnreachable(
                    f"the connection to the node of {address} was lost before it answered "
                    f"({reason}); the message may or may not have been handled"
                )
            )
        if self.unsent and not self.redelivering and not self.node.closing:
            self.node.nursery.start_soon(self._redeliver)


class _RemoteReply(Reply):
    """The reply slot of a message that came from another node.

    Resolving it answers the ask over the network (when the message had a reply-to)
    and settles the delivery (when the sender asked for settlement after handling).
    """

    __slots__ = ("connection", "correlation_id", "delivery", "node", "reply_to")

    def __init__(
        self,
        node: Node,
        connection: Connection,
        delivery: DeliveryId | None,
        reply_to: str | None,
        correlation_id: str,
    ) -> None:
        super().__init__()
        self.node = node
        self.connection = connection
        self.delivery = delivery
        self.reply_to = reply_to
        self.correlation_id = correlation_id

    def resolve(self, result: outcome.Outcome[Any]) -> None:
        if self.done:
            return
        self.done = True
        self.node.answer(self, result)


class _Arrival:
    """Settles one transfer once all its messages are in the mailbox (some waited)."""

    __slots__ = ("connection", "delivery", "remaining")

    def __init__(self, connection: Connection, delivery: DeliveryId, remaining: int) -> None:
        self.connection = connection
        self.delivery = delivery
        self.remaining = remaining

    def arrived(self) -> None:
        self.remaining -= 1
        if self.remaining == 0:
            self.connection.settle(self.delivery, _ACCEPTED)

    def refuse(self, reason: str) -> None:
        if self.remaining > 0:
            self.remaining = 0
            condition = ErrorCondition(name=NOT_FOUND, description=reason)
            self.connection.settle(self.delivery, Rejected(error=condition))


class _BatchSettlement:
    """Settles a batch sent "after handled" once every one of its messages is handled."""

    __slots__ = ("connection", "delivery", "failure", "remaining")

    def __init__(self, connection: Connection, delivery: DeliveryId, remaining: int) -> None:
        self.connection = connection
        self.delivery = delivery
        self.remaining = remaining
        self.failure: BaseException | None = None

    def part_done(self, error: BaseException | None) -> None:
        if error is not None and self.failure is None:
            self.failure = error
        self.remaining -= 1
        if self.remaining == 0:
            failure = self.failure
            if failure is None:
                self.connection.settle(self.delivery, _ACCEPTED)
            else:
                condition = ErrorCondition(
                    name=HANDLER_FAILED, description=f"{type(failure).__name__}: {failure}"
                )
                self.connection.settle(self.delivery, Rejected(error=condition))


class _BatchPart(Reply):
    """The reply slot of one message of an after-handled batch."""

    __slots__ = ("batch",)

    def __init__(self, batch: _BatchSettlement) -> None:
        super().__init__()
        self.batch = batch

    def resolve(self, result: outcome.Outcome[Any]) -> None:
        if self.done:
            return
        self.done = True
        self.batch.part_done(result.error if isinstance(result, outcome.Error) else None)


class _InboundLink:
    """A link a peer opened to send to one of our actors; its credit follows the mailbox.

    Credit is counted in messages, also when the peer batches them (see
    :class:`_OutLink`): ``outstanding`` is how many more messages the peer may send.
    """

    __slots__ = (
        "batch",
        "batch_limit",
        "cell",
        "closed",
        "connection",
        "idle_hooked",
        "link",
        "node",
        "outstanding",
        "overflow",
        "path",
        "waiting",
        "window",
    )

    def __init__(self, node: Node, connection: Connection, link: LinkId, path: str) -> None:
        self.node = node
        self.connection = connection
        self.link = link
        self.path = path
        cell = node.system._registry.get(path)
        capacity = cell.capacity if cell is not None else node.settings.link_credit
        self.window = max(1, min(node.settings.link_credit, capacity))
        self.batch = max(1, self.window // 4)
        self.batch_limit = 0
        self.outstanding = 0
        self.overflow: deque[tuple[Any, _Arrival | None]] = deque()
        self.waiting = False
        self.closed = False
        self.idle_hooked = False
        self.cell: ActorCell | None = None

    def open(self, requested_batch: object) -> None:
        properties = None
        if type(requested_batch) is int and requested_batch > 0:
            self.batch_limit = min(requested_batch, self.window, _BATCH_LIMIT)
            properties = {BATCH_PROPERTY: self.batch_limit}
        self.outstanding = self.window
        self.connection.accept_link(self.link, credit=self.window, properties=properties)

    def received(self, connection: Connection, event: MessageReceived) -> None:
        node = self.node
        path = self.path
        envelope = node.read(connection, event, path)
        cell = node.system._registry.get(path)
        if envelope is None:  # refused; the node settled it
            self.outstanding -= 1
            self._replenish(cell)
            return
        if envelope.type_name == BATCH_TYPE:
            messages: tuple[Any, ...] = envelope.body
            if not 0 < len(messages) <= _BATCH_LIMIT:
                self.outstanding -= 1
                node.refuse(
                    connection,
                    event,
                    DECODE_ERROR,
                    f"a batch of {len(messages)} messages; batches hold 1 to {_BATCH_LIMIT}",
                    path,
                )
                return
            items = node.batch_items(connection, event, envelope, messages)
        else:
            if not self.overflow and cell is not None and self._handled_now(cell, event, envelope):
                return
            item = node.item(connection, event, envelope)
            items = [item]
        self.outstanding -= len(items)
        if cell is None or not cell.accepting:
            node.not_found(connection, event, items, path)
            self._replenish(cell)
            return
        settle_now = not event.settled and not (envelope.settle_after_handled and not event.settled)
        overflow = self.overflow
        offered = 0
        if not overflow:
            offer = cell.offer
            for item in items:
                if not offer(item):
                    break
                offered += 1
        if offered == len(items):
            if settle_now:
                connection.settle(event.delivery, _ACCEPTED)
            self._replenish(cell)
            return
        arrival = _Arrival(connection, event.delivery, len(items) - offered) if settle_now else None
        for item in items[offered:]:
            overflow.append((item, arrival))
        self._wait(cell)

    def _handled_now(self, cell: ActorCell, event: MessageReceived, envelope: WireEnvelope) -> bool:
        """Handle an ask (or a message with a sender, or one to settle once handled)
        right here if its actor is idle and its handler a plain ``def``, so that its
        settlement and answer leave in the write that follows, without waking the
        actor's task. Plain tells go to the mailbox, where they are handled in batches.
        """
        after_handled = envelope.settle_after_handled and not event.settled
        reply_to = envelope.reply_to
        if reply_to is None and envelope.sender is None and not after_handled:
            return False
        node = self.node
        result = cell.handle_now(envelope.body, node._sender_ref(envelope.sender))
        if result is None:
            return False
        self.outstanding -= 1
        if isinstance(result, PendingReply):  # the handler answers later
            if not after_handled and not event.settled:
                self.connection.settle(event.delivery, _ACCEPTED)
            result._attach(
                _RemoteReply(
                    node,
                    self.connection,
                    event.delivery if after_handled else None,
                    reply_to,
                    envelope.message_id,
                )
            )
        else:
            if after_handled:
                node.settle_handled(self.connection, event.delivery, result)
            elif not event.settled:
                self.connection.settle(event.delivery, _ACCEPTED)
            if reply_to is not None:
                node.reply(reply_to, envelope.message_id, result)
        self._replenish(cell)
        return True

    def _replenish(self, cell: ActorCell | None) -> None:
        if cell is None:
            room = self.window
        else:
            mailbox = cell.mailbox
            room = cell.capacity - (len(mailbox) if mailbox is not None else 0)
        want = min(self.window, room) - self.outstanding
        if want >= self.batch:
            self.outstanding += want
            self.connection.grant_credit(self.link, want)
        elif cell is not None and self.window - self.outstanding >= self.batch:
            # The mailbox holds the credit back: top it up once it is handled, or
            # whenever a message leaves it if the peer has no credit at all.
            if not self.idle_hooked:
                self.idle_hooked = True
                cell.when_idle(self._idle)
            if self.outstanding <= 0:
                self._wait(cell)

    def _idle(self) -> None:
        self.idle_hooked = False
        if not self.closed:
            self._replenish(self.node.system._registry.get(self.path))

    def _wait(self, cell: ActorCell) -> None:
        if not self.waiting:
            self.waiting = True
            self.cell = cell
            cell.wait_for_room(self.admit)

    def admit(self) -> bool:
        """Move waiting messages into the mailbox and grant credit as room allows."""
        cell = self.cell
        assert cell is not None
        if self.closed or not cell.accepting:
            self.waiting = False
            self.drop(cell)
            return False
        overflow = self.overflow
        while overflow:
            item, arrival = overflow[0]
            if not cell.offer(item):
                return True
            overflow.popleft()
            if arrival is not None:
                arrival.arrived()
        mailbox = cell.mailbox
        room = cell.capacity - (len(mailbox) if mailbox is not None else 0)
        want = min(self.window, room) - self.outstanding
        if want >= self.batch:
            self.outstanding += want
            self.connection.grant_credit(self.link, want)
        elif self.outstanding <= 0:
            return True
        self.waiting = False
        return False

    def hand_over(self) -> None:
        """The connection closed: put what waits here in the mailbox after all.

        These messages arrived whole, so they are not lost for want of room (the
        mailbox holds them beyond its size, at most one credit window more), except
        those sent "after handled", which their sender sends again.
        """
        overflow, self.overflow = self.overflow, deque()
        cell = self.node.system._registry.get(self.path)
        for item, _ in overflow:
            reply = item.reply if type(item) is Envelope else None
            if isinstance(reply, _BatchPart) or (
                isinstance(reply, _RemoteReply) and reply.delivery is not None
            ):
                continue
            if cell is not None and cell.accepting:
                cell.notify(item)
            else:
                self.node.drop_item(item, self.path, f"{self.path} stopped")

    def drop(self, cell: ActorCell | None) -> None:
        """Hand back what waits here: the recipient stopped."""
        overflow, self.overflow = self.overflow, deque()
        reason = f"{self.path} stopped before its mailbox had room"
        for item, arrival in overflow:
            self.node.drop_item(item, self.path, reason)
            if arrival is not None:
                arrival.refuse(reason)


class Node:
    """The network side of one actor system (see the module docstring)."""

    def __init__(
        self, system: ActorSystem, registry: TypeRegistry, settings: RemoteSettings
    ) -> None:
        self.system = system
        self.settings = settings
        if InspectRequest not in registry:
            registry.register(InspectRequest, name="jumpstarter.InspectRequest")
        self.codec = Codec(
            registry, trusted=settings.trusted, max_message_size=settings.max_message_size
        )
        self.signer = (
            Signer(settings.signing, max_age=settings.max_message_age)
            if settings.signing is not None
            else None
        )
        self.node_id = uuid.uuid4().hex[:12]
        self._ids = itertools.count()
        self.listen: tuple[str, int] | None = None
        self.advertised: str | None = None
        self.closing = False
        self.nursery: trio.Nursery
        self._listener_scope: trio.CancelScope | None = None
        self._peers: dict[tuple[str, int], _Peer] = {}
        self._connections: set[Connection] = set()
        self._inbound: dict[Connection, dict[LinkId, _InboundLink]] = {}
        self._routes: dict[str, tuple[Connection, LinkId, deque[bytes]]] = {}
        self._remote_cells: dict[tuple[str, Settle], RemoteCell] = {}
        self.refused = 0

    # -- life

    def start(self, nursery: trio.Nursery) -> None:
        self.nursery = nursery

    async def start_listening(self, host: str, port: int) -> tuple[str, int]:
        """Listen on ``host:port`` (port 0: any free port); return the bound address."""
        scope = trio.CancelScope()
        self._listener_scope = scope

        async def listen(task_status: trio.TaskStatus[list[trio.SocketListener]]) -> None:
            with scope:
                await serve(
                    host,
                    port,
                    self,
                    container_id=f"{self.system.name}-{self.node_id}",
                    idle_timeout=self.settings.idle_timeout,
                    busy_poll=self.settings.busy_poll,
                    task_status=task_status,
                    **self.tls_options(client=False),
                )

        try:
            listeners = await self.nursery.start(listen)
        except OSError as exc:
            raise OSError(
                exc.errno,
                f"actor system {self.system.name!r} cannot listen on {host}:{port}: "
                f"{exc.strerror or exc}. Pick another port (0 picks a free one) or stop "
                "the process that uses it",
            ) from exc
        bound_port = listeners[0].socket.getsockname()[1]
        self.listen = (host, bound_port)
        shown = host if host not in ("0.0.0.0", "::", "") else socket.gethostname()
        if ":" in shown:
            shown = f"[{shown}]"
        self.advertised = f"amqp://{shown}:{bound_port}/{self.system.name}"
        if host not in _LOOPBACK and self.signer is None and self.settings.tls is None:
            warnings.warn(
                f"actor system {self.system.name!r} listens on {host}:{bound_port}, beyond "
                "this machine, with neither TLS nor message signing: anyone who can reach "
                "the port can send messages to its actors. Set "
                "RemoteSettings(signing=Keyring(...)) and/or tls=TLSConfig(...)",
                InsecureNodeWarning,
                stacklevel=3,
            )
        return self.listen

    def tls_options(self, *, client: bool) -> dict[str, Any]:
        tls = self.settings.tls
        return {} if tls is None else {"tls": tls}

    async def aclose(self) -> None:
        """Stop listening and close every connection, politely and briefly."""
        self.closing = True
        if self._listener_scope is not None:
            self._listener_scope.cancel()
        with trio.move_on_after(2):
            async with trio.open_nursery() as nursery:
                for connection in list(self._connections):
                    nursery.start_soon(connection.aclose)

    # -- addresses and refs

    def is_local(self, host: str, port: int, system: str) -> bool:
        if self.listen is None or system != self.system.name or port != self.listen[1]:
            return False
        listen_host = self.listen[0]
        return host == listen_host or (
            host in _LOOPBACK and listen_host in (*_LOOPBACK, "0.0.0.0", "::")
        )

    def remote_ref(self, address: str, settle: Settle) -> ActorRef:
        if settle not in ("on-arrival", "after-handled"):
            raise ValueError(f"settle must be 'on-arrival' or 'after-handled', not {settle!r}")
        cell = self._remote_cells.get((address, settle))
        if cell is None:
            cell = self._remote_cells[address, settle] = RemoteCell(self, address, settle)
        return ActorRef._from_cell(cast("ActorCell", cell))

    def peer(self, host: str, port: int) -> _Peer:
        peer = self._peers.get((host, port))
        if peer is None:
            peer = self._peers[host, port] = _Peer(self, host, port)
        return peer

    def new_message_id(self) -> str:
        return f"{self.node_id}-{next(self._ids)}"

    # -- encoding

    def encode(
        self,
        message: Any,
        to: str,
        sender: ActorRef | None,
        settle_after_handled: bool,
        *,
        reply_to: str | None = None,
        message_id: str | None = None,
    ) -> bytes:
        """Encode (and sign) one message for ``to``.

        Raises:
            UnknownMessageType: the message's class is not registered (see
                :class:`~jumpstarter.TypeRegistry`).
            MessageTooLarge: it exceeds ``max_message_size``.
        """
        codec = self.codec
        envelope = WireEnvelope(
            message_id=message_id or f"{self.node_id}-{next(self._ids)}",
            type_name=codec.type_name_of(message),
            body=message,
            to=to,
            reply_to=reply_to,
            sender=sender.address if sender is not None else None,
            trace=current_trace() if SWITCH.enabled else None,
            created=time.time(),
            settle_after_handled=settle_after_handled,
        )
        return self.seal(envelope)

    def seal(self, envelope: WireEnvelope) -> bytes:
        if self.signer is not None:
            return self.signer.sign(self.codec.encode_raw(envelope))
        return self.codec.encode(envelope)

    def open_answer(self, raw: RawMessage) -> tuple[RemoteErrorInfo | None, Any]:
        """Check the signature of a parsed answer, then read its error or its body."""
        if self.signer is not None:
            self.signer.verify(raw, now=time.time())
        return self.codec.decode_answer(raw)

    def open(self, raw: RawMessage) -> WireEnvelope:
        """Check the signature of a parsed message, then decode it."""
        if self.signer is not None:
            self.signer.verify(raw, now=time.time())
        return self.codec.decode(raw)

    # -- the connection handler

    def link_requested(self, connection: Connection, event: LinkRequested) -> None:
        self._connections.add(connection)
        if event.role == "receiver":
            path = self._local_path(event.address)
            if path is None:
                connection.refuse_link(
                    event.link,
                    ErrorCondition(
                        name=NOT_FOUND,
                        description=f"no actor system at {event.address!r} on this node "
                        f"(it runs {self.system.name!r})",
                    ),
                )
                return
            inbound = _InboundLink(self, connection, event.link, path)
            self._inbound.setdefault(connection, {})[event.link] = inbound
            connection.receivers[event.link] = inbound.received
            inbound.open((event.properties or {}).get(BATCH_PROPERTY))
        elif event.dynamic:
            address = f"/{self.system.name}/$reply/{self.new_message_id()}"
            connection.accept_link(event.link, address=address)
            self._routes[address] = (connection, event.link, deque())
        else:
            connection.refuse_link(
                event.link,
                ErrorCondition(
                    name=NOT_FOUND,
                    description=f"{event.address!r} is not a source on this node: actors "
                    "receive, they are not read from (ask with a dynamic reply link)",
                ),
            )

    def _local_path(self, address: str | None) -> str | None:
        if not address:
            return None
        if "://" in address:
            try:
                _, _, system, path = parse_address(address)
            except InvalidActorPath:
                return None
            return path if system == self.system.name else None
        system, _, path = address.lstrip("/").partition("/")
        if system != self.system.name or not path:
            return None
        return "/" + path

    def message_received(self, connection: Connection, event: MessageReceived) -> None:
        receive = connection.receivers.get(event.link)
        if receive is not None:
            receive(connection, event)
        elif not event.settled:
            connection.settle(event.delivery, Rejected(error=None))

    def delivery_updated(self, connection: Connection, event: DeliveryUpdated) -> None:
        peer = connection.context
        if peer is not None:
            peer.delivery_updated(event)

    def connection_closed(self, connection: Connection, error: str | None) -> None:
        self._connections.discard(connection)
        for inbound in self._inbound.pop(connection, {}).values():
            inbound.closed = True
            inbound.hand_over()
        for address in [a for a, route in self._routes.items() if route[0] is connection]:
            del self._routes[address]
        peer = connection.context
        if peer is not None:
            peer.connection_lost(connection, error)

    # -- receiving

    def read(
        self, connection: Connection, event: MessageReceived, path: str
    ) -> WireEnvelope | None:
        """Check and decode an arrived message; refuse it (and return ``None``) if it
        cannot be read or fails the signature check."""
        try:
            raw = self.codec.parse(event.body)
            return self.open(raw)
        except SignatureError as exc:
            self.refuse(connection, event, UNAUTHORIZED, str(exc), path)
        except CodecError as exc:
            self.refuse(connection, event, DECODE_ERROR, str(exc), path)
        return None

    def item(self, connection: Connection, event: MessageReceived, envelope: WireEnvelope) -> Any:
        """The mailbox item for a single message: the message itself when nothing rides
        along, else an :class:`Envelope` with its sender, reply slot and trace."""
        settle_after = envelope.settle_after_handled and not event.settled
        sender = self._sender_ref(envelope.sender)
        reply: Reply | None = None
        if envelope.reply_to is not None or settle_after:
            reply = _RemoteReply(
                self,
                connection,
                event.delivery if settle_after else None,
                envelope.reply_to,
                envelope.message_id,
            )
        if sender is None and reply is None and envelope.trace is None:
            return envelope.body
        return Envelope(envelope.body, sender, reply, envelope.trace)

    def batch_items(
        self,
        connection: Connection,
        event: MessageReceived,
        envelope: WireEnvelope,
        messages: tuple[Any, ...],
    ) -> list[Any]:
        """The mailbox items for the messages of a batch."""
        trace = envelope.trace
        if envelope.settle_after_handled and not event.settled:
            batch = _BatchSettlement(connection, event.delivery, len(messages))
            return [Envelope(message, None, _BatchPart(batch), trace) for message in messages]
        if trace is not None:
            return [Envelope(message, None, None, trace) for message in messages]
        return list(messages)

    def _sender_ref(self, address: str | None) -> ActorRef | None:
        if address is None:
            return None
        try:
            return self.system.ref(address)
        except JumpstarterError:
            return None

    def refuse(
        self, connection: Connection, event: MessageReceived, name: str, why: str, path: str
    ) -> None:
        self.refused += 1
        eliot.log_message(
            message_type="jumpstarter:node:refused",
            peer=connection.name,
            actor=path,
            condition=name,
            reason=why,
        )
        _log_line(f"refused a message for {path} from {connection.name}: {why}")
        if not event.settled:
            connection.settle(
                event.delivery, Rejected(error=ErrorCondition(name=name, description=why))
            )

    def drop_item(self, item: Any, path: str, reason: str) -> None:
        """Dead-letter a message that will not be delivered, and fail its reply."""
        if type(item) is Envelope:
            message, sender, reply = item.message, item.sender, item.reply
        else:
            message, sender, reply = item, None, None
        self.system._dead_letter(message, path, sender, reason)
        if reply is not None:
            reply.fail(ActorNotFound(reason))

    def not_found(
        self, connection: Connection, event: MessageReceived, items: list[Any], path: str
    ) -> None:
        """Dead-letter ``items`` (for an actor that is not here) and refuse their delivery."""
        reason = f"no actor at {path} in system {self.system.name!r}"
        for item in items:
            if type(item) is Envelope:
                message, sender, reply = item.message, item.sender, item.reply
                if reply is not None:
                    reply.done = True  # the rejection below answers for it
            else:
                message, sender = item, None
            self.system._dead_letter(message, path, sender, reason)
        if not event.settled:
            condition = ErrorCondition(name=NOT_FOUND, description=reason)
            connection.settle(event.delivery, Rejected(error=condition))

    # -- answering

    def answer(self, reply: _RemoteReply, result: outcome.Outcome[Any]) -> None:
        """Send the outcome of a remote ask back, and settle an after-handled delivery."""
        if reply.delivery is not None:
            self.settle_handled(reply.connection, reply.delivery, result)
        if reply.reply_to is not None:
            self.reply(reply.reply_to, reply.correlation_id, result)

    def settle_handled(
        self, connection: Connection, delivery: DeliveryId, result: outcome.Outcome[Any]
    ) -> None:
        """Settle a message sent "after handled": accepted, or rejected if it failed."""
        if isinstance(result, outcome.Error):
            error = result.error
            condition = ErrorCondition(
                name=HANDLER_FAILED, description=f"{type(error).__name__}: {error}"
            )
            connection.settle(delivery, Rejected(error=condition))
        else:
            connection.settle(delivery, _ACCEPTED)

    def reply(self, reply_to: str, correlation_id: str, result: outcome.Outcome[Any]) -> None:
        """Send the outcome of an ask to ``reply_to``: the value, or the error."""
        trace = current_trace() if SWITCH.enabled else None
        error = None
        if isinstance(result, outcome.Error):
            error = RemoteErrorInfo.from_exception(result.error)
            body, type_name = None, "None"
        else:
            body = cast(outcome.Value[Any], result).value
            try:
                type_name = self.codec.type_name_of(body)
            except CodecError as exc:
                error = RemoteErrorInfo.from_exception(exc)
                body, type_name = None, "None"
        envelope = WireEnvelope(
            message_id=self.new_message_id(),
            type_name=type_name,
            body=body,
            to=reply_to,
            correlation_id=correlation_id,
            created=time.time(),
            trace=trace,
            error=error,
        )
        try:
            data = self.seal(envelope)
        except CodecError as exc:
            data = self.seal(
                attrs.evolve(
                    envelope,
                    body=None,
                    type_name="None",
                    error=RemoteErrorInfo.from_exception(exc),
                )
            )
        self._send_answer(reply_to, data)

    def _send_answer(self, reply_to: str, data: bytes) -> None:
        route = self._routes.get(reply_to)
        if route is None:
            route = self._routes.get(self._route_key(reply_to))
        if route is None:
            if reply_to.startswith(("amqp://", "amqps://")):
                self.nursery.start_soon(self._send_answer_remote, reply_to, data)
            else:
                _log_line(f"dropped an answer for {reply_to}: no link leads there any more")
            return
        connection, link, backlog = route
        if connection.closed:
            return
        if not backlog:
            try:
                connection._send(link, data, True)
                return
            except LocalProtocolError:  # no credit: the answer waits for some
                pass
            except (ConnectionLost, LinkRefused, ProtocolError):
                return  # the link or the connection is closing: the asker learns it so
        backlog.append(data)
        if len(backlog) == 1:
            self.nursery.start_soon(self._flush_answers, reply_to, route)

    def _route_key(self, reply_to: str) -> str:
        if "://" not in reply_to:
            return reply_to
        try:
            _, _, system, path = parse_address(reply_to)
        except InvalidActorPath:
            return reply_to
        return f"/{system}{path}"

    async def _flush_answers(
        self, reply_to: str, route: tuple[Connection, LinkId, deque[bytes]]
    ) -> None:
        connection, link, backlog = route
        sender = SenderLink(connection, link, reply_to)
        with contextlib.suppress(ConnectionLost, LinkRefused):
            while backlog:
                await sender.send(backlog[0], settled=True)
                backlog.popleft()
        backlog.clear()

    async def _send_answer_remote(self, reply_to: str, data: bytes) -> None:
        try:
            host, port, system, path = parse_address(reply_to)
            await self.peer(host, port).send(f"/{system}{path}", data, track=False)
        except (JumpstarterError, ConnectionError) as exc:
            _log_line(f"could not send an answer to {reply_to}: {exc}")

    def log_refused(self, address: str, why: str, count: int) -> None:
        self.refused += count
        eliot.log_message(
            message_type="jumpstarter:node:not-delivered", to=address, reason=why, count=count
        )
        _log_line(f"{count} message(s) to {address} not delivered: {why}")


def _log_line(text: str) -> None:
    """A warning for what an operator must see even with eliot logging off."""
    _logger.warning("%s", text)
