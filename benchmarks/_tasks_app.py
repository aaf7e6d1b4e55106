"""The celery_actors app of the ``tasks`` suite: one no-op task.

Its router and worker run as ``python -m jumpstarter run benchmarks._tasks_app:app
--role router|worker``; the benchmark process is the client.

Two environment variables, read on import, set the app up for a measurement
through a broker: :data:`~benchmarks._tasks_services.CELERY_ACTORS_APP_ENV` names
the app (its queue on the broker is ``<name>.default``, so a name of the
measurement's own keeps it apart from anyone else's on a shared RabbitMQ), and
:data:`~benchmarks._tasks_services.CELERY_ACTORS_BROKER_ENV` gives it the broker's
URL. Without them, the app is ``bench-tasks``, peer-to-peer.
"""

from __future__ import annotations

import os

from celery_actors import App

from ._tasks_services import CELERY_ACTORS_APP_ENV, CELERY_ACTORS_BROKER_ENV

__all__ = ["app", "noop"]

app = App(
    os.environ.get(CELERY_ACTORS_APP_ENV) or "bench-tasks",
    broker=os.environ.get(CELERY_ACTORS_BROKER_ENV) or None,
)


@app.task(name="bench.noop")
async def noop() -> None:
    """Do nothing: what is measured is the way to the worker and back."""
