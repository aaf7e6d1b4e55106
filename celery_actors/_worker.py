"""The worker: runs calls its router sends, each in a task actor of its own.

A :class:`Worker` registers with its router when it starts, saying how many calls it
runs at once; the router never sends more. Each call becomes a :class:`TaskRun` child
whose state machine says where the call is (``received → running → succeeded |
failed | retrying | revoked``) and whose answer to the router's ask is the call's
:class:`TaskResult`.
"""

from __future__ import annotations

import functools
import logging
from typing import TYPE_CHECKING, Any

import attrs
import trio

from jumpstarter import (
    Actor,
    ActorRef,
    ActorStopped,
    JumpstarterError,
    PendingReply,
    StateMachine,
    handler,
)

from ._clock import wall_time
from ._errors import TimeLimitExceeded
from ._protocol import (
    Run,
    TaskCall,
    TaskError,
    TaskResult,
    TaskStarted,
    TaskState,
    Terminate,
    WorkerUp,
)
from ._retry import decide

if TYPE_CHECKING:
    from ._app import App, Task

__all__ = ["TASK_STATES", "TaskRun", "Worker"]

_logger = logging.getLogger("celery_actors.worker")

_ANNOUNCE_EVERY = 2.0  # seconds between two WorkerUp to the router
_RETRY_FIRST = 0.1  # seconds before trying again to reach the router, doubled each time

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


@attrs.frozen
class _Cancel:
    """Stop running the call: it was revoked with ``terminate``."""


class Worker(Actor):
    """Runs up to ``concurrency`` calls at once for ``router``; ``def`` tasks run in
    threads, at most ``threads`` at once."""

    def __init__(self, app: App, router: ActorRef, concurrency: int, threads: int) -> None:
        if concurrency < 1 or threads < 1:
            raise ValueError("a worker needs concurrency >= 1 and threads >= 1")
        self.app = app
        self.router = router
        self.concurrency = concurrency
        self.threads = trio.CapacityLimiter(threads)
        self.runs: dict[str, ActorRef] = {}

    def on_start(self) -> None:
        self.start_task(self._announce)

    async def _announce(self) -> None:
        """Tell the router this worker is up, again every few seconds: a router that
        restarted (or was not up yet) learns of it that way."""
        offer = WorkerUp(
            address=self.ref.address, capacity=self.concurrency, tasks=sorted(self.app.tasks)
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
        call = msg.call
        pending = self.reply_later()
        task = self.app.tasks.get(call.task)
        if task is None:
            why = TaskError(
                type="celery_actors.TaskNotRegistered",
                message=f"no task named {call.task!r} on this worker",
            )
            pending.succeed(
                TaskResult.of(call, "failed", wall_time(), error=why, worker=self.ref.address)
            )
            return
        self.runs[call.id] = self.spawn_soon(functools.partial(TaskRun, self, task, call, pending))

    @handler
    async def terminate(self, msg: Terminate) -> None:
        run = self.runs.get(msg.id)
        if run is not None:
            await run.tell(_Cancel())

    def finished(self, call: TaskCall) -> None:
        self.runs.pop(call.id, None)


class TaskRun(Actor):
    """One call of a task on a worker; it stops once it has answered."""

    state = TASK_STATES

    def __init__(self, worker: Worker, task: Task[Any, Any], call: TaskCall, pending: PendingReply):
        self.worker = worker
        self.task = task
        self.call = call
        self.pending = pending
        self.scope = trio.CancelScope()

    def on_start(self) -> None:
        self.start_task(self._execute)

    def on_stop(self) -> None:
        self.worker.finished(self.call)
        if not self.pending.done:  # stopped before the end: the router sends it elsewhere
            self.pending.fail(ActorStopped(f"the worker stopped while running {self.call.id}"))

    @handler
    def cancel(self, msg: _Cancel) -> None:
        self.scope.cancel()

    async def _execute(self) -> None:
        call, task = self.call, self.task
        self.state.fire("start")
        await self.worker.router.tell(TaskStarted(call.id, self.worker.ref.address))
        try:
            with self.scope:
                with trio.fail_after(task.time_limit or float("inf")):
                    value = await self._call()
        except trio.TooSlowError:
            error = TimeLimitExceeded(f"{task.name} ran past its time_limit={task.time_limit} s")
            result = self._failure(error, retry=False)
        except Exception as exc:
            result = self._failure(exc, retry=True)
        else:
            if self.scope.cancelled_caught:
                self.state.fire("revoke")
                why = TaskError(
                    type="celery_actors.TaskRevoked", message="terminated while running"
                )
                result = self._result("revoked", error=why)
            else:
                self.state.fire("succeed")
                result = self._result("succeeded", value=value)
        self.pending.succeed(result)
        self.stop()

    async def _call(self) -> Any:
        call, task = self.call, self.task
        if task.is_async:
            return await task.fn(*call.args, **call.kwargs)
        return await trio.to_thread.run_sync(
            functools.partial(task.fn, *call.args, **call.kwargs),
            limiter=self.worker.threads,
            abandon_on_cancel=True,
        )

    def _failure(self, error: Exception, *, retry: bool) -> TaskResult:
        info = TaskError.from_exception(error)
        decision = decide(error, self.call.attempt, self.task.retry) if retry else None
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
