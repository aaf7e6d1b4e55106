"""Supervision strategies: what a parent does when a child fails.

When a handler (or a start step) raises, the actor *crashes*: its pending asks
fail, and its parent's strategy decides with a :class:`Directive`:

* ``RESTART`` a new instance (same constructor arguments) replaces the old one
  after a backoff delay; the mailbox is kept, so queued tells are handled by the
  new instance. Which siblings restart too depends on the strategy:
  :class:`OneForOne` (only the failed child), :class:`OneForAll` (every child),
  :class:`RestForOne` (the failed child and those spawned after it).
* ``RESUME`` keeps the instance and its state, and goes on with the next message.
* ``STOP`` stops the child for good.
* ``ESCALATE`` stops the child and fails the parent with the same exception, for
  the grandparent to decide.

Restart *intensity* bounds restarts: more than ``max_restarts`` within
``within`` seconds escalates instead. Top-level actors are supervised by the
system, for which escalation means stopping the actor (never the process).
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable, Sequence
from typing import TypeVar

import attrs

__all__ = [
    "Backoff",
    "Directive",
    "OneForAll",
    "OneForOne",
    "RestForOne",
    "SupervisorStrategy",
]


class Directive(enum.Enum):
    """What to do with a failed child."""

    RESUME = "resume"
    RESTART = "restart"
    STOP = "stop"
    ESCALATE = "escalate"


def always_restart(exc: BaseException) -> Directive:
    """The default decider: restart on any exception."""
    return Directive.RESTART


@attrs.frozen(kw_only=True)
class Backoff:
    """Exponential backoff with jitter between restarts.

    A restart waits ``min(maximum, initial * factor**n)``, scaled by a random
    factor in ``[1 - jitter, 1 + jitter]``, where ``n`` counts the actor's
    earlier restarts still inside the strategy's ``within`` window (so the delay
    grows while an actor keeps failing and falls back once it has been stable).
    """

    initial: float = attrs.field(default=0.05, validator=attrs.validators.ge(0))
    factor: float = attrs.field(default=2.0, validator=attrs.validators.ge(1))
    maximum: float = attrs.field(default=10.0, validator=attrs.validators.ge(0))
    jitter: float = attrs.field(
        default=0.1, validator=[attrs.validators.ge(0), attrs.validators.le(1)]
    )

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before restart number ``attempt`` (counting from 0)."""
        base = min(self.maximum, self.initial * self.factor ** min(attempt, 64))
        if not self.jitter:
            return base
        spread = (rng or random).uniform(1 - self.jitter, 1 + self.jitter)
        return base * spread


_C = TypeVar("_C")


@attrs.frozen(kw_only=True)
class SupervisorStrategy:
    """Base of the strategies; use one of its subclasses.

    Attributes:
        max_restarts: restarts allowed within ``within`` seconds before escalating.
        within: the window of the restart intensity, in seconds.
        backoff: delay between restarts; ``None`` restarts at once.
        decider: maps the exception to a :class:`Directive`.
    """

    max_restarts: int = attrs.field(default=10, validator=attrs.validators.ge(0))
    within: float = attrs.field(default=60.0, validator=attrs.validators.gt(0))
    backoff: Backoff | None = attrs.field(factory=Backoff)
    decider: Callable[[BaseException], Directive] = always_restart

    def affected(self, children: Sequence[_C], failed: _C) -> list[_C]:
        """The children that restart when ``failed`` restarts (in spawn order)."""
        raise NotImplementedError


@attrs.frozen(kw_only=True)
class OneForOne(SupervisorStrategy):
    """Restart only the child that failed."""

    def affected(self, children: Sequence[_C], failed: _C) -> list[_C]:
        return [failed]


@attrs.frozen(kw_only=True)
class OneForAll(SupervisorStrategy):
    """Restart every child when one fails (for children that only work together)."""

    def affected(self, children: Sequence[_C], failed: _C) -> list[_C]:
        return list(children)


@attrs.frozen(kw_only=True)
class RestForOne(SupervisorStrategy):
    """Restart the failed child and every child spawned after it."""

    def affected(self, children: Sequence[_C], failed: _C) -> list[_C]:
        index = list(children).index(failed)
        return list(children)[index:]
