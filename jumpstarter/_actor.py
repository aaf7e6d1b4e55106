"""The :class:`Actor` base class, and the decorators that declare its behaviour."""

from __future__ import annotations

import contextlib
import functools
import inspect
import types
import typing
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, Union, overload

import attrs

from ._exceptions import DependencyCycle, DependencyError
from ._lifecycle import Health
from ._statemachine import MachineState
from ._supervision import OneForOne, SupervisorStrategy

if TYPE_CHECKING:
    from ._cell import ActorCell
    from ._messages import PendingReply
    from ._ref import ActorRef
    from ._system import ActorSystem

__all__ = ["Actor", "ChildSpec", "handler", "resource"]

_F = TypeVar("_F", bound=Callable[..., Any])
_HANDLES = "__jumpstarter_handles__"
_RESOURCE = "__jumpstarter_resource__"


class Handler:
    """A resolved handler: the function and whether it must be awaited."""

    __slots__ = ("func", "is_async", "name")

    def __init__(self, func: Callable[..., Any]) -> None:
        self.func = func
        self.is_async = inspect.iscoroutinefunction(func)
        self.name = func.__qualname__


@overload
def handler(*message_types: type) -> Callable[[_F], _F]: ...
@overload
def handler(func: _F, /) -> _F: ...
def handler(*args: Any) -> Any:
    """Mark a method as the handler of a message type.

    The type comes from the annotation of the message parameter, or is given
    explicitly (``@handler(Ping, Pong)``, useful for a union or an unresolvable
    annotation). ``def`` handlers run inline and are the fastest; ``async def``
    handlers may await. Either way the actor handles one message at a time, and
    the return value answers an ``ask``.

    Example::

        class Counter(Actor):
            def __init__(self) -> None:
                self.count = 0

            @handler
            def add(self, msg: Add) -> int:
                self.count += msg.amount
                return self.count
    """
    if len(args) == 1 and callable(args[0]) and not isinstance(args[0], type):
        func = args[0]
        setattr(func, _HANDLES, None)
        return func
    for message_type in args:
        if not isinstance(message_type, type):
            raise TypeError(f"@handler takes message types, got {message_type!r}")

    def mark(func: _F) -> _F:
        setattr(func, _HANDLES, tuple(args))
        return func

    return mark


def resource(method: _F) -> _F:
    """Mark a method that returns a context manager the actor holds while it runs.

    The context manager (async, or sync: entered in a worker thread) is entered
    while the actor starts, in declaration order, and exited in reverse order
    while it stops or restarts. While the actor runs, reading the attribute gives
    the entered value.

    Example::

        class Store(Actor):
            @resource
            def db(self):
                return open_database(self.url)   # an async context manager

            @handler
            async def get(self, msg: Get) -> bytes:
                return await self.db.fetch(msg.key)
    """
    return typing.cast(_F, _ResourceDescriptor(method))


class _ResourceDescriptor:
    def __init__(self, method: Callable[..., Any]) -> None:
        self.method = method
        self.name = method.__name__
        functools.update_wrapper(self, method)  # type: ignore[arg-type]

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, instance: object | None, owner: type) -> Any:
        if instance is None:
            return self
        try:
            return instance.__dict__[self.name]
        except KeyError:
            raise AttributeError(
                f"resource {self.name!r} is only available while the actor is started"
            ) from None


def _any_tuple(values: Iterable[Any]) -> tuple[Any, ...]:
    return tuple(values)


def _str_tuple(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(values)


@attrs.frozen
class ChildSpec:
    """A child an actor spawns while it starts, declared on the class.

    ``depends_on`` names sibling specs that must be started first (and are
    stopped after this one). Cycles are rejected when the class is defined.
    """

    name: str
    actor: Callable[..., Actor]
    args: tuple[Any, ...] = attrs.field(default=(), converter=_any_tuple)
    depends_on: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple)


def _message_types(func: Callable[..., Any], owner: type) -> tuple[type, ...]:
    explicit = getattr(func, _HANDLES)
    if explicit:
        return typing.cast(tuple[type, ...], explicit)
    params = list(inspect.signature(func).parameters.values())
    if len(params) != 2:
        raise TypeError(
            f"handler {func.__qualname__} must take (self, message); "
            f"it takes {len(params)} parameters"
        )
    try:
        hints = typing.get_type_hints(func)
    except NameError as exc:
        raise TypeError(
            f"cannot resolve the message type of handler {func.__qualname__} ({exc}); "
            f"name it explicitly: @handler(MessageType)"
        ) from None
    annotation = hints.get(params[1].name)
    if annotation is None:
        raise TypeError(
            f"handler {func.__qualname__} needs a message type: annotate its message "
            f"parameter or use @handler(MessageType)"
        )
    if typing.get_origin(annotation) in (Union, types.UnionType):
        members = typing.get_args(annotation)
    else:
        members = (annotation,)
    for member in members:
        if not isinstance(member, type):
            raise TypeError(
                f"handler {func.__qualname__}: {member!r} is not a class; use @handler(MessageType)"
            )
    return tuple(members)


def _check_child_specs(owner: type, specs: Sequence[ChildSpec]) -> None:
    names = [spec.name for spec in specs]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise DependencyError(f"{owner.__qualname__}: child names used twice: {sorted(duplicates)}")
    by_name = {spec.name: spec for spec in specs}
    for spec in specs:
        for dep in spec.depends_on:
            if dep not in by_name:
                raise DependencyError(
                    f"{owner.__qualname__}: child {spec.name!r} depends on {dep!r}, "
                    f"which is not declared"
                )
    # depth-first search for a cycle, reporting its path
    visiting: list[str] = []
    done: set[str] = set()

    def visit(name: str) -> None:
        if name in done:
            return
        if name in visiting:
            cycle = [*visiting[visiting.index(name) :], name]
            raise DependencyCycle(
                f"{owner.__qualname__}: child dependencies form a cycle: {' -> '.join(cycle)}"
            )
        visiting.append(name)
        for dep in by_name[name].depends_on:
            visit(dep)
        visiting.pop()
        done.add(name)

    for name in names:
        visit(name)


class Actor:
    """Base class of actors: subclass it, declare handlers, spawn it in a system.

    An actor handles one message at a time, in the order they arrived, so its
    attributes need no locks. Outside code never holds the actor itself, only
    the :class:`~jumpstarter.ActorRef` that ``spawn`` returns.

    Example::

        import attrs, trio
        from jumpstarter import Actor, ActorSystem, handler

        @attrs.frozen
        class Greet:
            name: str

        class Greeter(Actor):
            def __init__(self, greeting: str) -> None:
                self.greeting = greeting

            @handler
            def greet(self, msg: Greet) -> str:
                return f"{self.greeting}, {msg.name}!"

        async def main() -> None:
            async with ActorSystem("demo") as system:
                greeter = await system.spawn(Greeter, "Hello")
                print(await greeter.ask(Greet("trio")))

        trio.run(main)

    Class attributes tune the runtime:

    Attributes:
        mailbox_size: how many messages wait before senders are slowed down.
        supervisor_strategy: what happens to this actor's children when one fails.
        child_specs: children spawned (in dependency order) while the actor starts.
        health_check_interval: seconds between calls of :meth:`health_check`, or None.
    """

    mailbox_size: ClassVar[int] = 1000
    supervisor_strategy: ClassVar[SupervisorStrategy] = OneForOne()
    child_specs: ClassVar[Sequence[ChildSpec]] = ()
    health_check_interval: ClassVar[float | None] = None

    # Compiled per class by __init_subclass__.
    _handlers: ClassVar[dict[type, Handler]] = {}
    _resource_names: ClassVar[tuple[str, ...]] = ()
    _sync_start: ClassVar[bool] = True
    _sync_stop: ClassVar[bool] = True

    _cell: ActorCell

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        handlers: dict[type, Handler] = {}
        resources: list[str] = []
        for klass in reversed(cls.__mro__):
            for attr, value in vars(klass).items():
                if isinstance(value, _ResourceDescriptor):
                    if attr in resources:
                        resources.remove(attr)
                    resources.append(attr)
                func = value.__func__ if isinstance(value, staticmethod | classmethod) else value
                if callable(func) and hasattr(func, _HANDLES):
                    for message_type in _message_types(func, cls):
                        handlers[message_type] = Handler(func)
        cls._handlers = handlers
        cls._resource_names = tuple(resources)
        _check_child_specs(cls, cls.child_specs)
        cls._sync_start = not (
            resources
            or inspect.iscoroutinefunction(cls.on_start)
            or cls.child_specs
            or cls.health_check_interval is not None
        )
        cls._sync_stop = not (resources or inspect.iscoroutinefunction(cls.on_stop))

    @classmethod
    def _handler_for(cls, message_type: type) -> Handler | None:
        """The handler for a message type, by exact type then by its base classes."""
        handlers = cls._handlers
        found = handlers.get(message_type)
        if found is not None:
            return found
        for base in message_type.__mro__[1:]:
            found = handlers.get(base)
            if found is not None:
                handlers[message_type] = found
                return found
        return None

    # -- hooks -----------------------------------------------------------------

    def on_start(self) -> Awaitable[None] | None:
        """Called while starting, once resources are acquired and declared children
        have started. May be ``async``."""
        return None

    def on_stop(self) -> Awaitable[None] | None:
        """Called while stopping (and before a restart), before resources are released."""
        return None

    async def health_check(self) -> Health:
        """Called every ``health_check_interval`` seconds; return the current health."""
        return Health.HEALTHY

    # -- context ------------------------------------------------------------------

    @property
    def ref(self) -> ActorRef:
        """This actor's own reference."""
        return self._cell.ref

    @property
    def path(self) -> str:
        """This actor's path in its system, such as ``/user/parent/child``."""
        return self._cell.path

    @property
    def name(self) -> str:
        """The last segment of :attr:`path`."""
        return self._cell.name

    @property
    def system(self) -> ActorSystem:
        """The actor system this actor lives in."""
        return self._cell.system

    @property
    def parent(self) -> ActorRef | None:
        """The supervising parent, or ``None`` for a top-level actor."""
        parent = self._cell.parent
        return None if parent is None else parent.ref

    @property
    def sender(self) -> ActorRef | None:
        """The sender of the message being handled, when the sender gave one."""
        return self._cell.current_sender

    def reply_later(self) -> PendingReply:
        """Answer the message being handled later, through the returned handle.

        The handler's return value is then not the answer: call ``succeed(value)`` or
        ``fail(error)`` on the handle when the answer is known, from a later handler or
        a task. Meanwhile the actor handles its other messages, which is the point: an
        actor that awaits a slow answer inside a handler blocks its mailbox::

            @handler
            def wait_for(self, msg: WaitFor) -> None:
                self.waiting.setdefault(msg.key, []).append(self.reply_later())

            @handler
            def arrived(self, msg: Arrived) -> None:
                for pending in self.waiting.pop(msg.key, []):
                    pending.succeed(msg.value)

        Works the same for local and remote asks. For a tell, answering does nothing.
        If the handler raises after asking for it, the asker gets the exception, as
        usual, and the handle's answer is ignored.
        """
        return self._cell.defer_reply()

    @property
    def lifecycle(self) -> MachineState:
        """This actor's lifecycle state machine (read it; the runtime drives it)."""
        return self._cell.lifecycle

    @property
    def children(self) -> dict[str, ActorRef]:
        """The live children, by name, in spawn order."""
        return {name: cell.ref for name, cell in (self._cell.children or {}).items()}

    def spawn_soon(
        self,
        actor: Callable[..., Actor],
        *args: Any,
        name: str | None = None,
        depends_on: Sequence[ActorRef] = (),
        mailbox_size: int | None = None,
    ) -> ActorRef:
        """Spawn a child supervised by this actor; it starts in the background.

        See :meth:`ActorSystem.spawn_soon` for the arguments.
        """
        return self._cell.system._spawn_soon(
            self._cell, actor, args, name=name, depends_on=depends_on, mailbox_size=mailbox_size
        )

    async def spawn(
        self,
        actor: Callable[..., Actor],
        *args: Any,
        name: str | None = None,
        depends_on: Sequence[ActorRef] = (),
        mailbox_size: int | None = None,
    ) -> ActorRef:
        """Spawn a child supervised by this actor and wait until it has started.

        Raises:
            ActorStartError: the child failed while starting.
        """
        ref = self.spawn_soon(
            actor, *args, name=name, depends_on=depends_on, mailbox_size=mailbox_size
        )
        await ref._cell.wait_started()
        return ref

    def stop(self) -> None:
        """Stop this actor once the current message is handled; later mail goes to dead letters."""
        self._cell.request_stop(drain=False)

    def watch(self, ref: ActorRef) -> None:
        """Receive :class:`~jumpstarter.Terminated` when ``ref``'s actor stops."""
        ref._cell.add_watcher(self._cell)

    def unwatch(self, ref: ActorRef) -> None:
        """Stop watching ``ref``."""
        ref._cell.remove_watcher(self._cell)

    def when_idle(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` once, as soon as this actor has handled all the mail it
        has: to act once on a burst of messages (send one batch of what they produced)
        rather than once per message, without a message to itself."""
        self._cell.when_idle(callback)

    def send_after(self, delay: float, message: Any, *, key: object = None) -> object:
        """Tell this actor ``message`` once, ``delay`` seconds from now.

        Returns the timer's key (``key`` if given); starting a timer with the key
        of a live one replaces it. Timers are cancelled when the actor stops or
        restarts.
        """
        return self._cell.start_timer(delay, message, key=key, repeat=False)

    def send_every(
        self,
        interval: float,
        message: Any,
        *,
        key: object = None,
        initial_delay: float | None = None,
    ) -> object:
        """Tell this actor ``message`` every ``interval`` seconds until cancelled."""
        return self._cell.start_timer(
            interval, message, key=key, repeat=True, initial_delay=initial_delay
        )

    def cancel_timer(self, key: object) -> bool:
        """Cancel a timer; returns whether it was live."""
        return self._cell.cancel_timer(key)

    def start_task(self, async_fn: Callable[..., Awaitable[object]], *args: Any) -> None:
        """Run ``async_fn(*args)`` in the background while this actor runs.

        The task is cancelled when the actor stops or restarts; an exception in it
        crashes the actor like a failing handler.
        """
        self._cell.start_background_task(async_fn, args)

    def report_health(self, health: Health) -> None:
        """Set this actor's health (``started.running.healthy|degraded|unhealthy``)."""
        self._cell.set_health(health)


def _resource_context(cm: Any, name: str) -> contextlib.AbstractAsyncContextManager[Any]:
    """Adapt what a ``@resource`` method returned to an async context manager."""
    if hasattr(cm, "__aenter__"):
        return typing.cast(contextlib.AbstractAsyncContextManager[Any], cm)
    if hasattr(cm, "__enter__"):
        return _ThreadedContext(cm)
    raise TypeError(f"resource {name!r} must return a context manager, got {cm!r}")


class _ThreadedContext(contextlib.AbstractAsyncContextManager[Any]):
    """Enter and exit a synchronous context manager in a worker thread."""

    def __init__(self, cm: contextlib.AbstractContextManager[Any]) -> None:
        self.cm = cm

    async def __aenter__(self) -> Any:
        import trio

        return await trio.to_thread.run_sync(self.cm.__enter__)

    async def __aexit__(self, *exc_info: Any) -> bool | None:
        import trio

        return await trio.to_thread.run_sync(self.cm.__exit__, *exc_info)
