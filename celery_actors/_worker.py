"""The worker: runs calls its router sends, each in a task actor of its own.

A :class:`Worker` registers with its router when it starts, saying how many calls it
runs at once; the router never sends more. Each call becomes a :class:`TaskRun` child
whose state machine says where the call is (``received → running → succeeded |
failed | retrying | revoked``); when it ends, the worker tells the router
:class:`RunEnded` with the call's :class:`TaskResult`.

The worker is an *idempotent receiver*: it remembers the last ``recent_ids`` runs it
finished, by call id and attempt. A :class:`Run` for a run in progress here is dropped
(that run reports the result); a :class:`Run` for a run that finished recently is
reported again with the remembered result, without running. Either way a warning names
the call.

Time limits, all counted from when the task body starts:

- ``time_limit`` (hard): a cancel scope whose deadline cancels the run; it fails with
  :class:`TimeLimitExceeded`.
- ``soft_time_limit``: :class:`SoftTimeLimitExceeded` is raised inside the task so it
  can clean up. An ``async def`` body runs inside a second cancel scope whose deadline
  is the soft limit, and is driven by :class:`_SoftLimitRelay`, which sits between trio
  and the body's coroutine: the ``trio.Cancelled`` that the soft scope delivers at the
  body's next checkpoint is replaced by :class:`SoftTimeLimitExceeded`, and a third,
  inner scope (the *guard*) is shielded at that moment, so that the body's cleanup can
  await although the soft scope stays cancelled. The guard takes over the hard deadline,
  and revocation and the worker stopping cancel it, so the body is still stopped by those.
  A ``def`` body runs in a thread, where :class:`_ThreadInterrupt` raises the exception
  asynchronously (``PyThreadState_SetAsyncExc``); boxed tasks get ``SIGUSR1`` in their
  process (see :mod:`celery_actors._boxed`).
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import functools
import heapq
import itertools
import logging
import threading
import types
from collections.abc import Callable, Coroutine, Generator, Sequence
from typing import TYPE_CHECKING, Any, Final, cast

import attrs
import outcome
import trio

from jumpstarter import (
    Actor,
    ActorRef,
    JumpstarterError,
    MailboxFull,
    PendingReply,
    StateMachine,
    handler,
    resource,
)

from ._boxed import BoxPool
from ._canvas import STARMAP_TASK
from ._clock import wall_time
from ._errors import SoftTimeLimitExceeded, TimeLimitExceeded
from ._protocol import (
    NextStep,
    Run,
    RunEnded,
    RunLost,
    TaskCall,
    TaskError,
    TaskResult,
    TaskStarted,
    TaskState,
    Terminate,
    WatchWorker,
    Withdraw,
    WorkerUp,
)
from ._retry import RetryPolicy, decide

if TYPE_CHECKING:
    from ._app import App, Client, Task
    from ._shutdown import WorkerOps

__all__ = [
    "DEFAULT_PREFETCH",
    "DEFAULT_RECENT_IDS",
    "TASK_STATES",
    "TaskRun",
    "Worker",
    "run_soft_limited",
]

_logger = logging.getLogger("celery_actors.worker")

_ANNOUNCE_EVERY = 2.0  # seconds between two WorkerUp to the router
_RETRY_FIRST = 0.1  # seconds before trying again to reach the router, doubled each time
_WITHDRAWN_KEPT = 1_000  # chain steps withdrawn before they were due here, remembered

DEFAULT_RECENT_IDS = 100

DEFAULT_PREFETCH = 1
"""A worker takes up to ``concurrency * prefetch`` calls from its router at once (Celery's
prefetch multiplier). Above 1, the next calls wait on the worker, not a round trip away,
when one ends: more calls per second for short tasks; but a call waiting on a busy worker
does not go to an idle one."""
"""How many finished runs a worker remembers, to answer a duplicate :class:`Run`."""

TASK_STATES = StateMachine(
    name="task",
    states=["received", "running", "retrying", "succeeded", "failed", "revoked"],
    initial="received",
    transitions=[
        ("start", "received", "running"),
        ("succeed", "running", "succeeded"),
        ("fail", ("received", "running"), "failed"),
        ("retry", "running", "retrying"),
        ("revoke", ("received", "running"), "revoked"),
    ],
)
"""The state machine of one call on a worker."""

_RunKey = tuple[str, int]  # (call id, attempt)
_Report = TaskStarted | RunEnded | RunLost


@attrs.frozen
class _Cancel:
    """Stop running the call: it was revoked with ``terminate``."""


@attrs.frozen
class _Withdraw:
    """Do not start the call if it has not started: answered with ``True`` if so."""


@attrs.frozen
class _SoftLimit:
    """The soft time limit of a ``def`` or boxed call has passed."""


@attrs.define(eq=False)
class _Running:
    """A run in progress on this worker: the task actor that runs it, and the chain's
    steps to run after it (``Run.then``)."""

    run: ActorRef
    then: Sequence[NextStep] = ()


class _Slots:
    """The worker's run slots, handed to waiting calls by priority, then arrival."""

    def __init__(self, count: int) -> None:
        self.free = count
        self.waiting: list[tuple[int, int, trio.Event]] = []  # (-priority, arrival, event)
        self.gone: set[trio.Event] = set()  # waiters cancelled before their turn
        self.arrivals = itertools.count()

    async def acquire(self, priority: int) -> None:
        await trio.lowlevel.checkpoint_if_cancelled()
        if self.free > 0 and not self.waiting:
            self.free -= 1  # no trip through the scheduler: the run starts at once
            return
        turn = trio.Event()
        heapq.heappush(self.waiting, (-priority, next(self.arrivals), turn))
        try:
            await turn.wait()
        except BaseException:
            if turn.is_set():  # handed the slot as it was cancelled: pass it on
                self.release()
            else:
                self.gone.add(turn)
            raise

    def release(self) -> None:
        while self.waiting:
            _, _, turn = heapq.heappop(self.waiting)
            if turn in self.gone:
                self.gone.discard(turn)
                continue
            turn.set()  # the slot goes straight to the next in line
            return
        self.free += 1


class Worker(Actor):
    """Runs up to ``concurrency`` calls at once for ``router``, and holds up to
    ``prefetch`` times as many, waiting for a slot; ``def`` tasks run in
    threads, at most ``threads`` at once; boxed tasks in up to ``boxed`` child
    processes; the last ``recent_ids`` finished runs are remembered to answer
    duplicates (see the module docstring)."""

    def __init__(
        self,
        app: App,
        router: ActorRef,
        concurrency: int,
        threads: int,
        *,
        recent_ids: int = DEFAULT_RECENT_IDS,
        boxed: int = 2,
        prefetch: int = DEFAULT_PREFETCH,
        ops: WorkerOps | None = None,
        client: Client | None = None,
    ) -> None:
        for option, value in (
            ("concurrency", concurrency),
            ("threads", threads),
            ("prefetch", prefetch),
        ):
            if value < 1:
                raise ValueError(f"a worker needs {option} >= 1, not {value}")
        if recent_ids < 0:
            raise ValueError(f"recent_ids={recent_ids}: give 0 (remember none) or more")
        self.app = app
        self.router = router
        self.concurrency = concurrency
        self.prefetch = prefetch
        self.slots = _Slots(concurrency)  # calls running; the others wait, received
        self.threads = trio.CapacityLimiter(threads)
        self.boxes = BoxPool(boxed)
        self.recent_ids = recent_ids
        self.runs: dict[_RunKey, _Running] = {}
        self.recent: collections.OrderedDict[_RunKey, TaskResult] = collections.OrderedDict()
        self.ops = ops  # boot steps, control, warm shutdown (see _shutdown.py)
        self.given_client = client
        self.watchers: list[PendingReply] = []  # routers' WatchWorker asks
        self.ended: collections.Counter[str] = collections.Counter()  # runs, by final state
        self.unsent: collections.deque[_Report] = collections.deque()  # waiting for room
        self.withdrawn: collections.OrderedDict[str, None] = collections.OrderedDict()

    @resource
    def own_client(self) -> contextlib.AbstractAsyncContextManager[Client | None]:
        """A client of this worker's router while it runs, through which tasks call
        tasks (``await other.delay()``); none if the worker was given one."""
        if self.given_client is not None:
            return contextlib.nullcontext()
        return self.app._open_client(self.system, self.router, default=False, innermost=False)

    @property
    def client(self) -> Client | None:
        """The client the tasks this worker runs call tasks through."""
        if self.given_client is not None:
            return self.given_client
        return cast("Client | None", self.own_client)  # while started: the entered value

    def on_start(self) -> None:
        if self.ops is not None:
            self.ops.start(self)  # its "announce" step announces
        else:
            self.start_task(self._announce)

    async def on_stop(self) -> None:
        watchers, self.watchers = self.watchers, []
        for watcher in watchers:  # the router sends what this worker held elsewhere
            watcher.succeed(False)
        await self.boxes.aclose()

    async def _announce(self) -> None:
        """Tell the router this worker is up, again every few seconds: a router that
        restarted (or was not up yet) learns of it that way."""
        offer = WorkerUp(
            address=self.ref.address,
            capacity=self.concurrency * self.prefetch,
            tasks=sorted(self.app.tasks),
        )
        delay = _RETRY_FIRST
        while True:
            try:
                await self.router.ask(offer, timeout=_ANNOUNCE_EVERY)
            except (JumpstarterError, OSError) as exc:
                if delay == _RETRY_FIRST:
                    _logger.warning("cannot reach the router at %s: %s", self.router.address, exc)
                await trio.sleep(delay)
                delay = min(delay * 2, _ANNOUNCE_EVERY)
            else:
                delay = _RETRY_FIRST
                await trio.sleep(_ANNOUNCE_EVERY)

    @handler
    def run(self, msg: Run) -> None:
        self._start(msg.call, msg.then)

    def _start(self, call: TaskCall, then: Sequence[NextStep]) -> None:
        key = (call.id, call.attempt)
        if key in self.runs:
            _logger.warning(
                "call %s[%s] (attempt %d) is already running on this worker: "
                "the duplicate is dropped, the router gets the result of that run",
                call.task,
                call.id,
                call.attempt,
            )
            return
        finished = self.recent.get(key)
        if finished is not None:
            _logger.warning(
                "call %s[%s] (attempt %d) finished on this worker recently: "
                "the duplicate gets the remembered result",
                call.task,
                call.id,
                call.attempt,
            )
            self._report(RunEnded(finished, self.ref.address))
            self._follow(finished, then)
            return
        task = self.app.tasks.get(call.task)
        if task is None:
            why = TaskError(
                type="celery_actors.TaskNotRegistered",
                message=f"no task named {call.task!r} on this worker",
            )
            result = TaskResult.of(call, "failed", wall_time(), error=why, worker=self.ref.address)
            self._report(RunEnded(result, self.ref.address))
            return
        task_run = self.spawn_soon(functools.partial(TaskRun, self, task, call))
        self.runs[key] = _Running(task_run, then)

    def _follow(self, result: TaskResult, then: Sequence[NextStep]) -> None:
        """After a chain's step: start the next one sent with it (see ``Run.then``),
        if the step succeeded; hand it back to the router if this worker takes no
        more calls."""
        if not then or result.state != "succeeded" or then[0].call.id in self.withdrawn:
            return
        call = then[0].after(result.value)
        if self.ops is not None and self.ops.state in ("paused", "stopping"):
            why = f"the worker is {self.ops.state}: it takes no more calls"
        else:
            try:
                self._start(call, then[1:])
                return
            except JumpstarterError as exc:  # the worker is stopping
                why = f"the worker could not start it: {exc}"
        self._report(RunLost(call.id, call.attempt, self.ref.address, why))

    @handler
    def watched_by_router(self, msg: WatchWorker) -> None:
        self.watchers.append(self.reply_later())

    def _report(self, message: _Report) -> None:
        """Tell the router how a run goes, without waiting unless its link is full;
        in order either way (a step's end before the start of the next step sent
        ahead with it, say)."""
        if not self.unsent:
            try:
                self.router.tell_nowait(message)
                return
            except MailboxFull:
                self.start_task(self._report_later)
        self.unsent.append(message)

    async def _report_later(self) -> None:
        """Tell the router the reports its full link did not take, in order."""
        while self.unsent:
            try:
                await self.router.tell(self.unsent[0])
            except (JumpstarterError, OSError) as exc:  # its watch of this worker fails too
                _logger.warning("could not tell the router %s: %s", self.router.address, exc)
            self.unsent.popleft()

    @handler
    async def withdraw(self, msg: Withdraw) -> bool:
        for (id_, _), running in list(self.runs.items()):
            if id_ == msg.id:
                withdrawn: bool = await running.run.ask(_Withdraw())
                return withdrawn
        if not msg.ahead:
            return False
        for running in self.runs.values():  # still to follow the step before it
            for index, step in enumerate(running.then):
                if step.call.id == msg.id:
                    running.then = running.then[:index]
                    return True
        if any(id_ == msg.id for id_, _ in self.recent):
            return False  # it ran
        self.withdrawn[msg.id] = None  # it will not start, should its Run come late
        while len(self.withdrawn) > _WITHDRAWN_KEPT:
            self.withdrawn.popitem(last=False)
        return True

    @handler
    async def terminate(self, msg: Terminate) -> None:
        runs = [running.run for (id_, _), running in self.runs.items() if id_ == msg.id]
        for run in runs:
            await run.tell(_Cancel())

    def finished(self, call: TaskCall, result: TaskResult) -> None:
        """Tell the router how the run ended, remember its result, and go on with the
        chain's next step if it was sent along."""
        key = (call.id, call.attempt)
        running = self.runs.pop(key, None)
        if running is None:
            return  # reported already
        self.ended[result.state] += 1
        if self.recent_ids:
            self.recent[key] = result
            self.recent.move_to_end(key)
            while len(self.recent) > self.recent_ids:
                self.recent.popitem(last=False)
        self._report(RunEnded(result, self.ref.address))
        self._follow(result, running.then)

    def abandoned(self, call: TaskCall) -> None:
        """The run stopped before its end: the router sends the call elsewhere."""
        if self.runs.pop((call.id, call.attempt), None) is None:
            return
        why = f"the worker stopped running {call.id}"
        self._report(RunLost(call.id, call.attempt, self.ref.address, why))


class TaskRun(Actor):
    """One call of a task on a worker; it stops once it has answered."""

    state = TASK_STATES

    def __init__(self, worker: Worker, task: Task[Any, Any], call: TaskCall) -> None:
        self.worker = worker
        self.task = task
        self.call = call
        self.scope = trio.CancelScope()  # revocation
        self.waiting = trio.CancelScope()  # revocation while it waits for a slot
        self.hard = trio.CancelScope()  # time_limit
        self.soft = trio.CancelScope()  # soft_time_limit of an async def body
        self.guard = trio.CancelScope()  # shielded from the soft scope once it has fired
        self.interrupt: Callable[[], None] | None = None  # the soft limit of def/boxed bodies
        self.answered = False
        self.stopping = False

    def on_start(self) -> None:
        self.start_task(self._execute)

    def on_stop(self) -> None:
        self.stopping = True
        # The actor's stop cancels the body's task; the guard reaches a body that its
        # soft limit shields from that (a body without a soft limit has no guard).
        self.guard.cancel()
        if not self.answered:  # stopped before the end: the router sends it elsewhere
            self.worker.abandoned(self.call)

    @handler
    def cancel(self, msg: _Cancel) -> None:
        self.waiting.cancel()
        self.scope.cancel()
        self.guard.cancel()

    @handler
    def withdraw(self, msg: _Withdraw) -> bool:
        if self.state.state != "received" or self.stopping:
            return False
        self.waiting.cancel()
        return True

    @handler
    def soft_limit(self, msg: _SoftLimit) -> None:
        if self.interrupt is not None:
            self.interrupt()

    def _arm_limits(self) -> None:
        """Start the time limits: when the body starts (for boxed tasks, when the child
        process starts running it)."""
        if self.stopping:
            return
        task, now = self.task, trio.current_time()
        if task.time_limit is not None:
            self.hard.deadline = now + task.time_limit
        if task.soft_time_limit is not None:
            if task.is_async and not task.boxed:
                self.soft.deadline = now + task.soft_time_limit
            else:
                self.send_after(task.soft_time_limit, _SoftLimit())

    async def _execute(self) -> None:
        call = self.call
        slots = self.worker.slots
        acquired = False
        with self.waiting:  # revoked or withdrawn while it waits for a slot
            await slots.acquire(call.priority)
            acquired = True
        why = None
        if self.waiting.cancel_called:
            why = "revoked before it started"
        elif call.expires is not None and wall_time() > call.expires:
            why = "it expired before it could start"
        if why is not None:
            if acquired:
                slots.release()
            self.state.fire("revoke")
            error = TaskError(type="celery_actors.TaskRevoked", message=why)
            self.answered = True
            self.worker.finished(call, self._result("revoked", error=error))
            self.stop()
            return
        try:
            await self._execute_in_slot()
        finally:
            slots.release()

    async def _execute_in_slot(self) -> None:
        call, task = self.call, self.task
        self.state.fire("start")
        ended = False
        value: Any = None
        # The time-limit scopes only where a limit is set: a scope costs as much as a
        # short body, and most tasks have none.
        hard = self.hard if task.time_limit is not None else _NO_SCOPE
        soft, guard = (
            (self.soft, self.guard) if task.soft_time_limit is not None else (_NO_SCOPE, _NO_SCOPE)
        )
        try:
            with (
                self.scope,
                hard,
                soft,
                guard,
                self.worker.app._calling_through(self.worker.client),
            ):
                value = await _FirstWait(self._call(), self._started)
                ended = True
        except Exception as exc:
            result = self._failure(exc, retry=not _is_soft_limit(exc))
        else:
            if ended:
                self.state.fire("succeed")
                result = self._result("succeeded", value=value)
            elif self.stopping:
                return  # the asks were failed in on_stop
            else:
                result = self._cancelled()
        self.answered = True
        self.worker.finished(call, result)
        self.stop()

    def _started(self) -> None:
        """The body waits for the first time: the router learns that it runs. (A body
        that ends without waiting goes straight to its end state, one message fewer.)"""
        worker = self.worker
        try:
            worker._report(TaskStarted(self.call.id, worker.ref.address))
        except (JumpstarterError, OSError) as exc:  # the body runs on; its end is told later
            _logger.warning("could not tell the router %s: %s", worker.router.address, exc)

    def _cancelled(self) -> TaskResult:
        """The result of a run that one of its scopes cancelled."""
        task = self.task
        if self.scope.cancel_called:
            self.state.fire("revoke")
            why = TaskError(type="celery_actors.TaskRevoked", message="terminated while running")
            return self._result("revoked", error=why)
        if self.hard.cancel_called or self.guard.cancel_called:
            error: Exception = TimeLimitExceeded(
                f"{task.name} ran past its time_limit={task.time_limit} s"
            )
        else:  # the soft scope cancelled tasks the body had started in its nurseries
            error = SoftTimeLimitExceeded(
                f"{task.name} ran past its soft_time_limit={task.soft_time_limit} s"
            )
        return self._failure(error, retry=False)

    async def _call(self) -> Any:
        call, task = self.call, self.task
        if task.boxed:
            return await self.worker.boxes.run(task, call, on_started=self._box_started)
        self._arm_limits()
        if task.is_async:
            coro: Coroutine[Any, Any, Any] = task.fn(*call.args, **call.kwargs)  # type: ignore[assignment]
            if task.soft_time_limit is None:
                return await coro
            return await _SoftLimitRelay(
                coro,
                self.soft,
                self.guard,
                may_fire=self._soft_limit_may_fire,
                hard_deadline=lambda: self.hard.deadline,
                message=f"{task.name} ran past its soft_time_limit={task.soft_time_limit} s",
            )
        thread = _ThreadInterrupt()
        self.interrupt = thread.interrupt
        return await trio.to_thread.run_sync(
            functools.partial(thread.run, functools.partial(task.fn, *call.args, **call.kwargs)),
            limiter=self.worker.threads,
            abandon_on_cancel=True,
        )

    def _box_started(self, interrupt: Callable[[], None]) -> None:
        self.interrupt = interrupt
        self._arm_limits()

    def _soft_limit_may_fire(self) -> bool:
        """Whether a cancellation seen now is the soft limit's alone (not also a
        revocation, the hard limit or the worker stopping)."""
        return not (
            self.stopping
            or self.scope.cancel_called
            or self.hard.cancel_called
            or self.guard.cancel_called
        )

    def _retry_policy(self) -> RetryPolicy:
        """The task's retry policy; a chunk (:data:`STARMAP_TASK`) retries by the policy
        of the task it runs."""
        call = self.call
        if call.task == STARMAP_TASK and call.args and isinstance(call.args[0], str):
            target = self.worker.app.tasks.get(call.args[0])
            if target is not None:
                return target.retry
        return self.task.retry

    def _failure(self, error: Exception, *, retry: bool) -> TaskResult:
        info = TaskError.from_exception(error)
        decision = decide(error, self.call.attempt, self._retry_policy()) if retry else None
        if decision is not None and decision.retry_in is not None:
            self.state.fire("retry")
            return self._result("retrying", error=info, retry_in=decision.retry_in)
        self.state.fire("fail")
        quarantined = decision.quarantine if decision is not None else False
        return self._result("failed", error=info, quarantined=quarantined)

    def _result(self, state: TaskState, **fields: Any) -> TaskResult:
        return TaskResult.of(
            self.call, state, wall_time(), worker=self.worker.ref.address, **fields
        )


_NO_SCOPE: Final = contextlib.nullcontext()


def _is_soft_limit(error: BaseException) -> bool:
    """An uncaught :class:`SoftTimeLimitExceeded`, alone or in an exception group."""
    if isinstance(error, BaseExceptionGroup):
        return error.subgroup(SoftTimeLimitExceeded) is not None
    return isinstance(error, SoftTimeLimitExceeded)


class _FirstWait:
    """Awaits ``coro``, calling ``on_wait()`` once, when it first waits (yields to
    trio); a coroutine that ends without waiting never calls it.

    It is the iterator of its own ``await``: values, exceptions and the result pass
    through to and from ``coro`` unchanged, and it shows ``coro``'s frame and what
    ``coro`` awaits as its own (``cr_frame``, ``cr_await``), so that whoever walks a
    task's awaits (trio's ``Task.iter_await_frames``) sees through it.
    """

    __slots__ = ("coro", "on_wait", "waited")

    def __init__(self, coro: Coroutine[Any, Any, Any], on_wait: Callable[[], None]) -> None:
        self.coro = coro
        self.on_wait = on_wait
        self.waited = False

    def __await__(self) -> _FirstWait:
        return self

    def __iter__(self) -> _FirstWait:
        return self

    def __next__(self) -> Any:
        return self.send(None)

    def send(self, value: Any) -> Any:
        yielded = self.coro.send(value)  # its StopIteration carries the result
        if not self.waited:
            self.waited = True
            self.on_wait()
        return yielded

    def throw(self, *error: Any) -> Any:
        return self.coro.throw(*error)

    def close(self) -> None:
        self.coro.close()

    @property
    def cr_frame(self) -> Any:
        return cast("types.CoroutineType[Any, Any, Any]", self.coro).cr_frame

    @property
    def cr_await(self) -> Any:
        return cast("types.CoroutineType[Any, Any, Any]", self.coro).cr_await


# -- soft time limits


class _SoftLimitRelay:
    """Drives ``coro`` for trio, turning the soft scope's cancellation into
    :class:`SoftTimeLimitExceeded` (see the module docstring).

    trio resumes a task's coroutine by sending it an :class:`outcome.Outcome`; a
    cancellation is ``outcome.Error(trio.Cancelled)``. The relay passes every yield and
    every resumption through unchanged, except the first cancellation after ``soft``
    has fired (when ``may_fire()`` agrees): that one becomes
    ``outcome.Error(SoftTimeLimitExceeded(message))``, and ``guard`` (a scope between
    ``soft`` and the body) is shielded and given the hard limit's deadline
    (``hard_deadline()``), so the body's cleanup runs, bounded by the hard limit.
    """

    def __init__(
        self,
        coro: Coroutine[Any, Any, Any],
        soft: trio.CancelScope,
        guard: trio.CancelScope,
        *,
        may_fire: Callable[[], bool],
        message: str,
        hard_deadline: Callable[[], float] | None = None,
    ) -> None:
        self.coro = coro
        self.soft = soft
        self.guard = guard
        self.may_fire = may_fire
        self.message = message
        self.hard_deadline = hard_deadline
        self.fired = False

    def __await__(self) -> Generator[Any, Any, Any]:
        coro = self.coro
        send: Any = None
        throw: BaseException | None = None
        while True:
            try:
                yielded = coro.send(send) if throw is None else coro.throw(throw)
            except StopIteration as stop:
                return stop.value
            send, throw = None, None
            try:
                send = yield yielded
            except BaseException as exc:  # trio throws into a task after a foreign await
                throw = exc
                continue
            if self._is_soft_cancellation(send):
                self.fired = True
                self.guard.shield = True
                if self.hard_deadline is not None:
                    self.guard.deadline = self.hard_deadline()
                send = outcome.Error(SoftTimeLimitExceeded(self.message))

    def _is_soft_cancellation(self, resumed: Any) -> bool:
        return (
            not self.fired
            and isinstance(resumed, outcome.Error)
            and isinstance(resumed.error, trio.Cancelled)
            and self.soft.cancel_called
            and self.may_fire()
        )


async def run_soft_limited(
    coro: Coroutine[Any, Any, Any],
    soft: trio.CancelScope,
    guard: trio.CancelScope,
    *,
    message: str,
    may_fire: Callable[[], bool] = lambda: True,
    hard_deadline: Callable[[], float] | None = None,
) -> Any:
    """Await ``coro`` with ``soft`` as its soft time limit: enter ``soft`` then
    ``guard`` around this call; cancelling ``soft`` (or its deadline passing) raises
    :class:`SoftTimeLimitExceeded` at the body's next checkpoint, once."""
    return await _SoftLimitRelay(
        coro, soft, guard, may_fire=may_fire, message=message, hard_deadline=hard_deadline
    )


class _ThreadInterrupt:
    """Raises :class:`SoftTimeLimitExceeded` in the thread running a ``def`` body.

    ``PyThreadState_SetAsyncExc`` makes the exception arrive between two bytecodes of
    that thread: not inside a blocking C call (``time.sleep``, a socket read), only once
    it returns. It is sent at most once, and only while the body runs: the thread comes
    from a pool and goes on to other work afterwards, so a pending exception is
    withdrawn when the body ends, under the same lock.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._thread: int | None = None
        self._expired = False  # the soft limit passed before the body started
        self._sent = False

    def interrupt(self) -> None:
        """The soft limit passed (called from trio)."""
        with self._lock:
            self._expired = True
            if self._thread is not None and not self._sent:
                self._sent = True
                _set_async_exc(self._thread, SoftTimeLimitExceeded)

    def run(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` in this thread, interruptible (called in the worker thread)."""
        result: outcome.Outcome[Any] | None = None
        try:
            with self._lock:
                self._thread = threading.get_ident()
                expired = self._expired
            if expired:
                raise SoftTimeLimitExceeded()
            result = outcome.capture(fn)
        except SoftTimeLimitExceeded as exc:  # it arrived around the body, not in it
            if result is None:
                result = outcome.Error(exc)
        finally:
            while True:  # the exception may arrive while withdrawing it: then again
                try:
                    self._withdraw()
                    break
                except SoftTimeLimitExceeded:
                    continue
        assert result is not None
        return result.unwrap()

    def _withdraw(self) -> None:
        with self._lock:
            thread, self._thread = self._thread, None
            if thread is not None and self._sent:
                _set_async_exc(thread, None)


def _set_async_exc(thread: int, error: type[BaseException] | None) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread), ctypes.py_object(error) if error is not None else None
    )
