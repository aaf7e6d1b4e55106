"""Workflows run by a router and worker processes (``jumpstart run``), linked
peer-to-peer on 127.0.0.1: random canvases against the reference evaluator, a router
killed in the middle of a large chord, and a worker killed in the middle of a chain."""

from __future__ import annotations

import os
import signal
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
from hypothesis import HealthCheck, given, settings

from celery_actors import chain, chord
from celery_actors.testing import evaluate

from .canvas_app import (
    BODIES_RUN,
    MODELS,
    MODULUS,
    add,
    app,
    arithmetic_canvases,
    slow_add,
    source,
    total,
)
from .roles import Role

APP = "tests.celery_actors.canvas_app:app"
TIMEOUT = 60.0
FINAL = {"succeeded", "failed", "revoked", "skipped"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A router and two workers of the canvas app; the directory where chord bodies
    note their runs (``runs``) and flaky tasks their first failures (``flaky``)."""
    scratch = tmp_path_factory.mktemp("canvas")
    for name in ("flaky", "runs"):
        (scratch / name).mkdir()
    saved = {name: os.environ.get(name) for name in ("CANVAS_FLAKY_DIR", "CANVAS_RUNS_DIR")}
    os.environ["CANVAS_FLAKY_DIR"] = str(scratch / "flaky")
    os.environ["CANVAS_RUNS_DIR"] = str(scratch / "runs")
    roles: list[Role] = []
    try:
        router = Role("--role", "router", "--router", "127.0.0.1:0", app=APP)
        roles.append(router)
        for _ in range(2):
            roles.append(
                Role("--role", "worker", "--router", router.address, "--concurrency", "8", app=APP)
            )
        yield router.address, scratch
    finally:
        for role in reversed(roles):
            role.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


async def run_workflow(address: str, canvas: Any) -> tuple[Any, Any]:
    async with app.connect(router=address):
        result = await canvas.apply_async(app=app)
        final = await result.wait(timeout=TIMEOUT)
        return final, await result.status()


@pytest.mark.slow
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    canvas=arithmetic_canvases(
        failures=True, flaky_calls=True, max_members=5, min_fanout=25, max_fanout=200
    )
)
def test_random_canvases_run_by_real_processes_equal_the_reference_evaluator(cluster, canvas):
    address, scratch = cluster
    runs = scratch / "runs"
    for marks in (runs, scratch / "flaky"):  # tokens may repeat from one example to the next
        for mark in marks.iterdir():
            mark.unlink()
    BODIES_RUN.clear()
    expected = evaluate(canvas, MODELS)
    bodies = Counter(BODIES_RUN)
    final, status = trio.run(run_workflow, address, canvas)
    assert expected.matches(final), (expected, final)
    # No workflow is left incomplete: every member ended, or was not needed.
    assert {member.state for member in status.members} <= FINAL
    ran = [member for member in status.members if member.state != "skipped"]
    assert len(ran) == expected.calls
    # Every chord body that had to run ran exactly once.
    for token, times in bodies.items():
        assert (runs / token).read_text() == "ran\n" * times, token


@pytest.mark.slow
async def test_a_router_killed_mid_chord_resumes_it_and_counts_each_header_result_once(
    tmp_path: Path,
):
    members = 2_000
    store = tmp_path / "workflows.sqlite3"
    router_options = ("--role", "router", "--router", "127.0.0.1:0", "--workflows", str(store))
    router = Role(*router_options, app=APP)
    port = router.port
    roles = [router]
    try:
        for _ in range(2):
            roles.append(
                Role("--role", "worker", "--router", router.address, "--concurrency", "8", app=APP)
            )
        canvas = chord(add.map(range(members)), total.s())
        async with app.connect(router=router.address) as client:
            result = await client.start_workflow(canvas)
            workflow_id = result.id
            with trio.fail_after(TIMEOUT):
                # Kill it once part of the header is recorded, most not.
                done = 0
                while done < members // 10:
                    summary = await result.status(members=False)
                    done = summary.counts.get("succeeded", 0)
                    await trio.sleep(0.01)
        assert done < members  # killed in the middle of the chord
        router.process.send_signal(signal.SIGKILL)
        router.process.wait(TIMEOUT)
        router.stop()  # closes its pipes
        again = [
            f"127.0.0.1:{port}" if option == "127.0.0.1:0" else option for option in router_options
        ]
        roles[0] = router = Role(*again, app=APP)
        async with app.connect(router=router.address) as client:
            resumed = client.workflow_result(workflow_id)
            assert await resumed.get(timeout=TIMEOUT) == sum(range(members)) % MODULUS
            status = await resumed.status()
            assert [member.state for member in status.members] == ["succeeded"] * (members + 1)
    finally:
        for role in reversed(roles):
            role.stop()


@pytest.mark.slow
async def test_a_worker_killed_mid_chain_leaves_the_rest_to_another_and_each_step_counts_once():
    steps = 150
    router = Role("--role", "router", "--router", "127.0.0.1:0", app=APP)
    roles = [router]
    try:
        workers = [
            Role("--role", "worker", "--router", router.address, "--concurrency", "8", app=APP)
            for _ in range(2)
        ]
        roles += workers
        canvas = chain(source.si(0), *[slow_add.s(1) for _ in range(steps)])
        async with app.connect(router=router.address) as client:
            result = await client.start_workflow(canvas)
            with trio.fail_after(TIMEOUT):
                done = 0
                while done < 20:
                    done = (await result.status(members=False)).counts.get("succeeded", 0)
                    await trio.sleep(0.01)
            # The worker of the last step done runs the steps sent ahead with it.
            last = await client.result(f"{result.id}/w.{done - 1}").wait(timeout=TIMEOUT)
            [victim] = [worker for worker in workers if f"//{worker.address}/" in last.worker]
            victim.process.send_signal(signal.SIGKILL)
            victim.process.wait(TIMEOUT)
            assert await result.get(timeout=TIMEOUT) == steps
            status = await result.status()
        assert done < steps  # killed in the middle of the chain
        assert [member.state for member in status.members] == ["succeeded"] * (steps + 1)
    finally:
        for role in reversed(roles):
            role.stop()
