"""Boxed tasks run in child processes of the worker: a crash there fails the call, not
the worker. The tasks live in ``boxed_app`` because the processes import them."""

from __future__ import annotations

import os

import pytest
import trio
import trio.testing

from celery_actors import App, TaskFailed, TaskRevoked
from tests.celery_actors.boxed_app import (
    app,
    async_pid,
    chatty,
    crash_counted,
    exit_with,
    fail,
    fail_poisonous,
    hang,
    hang_forever,
    kill_self,
    pid,
    soft_async,
    soft_blocking,
    worker_pid,
)

TIMEOUT = 60.0


class PidReports:
    """A socket on 127.0.0.1 that boxed tasks connect to, to say which process they run
    in; the connection ends when that process dies."""

    def __init__(self) -> None:
        self.listener = trio.socket.socket()

    async def __aenter__(self) -> PidReports:
        await self.listener.bind(("127.0.0.1", 0))
        self.listener.listen()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.listener.close()

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.listener.getsockname()
        return host, port

    async def accept(self) -> tuple[trio.socket.SocketType, int]:
        conn, _ = await self.listener.accept()
        data = b""
        while not data.endswith(b"\n"):
            chunk = await conn.recv(100)
            assert chunk, "the boxed process closed the connection before saying its pid"
            data += chunk
        return conn, int(data)


async def wait_closed(conn: trio.socket.SocketType) -> None:
    """Return once the other end (a boxed process) is gone."""
    while await conn.recv(100):
        pass
    conn.close()


def is_gone(process_id: int) -> bool:
    try:
        os.kill(process_id, 0)
    except ProcessLookupError:
        return True
    return False


async def test_a_boxed_task_runs_in_a_child_process_kept_for_the_next_calls():
    async with app.local():
        first = await (await pid.delay()).get(timeout=TIMEOUT)
        second = await (await pid.delay()).get(timeout=TIMEOUT)
        here = await (await worker_pid.delay()).get(timeout=TIMEOUT)
    assert first != os.getpid() and here == os.getpid()
    assert second == first  # a pool of processes, not one per call


async def test_an_async_boxed_task_runs_in_a_child_process():
    async with app.local():
        child = await (await async_pid.delay()).get(timeout=TIMEOUT)
    assert child != os.getpid()


async def test_a_boxed_task_that_exits_fails_clearly_and_the_next_call_succeeds():
    async with app.local():
        with pytest.raises(TaskFailed, match=r"BoxedTaskCrashed: .*exited with code 3") as info:
            await (await exit_with.delay(3)).get(timeout=TIMEOUT)
        assert "the worker goes on" in str(info.value)
        assert await (await pid.delay()).get(timeout=TIMEOUT) != os.getpid()


async def test_a_boxed_task_killed_by_a_signal_names_the_signal():
    async with app.local():
        with pytest.raises(TaskFailed, match=r"killed by signal SIGKILL \(9\)"):
            await (await kill_self.delay()).get(timeout=TIMEOUT)
        assert await (await pid.delay()).get(timeout=TIMEOUT) != os.getpid()


async def test_a_crashing_boxed_task_follows_its_retry_policy_then_is_quarantined(tmp_path):
    async with app.local():
        result = await crash_counted.delay(str(tmp_path))
        with pytest.raises(TaskFailed, match="BoxedTaskCrashed") as info:
            await result.get(timeout=TIMEOUT)
    assert info.value.result.quarantined
    runs = sorted(tmp_path.iterdir())
    assert len(runs) == 3  # the first run and two retries, each in a new process
    assert len({path.read_text() for path in runs}) == 3


async def test_the_exception_of_a_boxed_task_comes_back_with_its_traceback():
    async with app.local():
        with pytest.raises(TaskFailed, match="ValueError: no such order") as info:
            await (await fail.delay("no such order")).get(timeout=TIMEOUT)
    assert "boxed_app.py" in info.value.traceback  # the child's traceback, as the cause
    assert "RemoteTraceback" in info.value.traceback


async def test_retry_marks_survive_the_trip_from_the_boxed_process(tmp_path):
    async with app.local():
        with pytest.raises(TaskFailed, match=r"quarantined.*KeyError"):
            await (await fail_poisonous.delay(str(tmp_path))).get(timeout=TIMEOUT)
    assert len(os.listdir(tmp_path)) == 1  # poisonous: no retry


async def test_what_a_boxed_task_prints_does_not_disturb_its_answer():
    async with app.local():
        assert await (await chatty.delay(1000)).get(timeout=TIMEOUT) == "quiet answer"


async def test_a_boxed_task_past_its_time_limit_is_killed(mock_clock):
    async with PidReports() as reports, app.local():
        result = await hang.delay(*reports.address)
        conn, hung = await reports.accept()
        await trio.testing.wait_all_tasks_blocked()  # the worker has seen it start
        mock_clock.jump(11)  # past its time_limit of 10 s
        await wait_closed(conn)
        with pytest.raises(TaskFailed, match="TimeLimitExceeded"):
            await result.get(timeout=TIMEOUT)
        assert is_gone(hung)  # killed, and reaped
        assert await (await pid.delay()).get(timeout=TIMEOUT) not in (hung, os.getpid())


async def test_revoking_a_boxed_call_with_terminate_kills_its_process():
    async with PidReports() as reports, app.local():
        result = await hang_forever.delay(*reports.address)
        conn, hung = await reports.accept()
        assert await result.revoke(terminate=True)
        await wait_closed(conn)
        with pytest.raises(TaskRevoked):
            await result.get(timeout=TIMEOUT)
        assert is_gone(hung)
        assert await (await pid.delay()).get(timeout=TIMEOUT) not in (hung, os.getpid())


async def test_the_soft_limit_reaches_a_def_boxed_task_blocked_in_a_system_call():
    async with app.local():
        value = await (await soft_blocking.delay()).get(timeout=TIMEOUT)
    assert value.startswith("interrupted in ") and value != f"interrupted in {os.getpid()}"


async def test_the_soft_limit_reaches_an_async_boxed_task_at_its_next_checkpoint():
    async with app.local():
        value = await (await soft_async.delay()).get(timeout=TIMEOUT)
    assert value.startswith("interrupted in ") and value != f"interrupted in {os.getpid()}"


async def test_more_boxed_calls_than_processes_wait_for_a_free_one():
    async with app.local(concurrency=8):  # two processes by default
        results = [await pid.delay() for _ in range(8)]
        pids = {await result.get(timeout=TIMEOUT) for result in results}
    assert 1 <= len(pids) <= 2 and os.getpid() not in pids


def test_a_boxed_task_must_be_defined_at_module_level():
    local_app = App("test-boxed-local")
    with pytest.raises(ValueError, match="define the function at module level"):

        @local_app.task(boxed=True)
        def nested() -> None:
            pass
