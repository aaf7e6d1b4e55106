"""The publisher: an actor that puts an app's messages on its brokers, and never loses one.

Every message goes into the publisher's :mod:`backlog <._backlog>` first, and leaves
it once a broker has accepted it. A background task keeps a connection to the first
broker of the list that answers (the next ones are fallbacks) and publishes what the
backlog holds, oldest first, in batches that cost one round trip each. While no broker
is reachable, messages wait in the backlog; when one comes back, they are published
first, in the order they were published, before anything newer.

A message may reach a broker twice (the connection dropped after the broker took it,
before it said so): receivers recognize it by its message id, which is the call's.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import attrs
import trio

from jumpstarter import (
    Accepted,
    Actor,
    AddressRefused,
    Broker,
    BrokerError,
    BrokerSettings,
    Rejected,
    TypeRegistry,
    handler,
    open_broker,
)

from ._backlog import Backlog, MemoryBacklog
from ._clock import RECONNECT

__all__ = ["Publish", "Publisher", "PublisherStatus", "QueryPublisher"]

_logger = logging.getLogger("celery_actors.publisher")

BATCH = 500
"""The most messages published in one round trip to the broker."""


@attrs.frozen
class Publish:
    """Publish ``message`` to ``address`` (on whichever broker is up) as ``message_id``."""

    address: str
    message: Any
    message_id: str


@attrs.frozen
class QueryPublisher:
    """Answered with a :class:`PublisherStatus`."""


@attrs.frozen
class PublisherStatus:
    """Where the publisher stands: the broker it is connected to (``None``: none is
    reachable) and how many messages wait in its backlog."""

    connected: str | None
    backlog: int


class Publisher(Actor):
    """Publishes to the first reachable broker of ``brokers``; see the module docstring.

    Args:
        brokers: in order of preference.
        registry: the message types it publishes.
        backlog: where messages wait; in memory by default.
    """

    mailbox_size = 100_000

    def __init__(
        self,
        brokers: Sequence[BrokerSettings],
        registry: TypeRegistry,
        backlog: Backlog | None = None,
    ) -> None:
        if not brokers:
            raise ValueError("a publisher needs at least one broker")
        self.brokers = list(brokers)
        self.registry = registry
        self.backlog = backlog if backlog is not None else MemoryBacklog()
        self.connected: str | None = None
        self._wake = trio.Event()

    def on_start(self) -> None:
        self.start_task(self._keep_publishing)

    @handler
    def publish(self, msg: Publish) -> None:
        self.backlog.add(msg.address, msg.message, msg.message_id)
        self._wake.set()

    @handler
    def query(self, msg: QueryPublisher) -> PublisherStatus:
        return PublisherStatus(self.connected, len(self.backlog))

    async def _keep_publishing(self) -> None:
        failures = 0  # rounds of the brokers in a row that none answered
        down_since_logged = False
        while True:
            for settings in self.brokers:
                try:
                    async with (
                        open_broker(settings, registry=self.registry) as broker,
                        trio.open_nursery() as nursery,
                    ):
                        nursery.start_soon(_watch, broker)
                        self.connected = settings.url
                        if down_since_logged:
                            _logger.warning("publishing to %s again", settings.url)
                        down_since_logged = False
                        failures = 0
                        await self._flush(broker)
                except* (BrokerError, OSError) as group:
                    if not down_since_logged:
                        _logger.warning(
                            "cannot publish to %s (%s); messages wait in the backlog",
                            settings.url,
                            group.exceptions[0],
                        )
                finally:
                    self.connected = None
            down_since_logged = True
            await trio.sleep(RECONNECT.delay(failures))
            failures += 1

    async def _flush(self, broker: Broker) -> None:
        """Publish the backlog, oldest first, until the connection breaks."""
        backlog = self.backlog
        while True:
            items = backlog.head(BATCH)
            if not items:
                self._wake = trio.Event()
                await self._wake.wait()
                continue
            try:
                outcomes = await broker.publish_many(
                    [(item.address, item.message, item.message_id) for item in items]
                )
            except AddressRefused as exc:
                # Nothing will ever take messages for that address: drop them, loudly.
                refused = [item for item in items if item.address == exc.address]
                _logger.error(
                    "the broker refuses messages for %s (%s): dropped %d of them",
                    exc.address,
                    exc,
                    len(refused),
                )
                backlog.remove(refused)
                continue
            done = []
            for item, outcome in zip(items, outcomes, strict=True):
                if isinstance(outcome, Accepted):
                    done.append(item)
                elif isinstance(outcome, Rejected):
                    _logger.error(
                        "the broker rejected a message for %s (%s): dropped it",
                        item.address,
                        outcome,
                    )
                    done.append(item)
            backlog.remove(done)
            if len(done) < len(items):  # released: the broker cannot take them now
                await trio.sleep(RECONNECT.initial)


async def _watch(broker: Broker) -> None:
    """Raise once the connection closes, also while nothing is being published."""
    await broker.wait_closed()
    raise BrokerError(f"the connection to {broker.settings.url} closed")
