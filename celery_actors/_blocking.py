"""Calling tasks from code that is not async: a client whose trio run lives in a thread.

A Django or Flask view, a script or a notebook cell cannot ``await``. A
:class:`BlockingClient` starts a daemon thread that runs ``trio.run``; there the app's
async client (:meth:`App.connect` or :meth:`App.local`) is opened with ``default=False``,
so that it never becomes the default client of async code in another trio run (calling
the actors of one trio run from another is invalid). The thread then waits for
:meth:`BlockingClient.close`.

Each blocking method hands a coroutine to that run with ``trio.from_thread.run``, which is
safe from any number of threads at once, and re-raises whatever the coroutine raised: a
blocking call fails with the same exception classes as its async counterpart. Each such
coroutine runs in a cancel scope the client keeps, so that closing cancels the calls
still waiting (they raise :class:`NotConnected`) before the async client and its actor
system close.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, Unpack, final

import trio

from ._errors import BlockingCallInTrio, NotConnected

if TYPE_CHECKING:
    from ._app import App, AsyncResult, Client, Task
    from ._calls import CallOptions
    from ._protocol import TaskResult

__all__ = ["BlockingClient", "BlockingResult", "open_blocking_client"]

P = ParamSpec("P")
T = TypeVar("T")


def _refuse_in_trio(what: str) -> None:
    if trio.lowlevel.in_trio_run():
        raise BlockingCallInTrio(
            f"{what} blocks, and this code runs in a trio run, which it would stop: in "
            "async code use the async API ('await task.delay(...)' inside "
            "'async with app.connect():' or 'async with app.local():'), or call "
            "blocking code from a thread with trio.to_thread.run_sync"
        )


@final
class BlockingClient:
    """A client of an app's router for code that is not async: every method blocks.

    Made by :meth:`App.connect_blocking` (a router in another process) or
    :meth:`App.local_blocking` (a router and workers in this process). Use it as a
    context manager, or keep it for the life of the program and call :meth:`close`
    at the end; it may be used from several threads at once. Its methods raise
    :class:`BlockingCallInTrio` inside a trio run: async code uses the async API.

    Example::

        with app.connect_blocking(router="10.0.0.5:5780") as client:
            result = client.delay(add, 2, 3)
            assert result.get(timeout=10) == 5

    Attributes:
        app: the app whose tasks it calls.
    """

    def __init__(
        self, app: App, open_client: Callable[[], AbstractAsyncContextManager[Client]]
    ) -> None:
        self.app = app
        self._open_client = open_client
        self._client: Client | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._ready = threading.Event()
        self._close_lock = threading.Lock()
        self._closed = False
        self._error: BaseException | None = None
        self._accepting = False
        self._calls: set[trio.CancelScope] = set()
        self._close_requested: trio.Event | None = None
        self._calls_done: trio.Event | None = None
        self._thread = threading.Thread(
            target=self._run, name=f"celery_actors client of {app.name}", daemon=True
        )

    def __repr__(self) -> str:
        return f"<BlockingClient of app {self.app.name!r}{' (closed)' if self._closed else ''}>"

    def __enter__(self) -> BlockingClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called (or the client's trio run ended)."""
        return self._closed or not self._thread.is_alive()

    def close(self) -> None:
        """Close the async client in the background thread and wait for the thread.

        Calls still waiting in other threads raise :class:`NotConnected`. Closing
        again does nothing.

        Raises:
            Exception: whatever closing the async client raised.
        """
        _refuse_in_trio("BlockingClient.close()")
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
            if self._token is not None and self._close_requested is not None:
                # RunFinishedError: the run ended on its own; its error is raised below.
                with contextlib.suppress(trio.RunFinishedError):
                    trio.from_thread.run_sync(self._close_requested.set, trio_token=self._token)
            self._thread.join()
            error, self._error = self._error, None
        if error is not None:
            raise error

    # -- calls

    def delay(self, task: Task[P, Any], /, *args: P.args, **kwargs: P.kwargs) -> BlockingResult:
        """Run ``task`` on a worker with these arguments; see :meth:`apply_async`."""
        return self.apply_async(task, args, kwargs)

    def apply_async(
        self,
        task: Task[..., Any],
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
        **options: Unpack[CallOptions],
    ) -> BlockingResult:
        """Send a call of ``task`` to the router; return its result handle once the
        router holds it. The options are those of :class:`CallOptions`.

        Raises:
            NotConnected: the client is closed.
            ValueError: ``task`` belongs to another app.
        """
        if task.app is not self.app:
            raise ValueError(
                f"{task!r} is a task of app {task.app.name!r}, and this client calls app "
                f"{self.app.name!r}: call it through a client of its own app"
            )
        make_call = functools.partial(task.make_call, args, kwargs, **options)
        result = self._call("BlockingClient.apply_async()", self._submit, make_call)
        return BlockingResult(self, result)

    def result(self, task_id: str, task: str = "") -> BlockingResult:
        """The handle of a call sent earlier, maybe by another process."""
        return BlockingResult(self, self._live_client().result(task_id, task))

    async def _submit(self, make_call: Callable[[], Any]) -> AsyncResult:
        # The call is made in the trio run: its times follow that run's clock.
        return await self._live_client().submit(make_call())

    def _start(self) -> None:
        self._thread.start()
        self._ready.wait()
        if not self._accepting:  # the run ended before it accepted calls
            self._thread.join()
            self._closed = True
            error, self._error = self._error, None
            assert error is not None
            raise error

    def _live_client(self) -> Client:
        if self._closed or self._client is None:
            raise self._not_connected()
        return self._client

    def _not_connected(self, detail: str = "is closed") -> NotConnected:
        return NotConnected(
            f"the blocking client of app {self.app.name!r} {detail}: open another with "
            "app.connect_blocking() or app.local_blocking()"
        )

    def _call(self, what: str, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """``await fn(*args)`` in the client's trio run, from this thread."""
        _refuse_in_trio(what)
        token = self._token
        if self._closed or token is None:
            raise self._not_connected()
        try:
            return trio.from_thread.run(self._guarded, fn, *args, trio_token=token)
        except trio.RunFinishedError:
            raise self._not_connected(f"stopped ({self._error!r})") from None

    async def _guarded(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        if not self._accepting:
            raise self._not_connected()
        with trio.CancelScope() as scope:
            self._calls.add(scope)
            try:
                return await fn(*args)
            finally:
                self._calls.discard(scope)
                if not self._calls and self._calls_done is not None:
                    self._calls_done.set()
        raise self._not_connected("was closed while the call waited")

    # -- the background thread

    def _run(self) -> None:
        try:
            trio.run(self._serve)
        except BaseException as exc:  # re-raised by _start() or close(), in their thread
            self._error = exc
        finally:
            self._ready.set()

    async def _serve(self) -> None:
        self._close_requested = trio.Event()
        async with self._open_client() as client:
            self._client = client
            self._token = trio.lowlevel.current_trio_token()
            self._accepting = True
            self._ready.set()
            try:
                await self._close_requested.wait()
            finally:
                self._accepting = False
                for scope in self._calls:
                    scope.cancel()
                while self._calls:
                    self._calls_done = trio.Event()
                    with trio.CancelScope(shield=True):
                        await self._calls_done.wait()


def open_blocking_client(
    app: App, open_client: Callable[[], AbstractAsyncContextManager[Client]]
) -> BlockingClient:
    """Enter ``open_client()`` in a new thread's trio run; return a :class:`BlockingClient`
    of the client it opens, once it is open (what :meth:`App.connect_blocking` and
    :meth:`App.local_blocking` do).

    Raises:
        BlockingCallInTrio: called inside a trio run.
        Exception: whatever opening the async client raised.
    """
    _refuse_in_trio(f"opening a blocking client of app {app.name!r}")
    client = BlockingClient(app, open_client)
    client._start()
    return client


@final
class BlockingResult:
    """The handle of a call made through a :class:`BlockingClient`: like
    :class:`AsyncResult`, with methods that block.

    Its methods raise the errors of :class:`AsyncResult`'s (:class:`TaskFailed`,
    :class:`TaskRevoked`, :class:`ResultTimeout`), and :class:`NotConnected` once its
    client is closed.
    """

    def __init__(self, client: BlockingClient, result: AsyncResult) -> None:
        self.client = client
        self._result = result

    def __repr__(self) -> str:
        return f"<BlockingResult {self.task or '?'}[{self.id}] {self.state}>"

    @property
    def id(self) -> str:
        """The call's id."""
        return self._result.id

    @property
    def task(self) -> str:
        """The task's name (empty for a handle made from an id alone)."""
        return self._result.task

    @property
    def state(self) -> str:
        """The last state seen (``pending`` until one was fetched)."""
        return self._result.state

    @property
    def document(self) -> TaskResult | None:
        """The final :class:`TaskResult`, once :meth:`wait` or :meth:`get` saw it."""
        return self._result.document

    def get(self, timeout: float | None = None) -> Any:
        """Wait for the call to finish and return its value (``None``: no time limit).

        Raises:
            TaskFailed: it failed (for good, after its retries).
            TaskRevoked: it was revoked or expired.
            ResultTimeout: it did not finish in time (it may still finish later).
        """
        return self.client._call("BlockingResult.get()", self._result.get, timeout)

    def wait(self, timeout: float | None = None) -> TaskResult:
        """Wait for the call's final :class:`TaskResult`, whatever the outcome.

        Raises:
            ResultTimeout: it did not finish in time (it may still finish later).
        """
        return self.client._call("BlockingResult.wait()", self._result.wait, timeout)

    def refresh(self) -> str:
        """Ask the router for the call's state now, keep it in :attr:`state`, return it."""
        return self.client._call("BlockingResult.refresh()", self._result.refresh)

    def revoke(self, *, terminate: bool = False) -> bool:
        """Do not run the call; with ``terminate``, cancel it if it is running.

        Returns ``True`` if the call will not run (or was cancelled), ``False`` if it
        had finished already, or is running and ``terminate`` is false.
        """
        revoke = functools.partial(self._result.revoke, terminate=terminate)
        return self.client._call("BlockingResult.revoke()", revoke)
