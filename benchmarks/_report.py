"""Medians, the rich table, the targets, and the JSON record of a run."""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from .actors import Row

__all__ = ["Results", "render", "save_json"]

Results = dict[str, dict[str, list[dict[str, Any]]]]
"""peer -> job key -> the figures of each run."""

Errors = dict[str, dict[str, str]]
"""peer -> job key -> why it failed."""


def _runs(results: Results, peer: str, key: str, metric: str) -> list[float]:
    return [run[metric] for run in results.get(peer, {}).get(key, ()) if metric in run]


def _size(results: Results, peer: str, key: str) -> int | None:
    runs = results.get(peer, {}).get(key)
    return runs[0].get("n") if runs else None


def _fmt(value: float, unit: str, *, bare: bool = False) -> str:
    """``value`` for people: with its unit, or without it (``bare``)."""
    if unit == "msg/s":
        number = f"{value:,.0f}"
    elif unit == "µs":
        number = f"{value:,.3f}" if value < 100 else f"{value:,.0f}"
    elif unit == "s":
        number = f"{value:.4f}"
    elif unit == "B":
        number, unit = f"{value / 1024:,.2f}", "KiB"
    else:
        number = f"{value:,.3g}"
    return number if bare else f"{number} {unit}"


def _not_measured(results: Results, peer: str, key: str) -> str | None:
    """Why a peer's measurement could not run here, when it said so."""
    for run in results.get(peer, {}).get(key, ()):
        why = run.get("not_measured")
        if why:
            return str(why)
    return None


def _cell(
    values: list[float],
    unit: str,
    error: str | None,
    size: int | None,
    not_measured: str | None = None,
) -> Text:
    if error is not None:
        return Text("failed", style="bold red")
    if not values:
        if not_measured is not None:
            return Text(f"not measured: {not_measured}", style="yellow")
        return Text("—", style="dim")
    text = Text(_fmt(statistics.median(values), unit), style="bold")
    if size is not None:
        text.append(f" ({size:,} actors)", style="")
    if len(values) > 1:
        low, high = _fmt(min(values), unit, bare=True), _fmt(max(values), unit, bare=True)
        text.append(f"\nruns {low} to {high}", style="dim")
    return text


def _better(row: Row, ours: list[float], other: list[float]) -> float | None:
    """How many times better our median is than the other peer's (below 1: worse)."""
    if not row.compare or not ours or not other:
        return None
    a, b = statistics.median(ours), statistics.median(other)
    if a <= 0 or b <= 0:
        return None
    return a / b if row.higher_is_better else b / a


def _ratio(better: float | None) -> Text:
    if better is None:
        return Text("—", style="dim")
    if better >= 1:
        return Text(f"{better:,.1f}x better", style="green")
    return Text(f"{1 / better:,.1f}x worse", style="red")


def _mark(met: bool | None) -> Text:
    if met is None:
        return Text("n/a", style="dim")
    return Text("✓", style="bold green") if met else Text("✗", style="bold red")


def _verdict(row: Row, js: list[float], n: int | None) -> Text:
    if row.target is None or not js:
        return Text("")
    return _mark(row.target.met(statistics.median(js), n))


def _ratio_text(row: Row, other_name: str) -> str:
    return f"≥ {row.ratio_target:g}x {other_name}"


def _goals(
    suite: ModuleType, row: Row, ours: list[float], better: float | None, n: int | None
) -> list[tuple[str, str, Text]]:
    """Each goal of ``row``: (its text, the figure judged, whether it is met)."""
    goals: list[tuple[str, str, Text]] = []
    if row.target is not None:
        figure = _fmt(statistics.median(ours), row.unit) if ours else "no figure"
        goals.append((row.target.text, figure, _verdict(row, ours, n) if ours else Text("")))
    if row.ratio_target is not None:
        other = _other_name(suite)
        figure = f"{_ratio(better).plain} than {other}" if better is not None else "no ratio"
        met = Text("") if better is None else _mark(better >= row.ratio_target)
        goals.append((_ratio_text(row, _other_name(suite)), figure, met))
    return goals


def _peers(suite: ModuleType) -> tuple[str, str]:
    peers: tuple[str, str] = getattr(suite, "PEERS", ("jumpstarter", "pykka"))
    return peers


def _other_name(suite: ModuleType) -> str:
    return str(getattr(suite, "OTHER", _peers(suite)[1]))


def table(suite: ModuleType, results: Results, errors: Errors, meta: dict[str, Any]) -> Table:
    """The side-by-side table: medians (and the range of the runs) and the ratio."""
    rows: Sequence[Row] = suite.ROWS
    ours_peer, other_peer = _peers(suite)
    title, ours_heading, other_heading, ratio_heading = suite.headings(meta)
    out = Table(title=title, title_justify="left")
    out.add_column("measurement", no_wrap=True)
    out.add_column(ours_heading, justify="right")
    out.add_column(other_heading, justify="right")
    out.add_column(ratio_heading, justify="right")
    out.add_column(f"target ({ours_heading.split()[0]})")
    out.add_column("met", justify="center")
    for row in rows:
        other_key = row.other_key or row.key
        ours = _runs(results, ours_peer, row.key, row.metric)
        other = _runs(results, other_peer, other_key, row.metric)
        ours_n = _size(results, ours_peer, row.key)
        other_n = _size(results, other_peer, other_key)
        better = _better(row, ours, other)
        goals = _goals(suite, row, ours, better, ours_n)
        out.add_row(
            row.label,
            _cell(
                ours,
                row.unit,
                errors.get(ours_peer, {}).get(row.key),
                ours_n if row.show_n else None,
                _not_measured(results, ours_peer, row.key),
            ),
            _cell(
                other,
                row.unit,
                errors.get(other_peer, {}).get(other_key),
                other_n if row.show_n else None,
                _not_measured(results, other_peer, other_key),
            ),
            _ratio(better),
            "\n".join(text for text, _, _ in goals),
            Text(" ").join(met for _, _, met in goals),
            end_section=row.section_end,
        )
    return out


def _floor_line(floor: Sequence[tuple[str, str, str]], results: Results) -> Text | None:
    figures = [
        (label, _runs(results, "floor", "floor", metric), unit) for label, metric, unit in floor
    ]
    parts = [
        f"{label} {_fmt(statistics.median(values), unit)}"
        for label, values, unit in figures
        if values
    ]
    if not parts:
        return None
    return Text("Machine floor (no actors): " + " · ".join(parts), style="dim")


def render(
    console: Console, suite: ModuleType, results: Results, errors: Errors, meta: dict[str, Any]
) -> None:
    """Print the header, the suite's table, notes and targets, and any failures."""
    rows: Sequence[Row] = suite.ROWS
    ours_peer, _ = _peers(suite)
    versions = " · ".join(
        f"{name} {version}" for name, version in meta["versions"].items() if name != "jumpstarter"
    )
    console.print(
        Group(
            Text(
                f"Python {meta['python']} ({meta['implementation']}) on {meta['platform']}, "
                f"{meta['cpus']} CPUs · {versions}"
            ),
            Text(
                f"run at {meta['timestamp']} · git {meta['commit']} · "
                f"jumpstarter sources {meta['source']}",
                style="dim",
            ),
            Text(suite.sizes_line(meta), style="dim"),
        )
    )
    console.print(table(suite, results, errors, meta))
    for note in suite.NOTES:
        console.print(Text(note, style="dim"))
    floor = _floor_line(suite.FLOOR, results)
    if floor is not None:
        console.print(floor)
    console.print()
    console.print(Text("Targets (jumpstarter):", style="bold"))
    other_peer = _peers(suite)[1]
    for row in rows:
        ours = _runs(results, ours_peer, row.key, row.metric)
        other = _runs(results, other_peer, row.other_key or row.key, row.metric)
        n = _size(results, ours_peer, row.key)
        for goal, figure, met in _goals(suite, row, ours, _better(row, ours, other), n):
            console.print(
                Text("  ")
                .append(met if met.plain else Text("?"))
                .append(f" {row.label}: {figure}, target {goal}")
            )
    for peer, failed in errors.items():
        for key, why in failed.items():
            console.print(Text(f"{peer} {key} failed: {why}", style="red"))


def save_json(
    directory: Path, suite: str, results: Results, errors: Errors, meta: dict[str, Any]
) -> Path:
    """Write every run's figures and their medians; return the file's path."""
    medians = {
        peer: {
            key: {
                metric: statistics.median(run[metric] for run in runs)
                for metric in runs[0]
                if isinstance(runs[0][metric], int | float)
            }
            for key, runs in by_key.items()
            if runs
        }
        for peer, by_key in results.items()
    }
    directory.mkdir(parents=True, exist_ok=True)
    stamp = meta["timestamp"].replace(":", "").replace("-", "")[:15]
    path = directory / f"{suite}-{stamp}.json"
    record = {"suite": suite, "meta": meta, "medians": medians, "runs": results, "errors": errors}
    path.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path
