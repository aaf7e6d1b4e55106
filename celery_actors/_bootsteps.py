"""Boot steps: what a worker starts, in which order, and what happens when one fails.

A worker starts through a list of steps, each an actor spawned as a child of the worker
(``/user/<worker>/<step>``) that also *depends on* the worker and on the steps it
``requires``: jumpstarter starts it after them and stops it before them, and the whole
set is stopped before the worker's calls are.

A step is declared with :meth:`App.boot_step` on either

- an :class:`~jumpstarter.Actor` subclass, spawned as ``cls(context)``: it may have
  handlers, resources, timers and children of its own; or
- a function ``step(context)`` returning an async context manager (typically an
  ``@contextlib.asynccontextmanager``): entered when the step starts, exited when it
  stops. It is held as a resource of a small actor.

``context`` is a :class:`WorkerContext`. The built-in steps come first:

- ``control``: the control inbox (see :mod:`celery_actors._control`);
- ``pool``: where calls run; when it stops, the calls the worker still holds go back
  to the router, then the worker's processes for boxed tasks are closed;
- ``announce``: tells the router the worker takes calls (and how many), every two
  seconds; when it stops (or the worker pauses), it tells the router the worker has no
  free slot.

Mandatory user steps start after ``control`` and before ``pool`` unless they require
``pool`` or ``announce`` (so the calls find them up, and they outlive the calls);
``announce`` starts last, once every mandatory step is up. A mandatory step that fails
to start stops the worker's start with :class:`BootStepFailed`. An optional step that
fails is logged, the worker runs *degraded* (its lifecycle state
``started.running.degraded``), and the step is tried again with exponential backoff
until it starts.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, cast

import attrs
import trio

from jumpstarter import Actor, ActorRef, ActorStartError, ActorSystem, Health, resource

from ._errors import CeleryActorsError

if TYPE_CHECKING:
    from ._app import App
    from ._shutdown import WorkerOps

__all__ = [
    "BUILTIN_STEPS",
    "RETRY_FIRST",
    "RETRY_MAX",
    "BootStep",
    "BootStepError",
    "BootStepFailed",
    "WorkerContext",
    "order_steps",
]

_logger = logging.getLogger("celery_actors.worker")

BUILTIN_STEPS = ("control", "pool", "announce")
"""The names of the built-in steps, in the order they start."""

RETRY_FIRST = 0.5
"""Seconds before an optional step that failed is tried again; doubled each time."""

RETRY_MAX = 30.0
"""The longest pause between two tries of an optional step."""


class BootStepError(CeleryActorsError, ValueError):
    """The boot steps are declared wrong: an unknown requirement, a cycle, a name used
    twice, or a mandatory step that requires an optional one."""


class BootStepFailed(CeleryActorsError):
    """A mandatory boot step failed to start, so the worker did not start.

    Attributes:
        step: the step's name.
    """

    def __init__(self, step: str, cause: BaseException) -> None:
        self.step = step
        super().__init__(
            f"worker boot step {step!r} failed to start: {cause!r}; fix its cause, or "
            f"declare it with @app.boot_step(optional=True) to let the worker run without it"
        )


@attrs.frozen
class WorkerContext:
    """What a boot step gets: the app, the worker's actor system, the worker's ref and
    its router's ref."""

    app: App
    system: ActorSystem
    worker: ActorRef
    router: ActorRef
    ops: WorkerOps = attrs.field(repr=False, alias="ops")
    """For the built-in steps: the worker's operations side."""


def _names(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(values)


@attrs.frozen
class BootStep:
    """A step of a worker's start (see the module docstring and :meth:`App.boot_step`).

    Attributes:
        name: the step's name, and its actor's name under the worker.
        start: an Actor subclass (spawned as ``start(context)``), or a function
            ``start(context)`` that returns an async context manager.
        requires: the steps started before this one (and stopped after it).
        optional: a failure to start is logged and retried, instead of stopping the
            worker's start.
    """

    name: str
    start: Callable[[WorkerContext], Any]
    requires: tuple[str, ...] = attrs.field(default=(), converter=_names)
    optional: bool = False

    def actor(self, context: WorkerContext) -> Callable[[], Actor]:
        """The factory of the step's actor."""
        start = self.start
        if isinstance(start, type) and issubclass(start, Actor):
            return functools.partial(cast(Callable[..., Actor], start), context)
        return functools.partial(_ContextStep, start, context)


class _ContextStep(Actor):
    """A step declared on a function that returns an async context manager: the
    context manager is held as this actor's resource."""

    def __init__(self, open_step: Callable[[WorkerContext], Any], context: WorkerContext) -> None:
        self.open_step = open_step
        self.context = context

    @resource
    def entered(self) -> Any:
        return self.open_step(self.context)


def order_steps(builtin: Sequence[BootStep], user: Iterable[BootStep]) -> list[BootStep]:
    """The steps in the order they start: each after those it requires (built-in steps
    first, then in declaration order), with the implicit requirements of the module
    docstring added.

    Raises:
        BootStepError: see its docstring.
    """
    user = list(user)
    steps: dict[str, BootStep] = {}
    for step in [*builtin, *user]:
        if step.name in steps:
            raise BootStepError(
                f"two boot steps are named {step.name!r}; give one of them another name"
                + (" (the built-in steps are control, pool and announce)" if step in user else "")
            )
        steps[step.name] = step
    for step in steps.values():
        for required in step.requires:
            if required not in steps:
                raise BootStepError(
                    f"boot step {step.name!r} requires {required!r}, which is not a step; "
                    f"the steps are {', '.join(steps)}"
                )
            if not step.optional and steps[required].optional:
                raise BootStepError(
                    f"the mandatory boot step {step.name!r} requires the optional step "
                    f"{required!r}: make {step.name!r} optional too, or {required!r} mandatory"
                )
    late = {"pool", "announce"}
    # Steps that (transitively) require pool or announce start after them.
    changed = True
    while changed:
        changed = False
        for step in user:
            if step.name not in late and late.intersection(step.requires):
                late.add(step.name)
                changed = True
    early = [s.name for s in user if s.name not in late and not s.optional]
    mandatory_user = [s.name for s in user if not s.optional]
    for name, extra in (
        ("pool", early),
        ("announce", [n for n in mandatory_user if n not in _requirers(steps, "announce")]),
    ):
        step = steps[name]
        steps[name] = attrs.evolve(step, requires=(*step.requires, *extra))
    ordered: list[BootStep] = []
    visiting: list[str] = []

    def visit(name: str) -> None:
        if any(s.name == name for s in ordered):
            return
        if name in visiting:
            cycle = [*visiting[visiting.index(name) :], name]
            raise BootStepError(f"boot steps require each other in a cycle: {' -> '.join(cycle)}")
        visiting.append(name)
        for required in steps[name].requires:
            visit(required)
        visiting.pop()
        ordered.append(steps[name])

    for name in steps:
        visit(name)
    return ordered


def _requirers(steps: dict[str, BootStep], name: str) -> set[str]:
    """The steps that require ``name``, directly or not."""
    found: set[str] = set()
    changed = True
    while changed:
        changed = False
        for step in steps.values():
            if step.name not in found and ({name} | found).intersection(step.requires):
                found.add(step.name)
                changed = True
    return found


class Boot:
    """Starts a worker's steps in order, as children of the worker, and keeps trying
    the optional ones that failed (see the module docstring)."""

    def __init__(self, steps: Sequence[BootStep]) -> None:
        self.steps = list(steps)
        self.refs: dict[str, ActorRef] = {}
        self.states: dict[str, str] = {step.name: "waiting" for step in self.steps}
        self.failure: BootStepFailed | None = None
        self.booted = trio.Event()

    async def run(self, worker: Actor, context: WorkerContext) -> None:
        """Start every step; then try the optional ones that failed again, with backoff,
        until all are up. Runs as a task of the worker."""
        for step in self.steps:
            if not await self._start(worker, context, step) and not step.optional:
                self.booted.set()
                return
        self.booted.set()
        delay = RETRY_FIRST
        while any(state != "up" for state in self.states.values()):
            worker.report_health(Health.DEGRADED)
            await trio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX)
            for step in self.steps:
                if self.states[step.name] != "up":
                    await self._start(worker, context, step)
        worker.report_health(Health.HEALTHY)

    async def _start(self, worker: Actor, context: WorkerContext, step: BootStep) -> bool:
        down = [name for name in step.requires if self.states.get(name) != "up"]
        if down:  # an optional step whose requirement is down: not yet
            self.states[step.name] = "down"
            return False
        try:
            self.refs[step.name] = await worker.spawn(
                step.actor(context),
                name=step.name,
                depends_on=[worker.ref, *(self.refs[name] for name in step.requires)],
            )
        except ActorStartError as exc:
            cause = exc.__cause__ or exc
            if not step.optional:
                self.failure = BootStepFailed(step.name, cause)
                self.states[step.name] = "down"
                return False
            _logger.warning(
                "worker %s: optional boot step %r failed to start (%r); the worker runs "
                "without it and tries again later",
                worker.ref.address,
                step.name,
                cause,
            )
            self.states[step.name] = "down"
            return False
        self.states[step.name] = "up"
        return True
