"""The app: where tasks are declared, and the entry points that run its actors."""

from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect
import os
import uuid
import warnings
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from typing import (
    TYPE_CHECKING,
    Any,
    Generic,
    ParamSpec,
    TypeVar,
    Unpack,
    cast,
    overload,
)

import attrs
import trio

from jumpstarter import (
    ActorRef,
    ActorSystem,
    AskTimeout,
    BrokerSettings,
    JumpstarterError,
    RemoteSettings,
    RunPlan,
    TypeRegistry,
)

from ._backlog import Backlog, MemoryBacklog, SQLiteBacklog
from ._blocking import BlockingClient, open_blocking_client
from ._calls import CallOptions, new_call
from ._canvas import STARMAP_TASK, Canvas, Chunks, Fanout, Signature
from ._clock import FOREVER
from ._control import CONTROL_TIMEOUT, WorkerControl
from ._errors import NotConnected, ResultTimeout, TaskNotRegistered, value_of
from ._protocol import (
    MESSAGES,
    AwaitResult,
    DropQuarantined,
    GetState,
    GetStats,
    ListQuarantined,
    QuarantinedCall,
    RetryQuarantined,
    Revoke,
    RouterStats,
    Submit,
    TaskCall,
    TaskResult,
)
from ._publisher import PublisherStatus
from ._retry import DEFAULT_RETRY_POLICY, NO_RETRY, RetryPolicy
from ._sinks import MemorySink, Sink
from ._workflow_messages import StartWorkflow
from ._workflow_result import WorkflowResult
from ._workflow_store import MemoryWorkflowStore, SQLiteWorkflowStore, WorkflowStore

if TYPE_CHECKING:
    from ._bootsteps import BootStep
    from ._events import EventResult
    from ._workflow import Workflow

__all__ = ["App", "AsyncResult", "Client", "Task"]

P = ParamSpec("P")
R = TypeVar("R")
_S = TypeVar("_S")

DEFAULT_ROUTER = "127.0.0.1:5780"
"""Where the router listens unless the app says otherwise."""

ROUTER_PATH = "/user/router"
"""The router actor's path in its system."""

BROKER_WAIT = 10.0
"""Seconds :meth:`App.local` waits for its router to consume from each broker."""

THREAD_WARNING = 10
"""More threads than this for CPU-bound tasks draws a warning: Python runs one at a time."""


_TASK_APPS: dict[str, weakref.WeakSet[App]] = {}
"""The apps that registered each task name, for a canvas to find its client."""


def task_app(name: str) -> App | None:
    """The app a canvas calling task ``name`` goes through: that of the innermost open
    client, if it has the task, else one with a task of that name and an open client."""
    current = _current.get()
    if current is not None and not current.closed and name in current.app.tasks:
        return current.app
    apps = list(_TASK_APPS.get(name, ()))
    for app in apps:
        if app._client is not None and not app._client.closed:
            return app
    return apps[0] if apps else None


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
        soft_time_limit: seconds after which :class:`SoftTimeLimitExceeded` is raised
            inside the run, so that it can clean up (catch it, even return a value);
            uncaught, it fails the call without retry. Must be less than
            ``time_limit`` when both are given. See ``docs/tasks.md``.
        boxed: run calls in a child process of the worker (isolation: a crash there
            fails the call, not the worker). The function must be defined at module
            level, so that the process can import it. See ``docs/tasks.md``.
        sinks: where the router stores this task's results, instead of its own sinks
            (``None``: the router's). The sinks live in the router's process: the app
            module makes them, and the router opens them when it stores a first result.
        acks_late: over a broker, settle a call's delivery only once its result is
            stored (the default: a router that dies loses nothing). ``False`` settles
            it as soon as the router holds the call, for calls that must not run
            twice rather than at least once.
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
        soft_time_limit: float | None = None,
        boxed: bool = False,
        sinks: Sequence[Sink] | None = None,
        acks_late: bool = True,
    ) -> None:
        for option, limit in (("time_limit", time_limit), ("soft_time_limit", soft_time_limit)):
            if limit is not None and not limit > 0:
                raise ValueError(f"task {name}: {option}={limit} must be a positive number")
        if soft_time_limit is not None and time_limit is not None and soft_time_limit >= time_limit:
            raise ValueError(
                f"task {name}: soft_time_limit={soft_time_limit} must be less than "
                f"time_limit={time_limit}, so that the task can clean up before it is cancelled"
            )
        if boxed and "<locals>" in fn.__qualname__:
            raise ValueError(
                f"task {name}: a boxed task runs in another process, which imports it; "
                "define the function at module level"
            )
        self.app = app
        self.fn = fn
        self.name = name
        self.is_async = inspect.iscoroutinefunction(fn)
        self.retry = retry
        self.time_limit = time_limit
        self.soft_time_limit = soft_time_limit
        self.boxed = boxed
        self.sinks = list(sinks) if sinks is not None else None
        self.acks_late = acks_late
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

    # -- the canvas (see docs/canvas.md)

    def s(self, *args: Any, **kwargs: Any) -> Signature:
        """A signature of this task with these arguments: in a chain, the result of the
        step before comes first."""
        return Signature(task=self.name, args=list(args), kwargs=kwargs)

    def si(self, *args: Any, **kwargs: Any) -> Signature:
        """An immutable signature: called with these arguments only, whatever comes
        before it."""
        return Signature(task=self.name, args=list(args), kwargs=kwargs, immutable=True)

    def map(self, items: Iterable[Any]) -> Fanout:
        """A group of calls, one per item, each with the item as its argument."""
        return self.s().map(items)

    def starmap(self, items: Iterable[Iterable[Any]]) -> Fanout:
        """A group of calls, one per item, each with the item's values as arguments."""
        return self.s().starmap(items)

    def chunks(self, items: Iterable[Iterable[Any]], size: int) -> Chunks:
        """Calls with each item's values as arguments, ``size`` of them per task run;
        the result is a list of lists (see :class:`~celery_actors.Chunks`)."""
        if self.boxed:
            raise ValueError(f"task {self.name}: a boxed task cannot run in chunks")
        return self.s().chunks(items, size)

    def make_call(
        self,
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
        **options: Unpack[CallOptions],
    ) -> TaskCall:
        """The :class:`TaskCall` message that runs this task with these arguments; the
        options (see :class:`CallOptions`) default to the task's queue and priority."""
        if options.get("priority") is None:
            options["priority"] = self.priority
        if options.get("queue") is None:
            options["queue"] = self.queue
        return new_call(self.name, args, kwargs, **options)

    async def apply_async(
        self,
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
        **options: Unpack[CallOptions],
    ) -> AsyncResult:
        """Send a call of this task to the router, and return its result handle.

        Returns once the router holds the call (it will run at least once, even if the
        caller goes away). Arguments must be plain values (see ``docs/protocol.md``).
        The options are those of :class:`CallOptions`.

        Raises:
            NotConnected: no client of the app is open (``async with app.connect()``
                or ``app.local()``).
        """
        call = self.make_call(args, kwargs, **options)
        return await self.app.client().submit(call)


class App:
    """A set of tasks, and how to reach the router that runs them.

    Args:
        name: the app's name; its actor systems are named after it.
        broker: ``None`` for the embedded default (processes linked peer-to-peer over
            AMQP 1.0, no broker); or a broker's URL
            (``amqp://USER:PASSWORD@HOST:PORT/VHOST``), a :class:`~jumpstarter.BrokerSettings`,
            or a list of them: calls then travel through the brokers' queues (see
            ``docs/brokers-for-tasks.md``). Clients publish to the first one that
            answers; routers consume from all of them.
        backlog: with brokers, where a client's calls wait while no broker is
            reachable: in memory (``None``), or an SQLite file (a path, or a
            :class:`SQLiteBacklog`) so that they also survive a restart of the process.
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
        broker: str | BrokerSettings | Sequence[str | BrokerSettings] | None = None,
        backlog: str | os.PathLike[str] | Backlog | None = None,
        router: str = DEFAULT_ROUTER,
        registry: TypeRegistry | None = None,
        retry: RetryPolicy = DEFAULT_RETRY_POLICY,
        remote: RemoteSettings | None = None,
    ) -> None:
        self.name = name
        self.brokers = _broker_settings(broker)
        self.backlog = backlog
        self.router = router
        self.registry = registry if registry is not None else TypeRegistry()
        for message, message_name in MESSAGES.items():
            if message not in self.registry:
                self.registry.register(message, message_name)
        self.retry = retry
        self.remote = remote
        self.tasks: dict[str, Task[Any, Any]] = {}
        self.boot_steps: list[BootStep] = []
        self.task(name=STARMAP_TASK, retry=NO_RETRY)(self._starmap)
        self.events: dict[str, type] = {}  # declared with @app.event, by name
        self.subscriptions: dict[str, list[str]] = {}  # event name -> subscribed tasks
        self._client: Client | None = None

    def __repr__(self) -> str:
        return f"<App {self.name}: {len(self.tasks)} tasks>"

    async def _starmap(
        self, task: str, items: list[list[Any]], args: list[Any], kwargs: dict[str, Any]
    ) -> list[Any]:
        """The built-in task that runs a chunk (see :meth:`Task.chunks`): ``task``'s
        function once per item, in this run (a ``def`` task's in one worker thread)."""
        target = self.tasks.get(task)
        if target is None:
            raise TaskNotRegistered(f"no task named {task!r} on this worker")
        fn = target.fn
        if target.is_async:
            return [await fn(*item, *args, **kwargs) for item in items]
        return await trio.to_thread.run_sync(lambda: [fn(*item, *args, **kwargs) for item in items])

    @property
    def queues(self) -> set[str]:
        """The queues the app's tasks go to (``default`` at least)."""
        return {"default", *(task.queue for task in self.tasks.values())}

    def _new_backlog(self) -> Backlog:
        backlog = self.backlog
        if backlog is None:
            return MemoryBacklog()
        if isinstance(backlog, (str, os.PathLike)):
            return SQLiteBacklog(backlog)
        return backlog

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
        soft_time_limit: float | None = None,
        boxed: bool = False,
        sinks: Sequence[Sink] | None = None,
        acks_late: bool = True,
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
        soft_time_limit: float | None = None,
        boxed: bool = False,
        sinks: Sequence[Sink] | None = None,
        acks_late: bool = True,
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
                soft_time_limit=soft_time_limit,
                boxed=boxed,
                sinks=sinks,
                acks_late=acks_late,
                queue=queue,
                priority=priority,
            )
            self.tasks[task_name] = task
            _TASK_APPS.setdefault(task_name, weakref.WeakSet()).add(self)
            return task

        return register if fn is None else register(fn)

    def boot_step(
        self, *, name: str | None = None, requires: Sequence[str] = (), optional: bool = False
    ) -> Callable[[_S], _S]:
        """Add a step to the start of this app's workers: ``@app.boot_step(...)`` on an
        Actor subclass (spawned as ``cls(context)``) or on a function ``step(context)``
        that returns an async context manager, such as an
        ``@contextlib.asynccontextmanager``. ``context`` is a :class:`WorkerContext`.

        The step starts after the steps it ``requires`` and stops before them; its
        actor lives at ``<worker>/<name>``. A step that fails to start stops the
        worker's start with :class:`BootStepFailed`, unless it is ``optional``: then
        the worker runs degraded and tries it again later. See ``docs/workers.md``.

        Example::

            @app.boot_step(name="db")
            @contextlib.asynccontextmanager
            async def db(context):
                async with open_pool(DSN) as pool:
                    yield pool
        """
        from ._bootsteps import BUILTIN_STEPS, BootStep

        def register(start: _S) -> _S:
            step_name = name or getattr(start, "__name__", "")
            if not step_name or step_name in BUILTIN_STEPS:
                raise ValueError(
                    f"boot step {step_name!r}: give it a name (name=...) that is not one "
                    f"of the built-in steps {', '.join(BUILTIN_STEPS)}"
                )
            if any(step.name == step_name for step in self.boot_steps):
                raise ValueError(
                    f"a boot step named {step_name!r} is already declared in app "
                    f"{self.name!r}; give one of them another name"
                )
            self.boot_steps.append(
                BootStep(step_name, cast(Any, start), requires=requires, optional=optional)
            )
            return start

        return register

    def workflow(self, canvas: Canvas, *, name: str | None = None) -> Workflow:
        """A :class:`~celery_actors.Workflow` of ``canvas`` run by this app: checked
        now (see ``docs/workflows.md``), started as often as needed."""
        from ._workflow import Workflow

        return Workflow(canvas, app=self, name=name)

    # -- events (see _events.py and docs/events.md)

    @overload
    def event(self, cls: type[_S], /) -> type[_S]: ...
    @overload
    def event(
        self, cls: None = None, /, *, name: str | None = None
    ) -> Callable[[type[_S]], type[_S]]: ...

    def event(self, cls: type[Any] | None = None, /, *, name: str | None = None) -> Any:
        """Declare a domain event: ``@app.event`` or ``@app.event(name=...)`` on a class.

        A plain annotated class is made an ``attrs`` frozen class. The event is
        registered under ``name`` (``module.QualName`` unless given), and the class
        gains ``Event.subscribe(task)`` (also a decorator on a task) and
        ``await Event.delay(**fields)``, which publishes one event: the router runs
        every subscribed task once, with the event's fields as keyword arguments.
        See ``docs/events.md``.
        """
        from ._events import declare_event

        def register(cls: type[Any]) -> Any:
            return declare_event(self, cls, name)

        return register if cls is None else register(cls)

    def subscribe(self, event: type, task: Task[P, R]) -> Task[P, R]:
        """Run ``task`` for every ``event`` published (``Event.subscribe(task)``).

        Several tasks may subscribe to one event; each runs as a call of its own, with
        the event's fields as keyword arguments. Subscriptions belong to the app, so
        every process that imports it (the router's first) knows them.

        Raises:
            ValueError: ``event`` is not an event of this app, ``task`` is another
                app's, is subscribed already, or cannot take the event's fields.
        """
        from ._events import check_subscriber, event_name_of

        name = event_name_of(self, event)
        if not isinstance(task, Task) or self.tasks.get(task.name) is not task:
            raise ValueError(
                f"{task!r} cannot subscribe to event {name}: subscribe a task of app "
                f"{self.name!r} (declared with @app.task, below the subscription)"
            )
        check_subscriber(self, event, task)
        subscribers = self.subscriptions.setdefault(name, [])
        if task.name in subscribers:
            raise ValueError(f"task {task.name} is subscribed to event {name} already")
        subscribers.append(task.name)
        return task

    async def publish(self, event: object, *, event_id: str | None = None) -> EventResult:
        """Publish ``event`` (an instance of an ``@app.event`` class): the router runs
        each subscribed task once with its fields. Returns once the router holds the
        subscribers' calls (over brokers: once the client's publisher holds the event).

        ``event_id`` identifies the event (a new one by default): an event published
        again with the same id runs each subscriber once. An event no task subscribes
        to is accepted and runs nothing.

        Raises:
            ValueError: ``event`` is not an instance of an event of this app.
            NotConnected: no client of the app is open.
        """
        from ._events import event_name_of, fields_of, new_event_message, publish_event

        if isinstance(event, type):
            raise ValueError(f"publish an instance of {event.__qualname__}, not the class")
        message = new_event_message(event_name_of(self, event), fields_of(event), event_id)
        return await publish_event(self.client(), message)

    # -- clients

    def client(self) -> Client:
        """The client calls go through: the innermost one of this app opened in this
        task, else the last one opened by the app.

        Raises:
            NotConnected: none is open.
        """
        client = _current.get()
        if client is None or client.app is not self:  # the innermost is another app's
            client = self._client
        if client is None or client.closed:
            raise NotConnected(
                f"no client of app {self.name!r} is open: call tasks inside "
                "'async with app.connect():' (a router elsewhere) or "
                "'async with app.local():' (everything in this process)"
            )
        return client

    @contextlib.asynccontextmanager
    async def connect(
        self, router: str | None = None, *, default: bool = True
    ) -> AsyncIterator[Client]:
        """Open a client of the router at ``router`` (default: the app's), for the
        duration of the block; tasks called inside it go there.

        With ``default=False`` the client does not become the app's default client
        (:meth:`client`) for other tasks of the process: for a client that serves
        another trio run, like :meth:`connect_blocking`'s.
        """
        host_port = router or self.router
        async with ActorSystem(
            f"{self.name}-client-{uuid.uuid4().hex[:8]}",
            registry=self.registry,
            remote=self.remote,
        ) as system:
            ref = system.ref(f"amqp://{host_port}/{self.name}{ROUTER_PATH}")
            async with self._open_client(system, ref, default=default) as client:
                yield client

    @contextlib.asynccontextmanager
    async def local(
        self,
        *,
        workers: int = 1,
        concurrency: int = 10,
        threads: int | None = None,
        sinks: Sequence[Sink] | None = None,
        default: bool = True,
        recent_ids: int = 100,
        boxed: int = 2,
        prefetch: int = 1,
        workflows: WorkflowStore | str | os.PathLike[str] | None = None,
    ) -> AsyncIterator[Client]:
        """Run a router and ``workers`` workers in this trio run, in one actor system
        with no network, and a client of them: for tests, scripts and notebooks.

        The code paths are those of separate processes except the transport (with
        brokers, calls do travel through them). ``default`` is that of :meth:`connect`;
        ``sinks`` and ``workflows`` those of :meth:`start_router`; the worker options
        those of :meth:`start_worker`.
        """
        sinks = list(sinks) if sinks else [MemorySink()]
        async with contextlib.AsyncExitStack() as stack:
            for sink in sinks:
                stack.push_async_callback(sink.aclose)
            system = await stack.enter_async_context(ActorSystem(self.name, registry=self.registry))
            router = await self.start_router(
                system, sinks=sinks, wait_for_brokers=True, workflows=workflows
            )
            client = await stack.enter_async_context(
                self._open_client(system, router, default=default)
            )
            for number in range(workers):
                await self.start_worker(
                    system,
                    router,
                    concurrency=concurrency,
                    threads=threads,
                    name=f"worker-{number + 1}",
                    recent_ids=recent_ids,
                    boxed=boxed,
                    prefetch=prefetch,
                    client=client,
                )
            yield client

    @contextlib.asynccontextmanager
    async def _open_client(
        self,
        system: ActorSystem,
        router: ActorRef,
        *,
        default: bool = True,
        innermost: bool = True,
    ) -> AsyncIterator[Client]:
        """A client of ``router``; with ``default``, the app's default client while it is
        open; with ``innermost``, the client of this task and those it starts (a
        context variable: entered and left in one task)."""
        route = collector = None
        if self.brokers:
            route = await self._broker_route(system)
        else:
            from ._collector import ResultCollector

            collector = await system.spawn(
                functools.partial(ResultCollector, router), name=f"results-{uuid.uuid4().hex[:8]}"
            )
        client = Client(self, system, router, route, collector)
        token = _current.set(client) if innermost else None
        previous = self._client
        if default:
            self._client = client
        try:
            yield client
        finally:
            client.closed = True
            if token is not None:
                _current.reset(token)
            if default:
                self._client = previous
            # The client's own actors go with it (a worker's client, say, must not keep
            # its process's system running once the worker has stopped).
            with trio.CancelScope(shield=True):
                for ref in client.actors():
                    with contextlib.suppress(JumpstarterError):  # gone with the system
                        await system.stop(ref)

    @contextlib.contextmanager
    def _calling_through(self, client: Client | None) -> Iterator[None]:
        """Make ``client`` the innermost client in this block (of this task)."""
        if client is None:
            yield
            return
        token = _current.set(client)
        try:
            yield
        finally:
            _current.reset(token)

    def connect_blocking(self, router: str | None = None) -> BlockingClient:
        """A client of the router at ``router`` for code that is not async (a Django or
        Flask view, a script): :meth:`connect` kept open in a background thread.

        Use it as a context manager, or keep it and call ``close()`` when done; see
        :class:`BlockingClient` and ``docs/calling-from-sync-code.md``. It does not become
        the client of ``await task.delay()`` elsewhere (see ``default`` in :meth:`connect`).

        Raises:
            BlockingCallInTrio: called inside a trio run: use :meth:`connect` there.
        """
        return open_blocking_client(self, functools.partial(self.connect, router, default=False))

    def local_blocking(
        self,
        *,
        workers: int = 1,
        concurrency: int = 10,
        threads: int | None = None,
        sinks: Sequence[Sink] | None = None,
    ) -> BlockingClient:
        """:meth:`local` (a router and workers in this process) running in a background
        thread, with a :class:`BlockingClient` of them: for scripts, notebooks and tests
        that are not async.

        Raises:
            BlockingCallInTrio: called inside a trio run: use :meth:`local` there.
        """
        return open_blocking_client(
            self,
            functools.partial(
                self.local,
                workers=workers,
                concurrency=concurrency,
                threads=threads,
                sinks=sinks,
                default=False,
            ),
        )

    def jumpstart_plan(self, options: Sequence[str]) -> RunPlan:
        """What ``jumpstart run MODULE:APP [--role router|worker|all] ...`` runs: see
        ``jumpstart run`` and ``docs/workers.md``."""
        from ._cli import plan

        return plan(self, options)

    async def _broker_route(self, system: ActorSystem) -> _BrokerRoute:
        """Spawn a client's publisher, and its inbox of results with a listener on
        each broker, in ``system``; return once the listeners consume (or after
        :data:`BROKER_WAIT` seconds, for a broker that does not answer)."""
        from ._brokers import AwaitConnected, ReplyInbox, ReplyListener, reply_address
        from ._publisher import Publisher

        client_id = uuid.uuid4().hex
        reply_to = reply_address(self.name, client_id)
        inbox = await system.spawn(ReplyInbox, name=f"results-{client_id[:8]}")
        listeners = [
            await system.spawn(
                functools.partial(ReplyListener, settings, self.registry, reply_to, inbox),
                name=f"replies-{client_id[:8]}-{number}",
            )
            for number, settings in enumerate(self.brokers, 1)
        ]
        with trio.move_on_after(BROKER_WAIT):  # results published before would be lost
            for listener in listeners:
                await listener.ask(AwaitConnected(), timeout=BROKER_WAIT)
        backlog = self._new_backlog()
        publisher = await system.spawn(
            functools.partial(Publisher, self.brokers, self.registry, backlog),
            name=f"publisher-{client_id[:8]}",
        )
        return _BrokerRoute(publisher, inbox, reply_to, listeners)

    # -- roles

    async def start_router(
        self,
        system: ActorSystem,
        *,
        sinks: Sequence[Sink] | None = None,
        wait_for_brokers: bool = False,
        workflows: WorkflowStore | str | os.PathLike[str] | None = None,
    ) -> ActorRef:
        """Spawn the router actor (``/user/router``) in ``system``, with its workflow
        actor (``/user/router/workflows``).

        Args:
            sinks: where final results are stored; a :class:`MemorySink` by default.
                The router keeps them open; closing them is the caller's business
                (:meth:`local` closes its own when it ends).
            workflows: where workflows (chains, groups, chords) keep their state: a
                :class:`WorkflowStore`, or the path of a SQLite file
                (:class:`SQLiteWorkflowStore`, durable: a router started again
                resumes them); in memory (:class:`MemoryWorkflowStore`) by default.
                The workflow actor closes it when it stops.
            wait_for_brokers: with brokers, return only once the router consumes
                from each of them (or after :data:`BROKER_WAIT` seconds, for a broker
                that does not answer: it connects later, on its own).
        """
        from ._brokers import AwaitConnected, BrokerIntake
        from ._publisher import Publisher
        from ._router import Router

        publisher = None
        if self.brokers:  # results go back over the brokers
            publisher = await system.spawn(
                functools.partial(Publisher, self.brokers, self.registry),
                name="router-publisher",
            )
        router = await system.spawn(
            functools.partial(
                Router,
                self,
                list(sinks) if sinks else [MemorySink()],
                publisher,
                _workflow_store(workflows),
            ),
            name=ROUTER_PATH.rsplit("/", 1)[1],
        )
        intakes = [
            await system.spawn(
                functools.partial(
                    BrokerIntake, settings, self.registry, router, self.name, self.queues
                ),
                name=f"broker-intake-{number}",
            )
            for number, settings in enumerate(self.brokers, 1)
        ]
        if wait_for_brokers:
            with trio.move_on_after(BROKER_WAIT):
                for intake in intakes:
                    await intake.ask(AwaitConnected(), timeout=BROKER_WAIT)
        return router

    async def start_worker(
        self,
        system: ActorSystem,
        router: ActorRef | str | None = None,
        *,
        concurrency: int = 10,
        threads: int | None = None,
        name: str = "worker",
        recent_ids: int = 100,
        boxed: int = 2,
        prefetch: int = 1,
        warm_shutdown: bool = False,
        shutdown_timeout: float | None = None,
        client: Client | None = None,
    ) -> ActorRef:
        """Spawn a worker actor in ``system`` that runs this app's tasks for ``router``.

        Args:
            router: a ref or an address; by default the app's router address.
            concurrency: calls run at once by this worker.
            threads: of those, how many ``def`` tasks run at once (their threads);
                ``min(concurrency, 10)`` by default.
            recent_ids: how many finished runs the worker remembers (by call id and
                attempt), to answer a run it receives again with the remembered result
                instead of running it twice (``0``: remember none).
            boxed: of the ``concurrency`` calls, how many boxed tasks run at once: the
                size of the worker's pool of child processes, started as needed.
            prefetch: the worker takes up to ``concurrency * prefetch`` calls from the
                router at once; those beyond ``concurrency`` wait for a slot on the
                worker (state ``received``), in priority order: more calls per second
                for short tasks, but a call waiting on a busy worker does not go to an
                idle one.
            warm_shutdown: when ``system`` shuts down gracefully, the worker first
                stops taking calls and lets the running ones finish, until a little
                before the system's deadline (``jumpstart run`` sets it; see
                ``docs/workers.md``). Otherwise they go back to the router at once.
            shutdown_timeout: how long running calls may finish when the ``shutdown``
                control command does not say; ``None``: the system's
                ``shutdown_timeout``.
            client: the client through which the tasks it runs call tasks
                (``await other.delay()``); by default the worker opens its own, of
                ``router``.

        Its boot steps (the built-in ones and :meth:`boot_step`'s) are up when this
        returns.

        Raises:
            BootStepFailed: a mandatory boot step failed to start; the worker is
                stopped.
        """
        from ._shutdown import WorkerOps
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
        ops = WorkerOps(
            self, self.boot_steps, warm_shutdown=warm_shutdown, shutdown_timeout=shutdown_timeout
        )
        worker = await system.spawn(
            functools.partial(
                Worker,
                self,
                router,
                concurrency,
                threads,
                recent_ids=recent_ids,
                boxed=boxed,
                prefetch=prefetch,
                ops=ops,
                client=client,
            ),
            name=name,
        )
        try:
            await ops.wait_booted()
        except BaseException:
            with trio.CancelScope(shield=True):
                await system.stop(worker)
            raise
        return worker


class Client:
    """Sends calls to a router and asks it about their results (see :meth:`App.connect`)."""

    def __init__(
        self,
        app: App,
        system: ActorSystem,
        router: ActorRef,
        route: _BrokerRoute | None = None,
        collector: ActorRef | None = None,
    ) -> None:
        self.app = app
        self.system = system
        self.router = router
        self.route = route
        self.collector = collector  # collects results from the router, many at once
        self.closed = False
        self._workflows: ActorRef | None = None

    def actors(self) -> list[ActorRef]:
        """The actors the client runs in its system (publisher, inbox, collector)."""
        if self.route is not None:
            return [self.route.publisher, *self.route.listeners, self.route.inbox]
        return [self.collector] if self.collector is not None else []

    def __repr__(self) -> str:
        if self.route is not None:
            return f"<Client of {self.app.name} over {', '.join(b.url for b in self.app.brokers)}>"
        return f"<Client of {self.router.address}>"

    async def submit(self, call: TaskCall) -> AsyncResult:
        """Send ``call``; return once the router holds it (over brokers: once the
        client's publisher holds it, to publish it as soon as a broker takes it)."""
        route = self.route
        if route is None:
            await self.router.ask(Submit(call))
        else:
            from ._brokers import command_address
            from ._publisher import Publish

            call = attrs.evolve(call, reply_to=route.reply_to)
            await route.publisher.tell(
                Publish(command_address(self.app.name, call.queue), call, call.id)
            )
        return AsyncResult(call.id, call.task, self)

    async def _await_result(self, task_id: str, timeout: float) -> TaskResult:
        if self.route is not None:
            where = self.route.inbox
        elif self.collector is not None:
            where = self.collector
        else:
            where = self.router
        result: TaskResult = await where.ask(AwaitResult(task_id), timeout=timeout)
        return result

    async def _state(self, task_id: str) -> str:
        where = self.router if self.route is None else self.route.inbox
        state: str = await where.ask(GetState(task_id))
        return state

    async def _revoke(self, task_id: str, terminate: bool) -> bool:
        route = self.route
        if route is None:
            revoked: bool = await self.router.ask(Revoke(task_id, terminate))
            return revoked
        from ._brokers import control_address
        from ._publisher import Publish

        await route.publisher.tell(
            Publish(control_address(self.app.name), Revoke(task_id, terminate), uuid.uuid4().hex)
        )
        return True

    async def publisher_status(self) -> PublisherStatus | None:
        """Over brokers: the broker the client publishes to (``None`` if none is
        reachable) and how many calls wait in its backlog; ``None`` peer-to-peer."""
        if self.route is None:
            return None
        from ._publisher import QueryPublisher

        status: PublisherStatus = await self.route.publisher.ask(QueryPublisher())
        return status

    def result(self, task_id: str, task: str = "") -> AsyncResult:
        """The handle of a call sent earlier, maybe by another process."""
        return AsyncResult(task_id, task, self)

    # -- workflows (see docs/canvas.md)

    def workflows(self) -> ActorRef:
        """The router's workflow actor (``/user/router/workflows``).

        Raises:
            NotConnected: the client goes through brokers: it starts workflows and gets
                their results, but asks about their members peer-to-peer only.
        """
        if self.route is not None:
            raise NotConnected(
                "over brokers, a workflow's handle waits for its result; its members' "
                "states, partial results and revocation come from the router's workflow "
                "actor, peer-to-peer: open a client of the router with App(broker=None) "
                "and app.connect(router) for them"
            )
        if self._workflows is None:
            self._workflows = self.system.ref(f"{self.router.address}/workflows")
        return self._workflows

    async def start_workflow(
        self,
        canvas: Canvas,
        *,
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
        workflow_id: str | None = None,
    ) -> WorkflowResult:
        """Run ``canvas`` as a workflow; return once the router has stored it (see
        :meth:`Signature.apply_async <celery_actors.Signature.apply_async>`)."""
        id = workflow_id or uuid.uuid4().hex
        start = StartWorkflow(id=id, canvas=canvas, args=list(args), kwargs=dict(kwargs or {}))
        route = self.route
        if route is None:
            await self.workflows().ask(start)
        else:  # through the brokers, like a call: its result comes back to our inbox
            from ._brokers import command_address
            from ._publisher import Publish

            start = attrs.evolve(start, reply_to=route.reply_to)
            await route.publisher.tell(
                Publish(command_address(self.app.name, "default"), start, id)
            )
        return WorkflowResult(id, self)

    def workflow_result(self, workflow_id: str) -> WorkflowResult:
        """The handle of a workflow started earlier, maybe by another process (as
        :meth:`result` is a call's)."""
        return WorkflowResult(workflow_id, self)

    async def quarantine(self) -> list[QuarantinedCall]:
        """The calls in the router's quarantine, oldest first: those that failed for
        good (past their retries, or at a ``poisonous()`` step), each with the call as
        it was sent (arguments included) and its final result."""
        calls: list[QuarantinedCall] = await self.router.ask(ListQuarantined())
        return calls

    async def retry_quarantined(self, task_id: str) -> AsyncResult | None:
        """Run the quarantined call ``task_id`` again, and take it out of the quarantine.

        The re-run is a new call: same task, arguments, queue and priority, a full
        retry budget, and a new id (the sinks keep the first result of an id, which
        for ``task_id`` is its failure). Returns the new call's handle, or ``None`` if
        no call ``task_id`` is quarantined.
        """
        call: TaskCall | None = await self.router.ask(RetryQuarantined(task_id))
        if call is None:
            return None
        return AsyncResult(call.id, call.task, self)

    async def drop_quarantined(self, task_id: str) -> bool:
        """Take the call ``task_id`` out of the quarantine without running it again
        (its result stays in the sinks). Returns ``False`` if it was not quarantined."""
        dropped: bool = await self.router.ask(DropQuarantined(task_id))
        return dropped

    def control(self, worker: str, *, timeout: float = CONTROL_TIMEOUT) -> WorkerControl:
        """Control commands for the worker at ``worker`` (its address, as ``jumpstart
        run`` prints it): ``await client.control(address).ping()``; see
        :class:`WorkerControl` and ``docs/workers.md``."""
        return WorkerControl(self.system, worker, timeout=timeout)

    async def stats(self) -> RouterStats:
        """The router's counts: calls in each state, and what each worker did."""
        stats: RouterStats = await self.router.ask(GetStats())
        return stats


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
            document = await self.client._await_result(
                self.id, FOREVER if timeout is None else timeout
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
        return value_of(document)

    async def refresh(self) -> str:
        """Ask the router for the call's state now, keep it in :attr:`state`, return it.

        Over brokers, the client knows only ``pending`` and the final state, from the
        result that came back.
        """
        self.state = await self.client._state(self.id)
        return self.state

    async def revoke(self, *, terminate: bool = False) -> bool:
        """Do not run the call; with ``terminate``, cancel it if it is running.

        Returns ``True`` if the call will not run (or was cancelled), ``False`` if it
        had finished already, or is running and ``terminate`` is false. Over brokers,
        the revocation goes to every router and ``True`` means it was sent: routers
        that hold the call revoke it, and the others remember its id, so it does not
        run if it arrives later.
        """
        return await self.client._revoke(self.id, terminate)


@attrs.frozen
class _BrokerRoute:
    """How a client reaches the routers over brokers: its publisher, the inbox its
    results come back to, and the address of that inbox."""

    publisher: ActorRef
    inbox: ActorRef
    reply_to: str
    listeners: list[ActorRef] = attrs.Factory(list)


def _workflow_store(
    workflows: WorkflowStore | str | os.PathLike[str] | None,
) -> WorkflowStore:
    if workflows is None:
        return MemoryWorkflowStore()
    if isinstance(workflows, (str, os.PathLike)):
        return SQLiteWorkflowStore(workflows)
    return workflows


def _broker_settings(
    broker: str | BrokerSettings | Sequence[str | BrokerSettings] | None,
) -> list[BrokerSettings]:
    if broker is None:
        return []
    brokers = [broker] if isinstance(broker, (str, BrokerSettings)) else list(broker)
    return [
        # Durable queues: calls waiting on a broker survive its restart.
        BrokerSettings.from_url(b, durable_queues=True) if isinstance(b, str) else b
        for b in brokers
    ]
