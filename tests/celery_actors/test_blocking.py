"""Calling tasks from code that is not async: a blocking client whose trio run lives in a
background thread, against a router and workers in this process or in other ones."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from collections.abc import Callable

import pytest
import trio

from celery_actors import (
    NO_RETRY,
    App,
    BlockingCallInTrio,
    BlockingClient,
    BlockingResult,
    NotConnected,
    ResultTimeout,
    TaskFailed,
    TaskRevoked,
)
from jumpstarter import ActorStartError, InvalidActorPath, PeerUnreachable, RemoteSettings
from tests.celery_actors import proc_app
from tests.celery_actors.roles import Role

TIMEOUT = 30.0
THREAD = "celery_actors client of test-blocking"

app = App("test-blocking")
gates: dict[str, threading.Event] = {}


far = App("test-blocking-far", remote=RemoteSettings(connect_timeout=0.5))


@far.task(name="far.add")
async def far_add(x: int, y: int) -> int:
    return x + y


@app.task
async def add(x: int, y: int) -> int:
    return x + y


@app.task(retry=NO_RETRY)
async def broken() -> None:
    raise ValueError("always broken")


@app.task
async def hold() -> None:
    await trio.sleep_forever()


@app.task
def gated(key: str) -> str:
    """Finish once the test opens the gate named ``key``."""
    gates[key].wait(TIMEOUT)
    return key


def poll(check: Callable[[], bool]) -> None:
    """Return once ``check()`` holds; fail if it never does within ``TIMEOUT``."""
    deadline = time.monotonic() + TIMEOUT
    while not check():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.01)


def client_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == THREAD]


def test_a_call_through_a_local_blocking_client_returns_its_value():
    with app.local_blocking() as client:
        result = client.delay(add, 2, 3)
        assert isinstance(result, BlockingResult) and result.task == add.name
        assert result.get(timeout=TIMEOUT) == 5
        assert result.state == "succeeded"
        assert result.refresh() == "succeeded"
        document = client.result(result.id).wait(timeout=TIMEOUT)
        assert document.state == "succeeded" and document.value == 5


def test_apply_async_takes_the_call_options():
    with app.local_blocking() as client:
        result = client.apply_async(add, (4, 4), task_id="blocking-fixed-id", priority=7)
        assert result.id == "blocking-fixed-id"
        assert result.get(timeout=TIMEOUT) == 8
        expired = client.apply_async(add, (1, 1), expires=-1.0)
        with pytest.raises(TaskRevoked, match="expired"):
            expired.get(timeout=TIMEOUT)


def test_a_failing_call_raises_task_failed():
    with app.local_blocking() as client:
        result = client.delay(broken)
        with pytest.raises(TaskFailed, match="ValueError: always broken") as info:
            result.get(timeout=TIMEOUT)
        assert "ValueError" in info.value.traceback
        assert result.state == "failed"
        assert result.wait(timeout=TIMEOUT).state == "failed"


def test_get_raises_result_timeout_while_the_call_goes_on():
    gates["slow"] = threading.Event()
    with app.local_blocking() as client:
        result = client.delay(gated, "slow")
        with pytest.raises(ResultTimeout, match=r"did not finish within 0.05 s"):
            result.get(timeout=0.05)
        gates["slow"].set()
        assert result.get(timeout=TIMEOUT) == "slow"


def test_revoke_stops_a_waiting_call_and_terminates_a_running_one():
    with app.local_blocking(concurrency=1) as client:
        running = client.delay(hold)
        waiting = client.delay(add, 1, 1)
        assert waiting.refresh() == "pending"  # the only slot is taken
        assert waiting.revoke()
        with pytest.raises(TaskRevoked):
            waiting.get(timeout=TIMEOUT)
        poll(lambda: running.refresh() == "running")
        assert not running.revoke()  # running, and not terminated
        assert running.revoke(terminate=True)
        with pytest.raises(TaskRevoked):
            running.get(timeout=TIMEOUT)
        assert running.state == "revoked"


def test_calls_from_eight_threads_at_once_all_get_their_results():
    results: dict[int, list[int]] = {}
    errors: list[BaseException] = []
    with app.local_blocking(workers=2, concurrency=8) as client:
        start = threading.Barrier(8)

        def caller(number: int) -> None:
            try:
                start.wait(TIMEOUT)
                calls = [client.delay(add, number, i) for i in range(25)]
                results[number] = [call.get(timeout=TIMEOUT) for call in calls]
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=caller, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == []
    assert results == {n: [n + i for i in range(25)] for n in range(8)}


@pytest.mark.slow
def test_a_blocking_client_calls_a_router_and_worker_in_another_process():
    role = Role("--role", "all", "--router", "127.0.0.1:0")
    try:
        with proc_app.app.connect_blocking(router=f"127.0.0.1:{role.port}") as client:
            calls = [client.delay(proc_app.add, i, 1) for i in range(20)]
            assert [call.get(timeout=TIMEOUT) for call in calls] == list(range(1, 21))
            worker = client.delay(proc_app.pid).get(timeout=TIMEOUT)
    finally:
        role.stop()
    assert worker == role.process.pid != os.getpid()


def test_a_closed_client_raises_not_connected_and_its_thread_is_gone():
    client = app.local_blocking()
    result = client.delay(add, 1, 1)
    assert result.get(timeout=TIMEOUT) == 2
    assert len(client_threads()) == 1
    client.close()
    assert client.closed and client_threads() == []
    client.close()  # closing again does nothing
    with pytest.raises(NotConnected, match=r"is closed: open another with app\.connect_blocking"):
        client.delay(add, 1, 1)
    with pytest.raises(NotConnected, match="is closed"):
        result.get(timeout=TIMEOUT)
    with pytest.raises(NotConnected, match="is closed"):
        client.result(result.id)


def test_a_call_waiting_in_another_thread_when_the_client_closes_raises_not_connected():
    errors: list[BaseException] = []
    client = app.local_blocking()
    running = client.delay(hold)
    poll(lambda: running.refresh() == "running")

    def wait_forever() -> None:
        try:
            running.get()
        except BaseException as exc:
            errors.append(exc)

    waiter = threading.Thread(target=wait_forever, daemon=True)
    waiter.start()
    client.close()
    waiter.join(TIMEOUT)
    assert not waiter.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], NotConnected)
    assert "closed" in str(errors[0])


def test_opening_fails_with_the_error_of_the_async_api_and_leaves_no_thread():
    with pytest.raises(InvalidActorPath, match="not a remote actor address"):
        app.connect_blocking(router="no port here")
    with pytest.raises(ActorStartError, match="threads >= 1"):
        app.local_blocking(threads=0)
    assert client_threads() == []


def test_blocking_calls_work_in_code_an_asyncio_loop_runs_like_a_notebook_cell():
    async def cell() -> int:
        with app.local_blocking() as client:
            value: int = client.delay(add, 20, 22).get(timeout=TIMEOUT)
            return value

    assert asyncio.run(cell()) == 42


def test_a_task_of_another_app_is_refused():
    with app.local_blocking() as client, pytest.raises(ValueError, match="its own app"):
        client.delay(proc_app.add, 1, 2)


def test_blocking_calls_inside_a_trio_run_say_to_use_the_async_api():
    with app.local_blocking() as client:
        result = client.delay(add, 1, 2)

        async def misuse() -> None:
            with pytest.raises(BlockingCallInTrio, match=r"await task\.delay"):
                client.delay(add, 1, 2)
            with pytest.raises(BlockingCallInTrio, match=r"trio\.to_thread\.run_sync"):
                result.get(timeout=TIMEOUT)
            with pytest.raises(BlockingCallInTrio):
                app.local_blocking()
            with pytest.raises(BlockingCallInTrio):
                client.close()
            # from a thread, the same client works
            value = await trio.to_thread.run_sync(lambda: result.get(timeout=TIMEOUT))
            assert value == 3

        trio.run(misuse)
        assert not client.closed


def test_an_unreachable_router_raises_the_error_of_the_async_api():
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        router = f"127.0.0.1:{sock.getsockname()[1]}"
    with (
        far.connect_blocking(router=router) as client,
        pytest.raises(PeerUnreachable, match="cannot reach the node"),
    ):
        client.delay(far_add, 1, 1)

    async def call_async() -> None:
        async with far.connect(router=router):
            with pytest.raises(PeerUnreachable, match="cannot reach the node"):
                await far_add.delay(1, 1)

    trio.run(call_async)


def test_a_blocking_client_and_an_async_client_of_one_app_coexist():
    with app.local_blocking() as blocking:
        assert isinstance(blocking, BlockingClient)
        # the blocking client serves its own trio run only: it is no app default
        with pytest.raises(NotConnected):
            app.client()

        async def main() -> None:
            with pytest.raises(NotConnected):
                await add.delay(1, 1)
            async with app.local() as client:
                assert app.client() is client
                mine = await add.delay(1, 2)

                def from_sync_code() -> int:
                    value: int = blocking.delay(add, 3, 4).get(timeout=TIMEOUT)
                    return value

                assert await trio.to_thread.run_sync(from_sync_code) == 7
                assert await mine.get(timeout=TIMEOUT) == 3
                other = await trio.to_thread.run_sync(app.local_blocking)
                await trio.to_thread.run_sync(other.close)
                assert app.client() is client
                assert await (await add.delay(5, 5)).get(timeout=TIMEOUT) == 10
            with pytest.raises(NotConnected):
                await add.delay(1, 1)

        trio.run(main)
        assert blocking.delay(add, 2, 2).get(timeout=TIMEOUT) == 4
