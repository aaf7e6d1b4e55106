"""The messages of celery_actors: commands, documents and the router's requests.

Every message is an ``attrs`` frozen class registered in :data:`PROTOCOL` under a
versioned name (``celery.<kind>.v1``), so it travels as a plain AMQP 1.0 map that any
client can write and read (``docs/protocol.md``). A task's arguments and result are
plain AMQP values: ``None``, booleans, numbers, strings, bytes, lists, maps, and
instances of classes registered in the app's registry.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from typing import Any, Final, Literal, TypeVar

import attrs

from jumpstarter import TypeRegistry

__all__ = [
    "FINAL_STATES",
    "MESSAGES",
    "PROTOCOL",
    "PROTOCOL_VERSION",
    "AwaitResult",
    "Collect",
    "ControlPause",
    "ControlPing",
    "ControlRefusal",
    "ControlResume",
    "ControlRevoke",
    "ControlShutdown",
    "ControlStats",
    "Document",
    "DropQuarantined",
    "EventMessage",
    "Expect",
    "GetState",
    "GetStats",
    "ListQuarantined",
    "NextStep",
    "PublishEvent",
    "QuarantinedCall",
    "RetryQuarantined",
    "Revoke",
    "RouterStats",
    "Run",
    "RunEnded",
    "RunLost",
    "Submit",
    "TaskCall",
    "TaskError",
    "TaskResult",
    "TaskStarted",
    "Terminate",
    "WatchWorker",
    "Withdraw",
    "WorkerPong",
    "WorkerReport",
    "WorkerStats",
    "WorkerUp",
]

PROTOCOL_VERSION: Final = 1
"""The version in every message's type name; a change that old peers cannot read
gets a new one."""

PROTOCOL = TypeRegistry()
"""The registry of the protocol's messages; an app's registry starts from it."""

TaskState = Literal["pending", "received", "running", "retrying", "succeeded", "failed", "revoked"]
"""Where a task is: ``pending`` (accepted, not sent to a worker yet), ``received`` (a
worker has it), ``running``, ``retrying`` (failed, will run again after a delay), then
one of the final states ``succeeded``, ``failed`` or ``revoked``."""

FINAL_STATES: Final = frozenset({"succeeded", "failed", "revoked"})


MESSAGES: Final[dict[type, str]] = {}
"""Every message class of the protocol, with the type name it travels under."""

_T = TypeVar("_T")


def _message(kind: str) -> Callable[[type[_T]], type[_T]]:
    name = f"celery.{kind}.v{PROTOCOL_VERSION}"

    def register(cls: type[_T]) -> type[_T]:
        MESSAGES[cls] = name
        return PROTOCOL.register(cls, name)

    return register


@_message("call")
@attrs.frozen(kw_only=True)
class TaskCall:
    """A command: run task ``task`` with ``args`` and ``kwargs``.

    ``id`` identifies the call everywhere (results, revocation, deduplication); a
    call sent twice with the same id runs once. Times are seconds since the epoch.
    """

    id: str
    task: str
    args: list[Any] = attrs.field(factory=list)
    kwargs: dict[str, Any] = attrs.field(factory=dict)
    eta: float | None = None
    """Do not start before this time."""
    expires: float | None = None
    """Do not start after this time: the call is revoked instead."""
    priority: int = 0
    """Higher runs first among calls waiting for a worker (0 to 9)."""
    queue: str = "default"
    attempt: int = 0
    """How many times it has run already (0 for the first run)."""
    reply_to: str | None = None
    """Over a broker: the address the router publishes the final result to."""


@_message("error")
@attrs.frozen(kw_only=True)
class TaskError:
    """Why a task failed: its exception's type (``module.QualName``), message and
    traceback, as text."""

    type: str
    message: str
    traceback: str = ""

    @classmethod
    def from_exception(cls, error: BaseException, *, with_traceback: bool = True) -> TaskError:
        kind = type(error)
        return cls(
            type=f"{kind.__module__}.{kind.__qualname__}",
            message=str(error),
            traceback="".join(traceback.format_exception(error)) if with_traceback else "",
        )


@_message("result")
@attrs.frozen(kw_only=True)
class TaskResult:
    """A document: how a call ended.

    ``state`` is ``succeeded`` (``value`` holds the return value), ``failed``
    (``error`` says why; ``quarantined`` if it failed for good after its retries or at a
    poisonous step), ``revoked``, or ``retrying`` (from a worker: run it again in
    ``retry_in`` seconds).
    """

    id: str
    task: str
    state: TaskState
    value: Any = None
    error: TaskError | None = None
    attempt: int = 0
    retry_in: float | None = None
    quarantined: bool = False
    worker: str = ""
    finished: float = 0.0

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES

    @classmethod
    def of(cls, call: TaskCall, state: TaskState, finished: float, **fields: Any) -> TaskResult:
        """The result of ``call`` in ``state``, ended at ``finished``."""
        return cls(
            id=call.id,
            task=call.task,
            state=state,
            attempt=call.attempt,
            finished=finished,
            **fields,
        )


# -- requests to the router


@_message("submit")
@attrs.frozen
class Submit:
    """Run ``call``; the router answers ``True`` once it holds the call."""

    call: TaskCall


@_message("await-result")
@attrs.frozen
class AwaitResult:
    """Answered with the call's :class:`TaskResult` once it has a final one."""

    id: str


@_message("expect")
@attrs.frozen
class Expect:
    """Told by a client to the router: it waits for the results of calls ``ids``; they
    come back in the answers to its :class:`Collect` asks, many at once."""

    client: str
    ids: list[str]


@_message("collect")
@attrs.frozen
class Collect:
    """Asked by a client of the router: answered with the final :class:`TaskResult`
    documents of the calls it expects, as soon as there is at least one (a list). A
    newer :class:`Collect` of the same client answers the older one with an empty list."""

    client: str


@_message("get-state")
@attrs.frozen
class GetState:
    """Answered with the call's state now (``pending`` if the router never saw it)."""

    id: str


@_message("revoke")
@attrs.frozen
class Revoke:
    """Do not run the call; with ``terminate``, cancel it if it is running. Answered
    with ``True`` if the call was revoked, ``False`` if it had already finished."""

    id: str
    terminate: bool = False


@_message("worker-up")
@attrs.frozen(kw_only=True)
class WorkerUp:
    """A worker offers to run up to ``capacity`` calls of ``tasks`` at once."""

    address: str
    capacity: int
    tasks: list[str]


@_message("task-started")
@attrs.frozen
class TaskStarted:
    """A worker started running a call."""

    id: str
    worker: str


# -- quarantine: calls that failed for good, kept for inspection


@_message("quarantined")
@attrs.frozen(kw_only=True)
class QuarantinedCall:
    """A call in the router's quarantine: the call as it was sent, and how it ended
    (``result.quarantined`` is true)."""

    call: TaskCall
    result: TaskResult


@_message("list-quarantined")
@attrs.frozen
class ListQuarantined:
    """Answered with the quarantined calls, a list of :class:`QuarantinedCall`, oldest
    first."""


@_message("retry-quarantined")
@attrs.frozen
class RetryQuarantined:
    """Run the quarantined call ``id`` again, as a new call with a new id and a full
    retry budget; it leaves the quarantine. Answered with the new :class:`TaskCall`,
    or ``None`` if no call ``id`` is quarantined."""

    id: str


@_message("drop-quarantined")
@attrs.frozen
class DropQuarantined:
    """Forget the quarantined call ``id`` (its result stays in the sinks). Answered
    with ``True``, or ``False`` if no call ``id`` is quarantined."""

    id: str


# -- statistics


@_message("get-stats")
@attrs.frozen
class GetStats:
    """Answered with the router's :class:`RouterStats`."""


@_message("worker-stats")
@attrs.frozen(kw_only=True)
class WorkerStats:
    """What one worker did for the router.

    ``received``, ``succeeded``, ``failed``, ``retried`` and ``revoked`` count runs since
    the router started (a call retried twice is received three times); ``running`` and
    ``waiting`` are the calls it holds now, started or not yet.
    """

    address: str
    up: bool
    """Whether the worker is registered now (a worker that went away is kept, down)."""
    capacity: int
    received: int
    waiting: int
    running: int
    succeeded: int
    failed: int
    retried: int
    revoked: int


@_message("stats")
@attrs.frozen(kw_only=True)
class RouterStats:
    """How many calls the router holds in each state, and what each worker did.

    ``states`` maps every :data:`TaskState` to the number of calls in it now (calls of
    earlier runs of the router, known only to its sinks, are not counted).
    """

    states: dict[str, int]
    workers: list[WorkerStats]
    quarantined: int
    """Calls in the quarantine."""

    @property
    def total(self) -> int:
        """Every call the router holds."""
        return sum(self.states.values())


# -- requests to a worker


@_message("run")
@attrs.frozen
class Run:
    """Told by the router to a worker: run ``call``; the worker tells
    :class:`RunEnded` when it ends (or :class:`RunLost` if it cannot).

    ``then`` are the steps that follow ``call`` in a chain: once ``call`` succeeds,
    the worker runs the first of them with its value, then the next with that one's
    value, and so on while they succeed, telling :class:`RunEnded` for each. A step
    that fails, retries or is revoked ends the run of the rest: the router sends them
    later, as it would have without ``then``."""

    call: TaskCall
    then: list[NextStep] = attrs.field(factory=list)


@_message("next-step")
@attrs.frozen(kw_only=True)
class NextStep:
    """A chain's step sent ahead with the :class:`Run` of the step before it; see
    :attr:`Run.then`."""

    call: TaskCall
    """The step's call, with its own arguments only."""
    immutable: bool = False
    """The step ignores the value of the step before it (``task.si(...)``); otherwise
    that value goes first in its arguments."""

    def after(self, value: Any) -> TaskCall:
        """The call to make once the step before it has given ``value``."""
        if self.immutable:
            return self.call
        return attrs.evolve(self.call, args=[value, *self.call.args])


@_message("run-ended")
@attrs.frozen
class RunEnded:
    """Told by a worker to its router: a run ended with ``result`` (``retrying``
    included: the router runs it again later)."""

    result: TaskResult
    worker: str


@_message("run-lost")
@attrs.frozen
class RunLost:
    """Told by a worker to its router: the run of call ``id`` stopped before its end
    (the worker is shutting down, say); the router sends the call elsewhere."""

    id: str
    attempt: int
    worker: str
    reason: str


@_message("watch-worker")
@attrs.frozen
class WatchWorker:
    """Asked by the router of a worker it dispatches to, once: answered only when the
    worker stops. An ask that fails (the worker's process died, its connection broke)
    tells the router the same: the calls it sent there go elsewhere."""


@_message("terminate")
@attrs.frozen
class Terminate:
    """Cancel the running call ``id``; it ends ``revoked``."""

    id: str


@_message("withdraw")
@attrs.frozen
class Withdraw:
    """Asked by the router of a worker: do not start the call ``id``, which waits there
    for a slot. Answered with ``True`` if it will not start (it ends ``revoked``),
    ``False`` if it has started (or is not there).

    With ``ahead``, ``id`` is a chain's step sent ahead (``Run.then``): answered with
    ``True`` if the worker will not start it (it ends ``revoked`` if it was waiting for
    a slot; otherwise nothing is told of it), ``False`` if it has started, or ran."""

    id: str
    ahead: bool = False


# -- control commands, to a worker's control actor (see docs/workers.md)


@_message("control.ping")
@attrs.frozen
class ControlPing:
    """Answered with a :class:`WorkerPong`: the worker is up and says who it is."""


@_message("control.pong")
@attrs.frozen(kw_only=True)
class WorkerPong:
    """A worker's answer to :class:`ControlPing`."""

    address: str
    """The worker actor's address."""
    uptime: float
    """Seconds since the worker started."""
    state: str
    """``running``, ``paused`` or ``stopping``."""


@_message("control.stats")
@attrs.frozen
class ControlStats:
    """Answered with the worker's :class:`WorkerReport`."""


@_message("control.report")
@attrs.frozen(kw_only=True)
class WorkerReport:
    """What a worker holds and did since it started, as its control actor sees it."""

    address: str
    state: str
    """``running``, ``paused`` or ``stopping``."""
    uptime: float
    concurrency: int
    """Calls it runs at once."""
    held: int
    """Calls it holds now: running, or waiting for a slot."""
    succeeded: int
    failed: int
    retried: int
    revoked: int
    boxed: int
    """The size of its pool of processes for boxed tasks."""
    steps: dict[str, str]
    """Every boot step's name, and its state: ``up``, ``down`` (an optional step that
    failed and is retried) or ``waiting``."""


@_message("control.revoke")
@attrs.frozen
class ControlRevoke:
    """Cancel the call ``id`` if it runs on this worker (it ends ``revoked``).
    Answered with ``True`` if it did, ``False`` if the worker does not hold it."""

    id: str


@_message("control.shutdown")
@attrs.frozen
class ControlShutdown:
    """Stop the worker. Warm (the default): take no new calls, let the running ones
    finish for up to ``timeout`` seconds (``None``: the worker's shutdown timeout), hand
    the others back to the router. Cold: hand every call back at once. Answered with
    ``True`` once the shutdown has begun."""

    cold: bool = False
    timeout: float | None = None


@_message("control.pause")
@attrs.frozen
class ControlPause:
    """Take no new calls (the router is told the worker has no free slot); running
    calls go on. Answered with ``True``."""


@_message("control.resume")
@attrs.frozen
class ControlResume:
    """Take calls again after :class:`ControlPause`. Answered with ``True``."""


@_message("control.refused")
@attrs.frozen
class ControlRefusal:
    """The answer to a control command the worker refuses, and why."""

    reason: str


# -- events and documents (see docs/events.md and docs/sources.md)


@_message("event")
@attrs.frozen(kw_only=True)
class EventMessage:
    """An event: a domain event named ``name`` happened, with ``fields``.

    The router runs every task subscribed to ``name`` once, with ``fields`` as its
    keyword arguments, as a call whose id is ``<id>.<task name>``: an event delivered
    twice runs each subscriber once, and each subscriber retries on its own.
    """

    id: str
    name: str
    fields: dict[str, Any] = attrs.field(factory=dict)
    reply_to: str | None = None
    """Over a broker: where the router publishes the subscribers' final results."""


@_message("publish-event")
@attrs.frozen
class PublishEvent:
    """Run the subscribers of ``event``; the router answers with their task names (a
    list, maybe empty) once it holds their calls."""

    event: EventMessage


@_message("document")
@attrs.frozen(kw_only=True)
class Document:
    """A document from a data source: the single argument of the calls a source makes
    for its subscribed tasks.

    ``id`` is derived from the source and the document's identity (a file's path and
    modification time, an HTTP ``Idempotency-Key`` or the body's hash, an AMQP
    message id), so the same document gives the same calls, which run once.
    """

    id: str
    source: str
    """The name of the source that produced it."""
    body: Any
    """The document itself: the decoded JSON value."""
    metadata: dict[str, Any] = attrs.field(factory=dict)
    """Where it came from: a file's path, an HTTP request's path and headers, an AMQP
    message's id and properties (see ``docs/sources.md``)."""
    received: float = 0.0
    """When the source read it."""
