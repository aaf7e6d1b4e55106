"""The router: holds calls, dispatches them to workers with free capacity, stores results.

It is one actor, so its state (the calls, the workers, who waits for what) needs no
locks. The router tells a worker :class:`Run` and the worker tells :class:`RunEnded`
back: tells, so that many travel in one batch. Each worker is watched by one ask
(:class:`WatchWorker`) that it answers only when it stops: a worker that goes away
(even killed) fails that ask at once, and the calls it had are sent to another worker.
A call is final once its result is in every sink; waiters are answered then.
"""

from __future__ import annotations

import collections
import functools
import heapq
import itertools
import logging
import uuid
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, get_args

import attrs
import trio

from jumpstarter import (
    Actor,
    ActorRef,
    JumpstarterError,
    MailboxFull,
    PendingReply,
    handler,
)

from ._clock import FOREVER, wall_time
from ._events import subscriber_calls
from ._protocol import (
    AwaitResult,
    Collect,
    DropQuarantined,
    EventMessage,
    Expect,
    GetState,
    GetStats,
    ListQuarantined,
    NextStep,
    PublishEvent,
    QuarantinedCall,
    RetryQuarantined,
    Revoke,
    RouterStats,
    Run,
    RunEnded,
    RunLost,
    Submit,
    TaskCall,
    TaskError,
    TaskResult,
    TaskStarted,
    TaskState,
    Terminate,
    WatchWorker,
    Withdraw,
    WorkerStats,
    WorkerUp,
)
from ._publisher import Publish
from ._workflow_messages import StartWorkflow
from ._workflows import WORKFLOWS_NAME, Admit, GetStates, MembersEnded, WorkflowEnded, Workflows

if TYPE_CHECKING:
    from ._app import App
    from ._sinks import Sink
    from ._workflow_store import WorkflowStore

__all__ = ["QUARANTINE_JOURNAL", "Router"]

_logger = logging.getLogger("celery_actors.router")

CLIENT_IDLE = 600.0
"""Seconds after which the router forgets a client that expects results but stopped
collecting them (its process is gone)."""

FINISHED_KEPT = 10_000
"""Final calls the router keeps in memory (to answer about them, and to run a call sent
again once); it asks its sinks about older ones."""

_WITHDRAW_TIMEOUT = 10.0  # seconds a worker has to say whether a waiting call started
_REVOKED_EARLY = 10_000  # ids of calls revoked before they arrived, kept


@attrs.define
class _Call:
    call: TaskCall
    state: str = "pending"
    result: TaskResult | None = None
    waiters: list[PendingReply] = attrs.Factory(list)
    worker: str | None = None
    then: Sequence[NextStep] = ()  # a chain's next steps, sent with the call
    terminated: bool = False  # revoked with terminate while a worker had it


@attrs.define
class _Worker:
    ref: ActorRef
    capacity: int
    tasks: frozenset[str]
    running: set[str] = attrs.Factory(set)

    @property
    def free(self) -> int:
        return self.capacity - len(self.running)


# -- what the router tells itself


@attrs.frozen
class _Due:
    """A delayed call (eta, countdown, retry) may start now."""

    id: str


@attrs.frozen
class _Lost:
    """A run could not be sent: the worker went away (or never got the call)."""

    id: str
    worker: str
    reason: str


@attrs.define
class _Expecting:
    """A client's results on their way: those ready, and its :class:`Collect` ask."""

    ready: list[TaskResult] = attrs.Factory(list)
    collector: PendingReply | None = None
    pending: int = 0  # calls it expects that are not final yet
    seen: float = 0.0  # trio's clock, at its last Expect or Collect


@attrs.frozen
class _Sweep:
    """Forget clients that stopped collecting (see :data:`CLIENT_IDLE`)."""


@attrs.frozen
class _WorkerGone:
    """The watch of a worker ended: it stopped, or its process or connection died."""

    worker: str
    reason: str


class Router(Actor):
    """Holds every call until it is final; see the module docstring."""

    mailbox_size = 10_000

    def __init__(
        self,
        app: App,
        sinks: Sequence[Sink],
        publisher: ActorRef | None = None,
        workflow_store: WorkflowStore | None = None,
    ) -> None:
        self.app = app
        self.sinks = list(sinks)
        self.publisher = publisher  # publishes results to brokers (see _brokers.py)
        self.workflow_store = workflow_store
        self.workflows: ActorRef | None = None  # a child: the workflows' process manager
        self.members: set[str] = set()  # ids of workflow member calls not final yet
        self.members_ended: list[TaskResult] = []  # to tell the workflows, in one batch
        self.revoked_early: dict[str, None] = {}  # revoked before they arrived, oldest first
        self.ahead: dict[str, _Call] = {}  # a chain's step sent ahead -> the call it went with
        self.calls: dict[str, _Call] = {}
        self.finished: collections.OrderedDict[str, None] = collections.OrderedDict()
        self.expecting: dict[str, _Expecting] = {}  # by client
        self.expected: dict[str, set[str]] = {}  # call id -> the clients expecting it
        self.sweeping = False  # a _Sweep is due
        self.workers: dict[str, _Worker] = {}
        self.ready: list[tuple[int, int, str]] = []  # (-priority, arrival, id)
        self.arrivals = itertools.count()
        self.quarantine = _Quarantine(self.sinks)
        self.tally: dict[str, Counter[str]] = {}  # worker -> its runs' ends, by state

    async def on_start(self) -> None:
        if self.workflow_store is not None:  # a store that cannot open stops the start
            self.workflows = await self.spawn(
                functools.partial(Workflows, self.app.tasks, self.ref, self.workflow_store),
                name=WORKFLOWS_NAME,
            )

    # -- calls

    @handler
    async def submit(self, msg: Submit) -> bool:
        await self._take(msg.call)
        return True

    @handler
    async def call(self, msg: TaskCall) -> TaskResult | None:
        """A call from a broker: answered once it is final, so that its delivery is
        settled only then (a router that dies before loses nothing)."""
        entry = await self._take(msg)
        if entry.result is not None:  # delivered again after it ended
            self._publish_result(entry)
            return entry.result
        task = self.app.tasks.get(msg.task)
        if task is not None and not task.acks_late:
            return None  # settled now: the router holds it
        entry.waiters.append(self.reply_later())
        return None

    async def _take(
        self, call: TaskCall, *, fresh: bool = False, then: Sequence[NextStep] = ()
    ) -> _Call:
        """Hold ``call`` and schedule it; ``fresh`` if it was never sent before (so
        no sink holds its result); ``then``: a chain's next steps to send with it."""
        entry = self.calls.get(call.id)
        if entry is not None and entry.call.task:
            return entry  # sent again: it runs once
        if entry is None:
            stored = None if fresh else await self._load(call.id, call.task)
            entry = self.calls[call.id] = _Call(call, then=then)
            if stored is not None:  # ran already (before a restart, say): it runs once
                entry.state, entry.result = stored.state, stored
                self._forget_later(entry)
                return entry
        else:  # someone waits for its result already
            entry.call, entry.then = call, then
        if call.id in self.revoked_early:
            await self._store(entry, self._revoked(call, "revoked before it arrived"))
        elif call.task not in self.app.tasks and not any(
            call.task in worker.tasks for worker in self.workers.values()
        ):
            error = TaskError(
                type="celery_actors.TaskNotRegistered",
                message=f"no task named {call.task!r} in app {self.app.name!r}: check the "
                "name, or register the task with @app.task where the router runs",
            )
            await self._store(entry, TaskResult.of(call, "failed", wall_time(), error=error))
        else:
            self._schedule(call)
            self._dispatch()
        return entry

    def _schedule(self, call: TaskCall) -> None:
        wait = (call.eta or 0.0) - wall_time()
        if wait > 0:
            self.send_after(wait, _Due(call.id))
        else:
            heapq.heappush(self.ready, (-call.priority, next(self.arrivals), call.id))

    @handler
    def due(self, msg: _Due) -> None:
        entry = self.calls.get(msg.id)
        if entry is not None and entry.state in ("pending", "retrying"):
            heapq.heappush(self.ready, (-entry.call.priority, next(self.arrivals), msg.id))
            self._dispatch()

    def _dispatch(self) -> None:
        held: list[tuple[int, int, str]] = []
        while self.ready and any(worker.free > 0 for worker in self.workers.values()):
            item = heapq.heappop(self.ready)
            entry = self.calls.get(item[2])
            if entry is None or entry.state not in ("pending", "retrying"):
                continue  # revoked meanwhile
            call = entry.call
            if call.expires is not None and wall_time() > call.expires:
                entry.state = "revoked"  # stored (then final) by a task of its own
                expired = self._revoked(call, "it expired before it could start")
                self.start_task(self._store, entry, expired)
                continue
            worker = self._worker_for(call.task)
            if worker is None:
                held.append(item)  # no free worker runs this task (yet)
                continue
            address = worker.ref.address
            worker.running.add(call.id)
            entry.state = "received"
            entry.worker = address
            then = self._steps_ahead(entry, worker)
            for step in then:
                self.ahead[step.call.id] = entry
            self._send_run(worker.ref, call, then)
        for item in held:
            heapq.heappush(self.ready, item)

    def _worker_of(self, entry: _Call) -> _Worker | None:
        """The worker that has ``entry``'s call, if it is still up."""
        return None if entry.worker is None else self.workers.get(entry.worker)

    def _worker_for(self, task: str) -> _Worker | None:
        best = None
        for worker in self.workers.values():
            free = worker.free
            if free > 0 and task in worker.tasks and (best is None or free > best.free):
                best = worker
        return best

    def _steps_ahead(self, entry: _Call, worker: _Worker) -> Sequence[NextStep]:
        """The chain's next steps to send with ``entry``'s call: those ``worker``
        runs, up to the first it does not (or that was revoked)."""
        for index, step in enumerate(entry.then):
            if step.call.task not in worker.tasks or step.call.id in self.revoked_early:
                entry.then = entry.then[:index]
                break
        return entry.then

    def _send_run(self, worker: ActorRef, call: TaskCall, then: Sequence[NextStep]) -> None:
        """Tell ``worker`` to run ``call`` (and the chain's steps ``then``): at once if
        its link has room (runs sent together travel in one batch), else from a task
        that waits for room."""
        run = Run(call, list(then))
        try:
            worker.tell_nowait(run)
        except MailboxFull:
            self.start_task(self._send_run_later, worker, run)
        except JumpstarterError as exc:
            self.ref.tell_nowait(_Lost(call.id, worker.address, str(exc)))

    async def _send_run_later(self, worker: ActorRef, run: Run) -> None:
        try:
            await worker.tell(run)
        except (JumpstarterError, OSError) as exc:
            await self.ref.tell(_Lost(run.call.id, worker.address, str(exc)))

    async def _watch(self, worker: ActorRef) -> None:
        """Wait for ``worker`` to stop (or die): then its calls go elsewhere."""
        try:
            await worker.ask(WatchWorker(), timeout=FOREVER)
        except (JumpstarterError, OSError) as exc:
            reason = str(exc)
        else:
            reason = "it stopped"
        await self.ref.tell(_WorkerGone(worker.address, reason))

    @handler
    def task_started(self, msg: TaskStarted) -> None:
        entry = self.calls.get(msg.id)
        if entry is not None and entry.state == "received":
            entry.state = "running"

    @handler
    async def ended(self, msg: RunEnded) -> None:
        result = msg.result
        self.tally.setdefault(msg.worker, Counter())[result.state] += 1
        worker = self.workers.get(msg.worker)
        if worker is not None:
            worker.running.discard(result.id)
        entry = self.calls.get(result.id)
        if entry is None or entry.result is not None:
            self._dispatch()  # a stale run: the call has ended meanwhile
            return
        if entry.worker != msg.worker and not (
            # The worker's end overtook its news (it stopped, its calls were sent back):
            # a final result of the same attempt, not sent anywhere else yet, counts.
            entry.worker is None and result.final and result.attempt == entry.call.attempt
        ):
            self._dispatch()  # a stale run (the call went elsewhere meanwhile): ignored
            return
        if entry.then and result.state == "succeeded" and worker is not None:
            await self._went_on(entry, worker, result.value)
        if result.state == "retrying" and entry.terminated:  # its run ended first
            result = self._revoked(entry.call, "terminated while running")
        if result.state == "retrying":  # its steps ahead are sent again with it
            entry.state = "retrying"
            entry.worker = None
            entry.call = attrs.evolve(
                entry.call,
                attempt=entry.call.attempt + 1,
                eta=wall_time() + (result.retry_in or 0.0),
            )
            self._schedule(entry.call)
        else:
            await self._store(entry, result)
        self._dispatch()

    async def _went_on(self, entry: _Call, worker: _Worker, value: Any) -> None:
        """``worker`` has started the chain's next step sent with ``entry``'s call
        (``Run.then``): hold it as running there, with the steps after it."""
        step, rest = entry.then[0], entry.then[1:]
        self._not_ahead(entry)
        call = step.after(value)
        follower = self.calls.get(call.id)
        if follower is None:
            follower = self.calls[call.id] = _Call(call)
        elif follower.call.task:
            return  # held already: the worker's run of it is a stale one
        follower.call, follower.then = call, rest
        follower.state, follower.worker = "received", worker.ref.address
        worker.running.add(call.id)
        for later in rest:
            self.ahead[later.call.id] = follower

    def _not_ahead(self, entry: _Call, start: int = 0) -> None:
        """Forget that ``entry``'s steps from ``start`` on were sent ahead with it."""
        for step in entry.then[start:]:
            if self.ahead.get(step.call.id) is entry:
                del self.ahead[step.call.id]
        entry.then = entry.then[:start]

    async def _withdraw_ahead(self, carrier: _Call, id: str) -> bool:
        """Step ``id`` was sent ahead with ``carrier``'s call: have its worker start
        neither it nor the steps after it. ``False`` if the worker has started it
        already: it then runs on, as a running call does, and its result stands."""
        worker = self._worker_of(carrier)
        if worker is not None:
            try:
                withdrawn: bool = await worker.ref.ask(
                    Withdraw(id, ahead=True), timeout=_WITHDRAW_TIMEOUT
                )
            except (JumpstarterError, OSError) as exc:  # gone: its calls go elsewhere
                _logger.warning("could not withdraw %s from %s: %s", id, carrier.worker, exc)
            else:
                if not withdrawn:
                    return False
        ids = [step.call.id for step in carrier.then]
        if id in ids:
            self._not_ahead(carrier, ids.index(id))
        return True

    @handler
    def lost(self, msg: _Lost) -> None:
        self._gone(msg.worker, msg.reason)
        self._again(msg.id, msg.worker)
        self._dispatch()

    @handler
    def run_lost(self, msg: RunLost) -> None:
        worker = self.workers.get(msg.worker)
        if worker is not None:
            worker.running.discard(msg.id)
        entry = self.calls.get(msg.id)
        if entry is not None and entry.call.attempt == msg.attempt:
            self._again(msg.id, msg.worker)
        self._dispatch()

    @handler
    def worker_gone(self, msg: _WorkerGone) -> None:
        worker = self.workers.get(msg.worker)
        if worker is not None:
            self._gone(msg.worker, msg.reason)
            for id in worker.running:
                self._again(id, msg.worker)
        self._dispatch()

    def _gone(self, address: str, reason: str) -> None:
        if self.workers.pop(address, None) is not None:
            _logger.warning("worker %s is gone (%s)", address, reason)

    def _again(self, id: str, worker: str) -> None:
        """Send call ``id``, which ``worker`` had, to a worker again."""
        entry = self.calls.get(id)
        if entry is not None and entry.result is None and entry.worker == worker:
            entry.state = "pending"
            entry.worker = None
            # first in line again: it was dispatched before anything still waiting
            heapq.heappush(self.ready, (-10, next(self.arrivals), id))

    def _sinks_of(self, task: str) -> list[Sink]:
        """Where results of ``task`` go: its own sinks, if it names some."""
        declared = self.app.tasks.get(task)
        if declared is not None and declared.sinks is not None:
            return declared.sinks
        return self.sinks

    def _all_sinks(self) -> list[Sink]:
        """Every sink a result may be in: the router's and the tasks' own."""
        found = list(self.sinks)
        for task in self.app.tasks.values():
            for sink in task.sinks or ():
                if not any(sink is seen for seen in found):
                    found.append(sink)
        return found

    async def _store(self, entry: _Call, result: TaskResult) -> None:
        for sink in self._sinks_of(result.task):
            try:
                await sink.store(result)
            except Exception as exc:  # one sink's trouble must not cost the router its calls
                _logger.error(
                    "sink %r could not store the result of %s[%s]: %s",
                    sink,
                    result.task,
                    result.id,
                    exc,
                )
        if result.quarantined:
            await self.quarantine.enter(entry.call, result)
        self._finish(entry, result)

    def _finish(self, entry: _Call, result: TaskResult) -> None:
        if entry.then:  # no worker goes on after it: the workflow makes them, or not
            self._not_ahead(entry)
        entry.result = result
        entry.state = result.state
        entry.worker = None
        waiters, entry.waiters = entry.waiters, []
        for pending in waiters:
            pending.succeed(result)
        self._publish_result(entry)
        if entry.call.id in self.members:
            self._member_ended(result)
        for client in self.expected.pop(entry.call.id, ()):
            expecting = self.expecting.get(client)
            if expecting is not None:
                expecting.pending -= 1
                expecting.ready.append(result)
                self._hand_over(client, expecting)
        self._forget_later(entry)

    # -- workflows (see _workflows.py)

    @handler
    async def admit(self, msg: Admit) -> None:
        for call in msg.calls:
            self.members.add(call.id)
            entry = await self._take(call, fresh=msg.fresh, then=msg.ahead.get(call.id, ()))
            if entry.result is not None and call.id in self.members:  # final already
                self._member_ended(entry.result)

    @handler
    def start_workflow(self, msg: StartWorkflow) -> None:
        """A workflow from a broker: handed to the workflow actor, and answered (so
        its delivery settled) once that has stored it."""
        if self.workflows is None:
            raise RuntimeError("this router runs no workflows")
        pending = self.reply_later()
        self.start_task(self._start_workflow, self.workflows, msg, pending)

    @staticmethod
    async def _start_workflow(
        workflows: ActorRef, msg: StartWorkflow, pending: PendingReply
    ) -> None:
        try:
            pending.succeed(await workflows.ask(msg))
        except Exception as exc:
            pending.fail(exc)

    @handler
    def workflow_ended(self, msg: WorkflowEnded) -> None:
        publish = Publish(msg.reply_to, msg.result, f"{msg.result.id}.result")
        if self.publisher is None:
            return
        try:
            self.publisher.tell_nowait(publish)
        except MailboxFull:
            self.start_task(self.publisher.tell, publish)

    def _member_ended(self, result: TaskResult) -> None:
        self.members.discard(result.id)
        if not self.members_ended:
            self.when_idle(self._tell_workflows)
        self.members_ended.append(result)

    def _tell_workflows(self) -> None:
        """Tell the workflows the member results that ended since the last time, in
        one message."""
        ended, self.members_ended = self.members_ended, []
        if ended and self.workflows is not None:
            ended_message = MembersEnded(ended)
            try:
                self.workflows.tell_nowait(ended_message)
            except MailboxFull:
                self.start_task(self.workflows.tell, ended_message)

    @handler
    def get_states(self, msg: GetStates) -> list[str]:
        states = []
        for id in msg.ids:
            entry = self.calls.get(id)
            states.append(entry.state if entry is not None and entry.call.task else "pending")
        return states

    # -- results collected by clients, many at once

    @handler
    async def expect(self, msg: Expect) -> None:
        expecting = self.expecting.get(msg.client)
        if expecting is None:
            expecting = self.expecting[msg.client] = _Expecting()
            self._sweep_later()
        expecting.seen = trio.current_time()
        for id in msg.ids:
            entry = self.calls.get(id)
            result = entry.result if entry is not None else await self._load(id)
            if result is not None:
                expecting.ready.append(result)
                continue
            if entry is None:  # not submitted yet: wait for it
                self.calls[id] = _Call(TaskCall(id=id, task=""), state="pending")
            clients = self.expected.setdefault(id, set())
            if msg.client not in clients:
                clients.add(msg.client)
                expecting.pending += 1
        self._hand_over(msg.client, expecting)

    @handler
    def collect(self, msg: Collect) -> list[TaskResult] | None:
        expecting = self.expecting.get(msg.client)
        if expecting is None:
            expecting = self.expecting[msg.client] = _Expecting()
            self._sweep_later()
        expecting.seen = trio.current_time()
        if expecting.collector is not None:  # superseded
            expecting.collector.succeed([])
        expecting.collector = self.reply_later()
        self._hand_over(msg.client, expecting)
        return None

    def _sweep_later(self) -> None:
        if not self.sweeping:
            self.sweeping = True
            self.send_after(CLIENT_IDLE, _Sweep())

    def _hand_over(self, client: str, expecting: _Expecting) -> None:
        if expecting.ready and expecting.collector is not None:
            collector, expecting.collector = expecting.collector, None
            ready, expecting.ready = expecting.ready, []
            collector.succeed(ready)
        if not expecting.pending and not expecting.ready and expecting.collector is None:
            del self.expecting[client]

    @handler
    def sweep(self, msg: _Sweep) -> None:
        idle = trio.current_time() - CLIENT_IDLE
        for client, expecting in list(self.expecting.items()):
            if expecting.collector is None and expecting.seen < idle:
                del self.expecting[client]
        self.sweeping = False
        if self.expecting:
            self._sweep_later()

    def _forget_later(self, entry: _Call) -> None:
        """Keep the last :data:`FINISHED_KEPT` final calls in memory; the sinks answer
        about older ones."""
        finished = self.finished
        finished[entry.call.id] = None
        while len(finished) > FINISHED_KEPT:
            old, _ = finished.popitem(last=False)
            kept = self.calls.get(old)
            if kept is not None and kept.result is not None and not kept.waiters:
                del self.calls[old]

    def _publish_result(self, entry: _Call) -> None:
        reply_to = entry.call.reply_to
        if reply_to is None or self.publisher is None or entry.result is None:
            return
        publish = Publish(reply_to, entry.result, f"{entry.call.id}.result")
        try:
            self.publisher.tell_nowait(publish)
        except MailboxFull:  # rare: let a task wait for room rather than lose it
            self.start_task(self.publisher.tell, publish)

    @staticmethod
    def _revoked(call: TaskCall, why: str) -> TaskResult:
        error = TaskError(type="celery_actors.TaskRevoked", message=why)
        return TaskResult.of(call, "revoked", wall_time(), error=error)

    # -- questions and revocation

    @handler
    async def await_result(self, msg: AwaitResult) -> TaskResult | None:
        entry = self.calls.get(msg.id)
        if entry is None:
            stored = await self._load(msg.id)  # a call of an earlier run of the router
            if stored is not None:
                return stored
            entry = self.calls[msg.id] = _Call(
                TaskCall(id=msg.id, task=""), state="pending"
            )  # not submitted yet: wait for it
        if entry.result is not None:
            return entry.result
        entry.waiters.append(self.reply_later())
        return None

    @handler
    async def get_state(self, msg: GetState) -> str:
        entry = self.calls.get(msg.id)
        if entry is not None and entry.call.task:
            return entry.state
        stored = await self._load(msg.id)
        return stored.state if stored is not None else "pending"

    async def _load(self, id: str, task: str | None = None) -> TaskResult | None:
        """The stored result of call ``id`` (of ``task``, if known), from the sinks."""
        for sink in self._all_sinks() if task is None else self._sinks_of(task):
            try:
                stored = await sink.load(id)
            except Exception as exc:  # a sink's trouble: the others may know
                _logger.error("sink %r could not load the result of %s: %s", sink, id, exc)
                continue
            if stored is not None:
                return stored
        return None

    @handler
    async def revoke(self, msg: Revoke) -> bool:
        entry = self.calls.get(msg.id)
        if entry is None or not entry.call.task:
            # It may still be on its way (over a broker), or sent ahead with the step
            # before it in a chain: it will not run.
            carrier = self.ahead.get(msg.id)
            if carrier is not None and not await self._withdraw_ahead(carrier, msg.id):
                # Started on its worker already: a running call.
                worker = self._worker_of(carrier)
                if not msg.terminate or worker is None:
                    return False
                await worker.ref.tell(Terminate(msg.id))
                return True
            self.revoked_early[msg.id] = None
            if len(self.revoked_early) > _REVOKED_EARLY:
                del self.revoked_early[next(iter(self.revoked_early))]
            return True
        if entry.result is not None:
            return False
        if entry.state in ("pending", "retrying"):
            await self._store(entry, self._revoked(entry.call, "revoked before it started"))
            return True
        worker = self._worker_of(entry)
        if worker is None:
            return False
        if entry.state == "received":  # on the worker, maybe waiting for a slot there
            try:
                withdrawn: bool = await worker.ref.ask(Withdraw(msg.id), timeout=_WITHDRAW_TIMEOUT)
            except (JumpstarterError, OSError) as exc:
                _logger.warning("could not withdraw %s from %s: %s", msg.id, entry.worker, exc)
                withdrawn = False
            if withdrawn:  # its run ends revoked, and comes back as any other
                return True
        if msg.terminate:
            entry.terminated = True
            await worker.ref.tell(Terminate(msg.id))
            return True
        return False

    # -- workers

    @handler
    def worker_up(self, msg: WorkerUp) -> bool:
        known = self.workers.get(msg.address)
        if known is None:
            try:
                ref = self.system.ref(msg.address)
            except JumpstarterError as exc:  # it stopped meanwhile, or a bad address
                _logger.warning("ignored worker %s: %s", msg.address, exc)
                return False
            self.workers[msg.address] = _Worker(ref, msg.capacity, frozenset(msg.tasks))
            self.start_task(self._watch, ref)
            _logger.info("worker %s is up: %d slots", msg.address, msg.capacity)
        else:
            known.capacity = msg.capacity
            known.tasks = frozenset(msg.tasks)
        self._dispatch()
        return True

    # -- the quarantine (kept by _Quarantine)

    @handler
    async def list_quarantined(self, msg: ListQuarantined) -> list[QuarantinedCall]:
        await self.quarantine.load()
        return list(self.quarantine.calls.values())

    @handler
    async def retry_quarantined(self, msg: RetryQuarantined) -> TaskCall | None:
        await self.quarantine.load()
        kept = self.quarantine.calls.get(msg.id)
        if kept is None:
            return None
        # A new id: the sinks keep the first result of an id, the quarantined failure.
        call = attrs.evolve(kept.call, id=uuid.uuid4().hex, attempt=0, eta=None, expires=None)
        await self.quarantine.leave(msg.id, retried_as=call.id)
        self.calls[call.id] = _Call(call)
        self._schedule(call)
        self._dispatch()
        return call

    @handler
    async def drop_quarantined(self, msg: DropQuarantined) -> bool:
        await self.quarantine.load()
        if msg.id not in self.quarantine.calls:
            return False
        await self.quarantine.leave(msg.id)
        return True

    # -- statistics

    @handler
    async def get_stats(self, msg: GetStats) -> RouterStats:
        await self.quarantine.load()
        states = dict.fromkeys(get_args(TaskState), 0)
        for entry in self.calls.values():
            if entry.call.task:  # not a wait for a call never submitted
                states[entry.state] += 1
        addresses = [*self.workers, *(known for known in self.tally if known not in self.workers)]
        workers = []
        for address in addresses:
            worker = self.workers.get(address)
            held = (
                [self.calls[id].state for id in worker.running if id in self.calls]
                if worker
                else []
            )
            running = held.count("running")
            ends = self.tally.get(address, Counter())
            workers.append(
                WorkerStats(
                    address=address,
                    up=worker is not None,
                    capacity=worker.capacity if worker is not None else 0,
                    received=ends.total() + len(held),
                    waiting=len(held) - running,
                    running=running,
                    succeeded=ends["succeeded"],
                    failed=ends["failed"],
                    retried=ends["retrying"],
                    revoked=ends["revoked"],
                )
            )
        return RouterStats(states=states, workers=workers, quarantined=len(self.quarantine.calls))

    # -- events

    @handler
    async def publish_event(self, msg: PublishEvent) -> list[str]:
        """Run the subscribers of an event; answered with their task names once the
        router holds their calls."""
        return [call.task for call in await self._fan_out(msg.event)]

    @handler
    async def event(self, msg: EventMessage) -> list[str] | None:
        """An event from a broker: answered once every subscriber's call is final, so
        that its delivery is settled only then (as a call's is)."""
        calls = await self._fan_out(msg)
        if not calls:
            return []
        self.start_task(self._answer_event, self.reply_later(), calls)
        return None

    async def _fan_out(self, event: EventMessage) -> list[TaskCall]:
        """One call per subscriber, with an id derived from the event's: the router
        holds one call per id, so an event delivered twice runs each subscriber once."""
        calls = subscriber_calls(self.app, event)
        if not calls and event.name not in self.app.events:
            _logger.warning(
                "event %s[%s]: app %r declares no such event, so it has no subscribers here",
                event.name,
                event.id,
                self.app.name,
            )
        for call in calls:
            entry = await self._take(call)
            if entry.result is not None:  # ran already: its result goes to this reply_to too
                self._publish_result(_Call(call, result=entry.result))
        return calls

    async def _answer_event(self, pending: PendingReply, calls: list[TaskCall]) -> None:
        for call in calls:
            await self.ref.ask(AwaitResult(call.id), timeout=FOREVER)
        pending.succeed([call.task for call in calls])


QUARANTINE_JOURNAL = "celery.quarantine"
"""The task name, and the prefix of the ids (``celery.quarantine.1``, ``.2``...), of the
quarantine's journal documents in the sinks."""


class _Quarantine:
    """The calls that failed for good (``TaskResult.quarantined``), kept with their
    arguments so that they can be inspected and run again.

    They are kept in memory, and in every sink as a journal: one document per change,
    a call entering the quarantine (the call with its arguments, and its result) or
    leaving it (retried or dropped), stored as a succeeded result whose id is
    ``celery.quarantine.<n>`` and whose value is the change. Only ``store`` and ``load``
    are used, so any sink can keep the journal; a durable sink keeps the quarantine
    across restarts of the router. The journal is read back, change by change, the
    first time the router needs the quarantine.
    """

    def __init__(self, sinks: Sequence[Sink]) -> None:
        self.sinks = sinks
        self.calls: dict[str, QuarantinedCall] = {}
        self.next = 1
        self.loaded = False

    async def load(self) -> None:
        """Read the journal back from the sinks, once."""
        if self.loaded:
            return
        number = 1
        while (change := await self._read(number)) is not None:
            try:
                self._apply(change)
            except (TypeError, ValueError, KeyError) as exc:
                _logger.error(
                    "quarantine journal document %s.%d is damaged and was skipped: %r",
                    QUARANTINE_JOURNAL,
                    number,
                    exc,
                )
            number += 1
        self.next = number
        self.loaded = True

    async def enter(self, call: TaskCall, result: TaskResult) -> None:
        await self.load()
        self.calls[call.id] = QuarantinedCall(call=call, result=result)
        await self._write(
            {"change": "enter", "call": _call_document(call), "result": _result_document(result)}
        )

    async def leave(self, id: str, *, retried_as: str | None = None) -> None:
        await self.load()
        del self.calls[id]
        change: dict[str, Any] = {"change": "leave", "id": id}
        if retried_as is not None:
            change["retried_as"] = retried_as
        await self._write(change)

    def _apply(self, change: dict[str, Any]) -> None:
        if change["change"] == "enter":
            call = TaskCall(**change["call"])
            result = _result_from_document(change["result"])
            self.calls[call.id] = QuarantinedCall(call=call, result=result)
        elif change["change"] == "leave":
            self.calls.pop(change["id"], None)
        else:
            raise ValueError(f"unknown change {change['change']!r}")

    async def _read(self, number: int) -> dict[str, Any] | None:
        for sink in self.sinks:
            try:
                stored = await sink.load(f"{QUARANTINE_JOURNAL}.{number}")
            except Exception as exc:  # a sink's trouble: read the others
                _logger.error("sink %r could not read the quarantine journal: %s", sink, exc)
                continue
            if stored is not None:
                return stored.value if isinstance(stored.value, dict) else {"change": None}
        return None

    async def _write(self, change: dict[str, Any]) -> None:
        while await self._read(self.next) is not None:  # taken (by another router?): skip
            self.next += 1
        document = TaskResult(
            id=f"{QUARANTINE_JOURNAL}.{self.next}",
            task=QUARANTINE_JOURNAL,
            state="succeeded",
            value=change,
            finished=wall_time(),
        )
        self.next += 1
        for sink in self.sinks:
            try:
                await sink.store(document)
            except Exception as exc:  # one sink's trouble must not cost the router its calls
                _logger.error(
                    "sink %r could not store quarantine journal document %s: %s",
                    sink,
                    document.id,
                    exc,
                )


def _call_document(call: TaskCall) -> dict[str, Any]:
    return attrs.asdict(call, recurse=False)


def _result_document(result: TaskResult) -> dict[str, Any]:
    document = attrs.asdict(result, recurse=False)
    document["error"] = None if result.error is None else attrs.asdict(result.error)
    return document


def _result_from_document(document: dict[str, Any]) -> TaskResult:
    error = document.get("error")
    return TaskResult(**{**document, "error": None if error is None else TaskError(**error)})
