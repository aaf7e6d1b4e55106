"""The ``tasks`` suite: celery_actors against Celery 5 and Dramatiq, no-op tasks end to end.

Two measurements, for every system of :data:`benchmarks._tasks_systems.SYSTEMS`:

1. **throughput**: ``N`` calls of a no-op task (20,000), then every result: the
   publish time, the drain time (until the last result is in) and the rate over
   both.
2. **roundtrip**: ``delay`` → result, ``N`` sequential calls (1,000), each timed:
   p50 and p99.

Each measurement runs in a fresh process (:mod:`benchmarks._tasks_worker`), which
starts the system (router and worker, with or without RabbitMQ between the client
and the router, or a worker with RabbitMQ and a Redis of its own), is its client, and
stops it again. Each repetition runs every system, one after the other, so a noisy
neighbour hurts all alike.
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Sequence
from typing import Any

import attrs
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from ._report import Errors, Results
from ._runner import Job
from ._tasks_measure import SCENARIOS
from ._tasks_systems import SYSTEMS, System

__all__ = ["FULL", "QUICK", "Sizes", "TaskJob", "plan", "render"]

NAME = "tasks"

SOURCES = ("jumpstarter", "celery_actors")
"""The packages whose sources the run's fingerprint covers (the code it measured)."""

DISTRIBUTIONS = ("celery", "kombu", "dramatiq", "pika", "redis")
"""Versions shown in the header besides jumpstarter's and trio's."""

EARLIER = (
    "Measured on this machine before this suite: Celery ≈ 1,100 tasks/s, p50 ≈ 3.2 ms; "
    "Dramatiq ≈ 1,500 tasks/s with one process."
)


@attrs.frozen
class Sizes:
    """How big each measurement is."""

    throughput: int
    roundtrip: int
    warmup: int
    """Untimed round trips before each measurement."""
    in_flight: int
    """Calls an async client (celery_actors) keeps in progress during the throughput run."""


FULL = Sizes(throughput=20_000, roundtrip=1_000, warmup=200, in_flight=300)
QUICK = Sizes(throughput=2_000, roundtrip=1_000, warmup=100, in_flight=300)


@attrs.frozen
class TaskJob(Job):
    """A measurement of the ``tasks`` suite: runs in :mod:`benchmarks._tasks_worker`."""

    in_flight: int = 1

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "benchmarks._tasks_worker",
            self.peer,
            self.scenario,
            "--n",
            str(self.n),
            "--warmup",
            str(self.warmup),
            "--in-flight",
            str(self.in_flight),
        ]


def plan(sizes: Sizes) -> list[Job]:
    """The jobs of one repetition: each scenario, for every system in turn."""
    size = {"throughput": sizes.throughput, "roundtrip": sizes.roundtrip}
    return [
        TaskJob(system.key, scenario, size[scenario], sizes.warmup, in_flight=sizes.in_flight)
        for scenario in SCENARIOS
        for system in SYSTEMS
    ]


# -- the report


def _runs(results: Results, system: System, scenario: str, metric: str) -> list[float]:
    return [run[metric] for run in results.get(system.key, {}).get(scenario, ()) if metric in run]


def _median(results: Results, system: System, scenario: str, metric: str) -> float | None:
    values = _runs(results, system, scenario, metric)
    return statistics.median(values) if values else None


def _number(value: float, unit: str) -> str:
    if unit == "tasks/s":
        return f"{value:,.0f}"
    if unit == "ms":
        return f"{value:,.3f}" if value < 10 else f"{value:,.1f}"
    return f"{value:,.2f}"


def _cell(
    results: Results,
    errors: Errors,
    system: System,
    scenario: str,
    metric: str,
    unit: str,
    scale: float = 1.0,
    *,
    spread: bool = True,
) -> Text:
    """The median of a metric's runs, with their range below it when ``spread``."""
    if scenario in errors.get(system.key, {}):
        return Text("failed", style="bold red")
    values = [value * scale for value in _runs(results, system, scenario, metric)]
    if not values:
        return Text("—", style="dim")
    text = Text(f"{_number(statistics.median(values), unit)} {unit}", style="bold")
    if spread and len(values) > 1:
        low, high = _number(min(values), unit), _number(max(values), unit)
        text.append(f"\n{low} to {high}", style="dim")
    return text


def _goals(results: Results, system: System) -> list[tuple[str, str, bool | None]]:
    """Each target of ``system``: its text, the figure judged, and whether it is met."""
    if system.targets is None:
        return []
    rate = _median(results, system, "throughput", "tasks_per_s")
    p50 = _median(results, system, "roundtrip", "p50_us")
    p50_ms = None if p50 is None else p50 / 1e3
    goal_rate = system.targets.tasks_per_s
    goal_p50 = system.targets.p50_ms
    return [
        (
            f"≥ {goal_rate:,.0f} tasks/s",
            "no figure" if rate is None else f"{rate:,.0f} tasks/s",
            None if rate is None else rate >= goal_rate,
        ),
        (
            f"p50 ≤ {goal_p50:g} ms",
            "no figure" if p50_ms is None else f"{p50_ms:.3f} ms",
            None if p50_ms is None else p50_ms <= goal_p50,
        ),
    ]


def _mark(met: bool | None) -> Text:
    if met is None:
        return Text("?", style="dim")
    return Text("✓", style="bold green") if met else Text("✗", style="bold red")


def figures_table(results: Results, errors: Errors, meta: dict[str, Any]) -> Table:
    """Every system's figures, with the targets of the celery_actors ones."""
    table = Table(
        title=f"No-op tasks end to end — median of {meta['repeat']} run"
        + ("s" if meta["repeat"] != 1 else "")
        + " (their range below), each in fresh processes",
        title_justify="left",
    )
    table.add_column("system", max_width=34)
    table.add_column("throughput", justify="right", no_wrap=True)
    table.add_column("publish", justify="right", no_wrap=True)
    table.add_column("drain", justify="right", no_wrap=True)
    table.add_column("round trip p50", justify="right", no_wrap=True)
    table.add_column("p99", justify="right", no_wrap=True)
    table.add_column("target", no_wrap=True)
    table.add_column("met", justify="center", no_wrap=True)
    for system in SYSTEMS:
        goals = _goals(results, system)
        label = Text(system.label, style="bold" if system.ours else "")
        label.append(f"\n{system.setup}", style="dim")
        table.add_row(
            label,
            _cell(results, errors, system, "throughput", "tasks_per_s", "tasks/s"),
            _cell(results, errors, system, "throughput", "publish_s", "s", spread=False),
            _cell(results, errors, system, "throughput", "drain_s", "s", spread=False),
            _cell(results, errors, system, "roundtrip", "p50_us", "ms", 1e-3),
            _cell(results, errors, system, "roundtrip", "p99_us", "ms", 1e-3, spread=False),
            "\n".join(text for text, _, _ in goals),
            Text(" ").join(_mark(met) for _, _, met in goals),
            end_section=True,
        )
    return table


def _ours() -> list[System]:
    return [system for system in SYSTEMS if system.ours]


def _ratio(ours: float | None, other: float | None, higher_is_better: bool) -> Text:
    """How many times better ``ours`` is than ``other`` (or worse)."""
    if ours is None or other is None or ours <= 0 or other <= 0:
        return Text("—", style="dim")
    better = ours / other if higher_is_better else other / ours
    if better >= 1:
        return Text(f"{better:,.1f}x better", style="green")
    return Text(f"{1 / better:,.1f}x worse", style="red")


def ratios_table(results: Results) -> Table:
    """For each celery_actors system, how it compares with each other system."""
    table = Table(
        title="celery_actors vs each peer (medians; throughput and round trip p50)",
        title_justify="left",
    )
    table.add_column("peer")
    ours = _ours()
    for system in ours:
        table.add_column(f"{system.label}\nthroughput", justify="right")
        table.add_column(f"{system.label}\np50", justify="right")
    for peer in SYSTEMS:
        if peer.ours:
            continue
        cells: list[Text] = []
        for system in ours:
            cells.append(
                _ratio(
                    _median(results, system, "throughput", "tasks_per_s"),
                    _median(results, peer, "throughput", "tasks_per_s"),
                    higher_is_better=True,
                )
            )
            cells.append(
                _ratio(
                    _median(results, system, "roundtrip", "p50_us"),
                    _median(results, peer, "roundtrip", "p50_us"),
                    higher_is_better=False,
                )
            )
        table.add_row(peer.label, *cells)
    return table


def _notes(meta: dict[str, Any]) -> Sequence[str]:
    sizes = meta["sizes"]
    return (
        f"throughput: {sizes['throughput']:,} calls, then all their results; publish = until "
        f"the last call was sent, drain = from there until the last result was in; the rate "
        f"is over both. celery_actors' client (trio) keeps {sizes['in_flight']} calls in "
        "progress at once (await noop.delay(), then await result.get()); Celery's and "
        "Dramatiq's blocking clients send one after the other (delay() / send()), then wait "
        "for each result (AsyncResult.get() / message.get_result(block=True)).",
        f"round trip: {sizes['roundtrip']:,} sequential calls, each timed from the call to "
        f"its result. Both measurements come after {sizes['warmup']:,} untimed round trips.",
        "Celery and Dramatiq: RabbitMQ on 127.0.0.1 over AMQP 0.9.1 (py-amqp / pika), "
        "results in a Redis server of the run's own. celery_actors peer-to-peer: no broker, "
        "the processes are linked over AMQP 1.0. celery_actors through RabbitMQ: the client "
        "publishes the calls to the app's durable queue over AMQP 1.0, the router consumes "
        "them, settles each once its result is stored and publishes the result back through "
        "RabbitMQ; the worker links to the router peer-to-peer.",
        EARLIER,
    )


def render(
    console: Console, suite: Any, results: Results, errors: Errors, meta: dict[str, Any]
) -> None:
    """Print the header, the figures, the ratios, the targets, and any failures."""
    shown = ("jumpstarter", "trio", "python-qpid-proton", *DISTRIBUTIONS)
    versions = " · ".join(
        f"{name} {version}" for name, version in meta["versions"].items() if name in shown
    )
    sizes = meta["sizes"]
    console.print(
        Group(
            Text(
                f"Python {meta['python']} ({meta['implementation']}) on {meta['platform']}, "
                f"{meta['cpus']} CPUs · {versions}"
            ),
            Text(
                f"run at {meta['timestamp']} · git {meta['commit']} · "
                f"{' + '.join(meta.get('source_packages', SOURCES))} sources "
                f"{meta['source']}",
                style="dim",
            ),
            Text(
                f"sizes: throughput {sizes['throughput']:,} tasks ({sizes['in_flight']} in "
                f"flight for async clients) · round trip {sizes['roundtrip']:,} sequential · "
                f"{sizes['warmup']:,} warm-up" + (" · --quick" if meta["quick"] else ""),
                style="dim",
            ),
        )
    )
    console.print(figures_table(results, errors, meta))
    console.print(ratios_table(results))
    for note in _notes(meta):
        console.print(Text(note, style="dim"))
    console.print()
    console.print(Text("Targets (celery_actors):", style="bold"))
    for system in _ours():
        for goal, figure, met in _goals(results, system):
            console.print(
                Text("  ").append(_mark(met)).append(f" {system.label}: {figure}, target {goal}")
            )
    for key, failed in errors.items():
        for scenario, why in failed.items():
            console.print(Text(f"{key} {scenario} failed: {why}", style="red"))
