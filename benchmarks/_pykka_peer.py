"""The Pykka side of the benchmarks: Pykka 4.x ``ThreadingActor``, one thread per actor.

Mirrors :mod:`benchmarks._jumpstarter_peer` with the same message class and the
same handler bodies, written as ``on_receive``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pykka

from ._common import WARMUP_TELLS, MemoryMeter, Ping, clock, latency_summary

__all__ = ["SCENARIOS"]


class Sink(pykka.ThreadingActor):
    """Counts pings and sets ``done`` when it has counted ``target`` of them."""

    def __init__(self, target: int, done: threading.Event) -> None:
        super().__init__()
        self.count = 0
        self.target = target
        self.done = done

    def on_receive(self, message: Any) -> Any:
        self.count += 1
        if self.count == self.target:
            self.done.set()
        return self.count


class Counter(pykka.ThreadingActor):
    """Counts pings and answers with the count."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def on_receive(self, message: Any) -> Any:
        self.count += 1
        return self.count


def tell(n: int, warmup: int) -> dict[str, Any]:
    """One sender tells ``n`` pings to one actor; timed until the actor has handled them."""
    done = threading.Event()
    ref = Sink.start(WARMUP_TELLS + 1 + n, done)
    try:
        for _ in range(WARMUP_TELLS):
            ref.tell(Ping(-1))
        ref.ask(Ping(-1))
        start = clock()
        for i in range(n):
            ref.tell(Ping(i))
        done.wait()
        elapsed = (clock() - start) / 1e9
    finally:
        pykka.ActorRegistry.stop_all()
    return {"n": n, "seconds": elapsed, "msgs_per_s": n / elapsed}


def ask(n: int, warmup: int) -> dict[str, Any]:
    """``n`` sequential blocking asks, each timed."""
    ref = Counter.start()
    try:
        for i in range(warmup):
            ref.ask(Ping(i))
        samples = [0] * n
        for i in range(n):
            msg = Ping(i)
            start = clock()
            ref.ask(msg)
            samples[i] = clock() - start
        count = ref.ask(Ping(-1))
        if count != warmup + n + 1:
            raise RuntimeError(f"the actor counted {count} asks, expected {warmup + n + 1}")
    finally:
        pykka.ActorRegistry.stop_all()
    return latency_summary(samples)


def spawn(n: int, warmup: int) -> dict[str, Any]:
    """Start ``n`` idle actors (``n`` threads); then stop them all."""
    meter = MemoryMeter()
    meter.mark()
    try:
        start = clock()
        refs = [Counter.start() for _ in range(n)]
        spawned = clock() - start
        memory = meter.read(n)
        live = sum(1 for ref in refs if ref.is_alive())
        if live != n:
            raise RuntimeError(f"{live} actors are live, expected {n}")
        del refs
    finally:
        stop_start = clock()
        pykka.ActorRegistry.stop_all()
        stopped = clock() - stop_start
    return {
        "n": n,
        "seconds": spawned / 1e9,
        "per_actor_us": spawned / n / 1e3,
        "stop_seconds": stopped / 1e9,
        "stop_per_actor_us": stopped / n / 1e3,
        **memory,
    }


SCENARIOS: dict[str, Callable[[int, int], dict[str, Any]]] = {
    "tell": tell,
    "ask": ask,
    "spawn": spawn,
}
