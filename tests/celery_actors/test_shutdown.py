"""Warm and cold shutdown of workers: ``jumpstart run`` processes sent SIGTERM, and the
``shutdown`` control command."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import trio

from celery_actors import App
from tests.celery_actors.proc_app import app, marked_sleep
from tests.celery_actors.test_processes import Role

TIMEOUT = 60.0


def worker_address(role: Role) -> str:
    return role.line.split(" worker at ", 1)[1].split(" for ", 1)[0]


async def wait_for_marker(directory: Path, key: str) -> Path:
    """The marker a call of ``marked_sleep`` leaves when it starts (polled)."""
    with trio.fail_after(TIMEOUT):
        # another process writes it
        while not (found := sorted(directory.glob(f"{key}.*"))):  # noqa: ASYNC110, ASYNC240
            await trio.sleep(0.05)
    return found[0]


async def wait_for_stderr(role: Role, text: str) -> None:
    """Read the process's stderr until a line holds ``text``."""
    stream = role.process.stderr
    assert stream is not None
    with trio.fail_after(TIMEOUT):
        while True:
            line = await trio.to_thread.run_sync(stream.readline, abandon_on_cancel=True)
            assert line, f"the process ended before saying {text!r}"
            if text in line:
                return


async def wait_for_exit(role: Role) -> int:
    return await trio.to_thread.run_sync(role.process.wait, TIMEOUT)


def stored_ids(results: Path) -> list[str]:
    return [json.loads(line)["id"] for line in results.read_text().splitlines()]


async def test_sigterm_lets_the_running_call_finish_stores_it_once_and_exits_zero(
    tmp_path: Path,
):
    results = tmp_path / "results.jsonl"
    router = Role("--role", "router", "--router", "127.0.0.1:0", "--results", str(results))
    worker = Role(
        "--role", "worker", "--router", f"127.0.0.1:{router.port}", "--shutdown-timeout", "120"
    )
    try:
        async with app.connect(f"127.0.0.1:{router.port}"):
            handle = await marked_sleep.delay(str(tmp_path), "warm", 1.0)
            marker = await wait_for_marker(tmp_path, "warm")
            worker.process.send_signal(signal.SIGTERM)
            assert await wait_for_exit(worker) == 0
            assert await handle.get(timeout=TIMEOUT) == worker.process.pid
        ran = [p.name for p in tmp_path.glob("warm.*")]  # noqa: ASYNC240 - a few names
        assert ran == [marker.name]  # once
        assert stored_ids(results).count(handle.id) == 1
    finally:
        worker.stop()
        router.stop()


async def test_a_second_signal_cancels_the_running_call_and_another_worker_runs_it(
    tmp_path: Path,
):
    router = Role("--role", "router", "--router", "127.0.0.1:0")
    address = f"127.0.0.1:{router.port}"
    first = Role("--role", "worker", "--router", address, "--shutdown-timeout", "120")
    second: Role | None = None
    try:
        async with app.connect(address):
            handle = await marked_sleep.delay(str(tmp_path), "cold", 3600.0)
            await wait_for_marker(tmp_path, "cold")
            second = Role("--role", "worker", "--router", address)
            first.process.send_signal(signal.SIGTERM)
            await wait_for_stderr(first, "SIGTERM received")
            first.process.send_signal(signal.SIGTERM)
            assert await wait_for_exit(first) == 128 + signal.SIGTERM
            with trio.fail_after(TIMEOUT):
                # it starts on the second worker, another process
                while len(list(tmp_path.glob("cold.*"))) < 2:  # noqa: ASYNC110, ASYNC240
                    await trio.sleep(0.05)
            assert {p.name for p in tmp_path.glob("cold.*")} == {  # noqa: ASYNC240
                f"cold.{first.process.pid}",
                f"cold.{second.process.pid}",
            }
            assert await handle.revoke(terminate=True)
    finally:
        for role in (first, second, router):
            if role is not None:
                role.stop()


async def test_the_shutdown_command_is_warm_the_running_call_ends_here_the_next_elsewhere():
    local = App("shutdown-local")
    release = trio.Event()
    started = trio.Event()

    @local.task
    async def hold(key: str) -> str:
        started.set()
        await release.wait()
        return key

    async with local.local(workers=1, concurrency=1, default=False) as client:
        system = client.system
        router = system.lookup("/user/router")
        first = system.lookup("/user/worker-1")
        running = await client.submit(hold.make_call(["running"]))
        with trio.fail_after(TIMEOUT):
            await started.wait()
        waiting = await client.submit(hold.make_call(["waiting"]))
        assert await client.control(first.address).shutdown() is True
        with trio.fail_after(TIMEOUT):
            while (await client.control(first.address).ping()).state != "stopping":  # noqa: ASYNC110
                await trio.sleep(0.01)
        second = await local.start_worker(system, router, name="worker-2", concurrency=1)
        release.set()
        assert await running.get(timeout=TIMEOUT) == "running"
        assert (await running.wait(timeout=TIMEOUT)).worker == first.address
        assert await waiting.get(timeout=TIMEOUT) == "waiting"
        assert (await waiting.wait(timeout=TIMEOUT)).worker == second.address
        with trio.fail_after(TIMEOUT):
            await system.wait_for_state(first, "stopped")


async def test_a_cold_shutdown_command_hands_the_running_call_back_at_once():
    local = App("shutdown-cold")
    runs: list[int] = []
    started = trio.Event()
    release = trio.Event()

    @local.task
    async def hold() -> int:
        runs.append(1)
        started.set()
        if len(runs) == 1:
            await trio.sleep_forever()
        await release.wait()
        return len(runs)

    async with local.local(workers=1, concurrency=1, default=False) as client:
        system = client.system
        first = system.lookup("/user/worker-1")
        handle = await client.submit(hold.make_call())
        with trio.fail_after(TIMEOUT):
            await started.wait()
        await client.control(first.address).shutdown(cold=True)
        with trio.fail_after(TIMEOUT):
            await system.wait_for_state(first, "stopped")
        await local.start_worker(system, system.lookup("/user/router"), name="worker-2")
        release.set()
        assert await handle.get(timeout=TIMEOUT) == 2
