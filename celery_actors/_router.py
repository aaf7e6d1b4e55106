"""The router: holds calls, dispatches them to workers with free capacity, stores results.

It is one actor, so its state (the calls, the workers, who waits for what) needs no
locks. Calls run on a worker through an ``ask`` that the worker answers when the call
ends; a worker that goes away fails those asks at once, and its calls are sent to
another worker. A call is final once its result is in every sink; waiters are answered
then.
"""

from __future__ import annotations

import heapq
import itertools
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import attrs

from jumpstarter import (
    Actor,
    ActorRef,
    ActorStopped,
    AskTimeout,
    JumpstarterError,
    PeerUnreachable,
    PendingReply,
    handler,
)

from ._clock import wall_time
from ._protocol import (
    AwaitResult,
    GetState,
    Revoke,
    Run,
    Submit,
    TaskCall,
    TaskError,
    TaskResult,
    TaskStarted,
    Terminate,
    WorkerUp,
)

if TYPE_CHECKING:
    from ._app import App
    from ._sinks import Sink

__all__ = ["Router"]

_logger = logging.getLogger("celery_actors.router")

_RUN_TIMEOUT = 365 * 24 * 3600.0  # a run's ask lasts as long as the call runs


@attrs.define
class _Call:
    call: TaskCall
    state: str = "pending"
    result: TaskResult | None = None
    waiters: list[PendingReply] = attrs.Factory(list)
    worker: str | None = None


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
class _Ended:
    """A worker answered a run."""

    result: TaskResult
    worker: str


@attrs.frozen
class _Lost:
    """A run's ask failed: the worker went away (or never got the call)."""

    id: str
    worker: str
    reason: str


class Router(Actor):
    """Holds every call until it is final; see the module docstring."""

    mailbox_size = 10_000

    def __init__(self, app: App, sinks: Sequence[Sink]) -> None:
        self.app = app
        self.sinks = list(sinks)
        self.calls: dict[str, _Call] = {}
        self.workers: dict[str, _Worker] = {}
        self.ready: list[tuple[int, int, str]] = []  # (-priority, arrival, id)
        self.arrivals = itertools.count()

    # -- calls

    @handler
    def submit(self, msg: Submit) -> bool:
        call = msg.call
        entry = self.calls.get(call.id)
        if entry is not None and entry.call.task:
            return True  # sent again: it runs once
        if entry is None:
            self.calls[call.id] = _Call(call)
        else:  # someone waits for its result already
            entry.call = call
        self._schedule(call)
        self._dispatch()
        return True

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
                self._finish(entry, self._revoked(call, "it expired before it could start"))
                continue
            worker = self._worker_for(call.task)
            if worker is None:
                held.append(item)  # no free worker runs this task (yet)
                continue
            address = worker.ref.address
            worker.running.add(call.id)
            entry.state = "received"
            entry.worker = address
            self.start_task(self._run, worker.ref, call)
        for item in held:
            heapq.heappush(self.ready, item)

    def _worker_for(self, task: str) -> _Worker | None:
        best = None
        for worker in self.workers.values():
            free = worker.free
            if free > 0 and task in worker.tasks and (best is None or free > best.free):
                best = worker
        return best

    async def _run(self, worker: ActorRef, call: TaskCall) -> None:
        try:
            result: TaskResult = await worker.ask(Run(call), timeout=_RUN_TIMEOUT)
        except (PeerUnreachable, ActorStopped, AskTimeout) as exc:
            await self.ref.tell(_Lost(call.id, worker.address, str(exc)))
        except Exception as exc:  # the worker could not even answer (its result did not encode)
            error = TaskError.from_exception(exc, with_traceback=False)
            result = TaskResult.of(call, "failed", wall_time(), error=error)
            await self.ref.tell(_Ended(result, worker.address))
        else:
            await self.ref.tell(_Ended(result, worker.address))

    @handler
    def task_started(self, msg: TaskStarted) -> None:
        entry = self.calls.get(msg.id)
        if entry is not None and entry.state == "received":
            entry.state = "running"

    @handler
    async def ended(self, msg: _Ended) -> None:
        result = msg.result
        worker = self.workers.get(msg.worker)
        if worker is not None:
            worker.running.discard(result.id)
        entry = self.calls.get(result.id)
        if entry is None or entry.result is not None or entry.worker != msg.worker:
            self._dispatch()  # a stale run (the call went elsewhere meanwhile): ignored
            return
        if result.state == "retrying":
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

    @handler
    def lost(self, msg: _Lost) -> None:
        worker = self.workers.get(msg.worker)
        if worker is not None:
            _logger.warning("worker %s is gone (%s)", msg.worker, msg.reason)
            del self.workers[msg.worker]
        entry = self.calls.get(msg.id)
        if entry is not None and entry.result is None and entry.worker == msg.worker:
            entry.state = "pending"
            entry.worker = None
            # first in line again: it was dispatched before anything still waiting
            heapq.heappush(self.ready, (-10, next(self.arrivals), msg.id))
        self._dispatch()

    async def _store(self, entry: _Call, result: TaskResult) -> None:
        for sink in self.sinks:
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
        self._finish(entry, result)

    def _finish(self, entry: _Call, result: TaskResult) -> None:
        entry.result = result
        entry.state = result.state
        entry.worker = None
        waiters, entry.waiters = entry.waiters, []
        for pending in waiters:
            pending.succeed(result)

    @staticmethod
    def _revoked(call: TaskCall, why: str) -> TaskResult:
        error = TaskError(type="celery_actors.TaskRevoked", message=why)
        return TaskResult.of(call, "revoked", wall_time(), error=error)

    # -- questions and revocation

    @handler
    async def await_result(self, msg: AwaitResult) -> TaskResult | None:
        entry = self.calls.get(msg.id)
        if entry is None:
            for sink in self.sinks:  # a call of an earlier run of the router
                stored = await sink.load(msg.id)
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
        for sink in self.sinks:
            stored = await sink.load(msg.id)
            if stored is not None:
                return stored.state
        return "pending"

    @handler
    async def revoke(self, msg: Revoke) -> bool:
        entry = self.calls.get(msg.id)
        if entry is None or not entry.call.task:
            return False
        if entry.result is not None:
            return False
        if entry.state in ("pending", "retrying"):
            await self._store(entry, self._revoked(entry.call, "revoked before it started"))
            return True
        if msg.terminate and entry.worker is not None:
            worker = self.workers.get(entry.worker)
            if worker is not None:
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
            _logger.info("worker %s is up: %d slots", msg.address, msg.capacity)
        else:
            known.capacity = msg.capacity
            known.tasks = frozenset(msg.tasks)
        self._dispatch()
        return True
