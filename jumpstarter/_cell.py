"""The runtime half of an actor: mailbox, runner task, lifecycle and supervision.

Theory of operation
-------------------
Each spawned actor has one :class:`ActorCell`. The cell owns the mailbox (a
deque bounded by ``capacity``), a small queue of *system* requests (stop,
restart, pause, resume, escalate) that are always taken before user mail, and
at most one *runner* task in the system's nursery.

An actor that has nothing to do has no task at all: spawning a plain actor
only builds objects and runs its lifecycle table, so idle actors cost a few
hundred bytes. The first message (or a start that must await something)
starts the runner; once started, the runner parks while the mailbox is empty
and is woken by the next sender, so a busy actor never pays for a new task.

The runner drains the mailbox in batches: it handles up to ``BATCH`` messages
between two trio schedule points, and admits blocked senders as room appears.
``tell`` only yields to the scheduler when the mailbox is full (backpressure)
or every ``BUDGET`` calls, so a sender fills a batch in one go.

An ``ask`` whose handler is a plain ``def`` and whose recipient is idle (running,
nothing queued, no runner busy) is handled right away in the asker's task: the
handler cannot await, so this is the same one-message-at-a-time execution the
runner would give, without the two task switches. Every other ask waits on a
:class:`~jumpstarter._messages.Reply`.

When a handler raises, the cell *crashes*: the ask being handled fails with the
exception, asks still queued fail with :class:`ActorCrashed`, and the parent's
supervisor strategy decides (see :mod:`jumpstarter._supervision`).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

import eliot
import outcome
import trio
from trio.lowlevel import Abort, current_task, reschedule, wait_task_rescheduled

from ._actor import Actor, Handler, _resource_context
from ._deadlines import ask_timeout_text
from ._exceptions import (
    ActorCrashed,
    ActorStartError,
    ActorStopped,
    AskTimeout,
    DependencyError,
    MailboxFull,
    UnhandledMessage,
)
from ._lifecycle import LIFECYCLE, Health
from ._logging import SWITCH, current_trace
from ._messages import (
    Envelope,
    HealthChanged,
    PauseRequest,
    PendingReply,
    Reply,
    RestartRequest,
    ResumeRequest,
    StopRequest,
    SystemMessage,
    Terminated,
)
from ._ref import ActorRef
from ._statemachine import MachineState
from ._supervision import Directive

if TYPE_CHECKING:
    from ._system import ActorSystem

logger = logging.getLogger("jumpstarter")

BATCH = 512
"""Messages a runner handles between two schedule points."""

_HEALTH_TRIGGERS = {
    Health.HEALTHY: "report_healthy",
    Health.DEGRADED: "report_degraded",
    Health.UNHEALTHY: "report_unhealthy",
}


def _no_handler(actor: Actor, message: object) -> None:
    raise AssertionError("a drain loop called a handler before looking one up")


def _follow(state: str, *triggers: str) -> str:
    """The state the lifecycle table reaches from ``state`` through ``triggers``."""
    for trigger in triggers:
        state = LIFECYCLE.table[state][trigger]
    return state


_BEFORE_TASKS_STARTED = _follow(
    LIFECYCLE.initial_leaf, "initialize", "dependencies_started", "resources_acquired"
)


class _EscalateRequest(SystemMessage):
    __slots__ = ("cause",)

    def __init__(self, cause: BaseException) -> None:
        self.cause = cause


class _RecoverRequest(SystemMessage):
    __slots__ = ()


def _abort_parked(cell: ActorCell) -> Callable[[Any], Abort]:
    def abort(_: Any) -> Abort:
        cell.parked = None
        return Abort.SUCCEEDED

    return abort


class ActorCell(MachineState):
    """Runtime state of one actor; never handed to user code.

    The cell is also the actor's lifecycle :class:`MachineState` (one object
    fewer per actor); user code sees it only through that interface.

    Fields that most actors never change live on the class as defaults, so an
    idle actor's cell holds only a dozen values (spawning is cheaper, and so is
    every pass of the garbage collector over a hundred thousand cells).
    """

    _table = LIFECYCLE.table

    # Rarely set: class-level defaults, shadowed per instance when they change.
    busy = False
    idle = False
    has_runner = False
    pending_start = False
    start_failed = False
    started_once = False
    finished = False
    stopping = False
    failed = 0
    restarts = 0
    health = Health.HEALTHY
    factory: Callable[..., Actor]
    args: tuple[Any, ...] = ()
    dependencies: list[ActorCell] | None = None
    children: dict[str, ActorCell] | None = None
    dependents: list[ActorCell] | None = None
    watchers: set[ActorCell] | None = None
    watching: set[ActorCell] | None = None
    timers: dict[object, trio.CancelScope] | None = None
    tasks: set[trio.CancelScope] | None = None
    exit_stack: contextlib.AsyncExitStack | None = None
    restart_times: deque[float] | None = None
    current_sender: ActorRef | None = None
    current_item: Any = None  # what an awaiting handler is handling
    deferred: PendingReply | None = None  # the handler asked to answer later
    stop_reason: BaseException | None = None
    start_scope: trio.CancelScope | None = None
    idle_hooks: list[Callable[[], None]] | None = None

    def __init__(
        self,
        system: ActorSystem,
        parent: ActorCell | None,
        name: str,
        path: str,
        factory: Callable[..., Actor],
        actor_class: type[Actor],
        args: tuple[Any, ...],
        capacity: int,
        dependencies: list[ActorCell] | None,
    ) -> None:
        # Read on every message: kept in the instance.
        self.active = False
        self.accepting = True
        self.mailbox: deque[Any] | None = None
        self.sysq: deque[SystemMessage] | None = None
        self.waiting_senders: deque[list[Any]] | None = None
        self.parked: trio.lowlevel.Task | None = None
        self.received = 0
        self.handled = 0
        self.capacity = capacity
        self.actor: Actor | None = None
        self.actor_class = actor_class
        self.system = system
        self.parent = parent
        self.name = name
        self.path = path
        self.factory = factory
        if args:
            self.args = args
        if dependencies:
            self.dependencies = dependencies
        self.machine = LIFECYCLE
        self.state = LIFECYCLE.initial_leaf
        self.ref: ActorRef = ActorRef._from_cell(self)

    @property
    def lifecycle(self) -> MachineState:
        """The actor's lifecycle state machine (this cell, seen as a MachineState)."""
        return self

    def __repr__(self) -> str:
        return f"<ActorCell {self.path} {self.state}>"

    @property
    def address(self) -> str:
        return self.system.address_of(self.path)

    # -- delivery -------------------------------------------------------------

    def _notify_mail(self) -> None:
        if self.active:
            parked = self.parked
            if parked is not None:
                self.parked = None
                reschedule(parked)
            elif not self.has_runner:
                self._spawn_runner()

    def tell_nowait(self, message: Any, sender: ActorRef | None) -> None:
        if not self.accepting:
            self.system._dead_letter(message, self.path, sender, "the recipient is stopped")
            return
        queue = self.mailbox
        if queue is None:
            queue = self.mailbox = deque()
        if len(queue) >= self.capacity or self.waiting_senders:
            raise MailboxFull(
                f"the mailbox of {self.path} is full ({self.capacity} messages); "
                f"use 'await ref.tell(msg)' to wait for room"
            )
        if sender is not None or SWITCH.enabled:
            message = Envelope(message, sender, None, current_trace() if SWITCH.enabled else None)
        queue.append(message)
        self.received += 1
        self._notify_mail()

    async def tell(self, message: Any, sender: ActorRef | None) -> None:
        system = self.system
        system.budget -= 1
        if system.budget <= 0:
            system.budget = system.BUDGET
            await trio.lowlevel.checkpoint()
        if not self.accepting:
            system._dead_letter(message, self.path, sender, "the recipient is stopped")
            return
        if sender is not None or SWITCH.enabled:
            message = Envelope(message, sender, None, current_trace() if SWITCH.enabled else None)
        await self._put(message)

    def offer(self, item: Any) -> bool:
        """Enqueue ``item`` if there is room and no sender waits for it; else False.

        For messages that arrive from the network: their link's credit is what
        held them back, so they never wait in a task (see :meth:`wait_for_room`).
        """
        queue = self.mailbox
        if queue is None:
            queue = self.mailbox = deque()
        if len(queue) < self.capacity and not self.waiting_senders:
            queue.append(item)
            self.received += 1
            self._notify_mail()
            return True
        return False

    def wait_for_room(self, admit: Callable[[], bool]) -> None:
        """Call ``admit()`` whenever a message leaves the full mailbox, in turn with
        waiting senders, until it returns False (done waiting).

        ``admit`` may :meth:`offer` messages (it must not call this method; it returns
        True to keep waiting). It is also called once when the actor stops, to drop
        what it still holds (``accepting`` is False by then).
        """
        waiting = self.waiting_senders
        if waiting is None:
            waiting = self.waiting_senders = deque()
        waiting.append([None, admit])
        self._notify_mail()

    def when_idle(self, hook: Callable[[], None]) -> None:
        """Call ``hook()`` once, the next time the actor has handled all its mail (a
        network link then gives its sender credit for the whole mailbox again)."""
        hooks = self.idle_hooks
        if hooks is None:
            hooks = self.idle_hooks = []
        hooks.append(hook)
        if not self.has_runner and self.active:
            self._spawn_runner()

    async def _put(self, item: Any) -> None:
        """Enqueue ``item`` (a message or an envelope), waiting while the mailbox is full."""
        if self.offer(item):
            return
        waiting = self.waiting_senders
        if waiting is None:
            waiting = self.waiting_senders = deque()
        entry = [current_task(), item]
        waiting.append(entry)

        def abort(_: Any) -> Abort:
            with contextlib.suppress(ValueError):
                waiting.remove(entry)
            return Abort.SUCCEEDED

        self._notify_mail()
        await wait_task_rescheduled(abort)

    async def ask(self, message: Any, timeout: float | None, sender: ActorRef | None) -> Any:
        system = self.system
        system.budget -= 1
        if system.budget <= 0:
            system.budget = system.BUDGET
            await trio.lowlevel.checkpoint()
        found = self._inline_handler(message)
        if found is not None:
            result = self._handle_inline(found, message, sender)
            pending = self.deferred
            if pending is None:
                return result
            self.deferred = None
            reply = Reply()
            pending._attach(reply)
            if timeout is None:
                timeout = system.ask_timeout
            system._deadlines.add(trio.current_time() + timeout, reply, self.path, message, timeout)
            return await reply.wait()
        if not self.accepting:
            system._dead_letter(message, self.path, sender, "the recipient is stopped")
            await trio.lowlevel.checkpoint()
            raise ActorStopped(f"{self.path} is stopped; the message went to the dead letters")
        reply = Reply()
        envelope = Envelope(message, sender, reply, current_trace() if SWITCH.enabled else None)
        if timeout is None:
            timeout = system.ask_timeout
        deadline = trio.current_time() + timeout
        queue = self.mailbox
        if queue is not None and len(queue) < self.capacity and not self.waiting_senders:
            queue.append(envelope)
            self.received += 1
            self._notify_mail()
        else:
            with trio.move_on_at(deadline):
                await self._put(envelope)
            if not reply.done and trio.current_time() >= deadline:
                raise AskTimeout(ask_timeout_text(self.path, message, timeout))
        system._deadlines.add(deadline, reply, self.path, message, timeout)
        return await reply.wait()

    def handle_now(
        self, message: Any, sender: ActorRef | None
    ) -> outcome.Outcome[Any] | PendingReply | None:
        """Handle ``message`` right here, in the caller's task, if the actor is idle and
        its handler is a plain ``def`` (as an ask does); ``None`` if it cannot be. The
        handler's outcome, or the :class:`PendingReply` it will answer through later."""
        found = self._inline_handler(message) if self.accepting else None
        if found is None:
            return None
        try:
            result = outcome.Value(self._handle_inline(found, message, sender))
        except Exception as exc:
            return outcome.Error(exc)
        pending = self.deferred
        if pending is not None:
            self.deferred = None
            return pending
        return result

    def defer_reply(self) -> PendingReply:
        """The answer to the message being handled, to be given later."""
        pending = self.deferred
        if pending is None:
            item = self.current_item
            pending = self.deferred = PendingReply(item.reply if type(item) is Envelope else None)
        return pending

    def _inline_handler(self, message: Any) -> Handler | None:
        """The handler to run ``message`` with in the caller's task, if that may be
        done: the actor is idle, nothing is queued before it, the handler is a plain
        ``def`` (and logging, which needs the full path, is off)."""
        if (
            self.active
            and not self.mailbox
            and not self.sysq
            and not self.busy
            and not SWITCH.enabled
            and (self.idle or not self.has_runner)
        ):
            found = self.actor_class._handler_for(type(message))
            if found is not None and not found.is_async:
                return found
        return None

    def _handle_inline(self, found: Handler, message: Any, sender: ActorRef | None) -> Any:
        self.received += 1
        self.busy = True
        self.current_sender = sender
        self.deferred = None
        try:
            result = found.func(self.actor, message)
        except Exception as exc:
            self.failed += 1
            self.busy = False
            self.current_sender = None
            self.deferred = None
            self._crash(exc)
            raise
        self.busy = False
        self.current_sender = None
        self.handled += 1
        if self.mailbox or self.sysq:
            self._notify_mail()
        return result

    def notify(self, message: Any) -> None:
        """Queue a runtime notification (``Terminated``), ignoring the capacity."""
        if not self.accepting:
            if self is not self.system._dead_letters_cell:
                self.system._dead_letter(message, self.path, None, "the recipient is stopped")
            return
        queue = self.mailbox
        if queue is None:
            queue = self.mailbox = deque()
        queue.append(message)
        self.received += 1
        self._notify_mail()

    def post_system(self, request: SystemMessage) -> None:
        if self.finished:
            return
        queue = self.sysq
        if queue is None:
            queue = self.sysq = deque()
        queue.append(request)
        parked = self.parked
        if parked is not None:
            self.parked = None
            reschedule(parked)
        elif not self.has_runner:
            self._spawn_runner()

    # -- the runner -----------------------------------------------------------

    def _spawn_runner(self) -> None:
        self.has_runner = True
        self.system._nursery.start_soon(self._run, name=f"actor {self.path}")

    async def _park(self) -> None:
        self.parked = current_task()
        await wait_task_rescheduled(_abort_parked(self))

    async def _run(self) -> None:
        try:
            if self.pending_start:
                self.pending_start = False
                await self._start(first=True)
            while not self.finished:
                if self.sysq:
                    await self._system_request(self.sysq.popleft())
                elif self.active and self.mailbox:
                    await self._drain()
                elif self.idle_hooks:
                    hooks, self.idle_hooks = self.idle_hooks, None
                    for hook in hooks:
                        hook()
                else:
                    self.idle = True
                    try:
                        await self._park()
                    finally:
                        self.idle = False
        except trio.Cancelled:
            with trio.CancelScope(shield=True):
                await self.force_stop()
            raise
        finally:
            self.has_runner = False
            self.parked = None

    async def _drain(self) -> None:
        queue = self.mailbox
        assert queue is not None
        actor = self.actor
        actor_class = self.actor_class
        logged = SWITCH.enabled
        last_type: type | None = None
        func: Callable[..., Any] = _no_handler
        is_async = False
        handled = 0
        try:
            while True:
                budget = BATCH
                # Only a system request (from a handler, or posted while this task
                # was suspended) or a crash can interrupt a batch.
                while budget and queue and not self.sysq:
                    item = queue.popleft()
                    budget -= 1
                    if self.waiting_senders:
                        self._admit_waiting()
                    item_type = type(item)
                    if item_type is not last_type:
                        if logged or item_type is Envelope:
                            await self._handle(item)
                            if not self.active:
                                return
                            continue
                        found = actor_class._handler_for(item_type)
                        if found is None:
                            self._unhandled(item, None, None)
                            continue
                        last_type, func, is_async = item_type, found.func, found.is_async
                    try:
                        if is_async:
                            self.current_item = item
                            await func(actor, item)
                            self.current_item = None
                        else:
                            func(actor, item)
                    except Exception as exc:
                        self.current_item = None
                        self.failed += 1
                        self._crash(exc)
                        return
                    handled += 1
                if budget:
                    return
                self.handled += handled
                handled = 0
                await trio.lowlevel.checkpoint()
                if not self.active:
                    return
        finally:
            self.handled += handled

    def _admit_waiting(self) -> None:
        waiting = self.waiting_senders
        queue = self.mailbox
        assert waiting is not None and queue is not None
        while waiting and len(queue) < self.capacity:
            task, item = waiting.popleft()
            if task is None:  # a network link (see wait_for_room): it goes first
                self.waiting_senders = None
                still_waiting = item()
                self.waiting_senders = waiting
                if still_waiting:
                    waiting.appendleft([None, item])
                    return
                continue
            queue.append(item)
            self.received += 1
            reschedule(task)

    async def _handle(self, item: Any) -> None:
        """Handle one message through the full path (envelopes, logging)."""
        if type(item) is Envelope:
            message, sender, reply, trace = item.message, item.sender, item.reply, item.trace
        else:
            message, sender, reply, trace = item, None, None, None
        found = self.actor_class._handler_for(type(message))
        if found is None:
            self._unhandled(message, sender, reply)
            return
        self.current_sender = sender
        self.current_item = item
        self.deferred = None
        try:
            if SWITCH.enabled:
                result = await self._handle_logged(found, message, trace)
            else:
                result = found.func(self.actor, message)
                if found.is_async:
                    result = await result
        except Exception as exc:
            self.current_item = None
            self.deferred = None
            self.failed += 1
            if reply is not None:
                reply.fail(exc)
            self._crash(exc)
            return
        finally:
            self.current_sender = None
        self.current_item = None
        self.handled += 1
        if self.deferred is not None:
            self.deferred = None  # answered through the PendingReply
        elif reply is not None:
            reply.succeed(result)

    async def _handle_logged(self, found: Handler, message: Any, trace: str | None) -> Any:
        with contextlib.ExitStack() as stack:
            if trace is not None:
                stack.enter_context(eliot.Action.continue_task(task_id=trace))
            action = stack.enter_context(
                eliot.start_action(
                    action_type="jumpstarter:handle",
                    actor=self.path,
                    message_type=type(message).__qualname__,
                )
            )
            started = time.perf_counter()
            result = found.func(self.actor, message)
            if found.is_async:
                result = await result
            action.add_success_fields(duration=time.perf_counter() - started)
            return result

    def _unhandled(self, message: Any, sender: ActorRef | None, reply: Reply | None) -> None:
        reason = f"{self.actor_class.__qualname__} has no handler for {type(message).__qualname__}"
        self.system._dead_letter(message, self.path, sender, reason)
        if reply is not None:
            reply.fail(UnhandledMessage(f"{self.path}: {reason}"))

    async def _system_request(self, request: SystemMessage) -> None:
        if isinstance(request, StopRequest):
            await self._stop(request.drain)
        elif isinstance(request, RestartRequest):
            await self._restart(request)
        elif isinstance(request, PauseRequest):
            if self.lifecycle.can("pause"):
                self.lifecycle.fire("pause")
                self.active = False
        elif isinstance(request, ResumeRequest):
            if self.lifecycle.can("resume"):
                self.lifecycle.fire("resume")
                self._apply_health()
                self.active = True
        elif isinstance(request, _RecoverRequest):
            if self.lifecycle.can("recover"):
                self.lifecycle.fire("recover")
                self._apply_health()
                self.active = True
        elif isinstance(request, _EscalateRequest):
            self._crash(request.cause)

    # -- starting -------------------------------------------------------------

    def instantiate(self) -> None:
        factory = self.factory
        actor_class = self.actor_class
        actor = actor_class.__new__(actor_class)
        actor._cell = self
        self.actor = actor
        if isinstance(factory, functools.partial):
            actor_class.__init__(actor, *factory.args, *self.args, **factory.keywords)
        else:
            actor_class.__init__(actor, *self.args)

    def start_sync(self) -> None:
        """Start an actor whose start awaits nothing, inside ``spawn_soon``."""
        lifecycle = self.lifecycle
        try:
            self.instantiate()
            # Nobody can observe a cell that spawn has not returned yet, so the
            # steps up to on_start are taken at once (the table allows them).
            lifecycle.state = _BEFORE_TASKS_STARTED
            assert self.actor is not None
            self.actor.on_start()
            lifecycle.fire("tasks_started")
            lifecycle.fire("start")
        except Exception as exc:
            self._start_failed_sync(exc)
            raise ActorStartError(f"{self.path} failed to start: {exc!r}") from exc
        self.active = True
        self.started_once = True

    def _start_failed_sync(self, exc: BaseException) -> None:
        self.start_failed = True
        self.stop_reason = exc
        if self.lifecycle.can("crash"):
            self.lifecycle.fire("crash")
        self._cancel_timers_and_tasks()
        self.accepting = False
        self._step_to_stopped()
        self._finalize(exc)

    async def _start(self, *, first: bool) -> None:
        lifecycle = self.lifecycle
        with trio.CancelScope() as scope:
            self.start_scope = scope
            if self._stop_pending():
                scope.cancel()
            try:
                if first:
                    self.instantiate()
                    lifecycle.fire("initialize")
                await self._wait_for_dependencies()
                lifecycle.fire("dependencies_started")
                await self._acquire_resources()
                lifecycle.fire("resources_acquired")
                await self._spawn_declared_children()
                assert self.actor is not None
                started = self.actor.on_start()
                if inspect.isawaitable(started):
                    await started
                if self.actor_class.health_check_interval is not None:
                    self.start_background_task(self._health_loop, ())
                lifecycle.fire("tasks_started")
                lifecycle.fire("start")
                self._apply_health()
                self.active = True
                self.started_once = True
            except Exception as exc:
                self._start_error(exc, first=first)
            finally:
                self.start_scope = None

    def _stop_pending(self) -> bool:
        return any(isinstance(request, StopRequest) for request in self.sysq or ())

    def _start_error(self, exc: BaseException, *, first: bool) -> None:
        self.failed += 1
        if first:
            logger.warning("actor %s failed to start: %r", self.path, exc)
            self.start_failed = True
            self.stop_reason = exc
            if self.lifecycle.can("crash"):
                self.lifecycle.fire("crash")
            self.post_system(StopRequest(drain=False))
        else:
            self._crash(exc)

    async def _wait_for_dependencies(self) -> None:
        for dependency in self.dependencies or ():
            state = await dependency.lifecycle.wait_for("started", "stopping", "stopped")
            if not state.startswith("started"):
                raise DependencyError(
                    f"{self.path} depends on {dependency.path}, which stopped before it started"
                )

    async def _acquire_resources(self) -> None:
        names = self.actor_class._resource_names
        if not names:
            return
        actor = self.actor
        assert actor is not None
        stack = self.exit_stack = contextlib.AsyncExitStack()
        for name in names:
            descriptor = getattr(type(actor), name)
            context = _resource_context(descriptor.method(actor), name)
            actor.__dict__[name] = await stack.enter_async_context(context)

    async def _spawn_declared_children(self) -> None:
        specs = self.actor_class.child_specs
        if not specs:
            return
        refs: dict[str, ActorRef] = {}
        pending = list(specs)
        while pending:  # specs are acyclic (checked at class creation): this ends
            for spec in list(pending):
                if all(dep in refs for dep in spec.depends_on):
                    refs[spec.name] = self.system._spawn_soon(
                        self,
                        spec.actor,
                        spec.args,
                        name=spec.name,
                        depends_on=[refs[d] for d in spec.depends_on],
                        mailbox_size=None,
                    )
                    pending.remove(spec)
        for ref in refs.values():
            await ref._cell.wait_started()

    async def _health_loop(self) -> None:
        interval = self.actor_class.health_check_interval
        assert interval is not None
        while True:
            await trio.sleep(interval)
            if self.actor is not None and self.active:
                self.set_health(await self.actor.health_check())

    async def wait_started(self) -> None:
        """Wait until the actor has started; raise if it stopped before starting."""
        await self.lifecycle.wait_for("started", "stopped")
        if not self.started_once:
            reason = self.stop_reason
            what = f"failed to start: {reason!r}" if reason else "was stopped before it started"
            raise ActorStartError(f"{self.path} {what}") from reason

    def set_health(self, health: Health) -> None:
        if health is self.health:
            return
        previous, self.health = self.health, health
        self._apply_health()
        self._tell_parent_health(previous)

    def _tell_parent_health(self, previous: Health) -> None:
        parent = self.parent
        if parent is not None and parent.actor_class._handler_for(HealthChanged) is not None:
            parent.notify(HealthChanged(ref=self.ref, previous=previous, health=self.health))

    def _apply_health(self) -> None:
        trigger = _HEALTH_TRIGGERS[self.health]
        lifecycle = self.lifecycle
        if (
            lifecycle.is_in("started.running")
            and lifecycle.state != f"started.running.{self.health.value}"
        ):
            lifecycle.fire(trigger)

    # -- timers and background tasks ------------------------------------------

    def start_timer(
        self,
        delay: float,
        message: Any,
        *,
        key: object,
        repeat: bool,
        initial_delay: float | None = None,
    ) -> object:
        if self.finished or self.stopping:
            raise ActorStopped(f"{self.path} is stopping; it cannot start timers")
        if key is None:
            key = object()
        self.cancel_timer(key)
        scope = trio.CancelScope()
        if self.timers is None:
            self.timers = {}
        self.timers[key] = scope
        first = delay if initial_delay is None else initial_delay
        self.system._nursery.start_soon(self._timer, scope, key, first, delay, message, repeat)
        return key

    async def _timer(
        self,
        scope: trio.CancelScope,
        key: object,
        first: float,
        interval: float,
        message: Any,
        repeat: bool,
    ) -> None:
        with scope:
            await trio.sleep(first)
            while self.accepting:
                await self._put(message)
                if not repeat:
                    break
                await trio.sleep(interval)
        if self.timers is not None and self.timers.get(key) is scope:
            del self.timers[key]

    def cancel_timer(self, key: object) -> bool:
        scope = self.timers.pop(key, None) if self.timers else None
        if scope is None:
            return False
        scope.cancel()
        return True

    def start_background_task(
        self, async_fn: Callable[..., Awaitable[object]], args: Sequence[Any]
    ) -> None:
        if self.finished or self.stopping:
            raise ActorStopped(f"{self.path} is stopping; it cannot start tasks")
        scope = trio.CancelScope()
        if self.tasks is None:
            self.tasks = set()
        self.tasks.add(scope)
        self.system._nursery.start_soon(self._background, scope, async_fn, tuple(args))

    async def _background(
        self,
        scope: trio.CancelScope,
        async_fn: Callable[..., Awaitable[object]],
        args: tuple[Any, ...],
    ) -> None:
        try:
            with scope:
                await async_fn(*args)
        except Exception as exc:
            if not self.finished and not self.stopping:
                self.failed += 1
                self._crash(exc)
        finally:
            if self.tasks is not None:
                self.tasks.discard(scope)

    def _cancel_timers_and_tasks(self) -> None:
        if self.timers:
            for scope in self.timers.values():
                scope.cancel()
            self.timers = None
        if self.tasks:
            for scope in self.tasks:
                scope.cancel()
            self.tasks = None

    # -- crashing and supervision ---------------------------------------------

    def _crash(self, exc: BaseException) -> None:
        if not self.lifecycle.can("crash"):
            return
        self.active = False
        self.lifecycle.fire("crash")
        logger.warning("actor %s crashed: %r", self.path, exc)
        queue = self.mailbox
        if queue:
            kept: deque[Any] = deque()
            for item in queue:
                if type(item) is Envelope and item.reply is not None:
                    error = ActorCrashed(
                        f"{self.path} crashed ({exc!r}) before handling this "
                        f"{type(item.message).__qualname__}"
                    )
                    error.__cause__ = exc
                    item.reply.fail(error)
                    self.system._dead_letter(
                        item.message,
                        self.path,
                        item.sender,
                        "the recipient crashed before handling it",
                    )
                else:
                    kept.append(item)
            queue.clear()
            queue.extend(kept)
        _supervise(self, exc)

    # -- restarting -----------------------------------------------------------

    async def _restart(self, request: RestartRequest) -> None:
        if self.finished or self.stopping:
            return
        lifecycle = self.lifecycle
        if not lifecycle.is_in("restarting"):
            if not lifecycle.can("restart"):
                return
            lifecycle.fire("restart")
        self.active = False
        if request.delay > 0:
            with trio.move_on_after(request.delay):
                while not self._stop_pending():
                    await self._park()
            if self._stop_pending():
                return
        children = list((self.children or {}).values())
        for child in children:
            # The restart stops them: the new instance is not told about it.
            child.remove_watcher(self)
        await stop_all(children, drain=False)
        await self._release_instance()
        if self.stopping or self._stop_pending():
            return
        try:
            self.instantiate()
        except Exception as exc:
            self.failed += 1
            lifecycle.fire("reinitialize")
            self._crash(exc)
            return
        lifecycle.fire("reinitialize")
        previous, self.health = self.health, Health.HEALTHY
        await self._start(first=False)
        if previous is not Health.HEALTHY and self.active:
            self._tell_parent_health(previous)

    async def _release_instance(self) -> None:
        """Cancel timers and tasks, call ``on_stop``, release resources; log errors."""
        self._cancel_timers_and_tasks()
        actor = self.actor
        if actor is None:
            return
        try:
            stopped = actor.on_stop()
            if inspect.isawaitable(stopped):
                await stopped
        except Exception as exc:
            logger.warning("actor %s: on_stop failed: %r", self.path, exc)
        stack, self.exit_stack = self.exit_stack, None
        if stack is not None:
            try:
                await stack.aclose()
            except Exception as exc:
                logger.warning("actor %s: releasing a resource failed: %r", self.path, exc)
        for name in self.actor_class._resource_names:
            actor.__dict__.pop(name, None)

    # -- stopping -------------------------------------------------------------

    def request_stop(self, drain: bool) -> None:
        """Ask the actor to stop; synchronous when nothing needs awaiting."""
        if self.finished or self.stopping:
            return
        scope = self.start_scope
        if scope is not None:
            scope.cancel()
        if self._can_stop_now(drain):
            self._stop_sync()
        else:
            self.post_system(StopRequest(drain))

    def _can_stop_now(self, drain: bool) -> bool:
        return (
            self.actor_class._sync_stop
            and not self.busy
            and not self.children
            and not self.dependents
            and self.exit_stack is None
            and not self.sysq
            and not self.pending_start
            and (not self.has_runner or self.idle)
            and not (drain and self.mailbox)
        )

    def _stop_sync(self) -> None:
        self.stopping = True
        self.accepting = False
        self.active = False
        self._cancel_timers_and_tasks()
        actor = self.actor
        if actor is not None and not self.start_failed:
            try:
                actor.on_stop()
            except Exception as exc:
                logger.warning("actor %s: on_stop failed: %r", self.path, exc)
        self._step_to_stopped()
        self._finalize(self.stop_reason)

    async def stop_and_wait(self, drain: bool) -> None:
        self.request_stop(drain)
        await self.lifecycle.wait_for("stopped")

    async def _stop(self, drain: bool) -> None:
        if self.finished or self.stopping:
            return
        self.stopping = True
        self.accepting = False
        if drain and self.active:
            while self.mailbox and self.active:
                self.sysq = None  # nothing but stopping matters now
                await self._drain()
        self.active = False
        dependents = list(self.dependents or ())
        await stop_all(dependents, drain=drain)
        await stop_all(list((self.children or {}).values()), drain=drain)
        self.lifecycle.fire("stop")
        if not self.start_failed:
            await self._release_instance()
        else:
            self._cancel_timers_and_tasks()
            stack, self.exit_stack = self.exit_stack, None
            if stack is not None:
                with contextlib.suppress(Exception):
                    await stack.aclose()
        self.lifecycle.fire("resources_released")
        self._detach_dependencies()
        self.lifecycle.fire("dependencies_stopped")
        self._finalize(self.stop_reason)

    def _detach_dependencies(self) -> None:
        for dependency in self.dependencies or ():
            if dependency.dependents and self in dependency.dependents:
                dependency.dependents.remove(self)
        self.dependencies = None

    def _step_to_stopped(self) -> None:
        lifecycle = self.lifecycle
        for trigger in ("stop", "resources_released", "dependencies_stopped", "finish"):
            if lifecycle.can(trigger):
                lifecycle.fire(trigger)
        self._detach_dependencies()

    async def force_stop(self) -> None:
        """Stop at once (shutdown deadline passed): release what can be, drop the rest."""
        if self.finished:
            return
        self.stopping = True
        self.accepting = False
        self.active = False
        interrupted, self.current_item = self.current_item, None
        if interrupted is not None:
            self._drop(interrupted, "the shutdown deadline passed while it was being handled")
        with trio.move_on_after(self.system.force_release_timeout):
            if not self.start_failed:
                await self._release_instance()
            else:
                self._cancel_timers_and_tasks()
        self._step_to_stopped()
        self._finalize(self.stop_reason)

    def _finalize(self, reason: BaseException | None) -> None:
        self.finished = True
        self.stopping = True
        self.accepting = False
        self.active = False
        lifecycle = self.lifecycle
        if lifecycle.can("finish"):
            lifecycle.fire("finish")
        system = self.system
        queue, self.mailbox = self.mailbox, None
        if system._dead_letters_cell is self:
            queue = None  # already counted as dead letters when they arrived
        for item in queue or ():
            self._drop(item, "the recipient stopped before handling it")
        waiting, self.waiting_senders = self.waiting_senders, None
        for task, item in waiting or ():
            if task is None:  # a network link: it drops what it holds
                item()
                continue
            self._drop(item, "the recipient stopped before accepting it")
            reschedule(task)
        self.sysq = None
        system._unregister(self)
        parent = self.parent
        siblings = parent.children if parent is not None else system._top
        if siblings is not None and siblings.get(self.name) is self:
            del siblings[self.name]
        for target in self.watching or ():
            if target.watchers:
                target.watchers.discard(self)
        self.watching = None
        watchers, self.watchers = self.watchers, None
        if watchers:
            notice = Terminated(ref=self.ref, reason=reason)
            for watcher in watchers:
                watcher.notify(notice)
        if self.dependents:
            self.dependents = None
        parked, self.parked = self.parked, None
        if parked is not None:
            reschedule(parked)

    def _drop(self, item: Any, reason: str) -> None:
        if type(item) is Envelope:
            if item.reply is not None:
                item.reply.fail(
                    ActorStopped(
                        f"{self.path} stopped before handling this "
                        f"{type(item.message).__qualname__}"
                    )
                )
            self.system._dead_letter(item.message, self.path, item.sender, reason)
        else:
            self.system._dead_letter(item, self.path, None, reason)

    # -- watching -------------------------------------------------------------

    def add_watcher(self, watcher: ActorCell) -> None:
        if self.finished:
            watcher.notify(Terminated(ref=self.ref, reason=self.stop_reason))
            return
        if self.watchers is None:
            self.watchers = set()
        self.watchers.add(watcher)
        if watcher.watching is None:
            watcher.watching = set()
        watcher.watching.add(self)

    def remove_watcher(self, watcher: ActorCell) -> None:
        if self.watchers:
            self.watchers.discard(watcher)
        if watcher.watching:
            watcher.watching.discard(self)


async def stop_all(cells: Sequence[ActorCell], *, drain: bool) -> None:
    """Stop ``cells`` (latest spawned first) and wait until all have stopped.

    Idle actors stop synchronously right here; a task waits for each of the rest.
    """
    for cell in reversed(cells):
        cell.request_stop(drain)
    pending = [cell for cell in cells if not cell.finished]
    if not pending:
        await trio.lowlevel.checkpoint()
        return
    async with trio.open_nursery() as nursery:
        for cell in pending:
            nursery.start_soon(cell.lifecycle.wait_for, "stopped")


def _supervise(child: ActorCell, exc: BaseException) -> None:
    """Apply the parent's strategy to a crashed child."""
    system = child.system
    parent = child.parent
    strategy = parent.actor_class.supervisor_strategy if parent is not None else system.supervisor
    siblings = list(((parent.children if parent is not None else system._top) or {}).values())
    try:
        directive = strategy.decider(exc)
    except Exception as decider_error:
        logger.error("supervisor decider failed for %s: %r", child.path, decider_error)
        directive = Directive.ESCALATE
    delay = 0.0
    affected: list[ActorCell] = []
    if directive is Directive.RESTART:
        # Every child that would restart must be within its intensity (as in
        # one-for-all, a sibling's restart counts for each child restarted).
        now = trio.current_time()
        affected = [
            cell
            for cell in strategy.affected(siblings or [child], child)
            if not cell.finished and not cell.stopping
        ]
        for cell in affected:
            if cell.restart_times is None:
                cell.restart_times = deque()
            times = cell.restart_times
            while times and now - times[0] > strategy.within:
                times.popleft()
        if any(len(cell.restart_times or ()) >= strategy.max_restarts for cell in affected):
            logger.warning(
                "actor %s exceeded %d restarts within %s s: escalating",
                child.path,
                strategy.max_restarts,
                strategy.within,
            )
            directive = Directive.ESCALATE
        else:
            if strategy.backoff is not None:
                delay = strategy.backoff.delay(len(child.restart_times or ()), system.random)
            for cell in affected:
                assert cell.restart_times is not None
                cell.restart_times.append(now)
    if directive is Directive.RESTART:
        for cell in affected:
            cell.restarts += 1
            cell.post_system(RestartRequest(exc if cell is child else None, delay))
    elif directive is Directive.RESUME:
        child.post_system(_RecoverRequest())
    elif directive is Directive.STOP:
        child.stop_reason = exc
        child.request_stop(drain=False)
    else:
        child.stop_reason = exc
        child.request_stop(drain=False)
        if parent is not None and not parent.finished and not parent.stopping:
            parent.post_system(_EscalateRequest(exc))
        else:
            logger.error("top-level actor %s stopped after failing: %r", child.path, exc)
