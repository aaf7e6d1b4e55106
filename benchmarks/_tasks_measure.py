"""The two measurements of the ``tasks`` suite, for any system: throughput and round trip.

A system gives two functions: ``send()`` calls the no-op task and returns the
call's handle, ``wait(handle, timeout)`` waits for its result and says whether it
came in time. Celery and Dramatiq clients block (:func:`measure_sync`);
celery_actors' client is async (:func:`measure_async`, in a trio run).

* **throughput**: ``n`` calls are sent (the *publish* time), then every result is
  waited for (the *drain* time, until the last result is in); the rate is ``n``
  over both. An async client keeps ``in_flight`` calls in progress at once, as a
  producer in an event loop would; a blocking client sends one after the other.
* **roundtrip**: ``n`` sequential calls, each timed from send to result.

Before either, ``warmup`` untimed round trips; the first of them also waits for
the system to be ready (its worker may still be starting), up to
:data:`~benchmarks._tasks_services.START_TIMEOUT`.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any, Final, TypeVar

import attrs
import trio

from ._common import clock, latency_summary
from ._tasks_services import START_TIMEOUT, PeerFailed, Service

__all__ = ["SCENARIOS", "Scenario", "measure_async", "measure_sync"]

SCENARIOS: Final = ("throughput", "roundtrip")

_POLL: Final = 1.0
"""Seconds between checks that the system's processes are alive, while waiting for it."""

H = TypeVar("H")


@attrs.frozen
class Scenario:
    """One measurement: which, how many calls, and how long it may take at most."""

    kind: str
    n: int
    warmup: int
    in_flight: int

    @property
    def budget(self) -> float:
        """Seconds the measurement may take after start-up (at least 50 calls a second)."""
        return 120.0 + (self.n + self.warmup) / 50


def _deadline(seconds: float) -> Callable[[], float]:
    end = time.monotonic() + seconds
    return lambda: max(0.0, end - time.monotonic())


def _too_slow(scenario: Scenario, what: str) -> PeerFailed:
    return PeerFailed(
        f"{what}: the {scenario.kind} measurement did not finish within {scenario.budget:.0f} s"
    )


def _results(scenario: Scenario, publish_ns: int, drain_ns: int) -> dict[str, Any]:
    total = publish_ns + drain_ns
    return {
        "n": scenario.n,
        "in_flight": scenario.in_flight,
        "publish_s": publish_ns / 1e9,
        "drain_s": drain_ns / 1e9,
        "total_s": total / 1e9,
        "tasks_per_s": scenario.n / (total / 1e9),
    }


def _wait_ready(
    first: Callable[[float], bool], services: Sequence[Service], left: Callable[[], float]
) -> None:
    while not first(min(_POLL, left())):
        for process in services:
            process.check_alive()
        if left() <= 0:
            raise PeerFailed(f"no result of a first call within {START_TIMEOUT:.0f} s")


def measure_sync(
    scenario: Scenario,
    send: Callable[[], H],
    wait: Callable[[H, float], bool],
    services: Sequence[Service],
) -> dict[str, Any]:
    """Run ``scenario`` with a blocking client; return its figures."""
    first = send()
    _wait_ready(lambda timeout: wait(first, timeout), services, _deadline(START_TIMEOUT))
    left = _deadline(scenario.budget)

    def finish(handle: H) -> None:
        if not wait(handle, left()):
            raise _too_slow(scenario, "results missing")

    for _ in range(scenario.warmup):
        finish(send())
    if scenario.kind == "roundtrip":
        samples = []
        for _ in range(scenario.n):
            start = clock()
            finish(send())
            samples.append(clock() - start)
        return latency_summary(samples)
    start = clock()
    handles = [send() for _ in range(scenario.n)]
    published = clock()
    for handle in handles:
        finish(handle)
    return _results(scenario, published - start, clock() - published)


async def measure_async(
    scenario: Scenario,
    send: Callable[[], Awaitable[H]],
    wait: Callable[[H, float], Awaitable[bool]],
    services: Sequence[Service],
) -> dict[str, Any]:
    """Run ``scenario`` with an async client, in a trio run; return its figures."""
    first = await send()
    left = _deadline(START_TIMEOUT)
    while not await wait(first, min(_POLL, left())):
        for process in services:
            process.check_alive()
        if left() <= 0:
            raise PeerFailed(f"no result of a first call within {START_TIMEOUT:.0f} s")
    left = _deadline(scenario.budget)

    async def finish(handle: H) -> None:
        if not await wait(handle, left()):
            raise _too_slow(scenario, "results missing")

    with trio.move_on_after(scenario.budget) as scope:
        for _ in range(scenario.warmup):
            await finish(await send())
        if scenario.kind == "roundtrip":
            samples = []
            for _ in range(scenario.n):
                start = clock()
                await finish(await send())
                samples.append(clock() - start)
            return latency_summary(samples)
        handles: list[H] = []
        start = clock()
        tickets = iter(range(scenario.n))
        async with trio.open_nursery() as nursery:
            for _ in range(scenario.in_flight):
                nursery.start_soon(_publisher, tickets, send, handles)
        published = clock()
        async with trio.open_nursery() as nursery:
            for lane in range(scenario.in_flight):
                nursery.start_soon(_drainer, handles[lane :: scenario.in_flight], finish)
        return _results(scenario, published - start, clock() - published)
    assert scope.cancelled_caught
    raise _too_slow(scenario, "calls or results missing")


async def _publisher(
    tickets: Iterator[int], send: Callable[[], Awaitable[H]], handles: list[H]
) -> None:
    for _ in tickets:  # shared by all publishers: n calls in all
        handles.append(await send())


async def _drainer(handles: list[H], finish: Callable[[H], Awaitable[None]]) -> None:
    for handle in handles:
        await finish(handle)
