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


def _cell(values: list[float], unit: str, error: str | None, size: int | None) -> Text:
    if error is not None:
        return Text("failed", style="bold red")
    if not values:
        return Text("—", style="dim")
    text = Text(_fmt(statistics.median(values), unit), style="bold")
    if size is not None:
        text.append(f" ({size:,} actors)", style="")
    if len(values) > 1:
        low, high = _fmt(min(values), unit, bare=True), _fmt(max(values), unit, bare=True)
        text.append(f"\nruns {low} to {high}", style="dim")
    return text


def _ratio(row: Row, js: list[float], pk: list[float]) -> Text:
    if not row.compare or not js or not pk:
        return Text("—", style="dim")
    a, b = statistics.median(js), statistics.median(pk)
    if a <= 0 or b <= 0:
        return Text("—", style="dim")
    better = a / b if row.higher_is_better else b / a
    if better >= 1:
        return Text(f"{better:,.1f}x better", style="green")
    return Text(f"{1 / better:,.1f}x worse", style="red")


def _verdict(row: Row, js: list[float], n: int | None) -> Text:
    if row.target is None or not js:
        return Text("")
    met = row.target.met(statistics.median(js), n)
    if met is None:
        return Text("n/a", style="dim")
    return Text("✓", style="bold green") if met else Text("✗", style="bold red")


def table(rows: Sequence[Row], results: Results, errors: Errors, meta: dict[str, Any]) -> Table:
    """The side-by-side table: medians (and the range of the runs) and the ratio."""
    out = Table(
        title=f"jumpstarter vs Pykka — median of {meta['repeat']} runs, each in a fresh subprocess",
        title_justify="left",
    )
    out.add_column("measurement", no_wrap=True)
    out.add_column(f"jumpstarter {meta['versions']['jumpstarter']}", justify="right")
    out.add_column(f"Pykka {meta['versions']['pykka']} ThreadingActor", justify="right")
    out.add_column("jumpstarter vs Pykka", justify="right")
    out.add_column("target (jumpstarter)")
    out.add_column("met", justify="center")
    for row in rows:
        pykka_key = row.pykka_key or row.key
        js = _runs(results, "jumpstarter", row.key, row.metric)
        pk = _runs(results, "pykka", pykka_key, row.metric)
        js_n = _size(results, "jumpstarter", row.key)
        pk_n = _size(results, "pykka", pykka_key)
        out.add_row(
            row.label,
            _cell(
                js,
                row.unit,
                errors.get("jumpstarter", {}).get(row.key),
                js_n if row.show_n else None,
            ),
            _cell(
                pk, row.unit, errors.get("pykka", {}).get(pykka_key), pk_n if row.show_n else None
            ),
            _ratio(row, js, pk),
            row.target.text if row.target else "",
            _verdict(row, js, js_n),
            end_section=row.section_end,
        )
    return out


def _sizes_line(meta: dict[str, Any]) -> str:
    s = meta["sizes"]
    return (
        f"sizes: tell {s['tell']:,} msgs · ask {s['ask']:,} (after {s['ask_warmup']:,} "
        f"warm-up) · spawn {s['spawn']:,} jumpstarter / {s['pykka_spawn']:,} Pykka actors"
        + (" · --quick" if meta["quick"] else "")
    )


def _floor_line(floor: Sequence[tuple[str, str, str]], results: Results) -> Text:
    figures = [
        (label, _runs(results, "floor", "floor", metric), unit) for label, metric, unit in floor
    ]
    parts = [
        f"{label} {_fmt(statistics.median(values), unit)}"
        for label, values, unit in figures
        if values
    ]
    return Text("Machine floor (no actors): " + " · ".join(parts) if parts else "", style="dim")


def render(
    console: Console, suite: ModuleType, results: Results, errors: Errors, meta: dict[str, Any]
) -> None:
    """Print the header, the suite's table, notes and targets, and any failures."""
    rows: Sequence[Row] = suite.ROWS
    v = meta["versions"]
    console.print(
        Group(
            Text(
                f"Python {meta['python']} ({meta['implementation']}) on {meta['platform']}, "
                f"{meta['cpus']} CPUs · trio {v['trio']} · attrs {v['attrs']}"
            ),
            Text(
                f"run at {meta['timestamp']} · git {meta['commit']} · "
                f"jumpstarter sources {meta['source']}",
                style="dim",
            ),
            Text(_sizes_line(meta), style="dim"),
        )
    )
    console.print(table(rows, results, errors, meta))
    for note in suite.NOTES:
        console.print(Text(note, style="dim"))
    console.print(_floor_line(suite.FLOOR, results))
    console.print()
    console.print(Text("Targets (jumpstarter):", style="bold"))
    for row in rows:
        if row.target is None:
            continue
        js = _runs(results, "jumpstarter", row.key, row.metric)
        verdict = _verdict(row, js, _size(results, "jumpstarter", row.key))
        figure = _fmt(statistics.median(js), row.unit) if js else "no figure"
        console.print(
            Text("  ")
            .append(verdict or Text("?"))
            .append(f" {row.label}: {figure}, target {row.target.text}")
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
