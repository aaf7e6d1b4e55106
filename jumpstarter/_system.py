"""ActorSystem: the nursery, registry, supervisor and dead letters of a set of actors."""

from __future__ import annotations

import contextlib
import functools
import logging
import random
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, Final

import attrs
import trio

from ._actor import Actor, handler
from ._amqp._codec import TypeRegistry
from ._cell import ActorCell, stop_all
from ._deadlines import Deadlines
from ._exceptions import (
    ActorNotFound,
    ActorStopped,
    DependencyError,
    InvalidActorPath,
    SystemNotRunning,
)
from ._logging import configure_from_environment
from ._messages import DeadLetter, PauseRequest, ResumeRequest
from ._node import InspectRequest, Node, RemoteSettings, Settle, parse_address
from ._ref import ActorRef
from ._supervision import OneForOne, SupervisorStrategy

__all__ = [
    "ActorStatistics",
    "ActorSystem",
    "DeadLetters",
    "SubscribeDeadLetters",
    "SystemStatistics",
    "UnsubscribeDeadLetters",
]

logger = logging.getLogger("jumpstarter")

USER_ROOT: Final = "/user"
SYSTEM_ROOT: Final = "/system"


@attrs.frozen(kw_only=True)
class ActorStatistics:
    """Counters of one actor, as returned by :meth:`ActorSystem.statistics`."""

    path: str
    state: str
    received: int
    handled: int
    failed: int
    restarts: int
    mailbox_depth: int


@attrs.frozen(kw_only=True)
class SystemStatistics:
    """A snapshot of every live actor's counters and of the dead letters."""

    actors: Mapping[str, ActorStatistics]
    dead_letters: int


@attrs.frozen
class SubscribeDeadLetters:
    """Tell the dead letters actor to forward every :class:`DeadLetter` to ``subscriber``."""

    subscriber: ActorRef


@attrs.frozen
class UnsubscribeDeadLetters:
    """Stop forwarding dead letters to ``subscriber``."""

    subscriber: ActorRef


class DeadLetters(Actor):
    """The actor at ``/system/dead_letters``: receives every undeliverable message.

    Subscribers (:class:`SubscribeDeadLetters`) get a copy of each
    :class:`DeadLetter`; they are watched, and dropped when they stop.
    """

    mailbox_size = 1 << 30

    def __init__(self) -> None:
        self.subscribers: set[ActorRef] = set()

    @handler
    def subscribe(self, msg: SubscribeDeadLetters) -> None:
        _local_cell(msg.subscriber, "subscribe to dead letters")
        self.subscribers.add(msg.subscriber)

    @handler
    def unsubscribe(self, msg: UnsubscribeDeadLetters) -> None:
        self.subscribers.discard(msg.subscriber)

    @handler
    def record(self, msg: DeadLetter) -> None:
        for subscriber in tuple(self.subscribers):
            if not subscriber._cell.accepting:  # stopping: forwarding would loop
                self.subscribers.discard(subscriber)
            elif subscriber._cell is not self._cell:
                subscriber._cell.notify(msg)


class Inspector(Actor):
    """The actor at ``/system/inspector``: describes the system to whoever asks
    (``jumpstart inspect ADDRESS`` asks it over the network)."""

    @handler
    def inspect(self, msg: InspectRequest) -> dict[str, Any]:
        system = self.system
        actors: dict[str, Any] = {}
        if msg.actors:
            for path, stats in system.statistics().actors.items():
                actors[path] = {
                    "state": stats.state,
                    "mailbox": stats.mailbox_depth,
                    "received": stats.received,
                    "handled": stats.handled,
                    "failed": stats.failed,
                    "restarts": stats.restarts,
                }
        return {
            "system": system.name,
            "address": system.address_of(""),
            "dead_letters": len(system.recent_dead_letters()),
            "actors": actors,
        }


def _local_cell(ref: ActorRef, what: str) -> ActorCell:
    cell = ref._cell
    if type(cell) is not ActorCell:
        raise ValueError(
            f"cannot {what} {ref.address}: it is an actor of another node; "
            "do it from that node's own system"
        )
    return cell


def _split_listen(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(
            f"listen={listen!r} is not HOST:PORT (e.g. '127.0.0.1:5000', or port 0 for any)"
        )
    return host, int(port)


def _validate_name(name: str) -> None:
    if not name or "/" in name or name.startswith("$") or name != name.strip():
        raise InvalidActorPath(
            f"invalid actor name {name!r}: use a non-empty name without '/', "
            f"surrounding spaces or a leading '$'"
        )


class ActorSystem:
    """A set of actors running in one trio nursery.

    Use it as an async context manager; leaving the block shuts the system down
    gracefully (see :meth:`shutdown`)::

        async with ActorSystem("shop") as system:
            cart = await system.spawn(Cart, name="cart")
            await cart.tell(AddItem("book"))

    Args:
        name: the system's name, the first part of its actors' addresses.
        supervisor: the strategy for top-level actors (default: one-for-one
            restarts with backoff; escalation stops the actor).
        shutdown_timeout: seconds a graceful shutdown may take before the
            remaining actors are stopped at once.
        ask_timeout: the default timeout of ``ask``.
        dead_letter_history: how many recent dead letters
            :meth:`recent_dead_letters` keeps.
        seed: seeds the jitter of restart backoff, for reproducible tests.
        listen: ``"HOST:PORT"`` to accept AMQP 1.0 connections from other nodes
            (port 0 picks a free port; see :attr:`listen_address`). Actors'
            addresses are then ``amqp://HOST:PORT/<name>/<path>``. Without it the
            system can still send to remote actors (:meth:`ref`).
        registry: the message classes that travel between nodes, as AMQP values.
        remote: how to talk to other nodes (signing, TLS, limits); see
            :class:`RemoteSettings`.
    """

    BUDGET: Final = 256
    """Calls of tell/ask between two forced schedule points."""

    def __init__(
        self,
        name: str = "jumpstarter",
        *,
        supervisor: SupervisorStrategy | None = None,
        shutdown_timeout: float = 10.0,
        ask_timeout: float = 30.0,
        dead_letter_history: int = 1000,
        seed: int | None = None,
        listen: str | None = None,
        registry: TypeRegistry | None = None,
        remote: RemoteSettings | None = None,
    ) -> None:
        if not name or "/" in name:
            raise ValueError(f"invalid system name {name!r}: use a non-empty name without '/'")
        self.name = name
        self.supervisor = supervisor or OneForOne()
        self.shutdown_timeout = shutdown_timeout
        self.ask_timeout = ask_timeout
        self.force_release_timeout = 1.0
        self.random = random.Random(seed)
        self.budget = self.BUDGET
        self._registry: dict[str, ActorCell] = {}
        self._top: dict[str, ActorCell] = {}
        self._system_cells: dict[str, ActorCell] = {}
        self._counter = 0
        self._deadlines = Deadlines()
        self._actor_classes: set[type] = set()
        self._running = False
        self._closing = False
        self._nursery: trio.Nursery
        self._stack: contextlib.AsyncExitStack | None = None
        self._dead_letter_count = 0
        self._dead_letter_log: deque[DeadLetter] = deque(maxlen=dead_letter_history)
        self._dead_letters_cell: ActorCell | None = None
        self._idle: trio.Event | None = None
        self._listen = _split_listen(listen) if listen is not None else None
        self.registry = registry if registry is not None else TypeRegistry()
        self.remote = remote if remote is not None else RemoteSettings()
        """How this system talks to other nodes (read it; set it with ``remote=``)."""
        self._node = Node(self, self.registry, self.remote)
        self._shutdown_hooks: list[Callable[[], Awaitable[object]]] = []

    def __repr__(self) -> str:
        return f"<ActorSystem {self.name!r} actors={len(self._registry)}>"

    # -- context management ---------------------------------------------------

    async def __aenter__(self) -> ActorSystem:
        if self._running or self._closing:
            raise RuntimeError(f"actor system {self.name!r} can only be entered once")
        configure_from_environment()
        stack = contextlib.AsyncExitStack()
        self._nursery = await stack.enter_async_context(trio.open_nursery())
        self._stack = stack
        self._nursery.start_soon(self._deadlines.run, name=f"ask deadlines of {self.name}")
        self._running = True
        cell = self._new_cell(
            None,
            DeadLetters,
            DeadLetters,
            (),
            "dead_letters",
            f"{SYSTEM_ROOT}/dead_letters",
            capacity=DeadLetters.mailbox_size,
            dependencies=None,
        )
        self._system_cells["dead_letters"] = cell
        cell.start_sync()
        self._dead_letters_cell = cell
        inspector = self._new_cell(
            None,
            Inspector,
            Inspector,
            (),
            "inspector",
            f"{SYSTEM_ROOT}/inspector",
            capacity=1000,
            dependencies=None,
        )
        self._system_cells["inspector"] = inspector
        inspector.start_sync()
        self._node.start(self._nursery)
        if self._listen is not None:
            try:
                await self._node.start_listening(*self._listen)
            except BaseException:
                self._running = False
                self._nursery.cancel_scope.cancel()
                await stack.__aexit__(None, None, None)
                raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._stack is not None
        try:
            with trio.CancelScope(shield=exc_type is not None):
                await self.shutdown(None if exc_type is None else 0.0)
        finally:
            self._nursery.cancel_scope.cancel()
            # The block's own exception is not the nursery's: it propagates as is.
            await self._stack.__aexit__(None, None, None)
            with trio.CancelScope(shield=True):
                await self._finish_remaining()
        return None

    async def shutdown(self, timeout: float | None = None) -> None:
        """Stop every actor gracefully, then the system.

        The hooks of :meth:`on_shutdown` run first. Then top-level actors are stopped
        together; each stops the actors that depend on it first, then its children,
        then itself, handling the mail already in its mailbox. Past ``timeout``
        (default: ``shutdown_timeout``) the rest are stopped at once and their mail
        goes to the dead letters. New spawns are refused once the hooks have run.
        """
        if not self._running:
            return
        deadline = self.shutdown_timeout if timeout is None else timeout
        with trio.move_on_after(deadline):
            await self._run_shutdown_hooks()
            self._closing = True
            cells = [c for c in self._top.values() if not c.finished]
            await stop_all(cells, drain=True)
        self._closing = True
        await self._node.aclose()
        self._running = False
        self._nursery.cancel_scope.cancel()

    def on_shutdown(self, hook: Callable[[], Awaitable[object]]) -> Callable[[], None]:
        """Await ``hook()`` when a graceful shutdown begins, before any actor is stopped.

        Hooks run concurrently, while every actor still runs and the network is up,
        within the shutdown's deadline (``trio.current_effective_deadline()`` inside a
        hook says when it ends; past it, the hook is cancelled): use one to finish work
        in progress, such as a worker letting its running jobs end. An exception in a
        hook is logged and the shutdown goes on. A shutdown past its deadline, or with
        ``timeout=0``, does not wait for them.

        Returns a function that removes the hook.
        """
        self._shutdown_hooks.append(hook)

        def remove() -> None:
            if hook in self._shutdown_hooks:
                self._shutdown_hooks.remove(hook)

        return remove

    async def _run_shutdown_hooks(self) -> None:
        hooks, self._shutdown_hooks = self._shutdown_hooks, []
        if not hooks:
            return

        async def run(hook: Callable[[], Awaitable[object]]) -> None:
            try:
                await hook()
            except Exception as exc:
                logger.warning("shutdown hook %r failed: %r", hook, exc)

        async with trio.open_nursery() as nursery:
            for hook in hooks:
                nursery.start_soon(run, hook)

    async def _finish_remaining(self) -> None:
        for cell in list(self._registry.values()):
            if not cell.finished and cell is not self._dead_letters_cell:
                await cell.force_stop()
        dead_letters = self._dead_letters_cell
        if dead_letters is not None and not dead_letters.finished:
            # Handle what reached the dead letters during shutdown, then stop them.
            queue = dead_letters.mailbox
            actor = dead_letters.actor
            assert isinstance(actor, DeadLetters)
            while queue:
                item = queue.popleft()
                if isinstance(item, DeadLetter):
                    actor.record(item)
            dead_letters._stop_sync()
        self._running = False

    # -- spawning -------------------------------------------------------------

    def _check_running(self) -> None:
        if not self._running:
            raise SystemNotRunning(
                f"actor system {self.name!r} is not running: "
                f"spawn inside 'async with ActorSystem(...)'"
            )
        if self._closing:
            raise SystemNotRunning(f"actor system {self.name!r} is shutting down")

    def _new_cell(
        self,
        parent: ActorCell | None,
        factory: Callable[..., Actor],
        actor_class: type[Actor],
        args: tuple[Any, ...],
        name: str,
        path: str,
        *,
        capacity: int,
        dependencies: list[ActorCell] | None,
    ) -> ActorCell:
        cell = ActorCell(
            self, parent, name, path, factory, actor_class, args, capacity, dependencies
        )
        self._registry[path] = cell
        return cell

    def _spawn_soon(
        self,
        parent: ActorCell | None,
        factory: Callable[..., Actor],
        args: Sequence[Any],
        *,
        name: str | None,
        depends_on: Sequence[ActorRef],
        mailbox_size: int | None,
    ) -> ActorRef:
        if not self._running or self._closing:
            self._check_running()
        actor_class: Any = factory.func if type(factory) is functools.partial else factory
        if actor_class not in self._actor_classes:
            if not (isinstance(actor_class, type) and issubclass(actor_class, Actor)):
                raise TypeError(
                    f"spawn takes an Actor subclass (or a functools.partial of one), "
                    f"got {factory!r}"
                )
            self._actor_classes.add(actor_class)
        if parent is None:
            siblings = self._top
            base = USER_ROOT
        else:
            if parent.stopping or parent.finished:
                raise ActorStopped(f"{parent.path} is stopping and cannot spawn children")
            if parent.children is None:
                parent.children = {}
            siblings = parent.children
            base = parent.path
        if name is None:
            self._counter += 1
            name = f"${self._counter}"
        else:
            _validate_name(name)
            if name in siblings:
                raise InvalidActorPath(f"{base}/{name} already exists; choose another name")
        dependencies = None
        if depends_on:
            dependencies = []
            for ref in depends_on:
                dependency = ref._cell
                if dependency.finished or dependency.stopping:
                    raise DependencyError(f"cannot depend on {dependency.path}: it is stopped")
                dependencies.append(dependency)
        if mailbox_size is None:
            capacity = actor_class.mailbox_size
        elif mailbox_size < 1:
            raise ValueError(f"mailbox_size must be at least 1, got {mailbox_size}")
        else:
            capacity = mailbox_size
        cell = self._new_cell(
            parent,
            factory,
            actor_class,
            tuple(args),
            name,
            f"{base}/{name}",
            capacity=capacity,
            dependencies=dependencies,
        )
        siblings[name] = cell
        for dependency in dependencies or ():
            if dependency.dependents is None:
                dependency.dependents = []
            dependency.dependents.append(cell)
        if actor_class._sync_start and dependencies is None:
            cell.start_sync()
        else:
            cell.pending_start = True
            cell._spawn_runner()
        return cell.ref

    def spawn_soon(
        self,
        actor: Callable[..., Actor],
        *args: Any,
        name: str | None = None,
        depends_on: Sequence[ActorRef] = (),
        mailbox_size: int | None = None,
    ) -> ActorRef:
        """Spawn a top-level actor and return its ref without waiting for it to start.

        Messages sent before it has started wait in its mailbox. An actor whose
        start awaits nothing (no resources, dependencies or async ``on_start``) is
        started before this returns.

        Args:
            actor: an :class:`Actor` subclass, or a ``functools.partial`` of one to
                pass keyword arguments.
            *args: positional arguments for the actor's constructor.
            name: the actor's name (default: a unique ``$n``); its path is
                ``/user/<name>``.
            depends_on: actors that must be started before this one starts, and
                are stopped only after it has stopped.
            mailbox_size: overrides the class's ``mailbox_size``.

        Raises:
            InvalidActorPath: the name is malformed or taken.
            ActorStartError: a synchronous start failed.
            SystemNotRunning: the system is not running.
        """
        return self._spawn_soon(
            None, actor, args, name=name, depends_on=depends_on, mailbox_size=mailbox_size
        )

    async def spawn(
        self,
        actor: Callable[..., Actor],
        *args: Any,
        name: str | None = None,
        depends_on: Sequence[ActorRef] = (),
        mailbox_size: int | None = None,
    ) -> ActorRef:
        """Spawn a top-level actor and wait until it has started.

        Takes the arguments of :meth:`spawn_soon`.

        Raises:
            ActorStartError: the actor failed while starting (``__cause__`` says why).
        """
        ref = self.spawn_soon(
            actor, *args, name=name, depends_on=depends_on, mailbox_size=mailbox_size
        )
        await ref._cell.wait_started()
        return ref

    # -- control --------------------------------------------------------------

    async def stop(self, ref: ActorRef, *, drain: bool = False) -> None:
        """Stop an actor (and its children) and wait until it has stopped.

        Args:
            drain: handle the messages already in its mailbox first; otherwise
                they go to the dead letters once the current message is handled.
        """
        await _local_cell(ref, "stop").stop_and_wait(drain)

    def pause(self, ref: ActorRef) -> None:
        """Stop handling user messages; the mailbox keeps filling up to its size."""
        _local_cell(ref, "pause").post_system(PauseRequest())

    def resume(self, ref: ActorRef) -> None:
        """Resume a paused actor."""
        _local_cell(ref, "resume").post_system(ResumeRequest())

    # -- lookup ---------------------------------------------------------------

    @property
    def listen_address(self) -> tuple[str, int] | None:
        """The host and port the system listens on (with the real port when 0 was
        asked), or ``None`` if it does not listen."""
        return self._node.listen

    def address_of(self, path: str) -> str:
        """The address of the actor at ``path`` in this system."""
        advertised = self._node.advertised
        if advertised is not None:
            return f"{advertised}{path}"
        return f"local://{self.name}{path}"

    def lookup(self, path: str) -> ActorRef:
        """The ref of the live actor at ``path`` (``/user/a/b``, or ``a/b`` under ``/user``).

        Raises:
            ActorNotFound: no live actor has that path.
        """
        if not path.startswith("/"):
            path = f"{USER_ROOT}/{path}"
        cell = self._registry.get(path)
        if cell is None or cell.finished:
            raise ActorNotFound(f"no actor at {path} in system {self.name!r}")
        return cell.ref

    def ref(self, address: str, *, settle: Settle = "on-arrival") -> ActorRef:
        """The ref for an address: ``amqp://host:port/system/user/a`` (any node),
        ``local://system/user/a``, or a path in this system.

        A ref to an actor of another node is made without contacting it: the first
        message connects. ``tell``, ``tell_nowait`` and ``ask`` work on it as on a
        local ref.

        Args:
            settle: for a remote actor, when its node settles each message:
                ``"on-arrival"`` (once in the mailbox) or ``"after-handled"`` (once the
                handler returned; if the connection drops first, this node sends the
                message again: at least once).

        Raises:
            ActorNotFound: a local address or path that names no live actor, or
                another system's ``local://`` address.
            InvalidActorPath: a malformed ``amqp://`` address.
        """
        if address.startswith(("amqp://", "amqps://")):
            host, port, system, path = parse_address(address)
            if self._node.is_local(host, port, system):
                return self.lookup(path)
            return self._node.remote_ref(address, settle)
        prefix = f"local://{self.name}"
        if address.startswith(prefix + "/"):
            return self.lookup(address[len(prefix) :])
        if "://" in address:
            raise ActorNotFound(f"{address} is not an address in system {self.name!r}")
        return self.lookup(address)

    def state_of(self, ref: ActorRef) -> str:
        """The actor's current lifecycle state, such as ``started.running.healthy``."""
        return _local_cell(ref, "read the state of").lifecycle.state

    async def wait_for_state(self, ref: ActorRef, *states: str) -> str:
        """Wait until the actor's lifecycle is in one of ``states``; return the state."""
        return await _local_cell(ref, "wait for the state of").lifecycle.wait_for(*states)

    def on_state_change(
        self, ref: ActorRef, callback: Callable[[str, str, str], object]
    ) -> Callable[[], None]:
        """Call ``callback(old, new, trigger)`` on each lifecycle change.

        Returns a function that removes the callback.
        """
        return _local_cell(ref, "follow the state of").lifecycle.on_change(callback)

    def watch(self, watcher: ActorRef, target: ActorRef) -> None:
        """Make ``watcher`` receive :class:`~jumpstarter.Terminated` when ``target`` stops."""
        _local_cell(target, "watch").add_watcher(_local_cell(watcher, "watch with"))

    # -- dead letters ---------------------------------------------------------

    @property
    def dead_letters(self) -> ActorRef:
        """The dead letters actor; tell it :class:`SubscribeDeadLetters` to get copies."""
        if self._dead_letters_cell is None:
            raise SystemNotRunning(f"actor system {self.name!r} is not running")
        return self._dead_letters_cell.ref

    def recent_dead_letters(self) -> tuple[DeadLetter, ...]:
        """The most recent dead letters, oldest first."""
        return tuple(self._dead_letter_log)

    def _dead_letter(
        self, message: Any, recipient: str, sender: ActorRef | None, reason: str
    ) -> None:
        letter = DeadLetter(
            message=message, recipient=self.address_of(recipient), sender=sender, reason=reason
        )
        self._dead_letter_count += 1
        self._dead_letter_log.append(letter)
        cell = self._dead_letters_cell
        if cell is not None and not cell.finished and recipient != cell.path:
            cell.notify(letter)

    # -- observation ----------------------------------------------------------

    def statistics(self) -> SystemStatistics:
        """Counters of every live actor (received, handled, failed, restarts, mailbox depth)."""
        actors = {
            path: ActorStatistics(
                path=path,
                state=cell.lifecycle.state,
                received=cell.received,
                handled=cell.handled,
                failed=cell.failed,
                restarts=cell.restarts,
                mailbox_depth=len(cell.mailbox or ()),
            )
            for path, cell in self._registry.items()
        }
        return SystemStatistics(actors=actors, dead_letters=self._dead_letter_count)

    @property
    def actors(self) -> dict[str, ActorRef]:
        """Every live user actor, by path."""
        return {
            path: cell.ref
            for path, cell in self._registry.items()
            if path.startswith(USER_ROOT + "/")
        }

    async def wait_until_idle(self) -> None:
        """Return once no top-level user actor is alive (all have stopped)."""
        while live := [cell for cell in self._top.values() if not cell.finished]:
            await live[0].lifecycle.wait_for("stopped")
        await trio.lowlevel.checkpoint()

    def _unregister(self, cell: ActorCell) -> None:
        if self._registry.get(cell.path) is cell:
            del self._registry[cell.path]
