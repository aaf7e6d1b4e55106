"""The ``actors`` suite: jumpstarter vs Pykka 4.x ``ThreadingActor``.

Three measurements, each for both runtimes:

1. **tell**: one sender tells ``N`` small frozen attrs messages to one actor,
   timed until the actor has handled them all (it sets an event).
2. **ask**: ``N`` sequential asks, each timed, after untimed warm-up asks.
   jumpstarter is also measured with an ``async def`` handler, which takes the
   runner-task path instead of the inline fast path.
3. **spawn**: ``N`` idle actors spawned, then all stopped; time and RSS delta in
   one pass, tracemalloc in a second pass (its slowdown would spoil the time).

A *floor* pass (:mod:`benchmarks._floor`) measures the interpreter and trio
alone, to read the others against.

This module declares the jobs (:func:`plan`) and the table rows (:data:`ROWS`);
:mod:`benchmarks.__main__` runs them and :mod:`benchmarks._report` prints them.
"""

from __future__ import annotations

from typing import Any

import attrs

from ._runner import Job

__all__ = ["FULL", "PEERS", "QUICK", "ROWS", "Row", "Sizes", "Target", "headings", "plan"]

NAME = "actors"

PEERS = ("jumpstarter", "pykka")
"""The peer whose figures the targets judge, and the peer it is compared with."""

OTHER = "Pykka"
"""The compared peer, in ratio targets ("≥ 5x Pykka")."""


@attrs.frozen
class Sizes:
    """How big each measurement is."""

    tell: int
    ask: int
    ask_warmup: int
    spawn: int
    pykka_spawn: int
    """Pykka starts one thread per actor: far fewer of them are feasible."""


FULL = Sizes(tell=200_000, ask=20_000, ask_warmup=1_000, spawn=100_000, pykka_spawn=2_000)
QUICK = Sizes(tell=20_000, ask=2_000, ask_warmup=200, spawn=10_000, pykka_spawn=500)


def plan(sizes: Sizes) -> list[Job]:
    """The jobs of one repetition, jumpstarter and Pykka interleaved."""
    return [
        Job("floor", "floor", sizes.tell),
        Job("jumpstarter", "tell", sizes.tell),
        Job("pykka", "tell", sizes.tell),
        Job("jumpstarter", "ask", sizes.ask, sizes.ask_warmup),
        Job("pykka", "ask", sizes.ask, sizes.ask_warmup),
        Job("jumpstarter", "ask_async", sizes.ask, sizes.ask_warmup),
        Job("jumpstarter", "spawn", sizes.spawn),
        Job("pykka", "spawn", sizes.pykka_spawn),
        Job("jumpstarter", "spawn", sizes.spawn, tracemalloc=True),
        Job("pykka", "spawn", sizes.pykka_spawn, tracemalloc=True),
    ]


@attrs.frozen
class Target:
    """A goal for jumpstarter's figure: ``value`` is a floor or a ceiling."""

    value: float
    text: str
    at_least: bool = False
    only_at: int | None = None
    """Judge only when the measurement had this size (e.g. 100k actors)."""

    def met(self, figure: float, n: int | None) -> bool | None:
        if self.only_at is not None and n != self.only_at:
            return None
        return figure >= self.value if self.at_least else figure <= self.value


@attrs.frozen
class Row:
    """One line of the table: which figure of which job, and how to show it."""

    label: str
    key: str
    metric: str
    unit: str
    higher_is_better: bool = False
    target: Target | None = None
    ratio_target: float | None = None
    """A goal for the ratio: at least this many times better than the compared peer."""
    other_key: str | None = None
    """The compared peer's job key when it differs (``None``: same as ``key``)."""
    show_n: bool = False
    """Show each peer's measurement size, when they differ."""
    compare: bool = True
    """Show the ratio of the two peers' figures."""
    section_end: bool = False
    """Draw a line under this row."""


ROWS = (
    Row(
        "tell throughput, 1 sender → 1 actor",
        "tell",
        "msgs_per_s",
        "msg/s",
        higher_is_better=True,
        target=Target(1_000_000, "≥ 1,000,000 msg/s", at_least=True),
        section_end=True,
    ),
    Row("ask round trip p50", "ask", "p50_us", "µs", target=Target(10, "≤ 10 µs")),
    Row("ask round trip p99", "ask", "p99_us", "µs"),
    Row("ask p50, async def handler ¹", "ask_async", "p50_us", "µs", other_key="ask"),
    Row(
        "ask p99, async def handler ¹",
        "ask_async",
        "p99_us",
        "µs",
        other_key="ask",
        section_end=True,
    ),
    Row(
        "spawn idle actors: total",
        "spawn",
        "seconds",
        "s",
        show_n=True,
        compare=False,
        target=Target(1.0, "≤ 1 s for 100,000", only_at=100_000),
    ),
    Row(
        "spawn: per actor", "spawn", "per_actor_us", "µs", target=Target(10, "≤ 10 µs (1 s / 100k)")
    ),
    Row(
        "memory per actor, tracemalloc ²",
        "spawn+tracemalloc",
        "traced_per_actor_bytes",
        "B",
        target=Target(4096, "≤ 4 KiB"),
    ),
    Row(
        "memory per actor, RSS delta ²",
        "spawn",
        "rss_per_actor_bytes",
        "B",
        target=Target(4096, "≤ 4 KiB"),
    ),
    Row("stop all: per actor", "spawn", "stop_per_actor_us", "µs"),
)

NOTES = (
    "¹ jumpstarter answers an ask to an idle actor with a plain def handler inline, in the "
    "asker's task; an async def handler makes the ask go through the actor's runner task "
    "(two task switches). Pykka has one ask path: its figure is the plain ask's.",
    "² tracemalloc: Python allocations only, in a separate pass (tracing slows spawning). "
    "RSS delta: /proc/self/statm around the timed spawn, after gc; for Pykka it includes "
    "the touched part of each thread's stack.",
)


def headings(meta: dict[str, Any]) -> tuple[str, str, str, str]:
    """The table's title and the headings of the two peers' columns and of the ratio."""
    versions = meta["versions"]
    return (
        f"jumpstarter vs Pykka — median of {meta['repeat']} runs, each in a fresh subprocess",
        f"jumpstarter {versions['jumpstarter']}",
        f"Pykka {versions['pykka']} ThreadingActor",
        "jumpstarter vs Pykka",
    )


def sizes_line(meta: dict[str, Any]) -> str:
    """What the run measured, in one line under the header."""
    s = meta["sizes"]
    return (
        f"sizes: tell {s['tell']:,} msgs · ask {s['ask']:,} (after {s['ask_warmup']:,} "
        f"warm-up) · spawn {s['spawn']:,} jumpstarter / {s['pykka_spawn']:,} Pykka actors"
        + (" · --quick" if meta["quick"] else "")
    )


FLOOR = (
    ("creating one Ping", "ping_us", "µs"),
    ("Ping + await a no-op coroutine", "sender_us", "µs"),
    ("= at most", "sender_msgs_per_s", "msg/s"),
    ("trio checkpoint", "checkpoint_us", "µs"),
    ("trio.move_on_after scope", "cancel_scope_us", "µs"),
)
"""The machine-floor figures printed under the table: label, metric, unit."""
