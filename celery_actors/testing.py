"""Deterministic tests of tasks: an app's router and workers inside the test's trio run.

:func:`run_app` starts the app with :meth:`App.local <celery_actors.App.local>`: the same
router, workers and task actors as separate processes, linked in memory instead of over
sockets. Every time they read (countdowns, etas, retry backoff, time limits) follows
trio's clock, so under ``trio.testing.MockClock(autojump_threshold=0)`` (pytest-trio's
``autojump_clock`` fixture) an hour of backoff takes no real time.

A ``def`` task runs in a thread, and a thread's work is invisible to trio: with nothing
else to do, an autojump clock would race ahead while the thread works, and time limits
and timeouts would expire in a few real milliseconds. So under a MockClock the harness
holds the clock still (no autojump) while any task waits for a thread: a ``def`` task's
run, or a file sink's write, takes no virtual time, however long its thread works.

The :class:`Harness` it yields records each call sent through the app's client while it
runs, whoever sends it: the test, the code under test, or a task calling another task.
:meth:`Harness.drain` waits until every recorded call is final and returns the results,
in the order the calls were sent::

    async with run_app(app) as harness:
        await place_order("order-7")  # code that calls tasks
        results = await harness.drain()
        assert [r.state for r in results] == ["succeeded", "succeeded"]
        (charge,) = harness.results_of(charge_card)
        assert charge.attempt == 2  # it ran three times

The pytest fixtures built on it are in ``celery_actors.pytest_plugin``; the guide is
``docs/testing.md``.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import TYPE_CHECKING, Any, final

import trio
import trio.testing

from ._app import App, AsyncResult, Client, Task
from ._canvas_reference import Evaluation, evaluate
from ._clock import wall_time
from ._errors import CeleryActorsError, ResultTimeout
from ._protocol import TaskCall, TaskResult
from ._sinks import MemorySink, Sink

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy

    from ._canvas import Canvas, Signature

__all__ = [
    "DRAIN_TIMEOUT",
    "Evaluation",
    "Harness",
    "NotDrained",
    "canvases",
    "evaluate",
    "run_app",
]

DRAIN_TIMEOUT = 60.0
"""Seconds :meth:`Harness.drain` waits by default (virtual seconds under a MockClock)."""

_LISTED = 10  # calls named in a drain timeout's message
_IN_THREAD = trio.to_thread.run_sync.__code__


class NotDrained(CeleryActorsError, LookupError):
    """The harness has no final result for a call: it was not sent through the harness's
    client, or it was not final at the last :meth:`Harness.drain`.

    Call ``await harness.drain()`` before asking for results.
    """


@final
class Harness:
    """An app running in the test's trio run, and the calls sent to it (made by
    :func:`run_app`).

    Attributes:
        app: the app under test.
        client: the client its calls go through (``app.client()`` returns it while the
            harness runs).
        results: the sink the router stores final results in: a
            :class:`~celery_actors.MemorySink`, or the first of the sinks given to
            :func:`run_app`.
    """

    def __init__(self, app: App, client: Client, results: Sink) -> None:
        self.app = app
        self.client = client
        self.results = results
        self._calls: dict[str, TaskCall] = {}  # by id, in the order sent
        self._order: list[TaskCall] = []
        self._final: dict[str, TaskResult] = {}
        self._record_calls()

    def __repr__(self) -> str:
        return (
            f"<Harness of {self.app.name}: {len(self._calls)} calls, "
            f"{len(self._final)} final when last drained>"
        )

    def _record_calls(self) -> None:
        # Every call of the app goes through Client.submit, so wrapping this client's
        # method sees them all, without a change to the router or the workers.
        submit = self.client.submit

        async def submit_and_record(call: TaskCall) -> AsyncResult:
            result = await submit(call)
            if call.id not in self._calls:
                self._calls[call.id] = call
                self._order.append(call)
            return result

        self.client.submit = submit_and_record  # type: ignore[method-assign]

    @property
    def calls(self) -> list[TaskCall]:
        """Every call sent through :attr:`client`, in the order sent.

        A call sent again with the same id runs once, and is listed once (as first sent).
        """
        return list(self._order)

    def calls_of(self, task: Task[Any, Any] | str) -> list[TaskCall]:
        """The calls of ``task`` (a task or its name), in the order sent."""
        name = _task_name(task)
        return [call for call in self._order if call.task == name]

    async def drain(self, timeout: float = DRAIN_TIMEOUT) -> list[TaskResult]:
        """Wait until every call sent so far is final; return their results in the order
        the calls were sent.

        Calls sent while it waits (by tasks calling tasks, say) are waited for too. Each
        result is the router's final :class:`~celery_actors.TaskResult`: succeeded,
        failed (after the call's retries) or revoked; :attr:`TaskResult.attempt
        <celery_actors.TaskResult.attempt>` is the number of retries it took.

        Args:
            timeout: seconds to wait in all, in trio's time.

        Raises:
            ResultTimeout: some calls were not final in time; the message lists them
                with their states.
        """
        with trio.move_on_after(timeout):
            waited = 0
            while waited < len(self._order):  # grows if calls are sent meanwhile
                call = self._order[waited]
                if call.id not in self._final:
                    self._final[call.id] = await self.client.result(call.id, call.task).wait()
                waited += 1
            return [self._final[call.id] for call in self._order]
        raise ResultTimeout(await self._describe_unfinished(timeout))

    async def _describe_unfinished(self, timeout: float) -> str:
        unfinished = [call for call in self._order if call.id not in self._final]
        lines = []
        for call in unfinished[:_LISTED]:
            state = await self.client.result(call.id, call.task).refresh()
            lines.append(f"{call.task}[{call.id}]: {state}")
        if len(unfinished) > _LISTED:
            lines.append(f"and {len(unfinished) - _LISTED} more")
        return (
            f"{len(unfinished)} of the {len(self._calls)} calls sent through the harness "
            f"were not final after {timeout} s ({'; '.join(lines)}). Give drain() a longer "
            "timeout, check that enough workers run each task, or give a task that may "
            "hang a time_limit."
        )

    def result_of(self, call: AsyncResult | TaskCall | str) -> TaskResult:
        """The final result of ``call`` (its handle, its message or its id), as of the last
        :meth:`drain`.

        Raises:
            NotDrained: the call was not final at the last drain, or not sent through
                this harness.
        """
        call_id = call if isinstance(call, str) else call.id
        try:
            return self._final[call_id]
        except KeyError:
            sent = "sent" if call_id in self._calls else "never sent through this harness"
            raise NotDrained(
                f"the harness has no final result for call {call_id} ({sent}): "
                "await harness.drain() first, and call tasks while the harness runs"
            ) from None

    def results_of(self, task: Task[Any, Any] | str) -> list[TaskResult]:
        """The final results of every call of ``task`` (a task or its name), in the order
        the calls were sent, as of the last :meth:`drain`.

        Raises:
            NotDrained: one of them was not final at the last drain.
        """
        return [self.result_of(call.id) for call in self.calls_of(task)]

    def now(self) -> float:
        """The time calls see, in seconds since the epoch: an ``eta``, ``expires`` or a
        result's ``finished``.

        It follows trio's clock, so under a MockClock it moves with virtual time; compute
        an ``eta`` from it rather than from ``time.time()``.
        """
        return wall_time()


def _task_name(task: Task[Any, Any] | str) -> str:
    return task if isinstance(task, str) else task.name


class _ThreadWatch(trio.abc.Instrument):
    """Holds a MockClock still while trio tasks wait for threads (see the module
    docstring).

    After each step of a task, it looks whether the task now waits in
    ``trio.to_thread.run_sync``. While one does, the clock's autojump is off: trio then
    waits for the thread to report back instead of jumping to the next deadline.
    """

    def __init__(self, clock: trio.testing.MockClock) -> None:
        self.clock = clock
        self.in_thread: set[trio.lowlevel.Task] = set()
        self.threshold = clock.autojump_threshold
        self.users = 0  # harnesses running in this trio run

    def after_task_step(self, task: trio.lowlevel.Task) -> None:
        if any(frame.f_code is _IN_THREAD for frame, _ in task.iter_await_frames()):
            if not self.in_thread:
                self.threshold = self.clock.autojump_threshold
                self.clock.autojump_threshold = math.inf
            self.in_thread.add(task)
        else:
            self.task_exited(task)

    def task_exited(self, task: trio.lowlevel.Task) -> None:
        if task in self.in_thread:
            self.in_thread.discard(task)
            if not self.in_thread:
                self.clock.autojump_threshold = self.threshold

    def release(self) -> None:
        if self.in_thread:
            self.in_thread.clear()
            self.clock.autojump_threshold = self.threshold


_WATCH: trio.lowlevel.RunVar[_ThreadWatch | None] = trio.lowlevel.RunVar(
    "celery_actors_thread_watch", default=None
)


@contextlib.contextmanager
def _clock_held_for_threads() -> Iterator[None]:
    """Hold a MockClock still while tasks wait for threads, for the duration of the block;
    one watch serves every harness of the trio run."""
    clock = trio.lowlevel.current_clock()
    if not isinstance(clock, trio.testing.MockClock):
        yield
        return
    watch = _WATCH.get()
    if watch is None:
        watch = _ThreadWatch(clock)
        trio.lowlevel.add_instrument(watch)
        _WATCH.set(watch)
    watch.users += 1
    try:
        yield
    finally:
        watch.users -= 1
        if not watch.users:
            trio.lowlevel.remove_instrument(watch)
            watch.release()
            _WATCH.set(None)


@contextlib.asynccontextmanager
async def run_app(
    app: App,
    *,
    workers: int = 1,
    concurrency: int = 10,
    threads: int | None = None,
    sinks: Sequence[Sink] | None = None,
) -> AsyncIterator[Harness]:
    """Run ``app``'s router and ``workers`` workers in this trio run, for a test.

    The actors are those of :meth:`App.local <celery_actors.App.local>`, with no network;
    tasks called inside the block go to them. The block's end stops them: calls not
    final by then are abandoned.

    Args:
        workers: how many workers.
        concurrency: calls each worker runs at once.
        threads: of those, ``def`` tasks at once (``min(concurrency, 10)`` by default).
        sinks: where the router stores final results (a new
            :class:`~celery_actors.MemorySink` by default); they are closed at the end.

    Yields:
        the :class:`Harness`: the client, and the calls and results to assert on.

    Raises:
        TypeError: ``app`` is not a :class:`~celery_actors.App`.
    """
    if not isinstance(app, App):
        raise TypeError(
            f"run_app runs a celery_actors.App, not {app!r}; with pytest, return your App "
            "from a celery_app fixture in conftest.py (a Celery plugin's celery_app fixture "
            "has the same name)"
        )
    sinks = list(sinks) if sinks else [MemorySink()]
    with _clock_held_for_threads():
        async with app.local(
            workers=workers, concurrency=concurrency, threads=threads, sinks=sinks
        ) as client:
            yield Harness(app, client, sinks[0])


def canvases(
    sources: SearchStrategy[Signature],
    steps: SearchStrategy[Signature],
    **options: Any,
) -> SearchStrategy[Canvas]:
    """hypothesis strategy of random nested canvases built from these signatures
    (needs hypothesis): see ``docs/testing.md``. The options are ``joins``,
    ``handlers``, ``items``, ``max_depth``, ``max_members``, ``min_fanout`` and
    ``max_fanout``;
    ``sources`` run with no input, ``steps`` take one first."""
    from ._canvas_strategies import canvases as build

    return build(sources, steps, **options)
