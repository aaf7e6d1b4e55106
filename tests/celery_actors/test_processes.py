"""A router and workers in their own processes, started with ``jumpstart run``, linked
peer-to-peer over AMQP 1.0 on 127.0.0.1; the test process is the client."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from tests.celery_actors.proc_app import add, add_one_through_the_router, app, marked_sleep, pid
from tests.celery_actors.roles import Role

REPO = Path(__file__).resolve().parents[2]
APP = "tests.celery_actors.proc_app:app"
TIMEOUT = 30.0


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[str, list[Role], Path]]:
    """A router storing results in a JSON-lines file, and two workers."""
    results = tmp_path / "results.jsonl"
    roles: list[Role] = []
    try:
        router = Role("--role", "router", "--router", "127.0.0.1:0", "--results", str(results))
        roles.append(router)
        address = f"127.0.0.1:{router.port}"
        for _ in range(2):
            roles.append(Role("--role", "worker", "--router", address, "--concurrency", "4"))
        yield address, roles, results
    finally:
        for role in reversed(roles):  # workers first, while their router still answers
            role.stop()


def stored(results: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in results.read_text().splitlines()]


@pytest.mark.slow
async def test_calls_run_on_worker_processes_and_results_come_back(cluster):
    address, roles, results = cluster
    async with app.connect(router=address):
        calls = [await add.delay(i, i) for i in range(100)]
        assert [await call.get(timeout=TIMEOUT) for call in calls] == [2 * i for i in range(100)]
        pids = {await (await pid.delay()).get(timeout=TIMEOUT) for _ in range(20)}
    workers = {role.process.pid for role in roles[1:]}
    assert pids <= workers and pids  # def tasks ran in the worker processes
    assert len(stored(results)) == 120


@pytest.mark.slow
async def test_a_worker_killed_mid_task_loses_nothing_and_the_result_is_stored_once(
    cluster, tmp_path
):
    address, roles, results = cluster
    markers = tmp_path / "markers"
    markers.mkdir()
    workers = {role.process.pid: role for role in roles[1:]}
    async with app.connect(router=address):
        call = await marked_sleep.delay(str(markers), "victim", 2.0)
        with trio.fail_after(TIMEOUT):
            while not list(markers.iterdir()):  # noqa: ASYNC110 - another process writes it
                await trio.sleep(0.05)
        (first,) = markers.iterdir()
        victim = int(first.suffix.removeprefix("."))
        os.kill(victim, signal.SIGKILL)
        workers[victim].process.wait(TIMEOUT)
        survivor = await call.get(timeout=TIMEOUT)
    assert survivor != victim and survivor in workers
    assert sorted(int(path.suffix[1:]) for path in markers.iterdir()) == sorted([victim, survivor])
    lines = [doc for doc in stored(results) if doc["id"] == call.id]
    assert len(lines) == 1 and lines[0]["state"] == "succeeded"


@pytest.mark.slow
async def test_a_task_on_a_worker_process_calls_another_task(cluster):
    address, _, _ = cluster
    async with app.connect(router=address):
        call = await add_one_through_the_router.delay(41)
        assert await call.get(timeout=TIMEOUT) == 42
