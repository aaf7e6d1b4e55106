"""Retry policies, and the context managers that tell a task's failures apart.

A task that raises is run again by default, a bounded number of times, a little later
each time: most failures in a distributed system (a dropped connection, a busy
database) go away on their own. But the same exception can mean different things in
different parts of one task, so the task body says, block by block, what its failures
mean::

    from celery_actors import optional, poisonous, retry

    @app.task
    async def record(raw_data):
        with poisonous():
            # Bad input stays bad: fail at once, keep the call for inspection.
            validate(raw_data)

        with optional(ConnectionError, TimeoutError):
            # Nice to have: log a warning and go on.
            await insert_raw_data(raw_data)

        with retry(max_retries=10, interval_start=0, interval_step=5, interval_max=120):
            # Must happen: retry patiently.
            await insert_time_spans(raw_data)

:func:`retry` and :func:`poisonous` do not catch anything: they mark the exception
escaping their block and let it go. When the task has failed, the worker asks
:func:`decide` what the marks (or, without one, the task's own policy) mean for this
call: run it again in some seconds, or stop and quarantine it. :func:`optional` does
catch: the failures it is given are logged and forgotten.

The marks are attributes of the exception object, so they survive being re-raised
through any code, in a thread or not, in a ``def`` or an ``async def``. An exception
*raised from* a marked one (``raise OtherError(...) from err``) is a new failure,
marked only by the blocks it escapes itself.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Iterator
from contextlib import AbstractContextManager, suppress
from types import TracebackType
from typing import Any, Final, TypedDict, Unpack

import attrs

__all__ = [
    "DEFAULT_RETRY_POLICY",
    "NO_RETRY",
    "Decision",
    "RetryPolicy",
    "decide",
    "optional",
    "poisonous",
    "retry",
]

logger = logging.getLogger("celery_actors.task")

_POLICY_MARK: Final = "_celery_actors_retry_policy"
_POISON_MARK: Final = "_celery_actors_poisonous"
_LEAVES_SHOWN: Final = 5


def _non_negative_int(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"RetryPolicy.{attribute.name} must be an int, got {type(value).__name__}")
    if value < 0:
        raise ValueError(f"RetryPolicy.{attribute.name} must be >= 0, got {value!r}")


def _non_negative_number(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(
            f"RetryPolicy.{attribute.name} must be a number, got {type(value).__name__}"
        )
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(
            f"RetryPolicy.{attribute.name} must be a finite number >= 0, got {value!r}"
        )


def _check_retries_done(retries_done: int) -> None:
    if retries_done < 0:
        raise ValueError(f"retries_done must be >= 0, got {retries_done!r}")


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """How many times to run a failed call again, and how long to wait before each run.

    The delay before retry number ``n + 1`` (``n`` retries done) grows linearly, up to a
    cap::

        base = min(interval_max, interval_start + interval_step * n)

    and is then spread at random, so that calls which failed together are not all
    retried at the same instant::

        delay = clamp(base * (1 + uniform(-jitter, jitter)), 0, interval_max)

    With ``jitter=0`` the delay is exactly ``base``. Every field must be a finite number
    ``>= 0`` (:exc:`ValueError` otherwise); ``max_retries`` must be an ``int``.
    """

    max_retries: int = attrs.field(default=3, validator=_non_negative_int)
    """Retries after the first run; ``0`` never retries."""
    interval_start: float = attrs.field(default=0.0, validator=_non_negative_number)
    """Seconds before the first retry."""
    interval_step: float = attrs.field(default=0.2, validator=_non_negative_number)
    """Seconds added for each later retry."""
    interval_max: float = attrs.field(default=1.0, validator=_non_negative_number)
    """The delay never exceeds this many seconds."""
    jitter: float = attrs.field(default=0.1, validator=_non_negative_number)
    """The fraction of the delay drawn at random, either way (``0``: none)."""

    def delay(self, retries_done: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number ``retries_done + 1``.

        ``rng`` draws the jitter (the :mod:`random` module's generator by default); it
        is not used when ``jitter`` is 0.
        """
        _check_retries_done(retries_done)
        base = min(self.interval_max, self.interval_start + self.interval_step * retries_done)
        if not self.jitter:
            return base
        spread = (rng or random).uniform(-self.jitter, self.jitter)
        return min(self.interval_max, max(0.0, base * (1.0 + spread)))

    def allows(self, retries_done: int) -> bool:
        """Whether a call that has been retried ``retries_done`` times may run again."""
        _check_retries_done(retries_done)
        return retries_done < self.max_retries


DEFAULT_RETRY_POLICY: Final = RetryPolicy()
"""The policy of a task that does not choose one: 3 retries, within a second."""

NO_RETRY: Final = RetryPolicy(max_retries=0)
"""Never retry: the first failure is final."""


# -- marks


def _mark(error: BaseException, name: str, value: object) -> None:
    # object.__setattr__ also marks exceptions that forbid setting attributes the usual
    # way (frozen attrs exceptions, for one); one that cannot hold it goes unmarked.
    with suppress(AttributeError, TypeError):
        object.__setattr__(error, name, value)


def _policy_mark(error: BaseException) -> RetryPolicy | None:
    policy = getattr(error, _POLICY_MARK, None)
    return policy if isinstance(policy, RetryPolicy) else None


def _is_poisonous(error: BaseException) -> bool:
    return getattr(error, _POISON_MARK, False) is True


def _copy_marks(source: BaseException, target: BaseException) -> None:
    policy = _policy_mark(source)
    if policy is not None and _policy_mark(target) is None:
        _mark(target, _POLICY_MARK, policy)
    if _is_poisonous(source):
        _mark(target, _POISON_MARK, True)


class _Retry:
    __slots__ = ("_policy",)

    def __init__(self, policy: RetryPolicy) -> None:
        self._policy = policy

    def __repr__(self) -> str:
        return f"retry({self._policy!r})"

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # The innermost block's policy is the one that applies: keep an earlier mark.
        if exc is not None and _policy_mark(exc) is None:
            _mark(exc, _POLICY_MARK, self._policy)


class _Poisonous:
    __slots__ = ()

    def __repr__(self) -> str:
        return "poisonous()"

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is not None:
            _mark(exc, _POISON_MARK, True)


class _Optional:
    __slots__ = ("_types",)

    def __init__(self, types: tuple[type[Exception], ...]) -> None:
        self._types = types

    def __repr__(self) -> str:
        return f"optional({', '.join(t.__qualname__ for t in self._types)})"

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        if exc is None:
            return False
        if isinstance(exc, self._types):
            _log_swallowed(exc)
            return True
        if isinstance(exc, BaseExceptionGroup):
            # As contextlib.suppress does: drop the matching leaves, raise the others.
            match, rest = exc.split(self._types)
            if match is None:
                return False
            _log_swallowed(match)
            if rest is None:
                return True
            _copy_marks(exc, rest)
            raise rest
        return False


def _log_swallowed(error: BaseException) -> None:
    logger.warning(
        "optional step failed, going on: %s",
        _describe(error),
        exc_info=(type(error), error, error.__traceback__),
    )


class _PolicyFields(TypedDict, total=False):
    max_retries: int
    interval_start: float
    interval_step: float
    interval_max: float
    jitter: float


def retry(
    policy: RetryPolicy | None = None, **fields: Unpack[_PolicyFields]
) -> AbstractContextManager[None]:
    """Give the failures of a block their own retry policy.

    Takes a :class:`RetryPolicy`, or its fields as keywords (missing ones take
    :class:`RetryPolicy`'s defaults), not both::

        with retry(max_retries=10, interval_start=0, interval_step=5, interval_max=120):
            await insert_time_spans(calculation)

    An exception escaping the block is marked with the policy and re-raised unchanged.
    Blocks nest: the innermost block an exception escapes sets its policy, the outer
    ones leave it alone. The context manager holds no state, so it can be kept and
    reused.
    """
    if policy is not None and fields:
        raise TypeError("retry() takes a RetryPolicy or its fields as keywords, not both")
    if policy is None:
        policy = RetryPolicy(**fields)
    elif not isinstance(policy, RetryPolicy):
        raise TypeError(f"retry() takes a RetryPolicy, got {type(policy).__name__}")
    return _Retry(policy)


def poisonous() -> AbstractContextManager[None]:
    """Mark a block whose failures would surely happen again.

    An exception escaping the block is marked poisonous and re-raised unchanged; the
    task then fails at once, with no retry, even with retries left and even inside a
    :func:`retry` block, and the call is quarantined: kept for inspection and for a
    manual run once the cause is fixed::

        with poisonous():
            validate_data(a, b)
    """
    return _Poisonous()


def optional(*exception_types: type[BaseException]) -> AbstractContextManager[None]:
    """Let a block that is not important fail without failing the task.

    An exception of one of ``exception_types`` (default: any :exc:`Exception`) escaping
    the block is logged as a warning on the ``celery_actors.task`` logger and swallowed;
    the task goes on after the block. Other exceptions propagate. From an exception
    group, the matching exceptions are swallowed and a group of the others re-raised,
    as :func:`contextlib.suppress` does::

        with optional(ConnectionError, TimeoutError):
            insert_raw_data(raw_data)

    Only subclasses of :exc:`Exception` can be made optional (:exc:`TypeError`
    otherwise): cancellation, :exc:`KeyboardInterrupt` and :exc:`SystemExit` must go
    through.
    """
    types: list[type[Exception]] = []
    for exception_type in exception_types:
        if not (isinstance(exception_type, type) and issubclass(exception_type, Exception)):
            raise TypeError(
                "optional() takes subclasses of Exception, got "
                f"{getattr(exception_type, '__qualname__', exception_type)!r}"
            )
        types.append(exception_type)
    return _Optional(tuple(types) or (Exception,))


# -- deciding


@attrs.frozen
class Decision:
    """What to do with a call that failed: the answer of :func:`decide`."""

    retry_in: float | None
    """Seconds before running the call again; ``None``: do not run it again."""
    quarantine: bool
    """Whether the call failed for good (out of retries, or at a poisonous step) and is
    to be kept for inspection and a manual run."""
    reason: str
    """A sentence for logs and for the stored result."""


def _walk(
    error: BaseException, inherited: RetryPolicy | None
) -> Iterator[tuple[BaseException, RetryPolicy | None]]:
    # Each leaf of an exception group, with the policy of the innermost block it escaped:
    # its own mark, else the nearest marked group around it.
    policy = _policy_mark(error) or inherited
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            yield from _walk(inner, policy)
    else:
        yield error, policy


def _first_poisonous(error: BaseException) -> BaseException | None:
    if _is_poisonous(error):
        return error
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            found = _first_poisonous(inner)
            if found is not None:
                return found
    return None


def _describe(error: BaseException) -> str:
    # "ValueError: bad"; a group names its leaves: "ExceptionGroup: msg [KeyError: 'k', ...]".
    name = type(error).__qualname__
    if isinstance(error, BaseExceptionGroup):
        leaves = [leaf for leaf, _ in _walk(error, None)]
        shown = ", ".join(_describe(leaf) for leaf in leaves[:_LEAVES_SHOWN])
        more = f", and {len(leaves) - _LEAVES_SHOWN} more" if len(leaves) > _LEAVES_SHOWN else ""
        return f"{name}: {error.message} [{shown}{more}]"
    text = str(error)
    return f"{name}: {text}" if text else name


def decide(
    error: BaseException,
    retries_done: int,
    default: RetryPolicy,
    rng: random.Random | None = None,
) -> Decision:
    """Decide what happens to a call whose run ``retries_done + 1`` raised ``error``.

    * If ``error`` escaped a :func:`poisonous` block, wherever that block was: no
      retry, quarantine.
    * Otherwise the policy is that of the innermost :func:`retry` block ``error``
      escaped, or ``default`` (the task's own) if none. If the policy allows another
      retry, run again in :meth:`RetryPolicy.delay` seconds; if not, quarantine.

    An exception group is judged by its leaves, each with the policy of the innermost
    block it escaped: one poisonous leaf quarantines the call, one leaf out of retries
    too, and the delay is the longest any leaf's policy asks for.

    ``rng`` draws the jitter of the delay (see :meth:`RetryPolicy.delay`).
    """
    _check_retries_done(retries_done)
    poisoned = _first_poisonous(error)
    if poisoned is not None:
        return Decision(None, True, f"poisonous step failed: {_describe(poisoned)}")

    policies: list[RetryPolicy] = []
    for _, policy in _walk(error, None):
        policy = policy or default
        if policy not in policies:
            policies.append(policy)

    for policy in policies:
        if not policy.allows(retries_done):
            return Decision(
                None,
                True,
                f"no retries left after {retries_done} (max_retries={policy.max_retries})",
            )
    delay = max(policy.delay(retries_done, rng) for policy in policies)
    max_retries = min(policy.max_retries for policy in policies)
    return Decision(
        delay,
        False,
        f"retry {retries_done + 1} of {max_retries} in {delay:.3g} s after {_describe(error)}",
    )
