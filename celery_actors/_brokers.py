"""Calls over brokers: where they travel, the router's consumers, a client's inbox.

With brokers, a client publishes each :class:`TaskCall` to the queue
``/queue/<app>.<queue>`` (see :mod:`._publisher`), naming its own reply address
``/topic/<app>.reply.<client id>`` in the call. Every router consumes the app's
queues from every broker, runs the calls as it runs peer-to-peer ones, and settles a
delivery only once the call's result is stored in its sinks (so a router that dies
loses nothing: the broker delivers the call again). It then publishes the result to
the call's reply address, where the client's :class:`ReplyInbox` takes it.
Revocations go to ``/topic/<app>.control``, which every router consumes.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Iterable

import attrs
import trio

from jumpstarter import (
    Actor,
    ActorRef,
    BrokerError,
    BrokerSettings,
    PendingReply,
    TypeRegistry,
    handler,
    open_broker,
)

from ._clock import FOREVER, RECONNECT
from ._protocol import AwaitResult, GetState, TaskResult

__all__ = [
    "AwaitConnected",
    "BrokerIntake",
    "ReplyInbox",
    "ReplyListener",
    "command_address",
    "control_address",
    "reply_address",
]

_logger = logging.getLogger("celery_actors.brokers")

COMMAND_PREFETCH = 1000
"""Calls a router takes from one queue of one broker before it settles one: the
most it holds unsettled there (each until its result is stored)."""

_UNCLAIMED = 10_000  # results kept for calls no one waits for yet


def command_address(app: str, queue: str) -> str:
    """Where calls of ``queue`` wait on a broker."""
    return f"/queue/{app}.{queue}"


def control_address(app: str) -> str:
    """Where revocations go; every router of the app gets each one."""
    return f"/topic/{app}.control"


def reply_address(app: str, client: str) -> str:
    """Where the results of a client's calls come back."""
    return f"/topic/{app}.reply.{client}"


@attrs.frozen
class AwaitConnected:
    """Answered with ``True`` once a :class:`BrokerIntake` consumes from its broker."""


class _BrokerClient(Actor):
    """An actor that keeps a connection to one broker, and answers
    :class:`AwaitConnected` once it uses it."""

    def __init__(self) -> None:
        self.connected = False
        self.waiting: list[PendingReply] = []

    def _now_connected(self) -> None:
        self.connected = True
        waiting, self.waiting = self.waiting, []
        for pending in waiting:
            pending.succeed(True)

    @handler
    def await_connected(self, msg: AwaitConnected) -> bool | None:
        if self.connected:
            return True
        self.waiting.append(self.reply_later())
        return None


class BrokerIntake(_BrokerClient):
    """Keeps a router fed from one broker: consumes the app's queues (and its control
    topic) for ``router``, and connects again whenever the connection drops.

    Each call is an ask that the router answers once the call is final, so the
    broker's delivery stays unsettled until then.
    """

    def __init__(
        self,
        settings: BrokerSettings,
        registry: TypeRegistry,
        router: ActorRef,
        app: str,
        queues: Iterable[str],
    ) -> None:
        super().__init__()
        self.settings = settings
        self.registry = registry
        self.router = router
        self.app = app
        self.queues = sorted(set(queues))

    def on_start(self) -> None:
        self.start_task(self._keep_consuming)

    async def _keep_consuming(self) -> None:
        failures = 0
        logged = False
        while True:
            try:
                async with (
                    open_broker(self.settings, registry=self.registry) as broker,
                    trio.open_nursery() as nursery,
                ):
                    for queue in self.queues:
                        await nursery.start(
                            lambda task_status, q=queue: broker.consume(
                                command_address(self.app, q),
                                self.router,
                                prefetch=COMMAND_PREFETCH,
                                concurrency=COMMAND_PREFETCH,
                                ask_timeout=FOREVER,
                                task_status=task_status,
                            )
                        )
                    await nursery.start(
                        lambda task_status: broker.consume(
                            control_address(self.app),
                            self.router,
                            durable=False,
                            task_status=task_status,
                        )
                    )
                    _logger.info(
                        "consuming %s from %s",
                        ", ".join(command_address(self.app, q) for q in self.queues),
                        self.settings.url,
                    )
                    logged = False
                    failures = 0
                    self._now_connected()
            except* (BrokerError, OSError) as group:
                if not logged:
                    _logger.warning(
                        "lost %s (%s); connecting again", self.settings.url, group.exceptions[0]
                    )
                    logged = True
            self.connected = False
            await trio.sleep(RECONNECT.delay(failures))
            failures += 1


class ReplyListener(_BrokerClient):
    """Keeps a client's reply address consumed on one broker, for its inbox, and
    connects again whenever the connection drops.

    A client listens on every broker of its app, since a router publishes a result on
    whichever broker its own publisher reaches, which need not be the client's.
    """

    def __init__(
        self, settings: BrokerSettings, registry: TypeRegistry, address: str, inbox: ActorRef
    ) -> None:
        super().__init__()
        self.settings = settings
        self.registry = registry
        self.address = address
        self.inbox = inbox

    def on_start(self) -> None:
        self.start_task(self._keep_consuming)

    async def _keep_consuming(self) -> None:
        failures = 0
        while True:
            try:
                async with open_broker(self.settings, registry=self.registry) as broker:
                    await broker.consume(
                        self.address,
                        self.inbox,
                        prefetch=1000,
                        durable=False,
                        task_status=_Connected(self),
                    )
            except* (BrokerError, OSError) as group:
                _logger.warning(
                    "lost the replies on %s (%s); connecting again",
                    self.settings.url,
                    group.exceptions[0],
                )
            self.connected = False
            await trio.sleep(RECONNECT.delay(failures))
            failures += 1


class _Connected:
    """The ``task_status`` of a listener's consumer: marks it connected once it is."""

    def __init__(self, listener: ReplyListener) -> None:
        self.listener = listener

    def started(self, value: object = None) -> None:
        self.listener._now_connected()


class ReplyInbox(Actor):
    """Where the results of a client's calls arrive over a broker; answers the
    client's :class:`AwaitResult` and :class:`GetState` about them."""

    def __init__(self) -> None:
        self.results: collections.OrderedDict[str, TaskResult] = collections.OrderedDict()
        self.waiting: dict[str, list[PendingReply]] = {}

    @handler
    def result(self, msg: TaskResult) -> None:
        if msg.id in self.results:
            return  # published twice
        self.results[msg.id] = msg
        if len(self.results) > _UNCLAIMED:
            self.results.popitem(last=False)
        for pending in self.waiting.pop(msg.id, []):
            pending.succeed(msg)

    @handler
    def await_result(self, msg: AwaitResult) -> TaskResult | None:
        result = self.results.get(msg.id)
        if result is not None:
            return result
        self.waiting.setdefault(msg.id, []).append(self.reply_later())
        return None

    @handler
    def get_state(self, msg: GetState) -> str:
        result = self.results.get(msg.id)
        return result.state if result is not None else "pending"
