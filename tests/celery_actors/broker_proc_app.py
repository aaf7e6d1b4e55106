"""The app the multi-process broker tests run with ``jumpstart run``.

Its name (so its queue on the broker) is made unique per test process with the
``BROKER_APP_ID`` environment variable, which the processes it starts inherit.
"""

from __future__ import annotations

import os

import trio

from celery_actors import App

app = App(
    f"broker-proc-{os.environ.setdefault('BROKER_APP_ID', str(os.getpid()))}",
    broker="amqp://guest:guest@127.0.0.1:5672",
)


@app.task
async def marked_sleep(marker_dir: str, key: str, seconds: float) -> int:
    """Leave a file named after the call and this process, then sleep."""
    await trio.Path(marker_dir, f"{key}.{os.getpid()}").write_text("started")
    await trio.sleep(seconds)
    return os.getpid()
