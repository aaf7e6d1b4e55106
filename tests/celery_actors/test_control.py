"""The control inbox of workers: ping, stats, revoke, pause, resume, shutdown; refused
from another process unless messages are signed; ``jumpstart control``."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from celery_actors import App, ControlRefused, TaskFailed, TaskRevoked, WorkerControl
from jumpstarter import ActorSystem, Keyring, MessageRefused, RemoteSettings
from tests.celery_actors.proc_app import app as proc_app
from tests.celery_actors.test_processes import APP, REPO, Role
from tests.celery_actors.test_shutdown import wait_for_exit, worker_address

TIMEOUT = 30.0

app = App("control")
release = trio.Event()


@app.task
async def hold() -> str:
    await release.wait()
    return "done"


@app.task
async def fail() -> None:
    raise ValueError("no")


@app.task
async def add(x: int, y: int) -> int:
    return x + y


async def test_ping_answers_with_the_worker_s_address_uptime_and_state():
    async with app.local(default=False) as client:
        worker = client.system.lookup("/user/worker-1")
        pong = await client.control(worker.address).ping()
        assert pong.address == worker.address
        assert pong.uptime >= 0
        assert pong.state == "running"


async def test_stats_count_the_calls_held_and_ended():
    async with app.local(default=False, concurrency=3) as client:
        worker = client.system.lookup("/user/worker-1")
        assert await (await client.submit(add.make_call([1, 2]))).get(timeout=TIMEOUT) == 3
        with pytest.raises(TaskFailed):
            await (await client.submit(fail.make_call())).get(timeout=TIMEOUT)
        report = await client.control(worker.address).stats()
        assert (report.succeeded, report.failed, report.held) == (1, 1, 0)
        assert report.concurrency == 3
        assert report.boxed == 2
        assert report.state == "running"
        assert set(report.steps) == {"control", "pool", "announce"}


async def test_revoke_terminates_a_running_call():
    async with app.local(default=False) as client:
        worker = client.system.lookup("/user/worker-1")
        handle = await client.submit(hold.make_call())
        with trio.fail_after(TIMEOUT):
            while await handle.refresh() != "running":  # noqa: ASYNC110 - the router's state
                await trio.sleep(0.01)
        control = client.control(worker.address)
        assert await control.revoke(handle.id) is True
        with pytest.raises(TaskRevoked):
            await handle.get(timeout=TIMEOUT)
        assert await control.revoke(handle.id) is False  # no longer held
        assert (await control.stats()).revoked == 1


async def test_a_paused_worker_is_sent_no_calls_until_it_resumes():
    async with app.local(default=False) as client:
        worker = client.system.lookup("/user/worker-1")
        control = client.control(worker.address)
        assert await control.pause() is True
        assert (await control.ping()).state == "paused"
        assert [w.capacity for w in (await client.stats()).workers] == [0]
        handle = await client.submit(add.make_call([2, 3]))
        assert await handle.refresh() == "pending"
        assert await control.resume() is True
        assert await handle.get(timeout=TIMEOUT) == 5
        assert (await control.ping()).state == "running"


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "secret.key"
    path.write_text(secrets.token_hex(32))
    return path


def signed(key_file: Path) -> RemoteSettings:
    key = key_file.read_bytes().strip()
    return RemoteSettings(signing=Keyring({"default": key}, active="default"))


async def test_a_command_from_another_process_is_refused_when_the_worker_does_not_sign():
    router = Role("--role", "router", "--router", "127.0.0.1:0")
    worker = Role("--role", "worker", "--router", f"127.0.0.1:{router.port}")
    try:
        async with ActorSystem("control-client", registry=proc_app.registry) as system:
            control = WorkerControl(system, worker_address(worker))
            with pytest.raises(ControlRefused, match="only when its messages are signed"):
                await control.shutdown()
            with pytest.raises(ControlRefused):
                await control.ping()
        assert worker.process.poll() is None  # still running
    finally:
        worker.stop()
        router.stop()


async def test_with_signing_an_unsigned_command_is_refused_and_a_signed_one_obeyed(
    key_file: Path,
):
    signing = ("--signing-key-file", str(key_file))
    router = Role("--role", "router", "--router", "127.0.0.1:0", *signing)
    worker = Role("--role", "worker", "--router", f"127.0.0.1:{router.port}", *signing)
    try:
        address = worker_address(worker)
        async with ActorSystem("unsigned-client", registry=proc_app.registry) as system:
            with pytest.raises(MessageRefused):
                await WorkerControl(system, address).shutdown(cold=True)
        assert worker.process.poll() is None
        async with ActorSystem(
            "signed-client", registry=proc_app.registry, remote=signed(key_file)
        ) as system:
            control = WorkerControl(system, address)
            assert (await control.ping()).address == address
            assert await control.shutdown() is True
        assert await wait_for_exit(worker) == 0
    finally:
        worker.stop()
        router.stop()


def jumpstart_control(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jumpstarter", "control", *arguments, "--app", APP],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_jumpstart_control_pings_pauses_and_shuts_a_worker_down(key_file: Path):
    signing = ("--signing-key-file", str(key_file))
    router = Role("--role", "router", "--router", "127.0.0.1:0", *signing)
    worker = Role("--role", "worker", "--router", f"127.0.0.1:{router.port}", *signing)
    try:
        address = worker_address(worker)
        refused = await trio.to_thread.run_sync(jumpstart_control, "ping", address)
        assert refused.returncode == 1, refused.stderr
        pong = await trio.to_thread.run_sync(jumpstart_control, "ping", address, *signing)
        assert pong.returncode == 0, pong.stderr
        assert json.loads(pong.stdout)["address"] == address
        paused = await trio.to_thread.run_sync(jumpstart_control, "pause", address, *signing)
        assert (paused.returncode, paused.stdout.strip()) == (0, "true")
        stats = await trio.to_thread.run_sync(jumpstart_control, "stats", address, *signing)
        assert json.loads(stats.stdout)["state"] == "paused"
        done = await trio.to_thread.run_sync(jumpstart_control, "shutdown", address, *signing)
        assert (done.returncode, done.stdout.strip()) == (0, "true")
        assert await wait_for_exit(worker) == 0
    finally:
        worker.stop()
        router.stop()


def test_jumpstart_control_revoke_needs_an_id():
    process = jumpstart_control("revoke", "amqp://127.0.0.1:1/x/user/worker")
    assert process.returncode == 2
    assert "revoke needs --id TASK_ID" in process.stderr
