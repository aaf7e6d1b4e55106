"""The ``canvas`` suite: celery_actors workflows against Celery 5 chords and chains.

Three scenarios, for every system of :data:`benchmarks._canvas_systems.SYSTEMS`: a
chord of 1,000 no-op header tasks whose body counts their results, the same with
10,000, and a chain of 1,000 increments from 0. Each is timed from just before the
workflow is submitted to its final result in hand, and that result is checked (both
kinds end with the number of tasks).

Each measurement runs in a fresh process (:mod:`benchmarks._canvas_worker`), which
starts the system, is its client, and stops it again. Each repetition runs every
scenario for every system, one after the other, so a noisy neighbour hurts all alike.
"""

from __future__ import annotations

import statistics
import sys
from typing import Any, Final

import attrs
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from ._canvas_systems import SYSTEMS, System
from ._report import Errors, Results
from ._runner import Job

__all__ = ["FULL", "QUICK", "TARGET_RATIO", "CanvasJob", "Sizes", "plan", "render", "scenarios"]

NAME = "canvas"

SOURCES = ("jumpstarter", "celery_actors")
"""The packages whose sources the run's fingerprint covers (the code it measured)."""

DISTRIBUTIONS = ("celery", "kombu", "redis")
"""Versions shown in the header besides jumpstarter's and trio's."""

TARGET_RATIO: Final = 10.0
"""celery_actors should end each workflow at least this many times sooner than Celery."""


@attrs.frozen
class Sizes:
    """How big each workflow is."""

    chord_small: int
    """Header tasks of the smaller chord."""
    chord_large: int
    """Header tasks of the larger chord."""
    chain: int
    """Steps of the chain."""
    warmup: int
    """Tasks of the untimed workflow (of the same kind) before each timed one."""


FULL = Sizes(chord_small=1_000, chord_large=10_000, chain=1_000, warmup=100)
QUICK = Sizes(chord_small=200, chord_large=1_000, chain=200, warmup=20)


def scenarios(sizes: Sizes) -> list[tuple[str, str, int]]:
    """Each scenario of a run: its name (``chord-1000``), its kind, its size."""
    return [
        (f"{kind}-{n}", kind, n)
        for kind, n in (
            ("chord", sizes.chord_small),
            ("chord", sizes.chord_large),
            ("chain", sizes.chain),
        )
    ]


@attrs.frozen
class CanvasJob(Job):
    """A measurement of the ``canvas`` suite: runs in :mod:`benchmarks._canvas_worker`."""

    kind: str = "chord"

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "benchmarks._canvas_worker",
            self.peer,
            self.kind,
            "--n",
            str(self.n),
            "--warmup",
            str(self.warmup),
        ]


def plan(sizes: Sizes) -> list[Job]:
    """The jobs of one repetition: each scenario, for every system in turn."""
    return [
        CanvasJob(system.key, name, n, sizes.warmup, kind=kind)
        for name, kind, n in scenarios(sizes)
        for system in SYSTEMS
    ]


# -- the report


def _runs(results: Results, system: System, scenario: str) -> list[float]:
    return [run["wall_s"] for run in results.get(system.key, {}).get(scenario, ())]


def _median(results: Results, system: System, scenario: str) -> float | None:
    values = _runs(results, system, scenario)
    return statistics.median(values) if values else None


def _seconds(value: float) -> str:
    return f"{value:,.3f}" if value < 10 else f"{value:,.1f}"


def _cell(results: Results, errors: Errors, system: System, scenario: str) -> Text:
    """The median wall time, the range of the runs and the median submit time."""
    if scenario in errors.get(system.key, {}):
        return Text("failed", style="bold red")
    runs = results.get(system.key, {}).get(scenario, [])
    if not runs:
        return Text("—", style="dim")
    walls = [run["wall_s"] for run in runs]
    text = Text(f"{_seconds(statistics.median(walls))} s", style="bold")
    if len(walls) > 1:
        text.append(f"\n{_seconds(min(walls))} to {_seconds(max(walls))}", style="dim")
    submit = statistics.median(run["submit_s"] for run in runs)
    text.append(f"\nsubmit {_seconds(submit)} s", style="dim")
    return text


def _ours() -> System:
    return next(system for system in SYSTEMS if system.ours)


def _ratio(results: Results, peer: System, scenario: str) -> float | None:
    """The peer's median wall time over celery_actors' (above 1: celery_actors is faster)."""
    ours = _median(results, _ours(), scenario)
    other = _median(results, peer, scenario)
    if ours is None or other is None or ours <= 0:
        return None
    return other / ours


def _mark(met: bool | None) -> Text:
    if met is None:
        return Text("?", style="dim")
    return Text("✓", style="bold green") if met else Text("✗", style="bold red")


def _ratio_text(ratio: float | None) -> Text:
    if ratio is None:
        return Text("—", style="dim")
    return Text(f"{ratio:,.1f}x", style="green" if ratio >= 1 else "red")


def _peers() -> list[System]:
    return [system for system in SYSTEMS if not system.ours]


def figures_table(results: Results, errors: Errors, meta: dict[str, Any]) -> Table:
    """Each scenario's wall time in every system, the ratios and the targets."""
    repeat = meta["repeat"]
    table = Table(
        title=f"Workflows, submit to final result — median of {repeat} run"
        + ("s" if repeat != 1 else "")
        + " (their range below), each in fresh processes",
        title_justify="left",
    )
    table.add_column("workflow", max_width=30)
    for system in SYSTEMS:
        table.add_column(system.label, justify="right", max_width=18)
    peers = _peers()
    for peer in peers:
        table.add_column(f"{peer.short} ÷ {_ours().short}", justify="right", max_width=15)
    table.add_column("target", no_wrap=True)
    table.add_column("met", justify="center", no_wrap=True)
    for name, kind, n in scenarios(Sizes(**meta["sizes"])):
        ratios = [_ratio(results, peer, name) for peer in peers]
        table.add_row(
            Text(name, style="bold").append(f"\n{_describe(kind, n)}", style="dim"),
            *(_cell(results, errors, system, name) for system in SYSTEMS),
            *(_ratio_text(ratio) for ratio in ratios),
            "\n".join(f"≥ {TARGET_RATIO:g}x" for _ in peers),
            Text(" ").join(
                _mark(None if ratio is None else ratio >= TARGET_RATIO) for ratio in ratios
            ),
            end_section=True,
        )
    return table


def _describe(kind: str, n: int) -> str:
    if kind == "chord":
        return f"{n:,} no-op tasks, then a body that counts them"
    return f"{n:,} steps, each adding 1 to the step before"


def _notes(meta: dict[str, Any]) -> list[str]:
    warmup = meta["sizes"]["warmup"]
    return [
        "Wall time: from just before the workflow is submitted (the canvas is built "
        "already) to its final result in the client's hands; 'submit' is the part until "
        "the submitting call returned. The result is checked in both systems: the chord's "
        "body returns the number of header results, the chain ends with its number of "
        "steps; a wrong result fails the measurement.",
        "celery_actors: await client.start_workflow(chord(group([noop.s() ...]), count.s())) "
        "or chain(inc.si(0), *[inc.s() ...]), then await result.get(). Celery: the same "
        "canvas with celery's chord, group and chain, .apply_async(), then .get().",
        f"Before each timed workflow: one of {10} tasks (waits for the system to be ready) "
        f"and one of {warmup:,} tasks, untimed, of the same kind.",
    ]


def _setup_lines() -> list[Text]:
    lines = []
    for system in SYSTEMS:
        line = Text(f"{system.label}: ", style="bold" if system.ours else "")
        line.append(system.setup, style="dim")
        lines.append(line)
    return lines


def render(
    console: Console, suite: Any, results: Results, errors: Errors, meta: dict[str, Any]
) -> None:
    """Print the header, the table, the targets, and any failures."""
    shown = ("jumpstarter", "trio", "python-qpid-proton", *DISTRIBUTIONS)
    versions = " · ".join(
        f"{name} {version}" for name, version in meta["versions"].items() if name in shown
    )
    sizes = Sizes(**meta["sizes"])
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
                "sizes: "
                + " · ".join(name for name, _, _ in scenarios(sizes))
                + f" · {sizes.warmup:,}-task warm-up"
                + (" · --quick" if meta["quick"] else ""),
                style="dim",
            ),
            *_setup_lines(),
        )
    )
    console.print(figures_table(results, errors, meta))
    for note in _notes(meta):
        console.print(Text(note, style="dim"))
    console.print()
    console.print(Text("Targets (celery_actors):", style="bold"))
    for name, _, _ in scenarios(sizes):
        for peer in _peers():
            ratio = _ratio(results, peer, name)
            if ratio is None:
                figure = f"no figure to compare with {peer.label}"
            elif ratio >= 1:
                figure = f"{ratio:,.1f}x faster than {peer.label}"
            else:
                figure = f"{1 / ratio:,.1f}x slower than {peer.label}"
            console.print(
                Text("  ")
                .append(_mark(None if ratio is None else ratio >= TARGET_RATIO))
                .append(f" {name}: {figure}, target ≥ {TARGET_RATIO:g}x")
            )
    for key, failed in errors.items():
        for scenario, why in failed.items():
            console.print(Text(f"{key} {scenario} failed: {why}", style="red"))
