"""The one measurement of the ``canvas`` suite, for any system: a workflow's wall time.

A system gives three functions: ``build(kind, n)`` makes the canvas (a chord of
``n`` no-op header tasks and a body that counts their results, or a chain of ``n``
increments from 0), ``start(canvas)`` submits it and returns its handle, and
``wait(handle, timeout)`` waits for its final result and says whether it came in
time (and what it is). Celery's client blocks (:func:`measure_sync`); celery_actors'
client is async (:func:`measure_async`, in a trio run).

The measurement: a small workflow of the same kind, run until it succeeds, waits for
the system to be ready (its workers may still be starting), up to
:data:`~benchmarks._tasks_services.START_TIMEOUT`; then one untimed workflow of
``warmup`` tasks; then the timed one, from just before it is submitted (the canvas
is built already) to its final result in hand. Every workflow's result is checked:
both kinds must end with ``n``, and a wrong one fails the measurement.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final, TypeVar

import attrs

from ._common import clock
from ._tasks_services import START_TIMEOUT, PeerFailed, Service

__all__ = ["KINDS", "READY_SIZE", "Workload", "WrongResult", "measure_async", "measure_sync"]

KINDS: Final = ("chord", "chain")

READY_SIZE: Final = 10
"""Tasks in the workflow that waits for the system to be ready."""

_POLL: Final = 1.0
"""Seconds between checks that the system's processes are alive, while waiting for it."""

H = TypeVar("H")
C = TypeVar("C")


class WrongResult(PeerFailed):
    """A workflow ended with a result other than the one it must have."""


@attrs.frozen
class Workload:
    """One measurement: the kind of workflow, its size, and the warm-up's size."""

    kind: str = attrs.field(validator=attrs.validators.in_(KINDS))
    n: int = attrs.field(validator=attrs.validators.ge(1))
    warmup: int = attrs.field(default=0, validator=attrs.validators.ge(0))

    @property
    def budget(self) -> float:
        """Seconds a workflow of this size may take (at least 50 tasks a second)."""
        return 120.0 + self.n / 50

    def expected(self, n: int) -> int:
        """The result a workflow of this kind with ``n`` tasks must end with: the
        chord's body counts ``n`` header results, and ``n`` increments from 0 make
        ``n``."""
        return n


def _check(workload: Workload, n: int, value: Any) -> None:
    expected = workload.expected(n)
    if value != expected:
        shown = repr(value)
        shown = shown if len(shown) <= 80 else shown[:77] + "..."
        raise WrongResult(f"a {workload.kind} of {n:,} tasks ended with {shown}, not {expected}")


def _too_slow(workload: Workload, n: int) -> PeerFailed:
    return PeerFailed(
        f"a {workload.kind} of {n:,} tasks did not end within {workload.budget:.0f} s"
    )


def _figures(workload: Workload, submit_ns: int, wall_ns: int) -> dict[str, Any]:
    return {
        "kind": workload.kind,
        "n": workload.n,
        "warmup": workload.warmup,
        "submit_s": submit_ns / 1e9,
        "wall_s": wall_ns / 1e9,
        "tasks_per_s": workload.n / (wall_ns / 1e9),
    }


def _deadline(seconds: float) -> Callable[[], float]:
    end = time.monotonic() + seconds
    return lambda: max(0.0, end - time.monotonic())


def _check_alive(services: Sequence[Service], left: Callable[[], float]) -> None:
    for process in services:
        process.check_alive()
    if left() <= 0:
        raise PeerFailed(f"no result of a first workflow within {START_TIMEOUT:.0f} s")


def measure_sync(
    workload: Workload,
    build: Callable[[str, int], C],
    start: Callable[[C], H],
    wait: Callable[[H, float], tuple[bool, Any]],
    services: Sequence[Service],
) -> dict[str, Any]:
    """Measure ``workload`` with a blocking client; return its figures."""
    first = start(build(workload.kind, READY_SIZE))
    left = _deadline(START_TIMEOUT)
    while not (outcome := wait(first, min(_POLL, left())))[0]:
        _check_alive(services, left)
    _check(workload, READY_SIZE, outcome[1])

    def run(canvas: C, n: int) -> tuple[int, int]:
        began = clock()
        handle = start(canvas)
        submitted = clock()
        done, value = wait(handle, workload.budget)
        ended = clock()
        if not done:
            raise _too_slow(workload, n)
        _check(workload, n, value)
        return submitted - began, ended - began

    if workload.warmup:
        run(build(workload.kind, workload.warmup), workload.warmup)
    canvas = build(workload.kind, workload.n)
    submit_ns, wall_ns = run(canvas, workload.n)
    return _figures(workload, submit_ns, wall_ns)


async def measure_async(
    workload: Workload,
    build: Callable[[str, int], C],
    start: Callable[[C], Awaitable[H]],
    wait: Callable[[H, float], Awaitable[tuple[bool, Any]]],
    services: Sequence[Service],
) -> dict[str, Any]:
    """Measure ``workload`` with an async client, in a trio run; return its figures."""
    first = await start(build(workload.kind, READY_SIZE))
    left = _deadline(START_TIMEOUT)
    while not (outcome := await wait(first, min(_POLL, left())))[0]:
        _check_alive(services, left)
    _check(workload, READY_SIZE, outcome[1])

    async def run(canvas: C, n: int) -> tuple[int, int]:
        began = clock()
        handle = await start(canvas)
        submitted = clock()
        done, value = await wait(handle, workload.budget)
        ended = clock()
        if not done:
            raise _too_slow(workload, n)
        _check(workload, n, value)
        return submitted - began, ended - began

    if workload.warmup:
        await run(build(workload.kind, workload.warmup), workload.warmup)
    canvas = build(workload.kind, workload.n)
    submit_ns, wall_ns = await run(canvas, workload.n)
    return _figures(workload, submit_ns, wall_ns)
