"""What both peers share: the message, the clock, percentiles and memory probes."""

from __future__ import annotations

import gc
import math
import os
import time
import tracemalloc
from collections.abc import Sequence

import attrs

__all__ = ["WARMUP_TELLS", "MemoryMeter", "Ping", "clock", "latency_summary", "rss_bytes"]

clock = time.perf_counter_ns
"""The clock of every measurement, in nanoseconds."""

WARMUP_TELLS = 1_000
"""Messages told (then one ask) before a throughput measurement starts."""

_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


@attrs.frozen
class Ping:
    """The message every benchmark sends: a small frozen attrs object."""

    n: int


def percentile(ordered: Sequence[int], p: float) -> int:
    """The nearest-rank ``p``-th percentile of already sorted samples."""
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def latency_summary(samples_ns: Sequence[int]) -> dict[str, float]:
    """p50, p99, mean and max of latency samples, in microseconds."""
    ordered = sorted(samples_ns)
    return {
        "n": len(ordered),
        "p50_us": percentile(ordered, 50) / 1e3,
        "p99_us": percentile(ordered, 99) / 1e3,
        "mean_us": sum(ordered) / len(ordered) / 1e3,
        "max_us": ordered[-1] / 1e3,
    }


def rss_bytes() -> int:
    """The resident set size of this process, from ``/proc/self/statm``."""
    with open("/proc/self/statm", "rb") as statm:
        return int(statm.read().split()[1]) * _PAGE_SIZE


class MemoryMeter:
    """Memory that appeared between :meth:`mark` and :meth:`read`.

    Always reports the RSS delta; reports the tracemalloc delta too when
    tracemalloc is tracing (the worker's ``--tracemalloc`` pass). Both calls
    collect garbage first, so only live objects count.
    """

    def __init__(self) -> None:
        self.rss = 0
        self.traced = 0

    def mark(self) -> None:
        gc.collect()
        self.rss = rss_bytes()
        if tracemalloc.is_tracing():
            self.traced = tracemalloc.get_traced_memory()[0]

    def read(self, count: int) -> dict[str, float]:
        """Deltas since :meth:`mark`, in bytes per item (``count`` items)."""
        gc.collect()
        result = {"rss_per_actor_bytes": (rss_bytes() - self.rss) / count}
        if tracemalloc.is_tracing():
            traced = tracemalloc.get_traced_memory()[0] - self.traced
            result["traced_per_actor_bytes"] = traced / count
        return result
