"""The jumpstarter side of the benchmarks: one function per measurement.

Each function runs one measurement in its own ``trio.run`` and returns a dict of
figures. :mod:`benchmarks._pykka_peer` mirrors them for Pykka, with the same
message class and the same handler bodies.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import trio

from jumpstarter import Actor, ActorSystem, handler

from ._common import WARMUP_TELLS, MemoryMeter, Ping, clock, latency_summary

__all__ = ["SCENARIOS"]


class Sink(Actor):
    """Counts pings and sets ``done`` when it has counted ``target`` of them."""

    def __init__(self, target: int, done: trio.Event) -> None:
        self.count = 0
        self.target = target
        self.done = done

    @handler
    def ping(self, msg: Ping) -> int:
        self.count += 1
        if self.count == self.target:
            self.done.set()
        return self.count


class Counter(Actor):
    """Counts pings and answers with the count (a plain ``def`` handler)."""

    def __init__(self) -> None:
        self.count = 0

    @handler
    def ping(self, msg: Ping) -> int:
        self.count += 1
        return self.count


class AsyncCounter(Actor):
    """:class:`Counter` with an ``async def`` handler, so asks go through the runner task."""

    def __init__(self) -> None:
        self.count = 0

    @handler
    async def ping(self, msg: Ping) -> int:
        self.count += 1
        return self.count


def tell(n: int, warmup: int) -> dict[str, Any]:
    """One sender tells ``n`` pings to one actor; timed until the actor has handled them."""

    async def main() -> int:
        async with ActorSystem("bench") as system:
            done = trio.Event()
            ref = await system.spawn(Sink, WARMUP_TELLS + 1 + n, done, name="sink")
            for _ in range(WARMUP_TELLS):
                await ref.tell(Ping(-1))
            await ref.ask(Ping(-1))
            start = clock()
            for i in range(n):
                await ref.tell(Ping(i))
            await done.wait()
            return clock() - start

    elapsed = trio.run(main) / 1e9
    return {"n": n, "seconds": elapsed, "msgs_per_s": n / elapsed}


def _ask(actor: type[Actor], n: int, warmup: int) -> dict[str, Any]:
    async def main() -> list[int]:
        async with ActorSystem("bench") as system:
            ref = await system.spawn(actor, name="counter")
            for i in range(warmup):
                await ref.ask(Ping(i))
            samples = [0] * n
            for i in range(n):
                msg = Ping(i)
                start = clock()
                await ref.ask(msg)
                samples[i] = clock() - start
            count = await ref.ask(Ping(-1))
            if count != warmup + n + 1:
                raise RuntimeError(f"the actor counted {count} asks, expected {warmup + n + 1}")
            return samples

    return latency_summary(trio.run(main))


def ask(n: int, warmup: int) -> dict[str, Any]:
    """``n`` sequential asks to a plain ``def`` handler, each timed."""
    return _ask(Counter, n, warmup)


def ask_async(n: int, warmup: int) -> dict[str, Any]:
    """``n`` sequential asks to an ``async def`` handler (no inline fast path), each timed."""
    return _ask(AsyncCounter, n, warmup)


def spawn(n: int, warmup: int) -> dict[str, Any]:
    """Spawn ``n`` idle actors with ``spawn_soon``; then stop them all by leaving the system."""

    async def main() -> dict[str, Any]:
        meter = MemoryMeter()
        async with ActorSystem("bench") as system:
            meter.mark()
            start = clock()
            refs = [system.spawn_soon(Counter) for _ in range(n)]
            spawned = clock() - start
            memory = meter.read(n)
            live = len(system.actors)
            if live != n:
                raise RuntimeError(f"{live} actors are live, expected {n}")
            del refs
            stop_start = clock()
        stopped = clock() - stop_start
        return {
            "n": n,
            "seconds": spawned / 1e9,
            "per_actor_us": spawned / n / 1e3,
            "stop_seconds": stopped / 1e9,
            "stop_per_actor_us": stopped / n / 1e3,
            **memory,
        }

    return trio.run(main)


SCENARIOS: dict[str, Callable[[int, int], dict[str, Any]]] = {
    "tell": tell,
    "ask": ask,
    "ask_async": ask_async,
    "spawn": spawn,
}
