"""Data sources: actors that turn incoming data into document messages for tasks.

Theory of operation
===================

A :class:`Source` says where documents come from (a directory, an HTTP endpoint, a
broker queue) and which tasks they go to, its *subscribers*. ``await
source.start(client)`` runs it as an actor in the client's actor system; the actor
runs the source's :meth:`Source.run` and gives it a :class:`SourceFeed`, through
which the source hands over documents, rejects bad ones and reports trouble.

Each document becomes a :class:`Document` message, the single argument of one call
per subscriber. Its id is derived from the source's name and the document's identity
(a file's path and modification time, an HTTP ``Idempotency-Key`` or the body's hash,
an AMQP message id), and each call's id from it (``<document id>.<task>``): a document
read twice gives the same calls, which the router runs once.

Backpressure: a document is *in flight* from the moment the source hands it over
until every subscriber's call is final. A source holds at most ``max_in_flight`` of
them; when it is full it stops reading (the directory source leaves new files for
later, the broker source's credit runs out, the webhook answers 503), and its health
is ``degraded`` until there is room again. A source whose input is unavailable (a
missing directory, a broker that does not answer) or that cannot reach the router is
``unhealthy``. Bad documents (invalid JSON, larger than ``max_size``) are rejected,
counted by reason and logged; they never stop the source.
"""

from __future__ import annotations

import collections
import fnmatch
import functools
import hashlib
import json
import logging
import os
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import attrs
import h11
import trio

from jumpstarter import (
    Actor,
    ActorRef,
    ActorSystem,
    BrokerError,
    BrokerSettings,
    ForeignMessage,
    Health,
    JumpstarterError,
    RejectDelivery,
    TypeRegistry,
    handler,
    open_broker,
)

from ._clock import FOREVER, RECONNECT, wall_time
from ._errors import CeleryActorsError
from ._protocol import Document

if TYPE_CHECKING:
    from ._app import AsyncResult, Client, Task

__all__ = [
    "DEFAULT_MAX_IN_FLIGHT",
    "DEFAULT_MAX_SIZE",
    "BrokerQueueSource",
    "DirectorySource",
    "DocumentRejected",
    "Source",
    "SourceFeed",
    "SourceRef",
    "SourceStats",
    "WebhookSource",
]

_logger = logging.getLogger("celery_actors.sources")

DEFAULT_MAX_SIZE = 1024 * 1024
"""The largest document a source takes unless told otherwise, in bytes (1 MiB)."""

DEFAULT_MAX_IN_FLIGHT = 100
"""Documents a source holds in flight unless told otherwise (see the module docstring)."""

_HTTP_IDLE = 30.0  # seconds an HTTP connection may stay silent before it is closed
_HTTP_HEAD = 16 * 1024  # the most bytes of an HTTP request line and headers
_SEEN_FILES = 100_000  # files a directory source remembers, at most


class DocumentRejected(CeleryActorsError):
    """A document a source cannot use; it is counted under ``reason`` and dropped.

    Attributes:
        reason: a short, stable name for the kind of trouble: ``invalid-json``,
            ``oversized``, ``empty``, ``unreadable``.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@attrs.frozen(kw_only=True)
class SourceStats:
    """How a running source is doing (:meth:`SourceRef.stats`).

    Attributes:
        name: the source's name (the prefix of its documents' ids).
        kind: ``directory``, ``webhook``, ``broker-queue``, or a custom source's.
        where: what it reads: a directory, a URL, a broker address.
        health: ``healthy``, ``degraded`` (full: it reads nothing more until
            documents in flight finish) or ``unhealthy`` (see ``problem``).
        problem: why it is unhealthy, or ``None``.
        accepted: documents handed over to the subscribers since it started.
        rejected: documents rejected, by reason (``invalid-json``, ``oversized``...).
        in_flight: documents whose subscribers' calls are not all final yet.
        max_in_flight: the most it holds in flight.
        finished: documents whose subscribers' calls are all final.
    """

    name: str
    kind: str
    where: str
    health: str
    problem: str | None
    accepted: int
    rejected: dict[str, int]
    in_flight: int
    max_in_flight: int
    finished: int

    @property
    def rejected_total(self) -> int:
        """Every document rejected, whatever the reason."""
        return sum(self.rejected.values())


@attrs.frozen
class _GetStats:
    """Answered with the source's :class:`SourceStats`."""


@attrs.define(eq=False)
class Delivery:
    """A document handed over: its calls, and an event set once they are all final."""

    document: Document
    results: list[AsyncResult]
    done: trio.Event = attrs.Factory(trio.Event)


class Source:
    """Where documents come from, and the tasks they go to; subclass it and write
    :meth:`run` for a source of your own.

    Args:
        subscribers: the tasks (or task names) each document is a call of, with the
            :class:`Document` as the single argument; :meth:`subscribe` adds more.
        name: the source's name, the prefix of its documents' ids: keep it the same
            across restarts, so that a document read again gives the same calls.
            By default ``<kind>:<where>``.
        max_size: the largest document it takes, in bytes.
        max_in_flight: the most documents it holds whose calls are not all final.
    """

    kind: ClassVar[str] = "source"

    def __init__(
        self,
        *,
        subscribers: Sequence[Task[Any, Any] | str] = (),
        name: str | None = None,
        max_size: int = DEFAULT_MAX_SIZE,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    ) -> None:
        if max_size < 1:
            raise ValueError(f"max_size={max_size} must be at least 1 byte")
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight={max_in_flight} must be at least 1")
        self._name = name
        self.max_size = max_size
        self.max_in_flight = max_in_flight
        self.subscribers: list[Task[Any, Any] | str] = []
        for task in subscribers:
            self.subscribe(task)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"

    @property
    def name(self) -> str:
        return self._name or f"{self.kind}:{self.where}"

    @property
    def where(self) -> str:
        """What the source reads, for people (a path, a URL, an address)."""
        return ""

    def subscribe(self, task: Task[Any, Any] | str) -> Any:
        """Send each document to ``task`` too; returns it (usable as a decorator on a
        task).

        Raises:
            ValueError: ``task`` is subscribed already, or is not a task or a name.
        """
        from ._app import Task

        if not isinstance(task, (Task, str)):
            raise ValueError(f"subscribe a task (or a task's name) to {self!r}, not {task!r}")
        name = task if isinstance(task, str) else task.name
        if name in self.task_names:
            raise ValueError(f"task {name} is subscribed to {self!r} already")
        self.subscribers.append(task)
        return task

    @property
    def task_names(self) -> list[str]:
        return [task if isinstance(task, str) else task.name for task in self.subscribers]

    async def run(self, feed: SourceFeed) -> None:
        """Read documents and hand them to ``feed`` until cancelled.

        Call ``feed.started()`` once ready (listening, say): :meth:`start` returns
        then, and an exception raised before it fails :meth:`start`. An exception
        raised later makes the source ``unhealthy``; ``run`` is then called again
        after a pause.
        """
        raise NotImplementedError(f"{type(self).__name__} must define run(feed)")

    async def receive(self, message: ForeignMessage, feed: SourceFeed) -> Any:
        """Handle a :class:`ForeignMessage` consumed for this source (see
        :class:`BrokerQueueSource`)."""
        raise NotImplementedError(f"{type(self).__name__} receives no broker messages")

    async def start(self, client: Client) -> SourceRef:
        """Run this source as an actor in ``client``'s actor system, handing documents
        to the router through ``client``; returns once it is ready.

        Raises:
            jumpstarter.ActorStartError: it could not start (a port in use, say); the
                cause says why.
        """
        if not self.subscribers:
            raise ValueError(f"{self!r} has no subscribers: subscribe a task to it first")
        system = client.system
        ref = await system.spawn(
            functools.partial(_SourceActor, self, client), name=f"source-{uuid.uuid4().hex[:8]}"
        )
        return SourceRef(self.name, ref, system)


@attrs.frozen
class SourceRef:
    """A running source: ask it how it is doing, stop it."""

    name: str
    ref: ActorRef
    system: ActorSystem = attrs.field(repr=False)

    async def stats(self) -> SourceStats:
        """The source's health and counters now."""
        stats: SourceStats = await self.ref.ask(_GetStats())
        return stats

    async def stop(self) -> None:
        """Stop reading; documents in flight stay with the router, which runs them."""
        await self.system.stop(self.ref)


class SourceFeed:
    """What a running source hands documents to (made by the source's actor).

    Attributes:
        source: the source.
        client: the client the calls go through.
    """

    def __init__(self, actor: _SourceActor, source: Source, client: Client) -> None:
        self.actor = actor
        self.source = source
        self.client = client
        self.accepted = 0
        self.finished = 0
        self.in_flight = 0
        self.rejected: collections.Counter[str] = collections.Counter()
        self.problems: dict[str, str] = {}  # "input" or "router" -> what is wrong
        self.where = source.where
        self._ready = trio.Event()
        self._room = trio.Event()

    # -- for sources

    def started(self, where: str | None = None) -> None:
        """The source is ready (:meth:`Source.start` returns); ``where`` replaces what
        it says it reads (the port a listener was given, say)."""
        if where is not None:
            self.where = where
        self._ready.set()

    @property
    def full(self) -> bool:
        """Whether it holds ``max_in_flight`` documents: read nothing more for now."""
        return self.in_flight >= self.source.max_in_flight

    async def wait_for_room(self) -> None:
        """Return once the source holds fewer than ``max_in_flight`` documents."""
        while self.full:
            await self._room.wait()

    def read_json(self, data: bytes | str) -> Any:
        """The JSON value in ``data``.

        Raises:
            DocumentRejected: ``oversized`` (more than ``max_size`` bytes),
                ``empty``, or ``invalid-json``.
        """
        size = len(data.encode() if isinstance(data, str) else data)
        if size > self.source.max_size:
            raise DocumentRejected(
                "oversized",
                f"a {size}-byte document is larger than max_size={self.source.max_size}",
            )
        if not data.strip():
            raise DocumentRejected("empty", "an empty document: expected JSON")
        try:
            return json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise DocumentRejected("invalid-json", f"not valid JSON: {exc}") from None

    def reject(self, error: DocumentRejected, where: str = "") -> None:
        """Count a rejected document, and log why."""
        self.rejected[error.reason] += 1
        _logger.warning(
            "source %s rejected a document%s: %s",
            self.source.name,
            f" ({where})" if where else "",
            error,
        )

    def report(self, problem: str | None) -> None:
        """The source's input is unavailable (``problem`` says why), or available again
        (``None``): the source is ``unhealthy`` meanwhile."""
        self._problem("input", problem)

    async def deliver(self, key: str, body: Any, metadata: dict[str, Any]) -> Delivery | None:
        """Hand a document over: one call per subscriber, with the :class:`Document`
        (its id derived from ``key``, the document's identity) as the argument.

        Returns once the router holds the calls (over brokers: the client's
        publisher), or ``None`` if the source is full or the calls could not be sent:
        keep the document and offer it again later.
        """
        if self.full:
            return None
        digest = hashlib.sha256(key.encode()).hexdigest()[:32]
        document = Document(
            id=f"{self.source.name}.{digest}",
            source=self.source.name,
            body=body,
            metadata=metadata,
            received=wall_time(),
        )
        self.in_flight += 1
        self._health()
        results = []
        submitted = False
        try:
            for task in self.source.subscribers:
                results.append(await self.client.submit(self._call(task, document)))
            submitted = True
        except (JumpstarterError, OSError) as exc:
            self._problem("router", f"cannot hand documents to the router: {exc}")
            return None
        finally:
            if not submitted:  # failed, or cancelled (a webhook's client went away)
                self.in_flight -= 1
                self._room_changed()
        self._problem("router", None)
        self.accepted += 1
        delivery = Delivery(document, results)
        self.actor.start_task(self._wait_final, delivery)
        return delivery

    # -- inside

    def _call(self, task: Task[Any, Any] | str, document: Document) -> Any:
        from ._calls import new_call

        task_id = f"{document.id}.{task if isinstance(task, str) else task.name}"
        if isinstance(task, str):
            return new_call(task, [document], task_id=task_id)
        return task.make_call([document], task_id=task_id)

    async def _wait_final(self, delivery: Delivery) -> None:
        try:
            for result in delivery.results:
                await result.wait()
        except (JumpstarterError, OSError) as exc:  # the client closed: the router has them
            _logger.info("source %s stopped waiting for %s: %s", self.source.name, delivery, exc)
        finally:
            self.in_flight -= 1
            self.finished += 1
            delivery.done.set()
            self._room_changed()

    def _room_changed(self) -> None:
        if not self.full:
            self._room.set()
            self._room = trio.Event()
        self._health()

    def _problem(self, kind: str, problem: str | None) -> None:
        if problem is None:
            if self.problems.pop(kind, None) is not None:
                _logger.warning("source %s is back: its %s is available", self.source.name, kind)
        elif self.problems.get(kind) != problem:
            self.problems[kind] = problem
            _logger.warning("source %s is unhealthy: %s", self.source.name, problem)
        self._health()

    @property
    def health(self) -> Health:
        if self.problems:
            return Health.UNHEALTHY
        return Health.DEGRADED if self.full else Health.HEALTHY

    def _health(self) -> None:
        self.actor.report_health(self.health)

    def stats(self) -> SourceStats:
        return SourceStats(
            name=self.source.name,
            kind=self.source.kind,
            where=self.where,
            health=self.health.value,
            problem="; ".join(self.problems.values()) or None,
            accepted=self.accepted,
            rejected=dict(self.rejected),
            in_flight=self.in_flight,
            max_in_flight=self.source.max_in_flight,
            finished=self.finished,
        )


class _SourceActor(Actor):
    """Runs a :class:`Source`; see the module docstring."""

    def __init__(self, source: Source, client: Client) -> None:
        self.source = source
        self.feed = SourceFeed(self, source, client)
        self.start_error: BaseException | None = None

    async def on_start(self) -> None:
        self.start_task(self._run)
        await self.feed._ready.wait()
        if self.start_error is not None:
            raise self.start_error

    async def _run(self) -> None:
        failures = 0
        feed = self.feed
        while True:
            try:
                await self.source.run(feed)
                feed.started()
                return
            except Exception as exc:
                if not feed._ready.is_set():
                    self.start_error = exc
                    feed._ready.set()
                    return
                _logger.exception("source %s failed; it starts again", self.source.name)
                feed.report(f"it failed ({exc!r}) and starts again")
            await trio.sleep(RECONNECT.delay(failures))
            failures += 1

    async def health_check(self) -> Health:
        return self.feed.health

    @handler
    def stats(self, msg: _GetStats) -> SourceStats:
        return self.feed.stats()

    @handler
    async def foreign(self, msg: ForeignMessage) -> RejectDelivery | None:
        """A message consumed from a broker queue (see :class:`BrokerQueueSource`):
        answered once its document's calls are final, so that its delivery is settled
        then; rejected if it is no document."""
        try:
            delivery = await self.source.receive(msg, self.feed)
        except DocumentRejected as exc:
            self.feed.reject(exc, msg.message_id or msg.address)
            return RejectDelivery(f"{exc.reason}: {exc}")
        pending = self.reply_later()
        if delivery is None:  # could not hand it over now: the broker delivers it again
            error = CeleryActorsError(f"source {self.source.name} cannot take it now")
            self.start_task(_later, RECONNECT.initial, functools.partial(pending.fail, error))
        else:
            self.start_task(_when_set, delivery.done, functools.partial(pending.succeed, None))
        return None


async def _later(delay: float, then: Callable[[], object]) -> None:
    await trio.sleep(delay)
    then()


async def _when_set(event: trio.Event, then: Callable[[], object]) -> None:
    await event.wait()
    then()


# -- a directory


class DirectorySource(Source):
    """New files in a directory: each file whose name matches ``pattern`` is read as
    one JSON document, once per version (path and modification time).

    The directory is polled every ``interval`` seconds. Write a file elsewhere and
    rename it into the directory, so that it is never read half-written (a file read
    half-written is rejected as invalid JSON, and read again once it changes).

    The document's metadata: ``path``, ``name``, ``size`` and ``mtime`` (seconds
    since the epoch).
    """

    kind = "directory"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        pattern: str = "*.json",
        interval: float = 1.0,
        **options: Any,
    ) -> None:
        if not interval > 0:
            raise ValueError(f"interval={interval} must be a positive number of seconds")
        self.path = Path(path).absolute()
        self.pattern = pattern
        self.interval = interval
        super().__init__(**options)

    @property
    def where(self) -> str:
        return str(self.path)

    def _scan(self) -> list[tuple[str, int, int]]:
        """The matching files: (path, mtime in ns, size), oldest first."""
        found = []
        with os.scandir(self.path) as entries:
            for entry in entries:
                if not fnmatch.fnmatchcase(entry.name, self.pattern):
                    continue
                try:
                    if not entry.is_file():
                        continue
                    stat = entry.stat()
                except FileNotFoundError:  # gone meanwhile
                    continue
                found.append((entry.path, stat.st_mtime_ns, stat.st_size))
        found.sort(key=lambda item: (item[1], item[0]))
        return found

    async def run(self, feed: SourceFeed) -> None:
        seen: collections.OrderedDict[str, int] = collections.OrderedDict()
        feed.started()
        while True:
            try:
                files = await trio.to_thread.run_sync(self._scan)
            except OSError as exc:
                feed.report(f"cannot read the directory {self.path}: {exc}")
                await trio.sleep(self.interval)
                continue
            feed.report(None)
            full = False
            for path, mtime_ns, size in files:
                if seen.get(path) == mtime_ns:
                    continue
                if feed.full:
                    full = True  # the rest waits for room: read on the next round
                    break
                if await self._read(feed, path, mtime_ns, size):
                    seen[path] = mtime_ns
                    seen.move_to_end(path)
                    while len(seen) > _SEEN_FILES:
                        seen.popitem(last=False)
                elif feed.full or feed.problems:
                    full = True
                    break
            if full:
                await feed.wait_for_room()
                if feed.problems:
                    await trio.sleep(self.interval)
            else:
                await trio.sleep(self.interval)

    async def _read(self, feed: SourceFeed, path: str, mtime_ns: int, size: int) -> bool:
        """Hand one file over; ``True`` once it is done with (delivered or rejected)."""
        try:
            if size > self.max_size:
                raise DocumentRejected(
                    "oversized", f"a {size}-byte file is larger than max_size={self.max_size}"
                )
            try:
                data = await trio.Path(path).read_bytes()
            except FileNotFoundError:
                return True  # gone before it could be read
            except OSError as exc:
                raise DocumentRejected("unreadable", f"cannot read it: {exc}") from None
            body = feed.read_json(data)
        except DocumentRejected as exc:
            feed.reject(exc, path)
            return True
        metadata = {
            "path": path,
            "name": os.path.basename(path),
            "size": len(data),
            "mtime": mtime_ns / 1e9,
        }
        return await feed.deliver(f"{path}:{mtime_ns}", body, metadata) is not None


# -- an HTTP endpoint


class WebhookSource(Source):
    """An HTTP endpoint: each ``POST`` to ``path`` with a JSON body is one document.

    Answers (with a JSON body that says why): ``202`` when the document is handed
    over (``{"document": ID, "calls": [...]}``), ``400`` for a body that is not JSON,
    ``413`` for one larger than ``max_size``, ``503`` (with ``Retry-After``) when the
    source is full or cannot reach the router, ``404`` for another path and ``405``
    for another method. A request with an ``Idempotency-Key`` header is identified by
    it, any other by the hash of its body: the same document sent twice runs once.

    The document's metadata: ``path`` (the request target), ``method`` and
    ``headers`` (names in lower case).

    ``port=0`` takes a free port; :meth:`SourceRef.stats` says which (``where``).
    """

    kind = "webhook"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        path: str = "/",
        **options: Any,
    ) -> None:
        if not path.startswith("/"):
            raise ValueError(f"path={path!r} must start with '/'")
        self.host = host
        self.port = port
        self.path = path
        super().__init__(**options)

    @property
    def where(self) -> str:
        return f"http://{self.host}:{self.port}{self.path}"

    async def run(self, feed: SourceFeed) -> None:
        listeners = await trio.open_tcp_listeners(self.port, host=self.host)
        port = listeners[0].socket.getsockname()[1]
        feed.started(f"http://{self.host}:{port}{self.path}")
        await trio.serve_listeners(functools.partial(self._serve, feed), listeners)

    async def _serve(self, feed: SourceFeed, stream: trio.SocketStream) -> None:
        connection = h11.Connection(h11.SERVER, max_incomplete_event_size=_HTTP_HEAD)
        try:
            while True:
                with trio.move_on_after(_HTTP_IDLE):
                    event = await _next_event(connection, stream)
                    if not isinstance(event, h11.Request):
                        return
                    status, answer = await self._answer(feed, connection, stream, event)
                    await _respond(connection, stream, status, answer)
                if connection.our_state is not h11.DONE or connection.their_state is not h11.DONE:
                    return
                connection.start_next_cycle()
        except h11.RemoteProtocolError as exc:
            if connection.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                answer = {"error": "bad-request", "message": str(exc)}
                await _respond(connection, stream, exc.error_status_hint, answer)
        except (trio.BrokenResourceError, trio.ClosedResourceError, h11.LocalProtocolError):
            pass  # the client went away
        finally:
            await stream.aclose()

    async def _answer(
        self,
        feed: SourceFeed,
        connection: h11.Connection,
        stream: trio.SocketStream,
        request: h11.Request,
    ) -> tuple[int, dict[str, Any]]:
        target = request.target.decode("latin-1")
        if target.split("?", 1)[0] != self.path:
            return 404, {"error": "not-found", "message": f"documents go to {self.path}"}
        if request.method != b"POST":
            return 405, {"error": "method", "message": "POST documents as JSON"}
        headers = {
            name.decode("latin-1"): value.decode("latin-1") for name, value in request.headers
        }
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self.max_size:
            error = DocumentRejected(
                "oversized", f"a {length}-byte body is larger than max_size={self.max_size}"
            )
            feed.reject(error, target)
            return 413, {"error": error.reason, "message": str(error)}
        body = bytearray()
        while True:
            event = await _next_event(connection, stream)
            if isinstance(event, h11.EndOfMessage):
                break
            if not isinstance(event, h11.Data):
                raise h11.RemoteProtocolError("the request ended early", 400)
            body += event.data
            if len(body) > self.max_size:
                error = DocumentRejected(
                    "oversized", f"the body is larger than max_size={self.max_size}"
                )
                feed.reject(error, target)
                return 413, {"error": error.reason, "message": str(error)}
        try:
            document = feed.read_json(bytes(body))
        except DocumentRejected as exc:
            feed.reject(exc, target)
            return 400, {"error": exc.reason, "message": str(exc)}
        if feed.full:
            return 503, {"error": "full", "message": "too many documents in flight; retry"}
        key = headers.get("idempotency-key")
        identity = f"key:{key}" if key else f"sha256:{hashlib.sha256(body).hexdigest()}"
        metadata = {"path": target, "method": "POST", "headers": headers}
        delivery = await feed.deliver(identity, document, metadata)
        if delivery is None:
            reason = "; ".join(feed.problems.values()) or "too many documents in flight"
            return 503, {"error": "unavailable", "message": f"{reason}; retry"}
        calls = [result.id for result in delivery.results]
        return 202, {"document": delivery.document.id, "calls": calls}


async def _next_event(connection: h11.Connection, stream: trio.SocketStream) -> Any:
    while True:
        event = connection.next_event()
        if event is not h11.NEED_DATA:
            return event
        connection.receive_data(await stream.receive_some(65536))


async def _respond(
    connection: h11.Connection, stream: trio.SocketStream, status: int, answer: dict[str, Any]
) -> None:
    body = json.dumps(answer).encode()
    headers = [("content-type", "application/json"), ("content-length", str(len(body)))]
    if status == 503:
        headers.append(("retry-after", "1"))
    if status in (400, 413) or connection.their_state is not h11.DONE:
        headers.append(("connection", "close"))  # what is left of the request is not read
    data = connection.send(h11.Response(status_code=status, headers=headers))
    data += connection.send(h11.Data(data=body)) or b""
    data += connection.send(h11.EndOfMessage()) or b""
    await stream.send_all(data or b"")


# -- a broker queue


class BrokerQueueSource(Source):
    """A queue on an AMQP 1.0 broker holding JSON messages from other programs (any
    AMQP 1.0 client, not in jumpstarter's envelope).

    A message's body is read as JSON: a data section (bytes) or a string; a map, a
    list or another structured AMQP value is taken as the document as it is. A
    message is settled *accepted* once its document's calls are final, so a source
    that dies loses nothing; the prefetch is ``max_in_flight``, so a full source
    takes no more messages from the broker. A bad document (not JSON, larger than
    ``max_size``, no body) is settled *rejected*: the broker drops it or moves it to
    the queue's dead-letter exchange. The document is identified by the message-id
    (else the body's hash).

    The document's metadata: ``address``, ``message_id``, ``content_type``,
    ``subject`` and ``properties`` (the application properties).

    Args:
        broker: the broker's URL (``amqp://USER:PASSWORD@HOST:PORT/VHOST``) or its
            :class:`~jumpstarter.BrokerSettings`.
        queue: a queue name (consumed as ``/queue/NAME``) or a broker address that
            starts with ``/`` (``/amq/queue/NAME`` for a durable queue declared
            beforehand, on RabbitMQ).
    """

    kind = "broker-queue"

    def __init__(self, broker: str | BrokerSettings, queue: str, **options: Any) -> None:
        self.settings = BrokerSettings.from_url(broker) if isinstance(broker, str) else broker
        self.address = queue if queue.startswith("/") else f"/queue/{queue}"
        super().__init__(**options)

    @property
    def where(self) -> str:
        return f"{self.settings.url}{self.address}"

    async def run(self, feed: SourceFeed) -> None:
        feed.started()
        failures = 0
        while True:
            try:
                async with open_broker(self.settings, registry=TypeRegistry()) as broker:
                    consume = functools.partial(
                        broker.consume,
                        self.address,
                        feed.actor.ref,
                        prefetch=self.max_in_flight,
                        concurrency=self.max_in_flight,
                        ask_timeout=FOREVER,
                        foreign=True,
                    )
                    async with trio.open_nursery() as nursery:
                        await nursery.start(consume)
                        feed.report(None)
                        failures = 0
            except* (BrokerError, OSError) as group:
                feed.report(f"cannot consume {self.where}: {group.exceptions[0]}")
            await trio.sleep(RECONNECT.delay(failures))
            failures += 1

    async def receive(self, message: ForeignMessage, feed: SourceFeed) -> Delivery | None:
        body = message.body
        if body is None:
            raise DocumentRejected("empty", "a message without a body: expected JSON")
        if isinstance(body, (bytes, str)):
            raw = body.encode() if isinstance(body, str) else body
            document = feed.read_json(body)
        else:
            raw = json.dumps(body, sort_keys=True, default=repr).encode()
            if len(raw) > self.max_size:
                raise DocumentRejected(
                    "oversized", f"a document larger than max_size={self.max_size}"
                )
            document = body
        key = message.message_id
        identity = f"id:{key}" if key else f"sha256:{hashlib.sha256(raw).hexdigest()}"
        metadata = {
            "address": message.address,
            "message_id": key,
            "content_type": message.content_type,
            "subject": message.subject,
            "properties": {
                str(name): value if isinstance(value, (str, int, float, bool)) else str(value)
                for name, value in message.properties.items()
            },
        }
        return await feed.deliver(identity, document, metadata)
