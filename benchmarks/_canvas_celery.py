"""The Celery 5 app of the ``canvas`` suite: the same three tasks as
:mod:`benchmarks._canvas_app`.

The benchmark process (the client) and the worker it starts (``celery -A
benchmarks._canvas_celery worker``) both import this module; the environment says
which queue and which Redis server a measurement uses, so that nothing collides with
other users of the shared RabbitMQ.
"""

from __future__ import annotations

import os
from typing import Any

from ._celery_app import make_celery

app, QUEUE = make_celery(
    "bench-canvas",
    f"bench-canvas-celery-{os.getpid()}",
    # A chord's body may wait this long for its header's results to be joined.
    result_chord_join_timeout=600.0,
)


@app.task(name="bench.canvas.noop")  # type: ignore[untyped-decorator]
def noop() -> None:
    """Do nothing: a chord's header member."""


@app.task(name="bench.canvas.count")  # type: ignore[untyped-decorator]
def count(results: list[Any]) -> int:
    """A chord's body: how many header results it got."""
    return len(results)


@app.task(name="bench.canvas.inc")  # type: ignore[untyped-decorator]
def inc(n: int) -> int:
    """A chain's step: the result of the step before, plus one."""
    return n + 1
