"""The values and events of the sans-IO AMQP layer.

Everything here is a plain, frozen value: it holds no proton object and no reference
back to the connection, so it can be queued, logged, compared and sent to another
task freely. Links and deliveries are named by small ids (:data:`LinkId`,
:class:`DeliveryId`) that stay valid for the life of the connection; proton's own
wrapper objects are rebuilt for every event and must never leak out of
:mod:`._protocol`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, NamedTuple, NewType

import attrs

__all__ = [
    "Accepted",
    "ConnectionClosed",
    "ConnectionOpened",
    "CreditAvailable",
    "DeliveryId",
    "DeliveryUpdated",
    "ErrorCondition",
    "Event",
    "LinkClosed",
    "LinkId",
    "LinkOpened",
    "LinkRequested",
    "LinkRole",
    "MessageReceived",
    "Modified",
    "Outcome",
    "Rejected",
    "Released",
    "TransportClosed",
]

LinkId = NewType("LinkId", int)
"""Names a link within one connection; ids are never reused."""

LinkRole = Literal["sender", "receiver"]
"""Our end of a link: ``"sender"`` if we send messages over it."""


class DeliveryId(NamedTuple):
    """Names one delivery (one message transfer) within one connection.

    Attributes:
        link: the link the delivery travels on.
        number: the delivery's position on that link, counting from 0.
    """

    link: LinkId
    number: int


@attrs.frozen(kw_only=True)
class ErrorCondition:
    """An AMQP error: a symbolic name and an optional human-readable description.

    Attributes:
        name: the AMQP condition, e.g. ``"amqp:not-found"`` or
            ``"amqp:resource-limit-exceeded"``.
        description: what went wrong, for people.
    """

    name: str
    description: str | None = None


# Outcomes: how the receiver of a message disposed of it.


@attrs.frozen(kw_only=True)
class Accepted:
    """The receiver processed the message."""


@attrs.frozen(kw_only=True)
class Rejected:
    """The receiver refused the message; the sender should not send it again as is.

    Attributes:
        error: why, if the receiver said.
    """

    error: ErrorCondition | None = None


@attrs.frozen(kw_only=True)
class Released:
    """The receiver did not process the message; it may be sent again, here or elsewhere."""


@attrs.frozen(kw_only=True)
class Modified:
    """Like :class:`Released`, with hints for the next attempt.

    Attributes:
        delivery_failed: count this attempt as a failed delivery.
        undeliverable_here: do not send the message to this receiver again.
    """

    delivery_failed: bool = False
    undeliverable_here: bool = False


Outcome = Accepted | Rejected | Released | Modified
"""A terminal delivery state, as set by :meth:`AMQPConnection.settle`."""


# Events: what AMQPConnection.next_event() returns.


@attrs.frozen(kw_only=True)
class ConnectionOpened:
    """The peer opened the AMQP connection (its ``open`` frame arrived).

    Attributes:
        remote_container_id: the peer's container id.
    """

    remote_container_id: str | None


@attrs.frozen(kw_only=True)
class ConnectionClosed:
    """The peer closed the AMQP connection; we have answered with our own close.

    Attributes:
        error: the peer's reason, or ``None`` for a normal close.
    """

    error: ErrorCondition | None


@attrs.frozen(kw_only=True)
class TransportClosed:
    """No more bytes will be read: flush :meth:`~AMQPConnection.data_to_send` once, then
    close the socket. Always the last event.

    Attributes:
        error: ``None`` after a clean close; else what went wrong (end of file in the
            middle of the conversation, bytes that are not AMQP, idle timeout), as
            ``"<condition>: <description>"``.
    """

    error: str | None


@attrs.frozen(kw_only=True)
class LinkRequested:
    """The peer opened a link; answer with :meth:`~AMQPConnection.accept_link` or
    :meth:`~AMQPConnection.refuse_link`.

    Attributes:
        link: the new link's id.
        role: our end of the link: ``"receiver"`` if the peer will send to us.
        address: the peer's target address if we receive, its source address if we send.
        name: the link name the peer chose.
        dynamic: the peer wants to receive from a node we create for it (its source
            is *dynamic*, as for a reply queue): accept with the new node's address.
        properties: the link properties the peer attached, by symbol name.
    """

    link: LinkId
    role: LinkRole
    address: str | None
    name: str
    dynamic: bool = False
    properties: Mapping[str, Any] | None = attrs.field(default=None, hash=False)


@attrs.frozen(kw_only=True)
class LinkOpened:
    """The peer attached a link that we opened; it can now carry messages.

    Attributes:
        link: the link's id.
        address: the address of the peer's end (for a dynamic receiver: the address
            the peer made for it, to give out as a reply-to).
        properties: the link properties the peer attached, by symbol name.
    """

    link: LinkId
    address: str | None = None
    properties: Mapping[str, Any] | None = attrs.field(default=None, hash=False)


@attrs.frozen(kw_only=True)
class LinkClosed:
    """A link is gone: the peer closed it, refused it, or answered our close.

    Unsettled deliveries on the link are forgotten (their outcome is unknown); settling
    one of them afterwards does nothing.

    Attributes:
        link: the link.
        error: the peer's reason, or ``None`` for a normal close.
    """

    link: LinkId
    error: ErrorCondition | None


@attrs.frozen(kw_only=True)
class CreditAvailable:
    """The peer granted credit on a link we send on.

    Attributes:
        link: the sending link.
        credit: how many messages we may send now (always > 0).
    """

    link: LinkId
    credit: int


@attrs.frozen(kw_only=True)
class MessageReceived:
    """A whole message arrived on a link we receive on.

    Attributes:
        link: the receiving link.
        delivery: pass it to :meth:`~AMQPConnection.settle` when ``settled`` is false.
        body: the encoded AMQP message (all its sections), as sent.
        settled: the sender sent it pre-settled (at most once): do not settle it.
    """

    link: LinkId
    delivery: DeliveryId
    body: bytes
    settled: bool


@attrs.frozen(kw_only=True)
class DeliveryUpdated:
    """The peer changed the state of a delivery we sent.

    Attributes:
        link: the sending link.
        delivery: the id :meth:`~AMQPConnection.send` returned.
        outcome: the peer's verdict, or ``None`` if it settled without one.
        settled: the peer has settled: this is the delivery's last event (we settled
            our end too).
    """

    link: LinkId
    delivery: DeliveryId
    outcome: Outcome | None
    settled: bool


Event = (
    ConnectionOpened
    | ConnectionClosed
    | TransportClosed
    | LinkRequested
    | LinkOpened
    | LinkClosed
    | CreditAvailable
    | MessageReceived
    | DeliveryUpdated
)
"""Every event :meth:`AMQPConnection.next_event` can return."""
