"""Consume from and publish to AMQP 1.0 brokers (RabbitMQ, ActiveMQ Artemis, ...).

Theory of operation
===================

:func:`open_broker` opens one AMQP connection to the broker, driven by
:mod:`._amqp_driver` in a nursery of its own, and gives a :class:`Broker` with two
operations. Messages travel in jumpstarter's envelope (:mod:`._amqp._codec`), so any
AMQP 1.0 client in any language can read and write them.

Publishing
----------
:meth:`Broker.publish` encodes the message, sends it *unsettled* on a link it keeps
open per address, and waits for the broker's outcome: it returns once the broker
has accepted the message (for a durable queue: stored it), and raises
:class:`PublishRefused` for any other outcome. Each message carries an AMQP header
marked durable, so that a durable queue keeps it across a broker restart. If the
connection drops before the outcome arrives, the message may or may not have
arrived: publishing it again is *at least once*.

Consuming
---------
:meth:`Broker.consume` attaches a receiving link with ``prefetch`` credit: the
broker sends at most that many messages before we settle one, and every settled
delivery gives one credit back. So ``prefetch`` bounds both the memory a consumer
holds and the number of messages unsettled at the broker. Credit goes back only
once the broker has used all it had, when no delivery can be on its way: RabbitMQ
before 4.0 miscounts credit granted while some are, and sends more than the
prefetch (see ``_ConsumerRun._give_back_credit``).

Deliveries go to the actor with ``ask``, by default one at a time and in the
order they arrived, and each is settled only once the handler has returned, so a
message is never lost to a crash: *at least once*. The outcome follows what happened:

==============================  ===============================================
what happened                   outcome sent to the broker
==============================  ===============================================
the handler returned            accepted (the broker forgets the message)
the handler raised              released, or modified with ``delivery-failed``
                                (:attr:`BrokerSettings.failure_outcome`): the
                                broker delivers it again
the actor is stopped            released; the consumer ends
the actor crashed on another    released
message meanwhile
not a jumpstarter message, an   rejected with ``amqp:decode-error`` (dead-letter
unknown type, too large         queue or dropped: never redelivered)
no handler for the type         rejected with ``amqp:not-implemented``
==============================  ===============================================

Why one ask at a time: an actor handles one message at a time anyway, and trio
starts tasks in no particular order, so asking concurrently would scramble the
order of the mailbox without making the actor any faster. The broker's round trip
is hidden all the same, because up to ``prefetch`` deliveries wait here already.
The exception is an actor that answers later (``Actor.reply_later``): it takes a
message, starts the work and goes on with its mailbox, and the ask ends when the
work does. Such an actor consumes with ``concurrency`` above 1, so that that many
asks wait at once; each delivery is then settled as soon as its own ask ends.

Links that close under us
-------------------------
The driver runs all the links of a connection in one AMQP session, and RabbitMQ's
AMQP 1.0 plugin (before 3.13) ends the whole session when it refuses one link:
publishing to a missing exchange detaches every consumer of the same connection,
and the broker puts their unsettled messages back in their queues. So a consumer
whose link closes while the connection is still open attaches again (after a short
pause that grows while it keeps happening); only a refused attach ends it, with
:class:`AddressRefused`. A publish whose link closes under it is sent once more on
a new link.

The driver has no object for links that receive, only ids; :class:`_ReceiverLink`
keeps the few parts of the driver's bookkeeping it reads in one place.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import time
import urllib.parse
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, Final, Literal, final

import attrs
import eliot
import trio

from ._amqp._codec import Codec, CodecError, TypeRegistry, WireEnvelope
from ._amqp._events import (
    Accepted,
    DeliveryUpdated,
    ErrorCondition,
    LinkId,
    LinkRequested,
    MessageReceived,
    Modified,
    Outcome,
    Rejected,
    Released,
)
from ._amqp._exceptions import ProtocolError
from ._amqp._protocol import AMQPConnection, SASLConfig
from ._amqp._tls import TLSConfig
from ._amqp_driver import Connection, ConnectionLost, LinkRefused, SenderLink, connect
from ._exceptions import ActorCrashed, ActorStopped, JumpstarterError, UnhandledMessage
from ._idle_poll import DEFAULT_BUSY_POLL, check_busy_poll
from ._logging import SWITCH, current_trace
from ._ref import ActorRef

__all__ = [
    "AddressRefused",
    "Broker",
    "BrokerConnectionError",
    "BrokerError",
    "BrokerSettings",
    "Consumer",
    "ConsumerStatistics",
    "ForeignMessage",
    "PublishRefused",
    "RejectDelivery",
    "open_broker",
]

DEFAULT_PORT: Final = 5672
DEFAULT_TLS_PORT: Final = 5671
DECODE_ERROR: Final = "amqp:decode-error"
NOT_IMPLEMENTED: Final = "amqp:not-implemented"

# An AMQP header section (descriptor 0x70) whose only field, durable, is true.
_DURABLE_HEADER: Final = b"\x00\x53\x70\xc0\x02\x01\x41"
_ACCEPTED: Final = Accepted()
_RELEASED: Final = Released()
_FAILED: Final = Modified(delivery_failed=True)
# Pauses before attaching again after the broker closed a consumer's link.
_REATTACH_FIRST_DELAY: Final = 0.05
_REATTACH_MAX_DELAY: Final = 5.0

_logger = logging.getLogger("jumpstarter.broker")

FailureOutcome = Literal["released", "modified"]


# -- errors ------------------------------------------------------------------------------


class BrokerError(JumpstarterError):
    """Base class of the errors of :func:`open_broker` and :class:`Broker`."""


class BrokerConnectionError(BrokerError, ConnectionLost):
    """The broker could not be reached, refused the login, or the connection dropped.

    A message being published when the connection dropped may or may not have
    arrived: publish it again on a new connection (at least once). Messages a
    consumer had not settled go back to their queue, and the broker delivers them
    again.
    """


class AddressRefused(BrokerError, LinkRefused):
    """The broker refused a link to an address (or closed it and refused it again).

    Check the address: on RabbitMQ ``/queue/NAME`` declares the queue if needed,
    ``/amq/queue/NAME`` needs an existing queue, ``/exchange/NAME/KEY`` an existing
    exchange.

    Attributes:
        address: the address.
        condition: the AMQP error the broker gave, if any (``amqp:not-found``...).
    """

    def __init__(self, message: str, condition: ErrorCondition | None, address: str) -> None:
        super().__init__(message, condition)
        self.address = address


class PublishRefused(BrokerError):
    """The broker settled a published message with an outcome other than accepted.

    Rejected means the broker will not take this message as it is (too large, a queue
    limit with ``reject-publish``...); released or modified means it could not take
    it now, and publishing it again later may work.

    Attributes:
        address: where the message was published.
        outcome: the broker's outcome (:class:`~jumpstarter._amqp.Rejected` carries
            the broker's error condition).
    """

    def __init__(self, message: str, address: str, outcome: Outcome) -> None:
        super().__init__(message)
        self.address = address
        self.outcome = outcome


# -- settings ----------------------------------------------------------------------------


def _default_container_id() -> str:
    return f"jumpstarter-{uuid.uuid4()}"


def _check_failure_outcome(instance: Any, attribute: Any, value: str) -> None:
    if value not in ("released", "modified"):
        raise ValueError(f"failure_outcome must be 'released' or 'modified', not {value!r}")


@attrs.frozen(kw_only=True)
class BrokerSettings:
    """Where a broker is, how to log in, and how to talk to it.

    Usually made from a URL with :meth:`from_url`.

    Attributes:
        host: the broker's host name or IP address.
        port: its AMQP port (5672; usually 5671 with TLS).
        user: the user name to log in with (SASL PLAIN); ``None`` logs in
            anonymously (SASL ANONYMOUS).
        password: the password for ``user``.
        vhost: the virtual host; ``None`` for the broker's default. It is sent as
            the AMQP connection's hostname ``vhost:NAME``, which is how RabbitMQ's
            AMQP 1.0 plugin chooses a virtual host.
        idle_timeout: seconds of silence after which the broker is considered gone
            (the broker is asked for heartbeats at half this interval); ``None`` to
            never check.
        container_id: this client's AMQP container id; unique by default.
        tls: run the connection over TLS, checking the broker's certificate (by
            default against the system's trust store and the name ``host``).
        failure_outcome: how a delivery whose handler raised is settled, so that
            the broker delivers it again. ``"released"`` works with every broker;
            ``"modified"`` (modified with ``delivery-failed``) also counts the
            failed attempt, which brokers use to dead-letter a message after too
            many (ActiveMQ Artemis, RabbitMQ 3.13 and later). RabbitMQ's AMQP 1.0
            plugin before 3.13 does not know the modified outcome and ends the
            session when it gets one.
        durable_queues: ask for durable nodes when attaching links, so that a
            queue the broker makes for an address (RabbitMQ: ``/queue/NAME``) is
            durable and keeps its messages across a broker restart. An existing
            queue must match: RabbitMQ refuses a durable link to a transient queue.
        busy_poll: while connected, the most seconds the process polls for work
            before it sleeps, so that the broker's quick answer is handled without
            waking a sleeping CPU; adaptive, ``0`` to sleep at once (as
            :attr:`RemoteSettings.busy_poll <jumpstarter.RemoteSettings.busy_poll>`).
    """

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    user: str | None = None
    password: str | None = attrs.field(default=None, repr=False)
    vhost: str | None = None
    idle_timeout: float | None = 60.0
    container_id: str = attrs.Factory(_default_container_id)
    tls: TLSConfig | None = None
    failure_outcome: FailureOutcome = attrs.field(
        default="released", validator=_check_failure_outcome
    )
    durable_queues: bool = False
    busy_poll: float = attrs.field(default=DEFAULT_BUSY_POLL, validator=check_busy_poll)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        idle_timeout: float | None = 60.0,
        container_id: str | None = None,
        tls: TLSConfig | None = None,
        failure_outcome: FailureOutcome = "released",
        durable_queues: bool = False,
        busy_poll: float = DEFAULT_BUSY_POLL,
    ) -> BrokerSettings:
        """Settings from ``amqp[s]://[USER[:PASSWORD]@]HOST[:PORT][/VHOST]``.

        The user name, password and virtual host are percent-decoded (so
        ``/%2F`` names RabbitMQ's default virtual host ``/``). Without a user, the
        client logs in anonymously. ``amqps`` runs the connection over TLS, with
        ``tls`` if given (to trust a private CA, say), and defaults the port to
        5671 rather than 5672.

        Raises:
            ValueError: the URL is not of that form, or ``tls`` is given with an
                ``amqp://`` URL.
        """
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("amqp", "amqps"):
            raise ValueError(
                f"{_redacted(url)!r} is not an amqp:// or amqps:// URL: use "
                "amqp://USER:PASSWORD@HOST:PORT/VHOST"
            )
        secure = parts.scheme == "amqps"
        if tls is not None and not secure:
            raise ValueError(f"tls= was given for {_redacted(url)!r}: use an amqps:// URL for TLS")
        if parts.query or parts.fragment:
            raise ValueError(
                f"{_redacted(url)!r} has a query or fragment; give options as keyword "
                "arguments of BrokerSettings.from_url instead"
            )
        try:
            port = parts.port
        except ValueError:
            raise ValueError(f"{_redacted(url)!r} has an invalid port") from None
        if not parts.hostname:
            raise ValueError(f"{_redacted(url)!r} names no host: use amqp://HOST:PORT")
        path = parts.path
        if "/" in path[1:]:
            raise ValueError(
                f"{_redacted(url)!r}: a virtual host is one path segment; write a '/' "
                "inside its name as %2F"
            )
        user = None if parts.username is None else urllib.parse.unquote(parts.username)
        password = None
        if user is not None:
            password = urllib.parse.unquote(parts.password or "")
        options: dict[str, Any] = {}
        if container_id is not None:
            options["container_id"] = container_id
        return cls(
            host=parts.hostname,
            port=port if port is not None else DEFAULT_TLS_PORT if secure else DEFAULT_PORT,
            user=user,
            password=password,
            vhost=urllib.parse.unquote(path[1:]) if len(path) > 1 else None,
            idle_timeout=idle_timeout,
            tls=(tls if tls is not None else TLSConfig()) if secure else None,
            failure_outcome=failure_outcome,
            durable_queues=durable_queues,
            busy_poll=busy_poll,
            **options,
        )

    @property
    def sasl(self) -> SASLConfig:
        """The SASL login: ``("plain", user, password)``, or ``"anonymous"``."""
        if self.user is None:
            return "anonymous"
        return ("plain", self.user, self.password or "")

    @property
    def hostname(self) -> str:
        """The hostname of the AMQP ``open`` frame: ``vhost:NAME``, or the host."""
        return self.host if self.vhost is None else f"vhost:{self.vhost}"

    @property
    def url(self) -> str:
        """The broker's URL without the password, for messages and logs."""
        user = "" if self.user is None else f"{urllib.parse.quote(self.user, safe='')}@"
        host = f"[{self.host}]" if ":" in self.host else self.host
        vhost = "" if self.vhost is None else "/" + urllib.parse.quote(self.vhost, safe="")
        scheme = "amqp" if self.tls is None else "amqps"
        return f"{scheme}://{user}{host}:{self.port}{vhost}"

    def _connection_tls(self) -> TLSConfig | None:
        """:attr:`tls`, checking the certificate against :attr:`host` even though the
        AMQP hostname names the virtual host."""
        tls = self.tls
        if tls is None or tls.server_hostname is not None or self.vhost is None:
            return tls
        return attrs.evolve(tls, server_hostname=self.host)


def _redacted(url: str) -> str:
    """``url`` with its password replaced, for error messages."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


# -- consumers ---------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class ConsumerStatistics:
    """What a consumer has done so far (see :meth:`Consumer.statistics`).

    Attributes:
        received: deliveries that arrived (redeliveries count again).
        accepted: settled accepted: the handler returned.
        failed: the handler raised; settled so that the broker delivers them again.
        rejected: settled rejected: unreadable, or of a type the actor does not handle.
        released: given back unhandled: the actor stopped or crashed, the consumer
            ended, or the link closed before the outcome reached the broker.
        in_flight: arrived and not settled yet; never more than the prefetch.
        reattached: times the link was attached again after the broker closed it.
    """

    received: int
    accepted: int
    failed: int
    rejected: int
    released: int
    in_flight: int
    reattached: int


@final
class Consumer:
    """A consumer that :meth:`Broker.consume` runs, as its ``task_status`` reports it.

    Attributes:
        address: the broker address it consumes from.
        ref: the actor it delivers to.
        prefetch: the link credit: at most this many deliveries unsettled at once.
    """

    def __init__(self, address: str, ref: ActorRef, prefetch: int) -> None:
        self.address = address
        self.ref = ref
        self.prefetch = prefetch
        self._received = 0
        self._accepted = 0
        self._failed = 0
        self._rejected = 0
        self._released = 0
        self._reattached = 0

    def __repr__(self) -> str:
        return f"<Consumer {self.address} -> {self.ref.address}>"

    def statistics(self) -> ConsumerStatistics:
        """A snapshot of the counters."""
        settled = self._accepted + self._failed + self._rejected + self._released
        return ConsumerStatistics(
            received=self._received,
            accepted=self._accepted,
            failed=self._failed,
            rejected=self._rejected,
            released=self._released,
            in_flight=self._received - settled,
            reattached=self._reattached,
        )

    def _count(self, outcome: Outcome, *, handled: bool) -> None:
        if isinstance(outcome, Accepted):
            self._accepted += 1
        elif isinstance(outcome, Rejected):
            self._rejected += 1
        elif handled:
            self._failed += 1
        else:
            self._released += 1


@final
@attrs.frozen(kw_only=True)
class ForeignMessage:
    """A message as any AMQP 1.0 client sent it, not in jumpstarter's envelope: what
    ``Broker.consume(..., foreign=True)`` hands to its actor.

    Attributes:
        body: the body as sent: ``bytes`` for data sections (JSON from most clients),
            the value of an amqp-value section, the items of amqp-sequence sections,
            or ``None`` for a message without a body.
        message_id: the AMQP message-id as text (binary ids as hex), ``None`` if absent.
        content_type: the content-type property, ``None`` if absent.
        subject: the subject property, ``None`` if absent.
        properties: the application properties.
        address: the address it was consumed from.
    """

    body: Any
    message_id: str | None = None
    content_type: str | None = None
    subject: str | None = None
    properties: dict[Any, Any] = attrs.field(factory=dict)
    address: str = ""

    @classmethod
    def _read(cls, codec: Codec, data: bytes, address: str) -> ForeignMessage:
        """Split one AMQP message; raises :class:`CodecError` if it is not one."""
        raw = codec.parse(data)
        message_id = raw.property(0)
        if isinstance(message_id, (bytes, bytearray, memoryview)):
            message_id = bytes(message_id).hex()
        elif message_id is not None:
            message_id = str(message_id)
        content_type, subject = raw.property(6), raw.property(3)
        return cls(
            body=raw.body_value(),
            message_id=message_id,
            content_type=None if content_type is None else str(content_type),
            subject=None if subject is None else str(subject),
            properties=dict(raw.application_properties),
            address=address,
        )


@final
@attrs.frozen
class RejectDelivery:
    """The answer of a handler to a consumed message it cannot use, and will never
    be able to: the consumer settles the delivery *rejected* with ``condition`` and
    ``description``, so the broker drops it (or moves it to the queue's dead-letter
    exchange) instead of delivering it again. Return it; do not raise it (a handler
    that raises crashes its actor, and the message comes back)."""

    description: str
    condition: str = DECODE_ERROR


@attrs.frozen
class _LinkLost:
    """Put in a consumer's queue when its link closed under it."""

    link: LinkId
    error: ErrorCondition | None


class _ReceiverLink:
    """A link we receive on.

    The driver gives such links only an id (``Connection.open_receiver``); waiting
    for the broker's answer, learning that the link closed, and closing it read the
    driver's own bookkeeping, all here.
    """

    def __init__(
        self, connection: Connection, address: str, credit: int, *, durable: bool = False
    ) -> None:
        self.connection = connection
        self.address = address
        self.link = connection.open_receiver(address, credit=credit, durable=durable)
        self._state = connection._link_state(self.link)

    @property
    def usable(self) -> bool:
        return self._state.closed is False and not self.connection.closed

    async def wait_attached(self) -> None:
        """Wait for the broker's attach.

        Raises:
            LinkRefused: the broker refused the link.
            ConnectionLost: the connection closed first.
        """
        await self._state.opened.wait()
        self.connection._check_usable(self.link)

    async def wait_closed(self) -> ErrorCondition | None:
        """Wait until the link or the connection closes; return the broker's reason."""
        # The driver sets credit_changed when the link or the connection closes, and
        # for a link we receive on at no other time; SenderLink renews it the same way.
        while self.usable:
            changed = self._state.credit_changed
            if changed.is_set():
                changed = self._state.credit_changed = trio.Event()
            await changed.wait()
        closed = self._state.closed
        return closed if isinstance(closed, ErrorCondition) else None

    @property
    def unused_credit(self) -> int:
        """Credit granted that the broker has not used by a delivery that arrived."""
        return self.connection.protocol.link_credit(self.link) if self.usable else 0

    def grant(self, n: int) -> None:
        if self.usable:
            self.connection.grant_credit(self.link, n)

    def close(self) -> None:
        if self.usable:
            self.connection.protocol.close_link(self.link)
            self.connection._kick()


@attrs.define(eq=False)
class _Dispatcher:
    """The connection's handler: routes deliveries to the consumers' queues."""

    routes: dict[LinkId, _ConsumerRun] = attrs.Factory(dict)

    def link_requested(self, connection: Connection, event: LinkRequested) -> None:
        connection.refuse_link(
            event.link,
            ErrorCondition(name="amqp:not-allowed", description="this client accepts no links"),
        )

    def message_received(self, connection: Connection, event: MessageReceived) -> None:
        run = self.routes.get(event.link)
        delivered = run is not None and run.arrived(event)
        if not delivered and not event.settled:  # its consumer has ended: give it back
            connection.settle(event.delivery, _RELEASED)

    def connection_closed(self, connection: Connection, error: str | None) -> None:
        for run in self.routes.values():
            run.send.close()

    def delivery_updated(self, connection: Connection, event: DeliveryUpdated) -> None:
        """Nothing to do: every message this client publishes is awaited."""


# -- the broker --------------------------------------------------------------------------


@final
class Broker:
    """A connection to an AMQP 1.0 broker; made by :func:`open_broker`.

    Attributes:
        settings: where the broker is and how this client talks to it.
        codec: turns messages into AMQP messages and back (with the registry given
            to :func:`open_broker`).
    """

    def __init__(
        self, settings: BrokerSettings, codec: Codec, connection: Connection, handler: _Dispatcher
    ) -> None:
        self.settings = settings
        self.codec = codec
        self._connection = connection
        self._dispatcher = handler
        self._senders: dict[str, SenderLink] = {}
        self._opening = trio.Lock()
        self._closing = False
        self._id_prefix = f"{uuid.uuid4()}-"
        self._ids = itertools.count()

    def __repr__(self) -> str:
        state = " closed" if self._connection.closed else ""
        return f"<Broker {self.settings.url}{state}>"

    @property
    def closed(self) -> bool:
        """Whether the connection has closed (the broker went away, or it was closed)."""
        return self._connection.closed

    async def wait_closed(self) -> None:
        """Wait until the connection closes: for a client that has nothing to send or
        receive for a while, and must still notice that the broker went away."""
        await self._connection.finished.wait()

    # -- publishing

    async def publish(
        self,
        address: str,
        message: Any,
        *,
        message_id: str | None = None,
        durable: bool = True,
    ) -> None:
        """Publish ``message`` to ``address`` and wait until the broker has accepted it.

        Args:
            address: the broker's address, e.g. ``/queue/NAME`` on RabbitMQ.
            message: a message of a type registered in the codec's registry, or a
                builtin value (``str``, ``int``, ``dict``...).
            message_id: the AMQP message-id; by default a new one, unique across
                brokers and processes (a random UUID per connection and a counter). Give
                the same id when publishing a message again, so consumers can recognize it.
            durable: mark the message durable, so a durable queue keeps it across a
                broker restart.

        Raises:
            PublishRefused: the broker settled it otherwise than accepted.
            AddressRefused: the broker refused the link to ``address``.
            BrokerConnectionError: the connection was lost first (the message may or
                may not have arrived) or is closed.
            CodecError: the message cannot be encoded (an unregistered type:
                :class:`~jumpstarter._amqp.UnknownMessageType`; too large:
                :class:`~jumpstarter._amqp.MessageTooLarge`).
        """
        self._check_open()
        codec = self.codec
        type_name = codec.type_name_of(message)
        if message_id is None:
            message_id = f"{self._id_prefix}{next(self._ids)}"
        if SWITCH.enabled:
            with eliot.start_action(
                action_type="jumpstarter:broker:publish",
                address=address,
                message_id=message_id,
                message_type=type_name,
            ):
                outcome = await self._publish(address, message, message_id, type_name, durable)
        else:
            outcome = await self._publish(address, message, message_id, type_name, durable)
        if not isinstance(outcome, Accepted):
            raise PublishRefused(
                f"the broker did not accept the message for {address}: {_describe(outcome)}",
                address,
                outcome,
            )

    async def publish_many(
        self, messages: Sequence[tuple[str, Any, str]], *, durable: bool = True
    ) -> list[Outcome]:
        """Publish ``(address, message, message_id)`` triples in order, pipelined, and
        return the broker's outcome for each, in the same order.

        The messages leave one after the other without waiting for each outcome
        (credit permitting), so a batch costs about one round trip to the broker, not
        one per message; each is then settled on its own: check every outcome
        (:class:`~jumpstarter._amqp.Accepted` means the broker has it).

        Raises:
            AddressRefused: the broker refused the link to one of the addresses.
            BrokerConnectionError: the connection was lost before every outcome came
                back (any of the messages may or may not have arrived) or is closed.
            CodecError: a message cannot be encoded (nothing was sent from it on).
        """
        self._check_open()
        connection = self._connection
        waiting: list[tuple[dict[int, Any], int, trio.Event, list[Outcome], str]] = []
        try:
            for address, message, message_id in messages:
                data = self.codec.encode(
                    WireEnvelope(
                        message_id=message_id,
                        type_name=self.codec.type_name_of(message),
                        body=message,
                        created=time.time(),
                        trace=current_trace() if SWITCH.enabled else None,
                    )
                )
                if durable:
                    data = _DURABLE_HEADER + data
                sender = await self._sender(address)
                outcomes = connection._link_state(sender.link).outcomes
                delivery = await sender.send(data)
                done, box = trio.Event(), list[Outcome]()
                outcomes[delivery.number] = (done, box)
                waiting.append((outcomes, delivery.number, done, box, address))
            results = []
            for _, _, done, box, address in waiting:
                await done.wait()
                if not box:
                    raise ConnectionLost(
                        f"the link to {address} closed before the broker settled a message"
                    )
                results.append(box[0])
            return results
        except BrokerError:
            raise
        except LinkRefused as error:  # the broker ended the session: links open anew
            self._senders.clear()
            raise BrokerConnectionError(
                f"the broker closed a link to {self.settings.url} before it settled every "
                f"message of a batch ({error}); each may or may not have arrived: publish "
                "them again"
            ) from error
        except ConnectionLost as error:
            raise self._lost(
                error,
                "before the broker settled every message of a batch; each may or may not "
                "have arrived: publish them again",
            ) from error
        finally:
            for outcomes, number, *_ in waiting:
                outcomes.pop(number, None)

    async def _publish(
        self, address: str, message: Any, message_id: str, type_name: str, durable: bool
    ) -> Outcome:
        data = self.codec.encode(
            WireEnvelope(
                message_id=message_id,
                type_name=type_name,
                body=message,
                created=time.time(),
                trace=current_trace() if SWITCH.enabled else None,
            )
        )
        if durable:
            data = _DURABLE_HEADER + data
        return await self._send(address, data)

    async def _send(self, address: str, data: bytes) -> Outcome:
        """Send on the address's link; once more on a new link if that one closes."""
        for attempt in range(2):
            sender = await self._sender(address)
            try:
                return await sender.send_and_wait(data)
            except LinkRefused as error:
                if self._senders.get(address) is sender:
                    del self._senders[address]
                if attempt:
                    raise AddressRefused(
                        f"the broker closed the link to {address}: {error}",
                        error.condition,
                        address,
                    ) from error
            except ConnectionLost as error:
                raise self._lost(
                    error,
                    f"before the broker settled a message for {address}; it may or may not "
                    "have arrived: publish it again on a new connection",
                ) from error
        raise AssertionError("unreachable")  # pragma: no cover

    async def _sender(self, address: str) -> SenderLink:
        sender = self._senders.get(address)
        if sender is not None:
            return sender
        async with self._opening:
            sender = self._senders.get(address)
            if sender is not None:
                return sender
            try:
                sender = await self._connection.open_sender(
                    address, durable=self.settings.durable_queues
                )
            except LinkRefused as error:
                raise AddressRefused(
                    f"the broker refused to take messages for {address}: {error}; check the "
                    "address (RabbitMQ: /queue/NAME declares the queue, /amq/queue/NAME "
                    "and /exchange/NAME/KEY must exist)",
                    error.condition,
                    address,
                ) from error
            except ConnectionLost as error:
                raise self._lost(error, f"while opening a link to {address}") from error
            self._senders[address] = sender
            return sender

    # -- consuming

    async def consume(
        self,
        address: str,
        ref: ActorRef,
        *,
        prefetch: int = 100,
        ask_timeout: float | None = None,
        concurrency: int = 1,
        durable: bool | None = None,
        foreign: bool = False,
        task_status: trio.TaskStatus[Consumer] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Deliver the messages of ``address`` to the actor ``ref``, at least once.

        Start it in a nursery; ``nursery.start`` returns the :class:`Consumer`
        once the broker has attached the link::

            consumer = await nursery.start(broker.consume, "/queue/orders", orders)

        Each message is decoded and handed to the actor with ``ask``, one at a time
        and in the order they arrived, and settled once the handler has finished:
        accepted if it returned; released (or modified, see
        :attr:`BrokerSettings.failure_outcome`) if it raised, so that the broker
        delivers it again; rejected if it cannot be decoded or the actor has no
        handler for its type. A handler may therefore see a message again: after
        its own failure, or after a consumer died before it settled one. Make
        handlers idempotent.

        Runs until cancelled, until the actor stops (the message it was given goes
        back to the broker), or until the broker is closed; on the way out, the
        deliveries not handled yet go back to the broker.

        Args:
            address: the broker's address, e.g. ``/queue/NAME`` on RabbitMQ.
            ref: the actor that handles the messages.
            prefetch: the link credit: how many messages the broker may send before
                one is settled (at least 1).
            ask_timeout: how long one message may take to be handled (``None``: the
                actor system's ``ask_timeout``); a timeout counts as a failure.
            concurrency: how many asks may wait for their answers at once (at most
                ``prefetch``). Above 1, messages may be handled out of order, and
                each is settled when its own ask ends: for actors that answer later
                (``Actor.reply_later``) and handle other messages meanwhile.
            durable: attach with a durable source (see
                :attr:`BrokerSettings.durable_queues`, the default).
            foreign: the queue holds messages of other AMQP 1.0 clients, not in
                jumpstarter's envelope: each is handed over as a
                :class:`ForeignMessage` (only a message that is not AMQP at all, or
                exceeds the codec's ``max_message_size``, is rejected unread).

        A handler that returns :class:`RejectDelivery` has its message rejected
        rather than accepted: for a message it can never use.

        Raises:
            AddressRefused: the broker refused the link to ``address``.
            BrokerConnectionError: the connection was lost (the broker delivers the
                unsettled messages again, to this or another consumer).
            ValueError: ``prefetch`` is less than 1, or ``concurrency`` is not
                between 1 and ``prefetch``.
        """
        if prefetch < 1:
            raise ValueError(f"prefetch must be at least 1, not {prefetch}")
        if not 1 <= concurrency <= prefetch:
            raise ValueError(
                f"concurrency must be between 1 and the prefetch ({prefetch}), not {concurrency}"
            )
        self._check_open()
        consumer = Consumer(address, ref, prefetch)
        send, receive = trio.open_memory_channel[MessageReceived | _LinkLost](math.inf)
        if durable is None:
            durable = self.settings.durable_queues
        run = _ConsumerRun(
            self, consumer, send, receive, ask_timeout, concurrency, durable, foreign=foreign
        )
        failure: Exception | None = None
        try:
            async with trio.open_nursery() as nursery:  # for the tasks watching the links
                try:
                    await run.attach(nursery)
                    task_status.started(consumer)
                    await run.serve(nursery)
                except Exception as error:  # raised below as is, not in an exception group
                    failure = error
                nursery.cancel_scope.cancel()
        finally:
            run.release_all()
        if failure is not None:
            raise failure

    # -- closing

    def _check_open(self) -> None:
        if self._connection.closed:
            reason = "closed" if self._closing else (self._connection.error or "closed")
            raise BrokerConnectionError(f"the connection to {self.settings.url} is {reason}")

    def _lost(self, error: ConnectionLost, when: str) -> BrokerConnectionError:
        if self._closing:
            return BrokerConnectionError(f"the connection to {self.settings.url} is closed")
        return BrokerConnectionError(f"lost the connection to {self.settings.url} {when}: {error}")

    async def _aclose(self) -> None:
        self._closing = True
        await self._connection.aclose()


class _ConsumerRun:
    """The state of one running :meth:`Broker.consume`."""

    def __init__(
        self,
        broker: Broker,
        consumer: Consumer,
        send: trio.MemorySendChannel[MessageReceived | _LinkLost],
        receive: trio.MemoryReceiveChannel[MessageReceived | _LinkLost],
        ask_timeout: float | None,
        concurrency: int,
        durable: bool,
        *,
        foreign: bool = False,
    ) -> None:
        self.broker = broker
        self.consumer = consumer
        self.send = send
        self.receive = receive
        self.ask_timeout = ask_timeout
        self.concurrency = concurrency
        self.durable = durable
        self.slots = trio.Semaphore(concurrency)
        self.receiver: _ReceiverLink | None = None
        # Being handled, not settled, by id(): each with the scope of its ask, which
        # the closing of its link cancels (see _watch).
        self.handling: dict[int, tuple[MessageReceived, trio.CancelScope]] = {}
        self.serving = trio.CancelScope()  # cancelled once the actor is stopped
        self.closes = 0
        self.owed = 0  # credit for settled deliveries, not yet given back (see _settle)
        self.foreign = foreign  # hand over ForeignMessage, not decoded envelopes

    async def attach(self, nursery: trio.Nursery) -> None:
        """Attach a link to the address and watch it; raise if refused."""
        broker = self.broker
        address = self.consumer.address
        try:
            receiver = _ReceiverLink(
                broker._connection,
                address,
                self.consumer.prefetch,
                durable=self.durable,
            )
        except ProtocolError as error:  # the connection is closing: its news is not read yet
            raise BrokerConnectionError(
                f"cannot consume from {address}: the connection is closed ({error})"
            ) from error
        self.receiver = receiver
        broker._dispatcher.routes[receiver.link] = self
        try:
            await receiver.wait_attached()
        except LinkRefused as error:
            raise AddressRefused(
                f"the broker refused to deliver from {address}: {error}; check the address "
                "(RabbitMQ: /queue/NAME declares the queue, /amq/queue/NAME must exist)",
                error.condition,
                address,
            ) from error
        except ConnectionLost as error:
            raise broker._lost(error, f"while attaching a link from {address}") from error
        nursery.start_soon(self._watch, receiver)

    def arrived(self, event: MessageReceived) -> bool:
        """Queue a delivery (called by the connection's reader); ``False`` if ended."""
        try:
            self.send.send_nowait(event)  # unbounded, yet never more than the prefetch
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return False
        self.consumer._received += 1
        return True

    async def _watch(self, receiver: _ReceiverLink) -> None:
        error = await receiver.wait_closed()
        for event, asking in list(self.handling.values()):
            if event.link == receiver.link:
                # Its outcome can no longer reach the broker, which delivers it again:
                # stop waiting for the handler.
                asking.cancel()
        if not receiver.connection.closed:
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                self.send.send_nowait(_LinkLost(receiver.link, error))

    async def serve(self, nursery: trio.Nursery) -> None:
        """Handle deliveries until the actor stops or the connection closes."""
        with self.serving:
            await self._serve(nursery)
        if self.serving.cancelled_caught:  # the actor is stopped
            return
        # The connection closed.
        if not self.broker._closing:
            error = self.broker._connection.error or "closed"
            raise BrokerConnectionError(
                f"lost the connection to {self.broker.settings.url} while consuming from "
                f"{self.consumer.address}: {error}; its unsettled messages go back to the queue"
            )

    async def _serve(self, nursery: trio.Nursery) -> None:
        self.closes = 0  # link closures since the last delivery
        receive = self.receive
        while True:
            item: MessageReceived | _LinkLost | None
            try:
                item = receive.receive_nowait()
            except trio.WouldBlock:
                self._give_back_credit()  # nothing queued: let the broker send more now
                try:
                    item = await receive.receive()
                except trio.EndOfChannel:
                    return
            except trio.EndOfChannel:
                return
            # What arrived together is handled without a trip through the scheduler
            # (one at a time), so that its outcomes and credit leave in one write.
            while item is not None:
                if isinstance(item, _LinkLost):
                    await self._link_lost(item, nursery)
                elif self.concurrency == 1:
                    await self._deliver(item)
                else:
                    await self.slots.acquire()
                    nursery.start_soon(self._deliver_in_slot, item)
                try:
                    item = receive.receive_nowait()
                except (trio.WouldBlock, trio.EndOfChannel):
                    item = None

    async def _link_lost(self, item: _LinkLost, nursery: trio.Nursery) -> None:
        receiver = self.receiver
        assert receiver is not None
        if item.link == receiver.link:
            self.closes += 1
            await self._reattach(nursery, item.error, self.closes)

    async def _deliver_in_slot(self, event: MessageReceived) -> None:
        try:
            await self._deliver(event)
        finally:
            self.slots.release()

    async def _deliver(self, event: MessageReceived) -> None:
        """Hand one delivery to the actor and settle it; once the actor is stopped,
        end the consumer."""
        consumer = self.consumer
        receiver = self.receiver
        if receiver is None or event.link != receiver.link:  # from a link closed since
            consumer._count(_RELEASED, handled=False)  # the broker delivers it again
            return
        self.closes = 0
        key = id(event)
        asking = trio.CancelScope()
        self.handling[key] = (event, asking)
        with asking:
            outcome, handled = await self._handle(event)
        if self.handling.pop(key, None) is None:
            return  # given back meanwhile (see release_all)
        if asking.cancelled_caught:  # its link closed while the actor had it
            self._settle(event, _RELEASED, handled=False)
            return
        self._settle(event, outcome, handled=handled, more=handled is not None)
        if handled is None:  # the actor is stopped: nothing more to deliver to
            _log(
                "jumpstarter:broker:consumer-ended",
                f"stopped consuming from {consumer.address}: {consumer.ref.path} is stopped",
                address=consumer.address,
                actor=consumer.ref.path,
            )
            self.serving.cancel()

    async def _reattach(self, nursery: trio.Nursery, error: ErrorCondition | None, n: int) -> None:
        consumer = self.consumer
        reason = _describe_condition(error)
        broker = self.broker
        if broker.settings.failure_outcome == "modified" and "Unrecognised state" in reason:
            raise BrokerError(
                f"the broker closed the link from {consumer.address} after a 'modified' "
                f"outcome ({reason.splitlines()[0]}): this broker does not support it "
                "(RabbitMQ before 3.13); use BrokerSettings(failure_outcome='released')"
            )
        self.release_all()
        _log(
            "jumpstarter:broker:reattach",
            f"the broker closed the link from {consumer.address} ({reason}); attaching again",
            address=consumer.address,
            reason=reason,
        )
        if n > 1:
            await trio.sleep(min(_REATTACH_MAX_DELAY, _REATTACH_FIRST_DELAY * 2 ** (n - 2)))
        consumer._reattached += 1
        await self.attach(nursery)

    async def _handle(self, event: MessageReceived) -> tuple[Outcome, bool | None]:
        """Decode and ask; return the outcome, and whether the handler ran (``None``:
        the actor is stopped)."""
        consumer = self.consumer
        try:
            if self.foreign:
                envelope = _foreign_envelope(self.broker.codec, event.body, consumer.address)
            else:
                envelope = self.broker.codec.decode(event.body)
        except CodecError as error:
            _log(
                "jumpstarter:broker:rejected",
                f"rejected a message from {consumer.address}: {error}",
                address=consumer.address,
                reason=str(error),
            )
            return Rejected(error=ErrorCondition(name=DECODE_ERROR, description=str(error))), False
        with contextlib.ExitStack() as stack:
            if SWITCH.enabled:
                if envelope.trace is not None:
                    stack.enter_context(eliot.Action.continue_task(task_id=envelope.trace))
                stack.enter_context(
                    eliot.start_action(
                        action_type="jumpstarter:broker:deliver",
                        address=consumer.address,
                        message_id=envelope.message_id,
                        message_type=envelope.type_name,
                    )
                )
            try:
                answer = await consumer.ref.ask(envelope.body, timeout=self.ask_timeout)
            except ActorStopped:
                return _RELEASED, None
            except ActorCrashed:
                return _RELEASED, False
            except UnhandledMessage as error:
                _log(
                    "jumpstarter:broker:rejected",
                    f"rejected a message from {consumer.address}: {error}",
                    address=consumer.address,
                    reason=str(error),
                )
                return Rejected(
                    error=ErrorCondition(name=NOT_IMPLEMENTED, description=str(error))
                ), False
            except Exception:
                failed = self.broker.settings.failure_outcome == "modified"
                return (_FAILED if failed else _RELEASED), True
        if type(answer) is RejectDelivery:
            _log(
                "jumpstarter:broker:rejected",
                f"rejected a message from {consumer.address}: {answer.description}",
                address=consumer.address,
                reason=answer.description,
            )
            condition = ErrorCondition(name=answer.condition, description=answer.description)
            return Rejected(error=condition), True
        return _ACCEPTED, True

    def _settle(
        self, event: MessageReceived, outcome: Outcome, *, handled: bool | None, more: bool = True
    ) -> None:
        """Settle a delivery; with ``more``, let the broker send another."""
        receiver = self.receiver
        if receiver is None or event.link != receiver.link or not receiver.usable:
            # The link has closed: the broker delivers the message again.
            self.consumer._count(_RELEASED, handled=False)
            return
        self.consumer._count(outcome, handled=bool(handled))
        if not event.settled:
            receiver.connection.settle(event.delivery, outcome)
        if more:
            # Credit goes back in batches of a quarter of the prefetch (and whenever the
            # consumer runs out of work): one flow frame per message would cost the
            # broker and this node more than the messages themselves.
            self.owed += 1
            if self.owed >= max(1, self.consumer.prefetch // 4):
                self._give_back_credit()

    def _give_back_credit(self) -> None:
        """Grant the credit owed, but only once the broker has used all it had.

        AMQP lets a receiver grant more at any time, yet RabbitMQ's AMQP 1.0 plugin
        (before 4.0) sets its queue's credit from a count of deliveries that misses
        those on their way out of the queue: each grant made meanwhile lets that many
        more through, and the excess compounds, so that far more than the prefetch
        arrives. With no credit left at the broker nothing is on its way, and the
        grant is exact on every broker.
        """
        owed = self.owed
        receiver = self.receiver
        if owed and receiver is not None and receiver.usable and not receiver.unused_credit:
            self.owed = 0
            receiver.grant(owed)

    def release_all(self) -> None:
        """Give back what arrived and was not handled, and close the link.

        Synchronous, so that it also runs when the consumer is cancelled.
        """
        receiver = self.receiver
        if receiver is None:
            return
        handling, self.handling = self.handling, {}
        for event, _ in handling.values():
            self._settle(event, _RELEASED, handled=False, more=False)
        while True:
            try:
                item = self.receive.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                break
            if isinstance(item, MessageReceived):
                self._settle(item, _RELEASED, handled=False, more=False)
        self.broker._dispatcher.routes.pop(receiver.link, None)
        receiver.close()
        self.receiver = None
        self.owed = 0  # a new link starts with the whole prefetch


def _foreign_envelope(codec: Codec, data: bytes, address: str) -> WireEnvelope:
    """A foreign message in an envelope of its own, for :meth:`_ConsumerRun._handle`."""
    message = ForeignMessage._read(codec, data, address)
    return WireEnvelope(
        message_id=message.message_id or "",
        type_name="foreign",
        body=message,
        created=time.time(),
    )


# -- opening -----------------------------------------------------------------------------


def _protocol_factory(hostname: str) -> Callable[..., AMQPConnection]:
    """Make protocol objects that open the connection with ``hostname``."""

    def make(**options: Any) -> AMQPConnection:
        options["hostname"] = hostname
        return AMQPConnection(**options)

    return make


@contextlib.asynccontextmanager
async def open_broker(
    broker: str | BrokerSettings,
    *,
    registry: TypeRegistry | None = None,
    codec: Codec | None = None,
) -> AsyncIterator[Broker]:
    """Connect to an AMQP 1.0 broker for the duration of an ``async with`` block::

        async with open_broker("amqp://guest:guest@127.0.0.1:5672", registry=registry) as broker:
            await broker.publish("/queue/orders", Order(item="book"))

    Leaving the block closes the connection cleanly: the consumers still running end,
    and the messages they have not settled go back to their queues.

    Args:
        broker: an ``amqp://`` URL (see :meth:`BrokerSettings.from_url`), or settings.
        registry: the message classes published and consumed, registered under the
            same names wherever they are read; without it, only builtin values
            (``str``, ``int``, ``dict``...) travel.
        codec: instead of ``registry``, a codec made to measure (another
            ``max_message_size``, say).

    Raises:
        BrokerConnectionError: the broker cannot be reached or refused the login.
        ValueError: the URL is malformed, or both ``registry`` and ``codec`` are given.
    """
    if registry is not None and codec is not None:
        raise ValueError("give open_broker a registry or a codec, not both")
    if codec is None:
        codec = Codec(registry)
    settings = broker if isinstance(broker, BrokerSettings) else BrokerSettings.from_url(broker)
    dispatcher = _Dispatcher()
    # The nursery is left with no exception, so that the block's own exception
    # propagates as is rather than inside an exception group.
    stack = contextlib.AsyncExitStack()
    nursery = await stack.enter_async_context(trio.open_nursery())
    try:
        connection = await connect(
            settings.host,
            settings.port,
            dispatcher,
            nursery,
            container_id=settings.container_id,
            idle_timeout=settings.idle_timeout,
            sasl=settings.sasl,
            tls=settings._connection_tls(),
            busy_poll=settings.busy_poll,
            protocol_factory=_protocol_factory(settings.hostname),
        )
    except BaseException as error:
        nursery.cancel_scope.cancel()
        await stack.aclose()
        if isinstance(error, OSError | ConnectionLost):
            raise BrokerConnectionError(
                f"could not connect to the broker at {settings.url}: {error}; check the "
                "host and port, the user name and password, and that the broker serves "
                "AMQP 1.0 (RabbitMQ: rabbitmq-plugins enable rabbitmq_amqp1_0)"
            ) from error
        raise
    handle = Broker(settings, codec, connection, dispatcher)
    try:
        yield handle
    finally:
        with trio.CancelScope(shield=True):
            await handle._aclose()
        nursery.cancel_scope.cancel()
        await stack.aclose()


# -- helpers -----------------------------------------------------------------------------


def _describe_condition(condition: ErrorCondition | None) -> str:
    if condition is None:
        return "no reason given"
    if condition.description:
        return f"{condition.name}: {condition.description}"
    return condition.name


def _describe(outcome: Outcome) -> str:
    if isinstance(outcome, Rejected):
        return f"rejected ({_describe_condition(outcome.error)})"
    if isinstance(outcome, Released):
        return "released (it could not take the message now; publish it again later)"
    if isinstance(outcome, Modified):
        return "modified (it could not take the message now; publish it again later)"
    return type(outcome).__name__.lower()


def _log(message_type: str, text: str, **fields: Any) -> None:
    """Log a rare event: an eliot message, and a warning an operator sees without eliot."""
    if SWITCH.enabled:  # else eliot would buffer it for the first destination added later
        eliot.log_message(message_type=message_type, **fields)
    _logger.warning("%s", text)
