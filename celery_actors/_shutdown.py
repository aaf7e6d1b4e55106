"""A worker's operations: pausing, and warm and cold shutdown.

Warm shutdown (SIGTERM under ``jumpstart run``, the end of a graceful
:meth:`ActorSystem.shutdown` when the worker was started with ``warm_shutdown``, or
the ``shutdown`` control command):

1. the worker stops taking calls: the router is told it has no free slot, and the
   announcements stop;
2. the calls it holds that have not started (waiting for a slot: the router's state
   ``received``) go back to the router, which sends them to another worker;
3. the running calls may finish until the deadline; their results are stored as usual;
4. past the deadline, the calls still running are stopped and go back to the router,
   which runs them again elsewhere.

Cold shutdown (a second signal, or ``shutdown(cold=True)``) skips step 3: every call
goes back to the router at once.

A call goes back to the router by stopping its task actor: the router's ``Run`` ask
then fails with :class:`~jumpstarter.ActorStopped`, and the router sends the call to
another worker (as when a worker dies). Under a graceful system shutdown the warm
shutdown runs as a hook of :meth:`ActorSystem.on_shutdown`, while every actor and the
network are still up, and ends a little before the system's own deadline so that the
calls stopped at step 4 reach the router.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Literal

import trio

from jumpstarter import Actor, ActorRef, ActorStopped, JumpstarterError

from ._bootsteps import Boot, BootStep, WorkerContext, order_steps
from ._clock import wall_time
from ._protocol import GetState, Terminate, WorkerUp

if TYPE_CHECKING:
    from ._app import App
    from ._worker import Worker

__all__ = ["MARGIN", "AnnounceStep", "PoolStep", "WorkerOps", "WorkerState", "builtin_steps"]

_logger = logging.getLogger("celery_actors.worker")

WorkerState = Literal["booting", "running", "paused", "stopping"]

MARGIN = 1.0
"""Seconds (at most; a tenth of the time left for shorter deadlines) a warm shutdown
under a system shutdown leaves before the system's deadline, to hand the calls still
running back to the router."""

_ASK = 1.0  # seconds for the router to answer the worker during a shutdown (a router
# that does not answer in time learns later: a call it sends then is refused and goes
# elsewhere)


class WorkerOps:
    """The operations side of one worker: its boot steps, its state, pausing and
    shutting down. Made by :meth:`App.start_worker`, started by the worker."""

    def __init__(
        self,
        app: App,
        steps: Sequence[BootStep],
        *,
        warm_shutdown: bool = False,
        shutdown_timeout: float | None = None,
    ) -> None:
        self.app = app
        self.boot = Boot(order_steps(builtin_steps(), steps))
        self.warm_shutdown = warm_shutdown
        self.shutdown_timeout = shutdown_timeout
        self.state: WorkerState = "booting"
        self.started = 0.0
        self._worker: Worker | None = None
        self._paused = False
        self._resumed = trio.Event()
        self._announcing: trio.CancelScope | None = None
        self._cold = trio.CancelScope()
        self._shutting_down = False
        self._remove_hook: Callable[[], None] | None = None

    @property
    def worker(self) -> Worker:
        assert self._worker is not None, "the worker has not started"
        return self._worker

    def start(self, worker: Worker) -> None:
        """Boot the worker's steps (called in the worker's ``on_start``)."""
        self._worker = worker
        self.started = wall_time()
        context = WorkerContext(
            app=self.app, system=worker.system, worker=worker.ref, router=worker.router, ops=self
        )
        if self.warm_shutdown:
            self._remove_hook = worker.system.on_shutdown(self._on_system_shutdown)
        worker.start_task(self._boot, worker, context)

    async def _boot(self, worker: Worker, context: WorkerContext) -> None:
        await self.boot.run(worker, context)

    async def wait_booted(self) -> None:
        """Return once every mandatory step is up.

        Raises:
            BootStepFailed: one of them failed to start.
        """
        await self.boot.booted.wait()
        if self.boot.failure is not None:
            raise self.boot.failure

    @property
    def uptime(self) -> float:
        return max(0.0, wall_time() - self.started) if self.started else 0.0

    # -- taking calls (the announce step)

    async def announce(self) -> None:
        """Tell the router the worker takes calls, again every few seconds, except while
        paused or shutting down (a task of the announce step)."""
        if self.state == "booting":
            self.state = "running"
        while True:
            if self._paused:
                await self._resumed.wait()
                continue
            with trio.CancelScope() as self._announcing:
                await self.worker._announce()

    async def pause(self) -> None:
        """Take no new calls: the router is told the worker has no free slot."""
        if not self._paused:
            self._paused = True
            self._resumed = trio.Event()
            if self._announcing is not None:
                self._announcing.cancel()
        if self.state == "running":
            self.state = "paused"
        await self._tell_no_slot()

    def resume(self) -> None:
        """Take calls again (not during a shutdown)."""
        if self._shutting_down:
            return
        self._paused = False
        self._resumed.set()
        if self.state == "paused":
            self.state = "running"

    async def _tell_no_slot(self) -> None:
        worker = self.worker
        offer = WorkerUp(address=worker.ref.address, capacity=0, tasks=sorted(self.app.tasks))
        try:
            await worker.router.ask(offer, timeout=_ASK)
        except ActorStopped:
            pass  # the router stopped (before the worker): it sends nothing more
        except (JumpstarterError, OSError) as exc:
            _logger.warning("could not tell the router %s: %s", worker.router.address, exc)

    # -- shutting down

    def shutdown(self, *, cold: bool, timeout: float | None) -> None:
        """Shut the worker down (the ``shutdown`` control command): warm, or cold;
        then stop the worker actor."""
        if cold:
            self._cold.cancel()
        if self._shutting_down:
            return
        if timeout is None:
            timeout = self.shutdown_timeout
        if timeout is None:
            timeout = self.worker.system.shutdown_timeout
        deadline = trio.current_time() + timeout
        self.worker.start_task(self._shutdown_then_stop, deadline)

    async def _shutdown_then_stop(self, deadline: float) -> None:
        await self.drain(deadline)
        self.worker.stop()

    async def _on_system_shutdown(self) -> None:
        deadline = trio.current_effective_deadline()
        left = deadline - trio.current_time()
        await self.drain(deadline - min(MARGIN, left / 10))

    async def drain(self, deadline: float) -> None:
        """The warm shutdown of the module docstring, until ``deadline`` (trio's clock)."""
        if self._shutting_down:
            return
        self._shutting_down = True
        self.forget_hook()
        self.state = "stopping"
        worker = self.worker
        _logger.info(
            "worker %s: warm shutdown; %d calls held", worker.ref.address, len(worker.runs)
        )
        await self.pause()
        self.state = "stopping"
        with self._cold:
            await self._hand_back_unstarted()
            with trio.move_on_at(deadline):
                await self._wait_until_idle()
        await self.hand_back_all()

    def forget_hook(self) -> None:
        remove, self._remove_hook = self._remove_hook, None
        if remove is not None:
            remove()

    async def _hand_back_unstarted(self) -> None:
        worker = self.worker
        unstarted: list[ActorRef] = []
        for (id_, _), running in list(worker.runs.items()):
            try:
                state = await worker.router.ask(GetState(id_), timeout=_ASK)
            except (JumpstarterError, OSError):
                continue  # unknown: it may run here
            if state == "received":
                unstarted.append(running.run)
        await self._stop_runs(unstarted)

    async def _wait_until_idle(self) -> None:
        worker = self.worker
        while worker.runs:
            running = next(iter(worker.runs.values()))
            await worker.system.wait_for_state(running.run, "stopped")

    async def hand_back_all(self) -> None:
        """Stop every call's task actor: the router sends them to other workers."""
        worker = self.worker
        refs = [running.run for running in worker.runs.values()]
        if refs:
            _logger.warning(
                "worker %s: %d calls go back to the router", worker.ref.address, len(refs)
            )
        await self._stop_runs(refs)

    async def _stop_runs(self, refs: Sequence[ActorRef]) -> None:
        system = self.worker.system
        async with trio.open_nursery() as nursery:
            for ref in refs:
                nursery.start_soon(system.stop, ref)

    async def terminate(self, id_: str) -> bool:
        """Cancel the running call ``id_`` (it ends ``revoked``); ``False`` if the
        worker does not hold it."""
        worker = self.worker
        if not any(key[0] == id_ for key in worker.runs):
            return False
        await worker.ref.tell(Terminate(id_))
        return True


class AnnounceStep(Actor):
    """The built-in step ``announce``: the worker takes calls while it runs."""

    def __init__(self, context: WorkerContext) -> None:
        self.ops = context.ops

    def on_start(self) -> None:
        self.start_task(self.ops.announce)

    async def on_stop(self) -> None:
        await self.ops.pause()


class PoolStep(Actor):
    """The built-in step ``pool``: when it stops, the calls the worker still holds go
    back to the router, and the processes for boxed tasks are closed."""

    def __init__(self, context: WorkerContext) -> None:
        self.ops = context.ops

    async def on_stop(self) -> None:
        self.ops.forget_hook()
        await self.ops.hand_back_all()
        await self.ops.worker.boxes.aclose()


def builtin_steps() -> list[BootStep]:
    """The built-in steps, in the order they start."""
    from ._control import Control

    return [
        BootStep("control", Control),
        BootStep("pool", PoolStep, requires=("control",)),
        BootStep("announce", AnnounceStep, requires=("pool",)),
    ]
