"""The app: where tasks are declared, and the entry points that run its actors."""

from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect
import uuid
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, Generic, ParamSpec, TypeVar, overload

import attrs

from jumpstarter import (
    ActorRef,
    ActorSystem,
    AskTimeout,
    RemoteSettings,
    RunPlan,
    TypeRegistry,
)

from ._clock import wall_time
from ._errors import NotConnected, ResultTimeout, TaskFailed, TaskRevoked
from ._protocol import (
    MESSAGES,
    AwaitResult,
    GetState,
    Revoke,
    Submit,
    TaskCall,
    TaskResult,
)
from ._retry import DEFAULT_RETRY_POLICY, RetryPolicy
from ._sinks import MemorySink, Sink

__all__ = ["App", "AsyncResult", "Client", "Task"]

P = ParamSpec("P")
R = TypeVar("R")

DEFAULT_ROUTER = "127.0.0.1:5780"
"""Where the router listens unless the app says otherwise."""

ROUTER_PATH = "/user/router"
"""The router actor's path in its system."""

THREAD_WARNING = 10
"""More threads than this for CPU-bound tasks draws a warning: Python runs one at a time."""

_FOREVER = 365 * 24 * 3600.0  # seconds: an ask that waits as long as the task runs

_current: contextvars.ContextVar[Client | None] = contextvars.ContextVar(
    "celery_actors_client", default=None
)


class Task(Generic[P, R]):
    """A function registered as a task of an :class:`App` (made by :meth:`App.task`).

    Calling the task object runs the function here and now, like the plain function.
    ``await task.delay(...)`` and ``await task.apply_async(...)`` send a call to the
    app's router instead, and return an :class:`AsyncResult` at once.

    Attributes:
        name: the name calls use (``module.qualname`` unless given).
        fn: the function.
        is_async: ``async def`` (runs as a coroutine on a worker) or ``def`` (runs in a
            worker thread, under the worker's thread limit).
        retry: the policy for unexpected errors (see :func:`celery_actors.retry`).
        time_limit: seconds after which a run is cancelled and fails with
            :class:`TimeLimitExceeded`, without retry (``None``: no limit). A ``def``
            task's thread cannot be stopped: it is abandoned, and its result ignored.
        queue, priority: defaults for calls.
    """

    def __init__(
        self,
        app: App,
        fn: Callable[P, R] | Callable[P, Awaitable[R]],
        *,
        name: str,
        retry: RetryPolicy,
        time_limit: float | None,
        queue: str,
        priority: int,
    ) -> None:
        self.app = app
        self.fn = fn
        self.name = name
        self.is_async = inspect.iscoroutinefunction(fn)
        self.retry = retry
        self.time_limit = time_limit
        self.queue = queue
        self.priority = priority
        functools.update_wrapper(self, fn)

    def __repr__(self) -> str:
        return f"<Task {self.name}>"

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Any:
        return self.fn(*args, **kwargs)

    async def delay(self, *args: P.args, **kwargs: P.kwargs) -> AsyncResult:
        """Run the task on a worker with these arguments; see :meth:`apply_async`."""
        return await self.apply_async(args, kwargs)

    def make_call(
        self,
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
        *,
        countdown: float | None = None,
        eta: float | None = None,
        expires: float | None = None,
        priority: int | None = None,
        queue: str | None = None,
        task_id: str | None = None,
    ) -> TaskCall:
        """The :class:`TaskCall` message that runs this task with these arguments.

        Args:
            countdown: start no sooner than this many seconds from now.
            eta: start no sooner than this time (seconds since the epoch).
            expires: seconds from now (or, above one year, a time since the epoch)
                after which the call is revoked instead of started.
            priority: 0 to 9; higher starts first among waiting calls.
            queue: the queue the call goes to (brokers), ``"default"`` otherwise.
            task_id: the call's id; a call sent again with the same id runs once.
        """
        now = wall_time()
        if countdown is not None:
            eta = now + countdown
        if expires is not None and expires < _FOREVER:
            expires = now + expires
        return TaskCall(
            id=task_id or uuid.uuid4().hex,
            task=self.name,
            args=list(args),
            kwargs=dict(kwargs or {}),
            eta=eta,
            expires=expires,
            priority=self.priority if priority is None else priority,
            queue=queue or self.queue,
        )

    async def apply_async(
        self,
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
        *,
        countdown: float | None = None,
        eta: float | None = None,
        expires: float | None = None,
        priority: int | None = None,
        queue: str | None = None,
        task_id: str | None = None,
    ) -> AsyncResult:
        """Send a call of this task to the router, and return its result handle.

        Returns once the router holds the call (it will run at least once, even if the
        caller goes away). Arguments must be plain values (see ``docs/protocol.md``).
        The options are those of :meth:`make_call`.

        Raises:
            NotConnected: no client of the app is open (``async with app.connect()``
                or ``app.local()``).
        """
        call = self.make_call(
            args,
            kwargs,
            countdown=countdown,
            eta=eta,
            expires=expires,
            priority=priority,
            queue=queue,
            task_id=task_id,
        )
        return await self.app.client().submit(call)


class App:
    """A set of tasks, and how to reach the router that runs them.

    Args:
        name: the app's name; its actor systems are named after it.
        broker: ``None`` for the embedded default (processes linked peer-to-peer over
            AMQP 1.0, no broker).
        router: ``HOST:PORT`` where the router listens, and where clients and workers
            find it.
        registry: the message classes tasks take and return besides plain values.
        retry: the retry policy of tasks that do not name one.
        remote: network settings (signing keys, TLS, timeouts) of every system the app
            starts.

    Example::

        app = App("shop")

        @app.task
        async def add(x: int, y: int) -> int:
            return x + y

        async with app.local():  # a router and a worker, in this trio run
            result = await add.delay(2, 3)
            assert await result.get(timeout=5) == 5
    """

    def __init__(
        self,
        name: str,
        *,
        broker: str | Sequence[str] | None = None,
        router: str = DEFAULT_ROUTER,
        registry: TypeRegistry | None = None,
        retry: RetryPolicy = DEFAULT_RETRY_POLICY,
        remote: RemoteSettings | None = None,
    ) -> None:
        if broker is not None:
            raise NotImplementedError(
                "brokers are not supported yet; leave broker=None for peer-to-peer links"
            )
        self.name = name
        self.router = router
        self.registry = registry if registry is not None else TypeRegistry()
        for message, message_name in MESSAGES.items():
            if message not in self.registry:
                self.registry.register(message, message_name)
        self.retry = retry
        self.remote = remote
        self.tasks: dict[str, Task[Any, Any]] = {}
        self._client: Client | None = None

    def __repr__(self) -> str:
        return f"<App {self.name}: {len(self.tasks)} tasks>"

    @overload
    def task(self, fn: Callable[P, Awaitable[R]], /) -> Task[P, R]: ...
    @overload
    def task(self, fn: Callable[P, R], /) -> Task[P, R]: ...
    @overload
    def task(
        self,
        *,
        name: str | None = None,
        retry: RetryPolicy | None = None,
        time_limit: float | None = None,
        queue: str = "default",
        priority: int = 0,
    ) -> Callable[[Callable[..., Any]], Task[Any, Any]]: ...

    def task(  # type: ignore[misc]  # mypy cannot match a ParamSpec overload here
        self,
        fn: Callable[..., Any] | None = None,
        /,
        *,
        name: str | None = None,
        retry: RetryPolicy | None = None,
        time_limit: float | None = None,
        queue: str = "default",
        priority: int = 0,
    ) -> Any:
        """Register a function as a task: ``@app.task`` or ``@app.task(name=..., ...)``.

        An ``async def`` runs as a coroutine (I/O-bound work); a plain ``def`` runs in a
        worker thread (blocking or CPU-bound work). See :class:`Task` for the options.
        """

        def register(fn: Callable[..., Any]) -> Task[Any, Any]:
            task_name = name or f"{fn.__module__}.{fn.__qualname__}"
            if task_name in self.tasks:
                raise ValueError(
                    f"a task named {task_name!r} is already registered in app {self.name!r}; "
                    "give one of them another name with @app.task(name=...)"
                )
            task: Task[Any, Any] = Task(
                self,
                fn,
                name=task_name,
                retry=retry or self.retry,
                time_limit=time_limit,
                queue=queue,
                priority=priority,
            )
            self.tasks[task_name] = task
            return task

        return register if fn is None else register(fn)

    # -- clients

    def client(self) -> Client:
        """The client calls go through: the innermost one opened in this task, else the
        last one opened by the app.

        Raises:
            NotConnected: none is open.
        """
        client = _current.get() or self._client
        if client is None or client.closed:
            raise NotConnected(
                f"no client of app {self.name!r} is open: call tasks inside "
                "'async with app.connect():' (a router elsewhere) or "
                "'async with app.local():' (everything in this process)"
            )
        return client

    @contextlib.asynccontextmanager
    async def connect(self, router: str | None = None) -> AsyncIterator[Client]:
        """Open a client of the router at ``router`` (default: the app's), for the
        duration of the block; tasks called inside it go there."""
        host_port = router or self.router
        async with ActorSystem(
            f"{self.name}-client-{uuid.uuid4().hex[:8]}",
            registry=self.registry,
            remote=self.remote,
        ) as system:
            ref = system.ref(f"amqp://{host_port}/{self.name}{ROUTER_PATH}")
            async with self._open_client(system, ref) as client:
                yield client

    @contextlib.asynccontextmanager
    async def local(
        self,
        *,
        workers: int = 1,
        concurrency: int = 10,
        threads: int | None = None,
        sinks: Sequence[Sink] | None = None,
    ) -> AsyncIterator[Client]:
        """Run a router and ``workers`` workers in this trio run, in one actor system
        with no network, and a client of them: for tests, scripts and notebooks.

        The code paths are those of separate processes except the transport.
        """
        sinks = list(sinks) if sinks else [MemorySink()]
        async with contextlib.AsyncExitStack() as stack:
            for sink in sinks:
                stack.push_async_callback(sink.aclose)
            system = await stack.enter_async_context(ActorSystem(self.name, registry=self.registry))
            router = await self.start_router(system, sinks=sinks)
            for number in range(workers):
                await self.start_worker(
                    system,
                    router,
                    concurrency=concurrency,
                    threads=threads,
                    name=f"worker-{number + 1}",
                )
            async with self._open_client(system, router) as client:
                yield client

    @contextlib.asynccontextmanager
    async def _open_client(self, system: ActorSystem, router: ActorRef) -> AsyncIterator[Client]:
        client = Client(self, system, router)
        token = _current.set(client)
        previous, self._client = self._client, client
        try:
            yield client
        finally:
            client.closed = True
            _current.reset(token)
            self._client = previous

    def jumpstart_plan(self, options: Sequence[str]) -> RunPlan:
        """What ``jumpstart run MODULE:APP [--role router|worker|all] ...`` runs: see
        ``jumpstart run`` and ``docs/workers.md``."""
        from ._cli import plan

        return plan(self, options)

    # -- roles

    async def start_router(
        self, system: ActorSystem, *, sinks: Sequence[Sink] | None = None
    ) -> ActorRef:
        """Spawn the router actor (``/user/router``) in ``system``.

        Args:
            sinks: where final results are stored; a :class:`MemorySink` by default.
                The router keeps them open; closing them is the caller's business
                (:meth:`local` closes its own when it ends).
        """
        from ._router import Router

        return await system.spawn(
            functools.partial(Router, self, list(sinks) if sinks else [MemorySink()]),
            name=ROUTER_PATH.rsplit("/", 1)[1],
        )

    async def start_worker(
        self,
        system: ActorSystem,
        router: ActorRef | str | None = None,
        *,
        concurrency: int = 10,
        threads: int | None = None,
        name: str = "worker",
    ) -> ActorRef:
        """Spawn a worker actor in ``system`` that runs this app's tasks for ``router``.

        Args:
            router: a ref or an address; by default the app's router address.
            concurrency: calls run at once by this worker.
            threads: of those, how many ``def`` tasks run at once (their threads);
                ``min(concurrency, 10)`` by default.
        """
        from ._worker import Worker

        if router is None:
            router = f"amqp://{self.router}/{self.name}{ROUTER_PATH}"
        if isinstance(router, str):
            router = system.ref(router)
        threads = min(concurrency, THREAD_WARNING) if threads is None else threads
        if threads > THREAD_WARNING:
            warnings.warn(
                f"{threads} threads for def tasks: Python runs one thread at a time, so "
                "CPU-bound tasks gain nothing past a few; use async def for I/O-bound work",
                RuntimeWarning,
                stacklevel=2,
            )
        return await system.spawn(
            functools.partial(Worker, self, router, concurrency, threads), name=name
        )


class Client:
    """Sends calls to a router and asks it about their results (see :meth:`App.connect`)."""

    def __init__(self, app: App, system: ActorSystem, router: ActorRef) -> None:
        self.app = app
        self.system = system
        self.router = router
        self.closed = False

    def __repr__(self) -> str:
        return f"<Client of {self.router.address}>"

    async def submit(self, call: TaskCall) -> AsyncResult:
        """Send ``call``; return once the router holds it."""
        await self.router.ask(Submit(call))
        return AsyncResult(call.id, call.task, self)

    def result(self, task_id: str, task: str = "") -> AsyncResult:
        """The handle of a call sent earlier, maybe by another process."""
        return AsyncResult(task_id, task, self)


@attrs.define(eq=False)
class AsyncResult:
    """The handle of a call: wait for its result, see its state, revoke it.

    Attributes:
        id: the call's id.
        task: the task's name.
        state: the last state seen (``pending`` until one was fetched).
    """

    id: str
    task: str
    client: Client = attrs.field(repr=False)
    state: str = "pending"
    document: TaskResult | None = attrs.field(default=None, repr=False)

    async def wait(self, timeout: float | None = None) -> TaskResult:
        """Wait for the call's final :class:`TaskResult` (``None``: wait without limit).

        Raises:
            ResultTimeout: it did not finish in time (it may still finish later).
        """
        try:
            document: TaskResult = await self.client.router.ask(
                AwaitResult(self.id), timeout=_FOREVER if timeout is None else timeout
            )
        except AskTimeout as exc:
            raise ResultTimeout(
                f"task {self.task or '?'}[{self.id}] did not finish within {timeout} s"
            ) from exc
        self.document = document
        self.state = document.state
        return document

    async def get(self, timeout: float | None = None) -> Any:
        """Wait for the call to finish and return its value.

        Raises:
            TaskFailed: it failed (for good, after its retries).
            TaskRevoked: it was revoked or expired.
            ResultTimeout: it did not finish in time.
        """
        document = await self.wait(timeout)
        if document.state == "succeeded":
            return document.value
        if document.state == "revoked":
            raise TaskRevoked(document)
        raise TaskFailed(document)

    async def refresh(self) -> str:
        """Ask the router for the call's state now, keep it in :attr:`state`, return it."""
        self.state = await self.client.router.ask(GetState(self.id))
        return self.state

    async def revoke(self, *, terminate: bool = False) -> bool:
        """Do not run the call; with ``terminate``, cancel it if it is running.

        Returns ``True`` if the call will not run (or was cancelled), ``False`` if it
        had finished already, or is running and ``terminate`` is false.
        """
        revoked: bool = await self.client.router.ask(Revoke(self.id, terminate))
        return revoked
