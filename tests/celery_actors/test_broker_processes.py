"""Over the real RabbitMQ, with a router and workers in processes of their own: a
worker or a router killed with SIGKILL mid-task loses nothing, and the result is
stored once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from tests.celery_actors.broker_proc_app import app, marked_sleep
from tests.celery_actors.roles import Role

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
APP = "tests.celery_actors.broker_proc_app:app"
URL = "amqp://guest:guest@127.0.0.1:5672"
TIMEOUT = 60.0


@pytest.fixture
def roles() -> Iterator[list[Role]]:
    started: list[Role] = []
    yield started
    for role in reversed(started):  # workers first, while their router still answers
        role.stop()
    subprocess.run(
        ["rabbitmqctl", "-q", "delete_queue", f"{app.name}.default"], capture_output=True
    )


def stored(results: Path, call_id: str) -> list[dict[str, object]]:
    return [
        doc
        for doc in (json.loads(line) for line in results.read_text().splitlines())
        if doc["id"] == call_id
    ]


async def wait_for_marker(markers: Path, count: int) -> list[Path]:
    with trio.fail_after(TIMEOUT):
        while len(found := list(markers.iterdir())) < count:  # noqa: ASYNC110, ASYNC240 - another process writes them
            await trio.sleep(0.05)
    return found


async def test_a_worker_killed_mid_task_over_rabbitmq_loses_nothing(roles, tmp_path):
    results = tmp_path / "results.jsonl"
    markers = tmp_path / "markers"
    markers.mkdir()
    router = Role("--role", "router", "--router", "127.0.0.1:0", "--results", str(results), app=APP)
    roles.append(router)
    for _ in range(2):
        roles.append(Role("--role", "worker", "--router", router.address, app=APP))
    workers = {role.process.pid: role for role in roles[1:]}
    async with app.connect():
        call = await marked_sleep.delay(str(markers), "victim", 2.0)
        (first,) = await wait_for_marker(markers, 1)
        victim = int(first.suffix[1:])
        os.kill(victim, signal.SIGKILL)
        workers[victim].process.wait(TIMEOUT)
        survivor = await call.get(timeout=TIMEOUT)
    assert survivor != victim and survivor in workers
    [doc] = stored(results, call.id)
    assert doc["state"] == "succeeded"


async def test_a_router_killed_mid_task_gives_the_call_back_to_the_broker(roles, tmp_path):
    results = tmp_path / "results.sqlite"
    markers = tmp_path / "markers"
    markers.mkdir()
    options = ("--role", "all", "--router", "127.0.0.1:0", "--results", str(results))
    first = Role(*options, app=APP)
    roles.append(first)
    async with app.connect():
        call = await marked_sleep.delay(str(markers), "twice", 1.0)
        await wait_for_marker(markers, 1)
        first.process.kill()  # SIGKILL: the call was never settled on the broker
        first.process.wait(TIMEOUT)
        roles.append(Role(*options, app=APP))  # a new router, with the same results file
        value = await call.get(timeout=TIMEOUT)
    runs = sorted(int(path.suffix[1:]) for path in markers.iterdir())
    assert runs == sorted([first.process.pid, roles[1].process.pid])
    assert value == roles[1].process.pid
    rows = await trio.to_thread.run_sync(count_rows, results, call.id)
    assert rows == 1


def count_rows(path: Path, call_id: str) -> int:
    import sqlite3

    with sqlite3.connect(path) as db:
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        (table,) = [name for name in tables if "result" in name]
        (count,) = db.execute(f"SELECT COUNT(*) FROM {table} WHERE id = ?", (call_id,)).fetchone()
    return int(count)
