"""The celery_actors app of the ``canvas`` suite: a no-op, a counter and an increment.

Its router and workers run as ``python -m jumpstarter run
benchmarks._canvas_app:app --role router|worker``; the benchmark process is the
client that starts the workflows.
"""

from __future__ import annotations

from typing import Any

from celery_actors import App

__all__ = ["app", "count", "inc", "noop"]

app = App("bench-canvas")


@app.task(name="bench.canvas.noop")
async def noop() -> None:
    """Do nothing: a chord's header member."""


@app.task(name="bench.canvas.count")
async def count(results: list[Any]) -> int:
    """A chord's body: how many header results it got."""
    return len(results)


@app.task(name="bench.canvas.inc")
async def inc(n: int) -> int:
    """A chain's step: the result of the step before, plus one."""
    return n + 1
