"""The celery_actors app of the ``tasks`` suite: one no-op task.

Its router and worker run as ``python -m jumpstarter run benchmarks._tasks_app:app
--role router|worker``; the benchmark process is the client.
"""

from __future__ import annotations

from celery_actors import App

app = App("bench-tasks")


@app.task(name="bench.noop")
async def noop() -> None:
    """Do nothing: what is measured is the way to the worker and back."""
