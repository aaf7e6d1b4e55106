"""The app the multi-process tests run with ``jumpstart run``."""

from __future__ import annotations

import os

import trio

from celery_actors import App

app = App("proc-app")


@app.task
async def add(x: int, y: int) -> int:
    return x + y


@app.task
def pid() -> int:
    return os.getpid()


@app.task
async def marked_sleep(marker_dir: str, key: str, seconds: float) -> int:
    """Leave a file named after the call and this process, then sleep."""
    await trio.Path(marker_dir, f"{key}.{os.getpid()}").write_text("started")
    await trio.sleep(seconds)
    return os.getpid()


@app.task
async def add_one_through_the_router(x: int) -> int:
    """A task calling a task: the worker process's client sends it to the router."""
    result = await add.delay(x, 1)
    value: int = await result.get(timeout=30)
    return value
