"""The Celery 5 app of the ``tasks`` suite: one no-op task.

The benchmark process (the client) and the worker it starts (``celery -A
benchmarks._tasks_celery worker``) both import this module; the environment says
which queue and which Redis server a measurement uses, so that nothing collides
with other users of the shared RabbitMQ.
"""

from __future__ import annotations

import os

from ._celery_app import make_celery

app, QUEUE = make_celery("bench-tasks", f"bench-celery-{os.getpid()}")


@app.task(name="bench.noop")  # type: ignore[untyped-decorator]
def noop() -> None:
    """Do nothing: what is measured is the way to the worker and back."""
