"""The app the ``jumpstart call | quarantine | dev`` tests run in other processes."""

from __future__ import annotations

from pathlib import Path

import trio

from celery_actors import NO_RETRY, App, poisonous

app = App("cli-app")


@app.task
async def add(x: int, y: int) -> int:
    return x + y


@app.task(retry=NO_RETRY)
async def fail(message: str) -> None:
    """Fails at once, every time: no retry, so it is quarantined."""
    raise RuntimeError(message)


@app.task
def read_number(path: str) -> int:
    """The number written in the file at ``path``: a file that holds no number fails at
    once (poisonous) until someone fixes it."""
    with poisonous():
        return int(Path(path).read_text())


@app.task
async def sleep(seconds: float) -> float:
    await trio.sleep(seconds)
    return seconds
