"""``jumpstart call``, ``jumpstart quarantine``, ``jumpstart dev``, the quarantine and the
statistics of the router, and the README's demo.

The commands run as real ``python -m jumpstarter`` processes against a router and
workers in processes of their own, linked over AMQP 1.0 on 127.0.0.1; the client API
(``Client.quarantine()``, ``Client.stats()``...) is also exercised in one process.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from celery_actors import (
    NO_RETRY,
    App,
    JsonLinesSink,
    MemorySink,
    QuarantinedCall,
    RouterStats,
    Sink,
    SQLiteSink,
    TaskFailed,
    open_dev_cluster,
    poisonous,
)
from tests.celery_actors.cli_app import add, app
from tests.celery_actors.roles import Role

REPO = Path(__file__).resolve().parents[2]
APP = "tests.celery_actors.cli_app:app"
ADD = "tests.celery_actors.cli_app.add"
FAIL = "tests.celery_actors.cli_app.fail"
READ_NUMBER = "tests.celery_actors.cli_app.read_number"
TIMEOUT = 60.0
JUMPSTART = [sys.executable, "-m", "jumpstarter"]
CALL_ID = re.compile(r"^[0-9a-f]{32}$")


class Cluster:
    """A router (storing results in a SQLite file) and a worker, each a process."""

    def __init__(self, results: Path) -> None:
        self.results = results
        self.roles: list[Role] = []

    def start(self) -> str:
        router = Role(
            "--role", "router", "--router", "127.0.0.1:0", "--results", str(self.results), app=APP
        )
        self.roles.append(router)
        self.roles.append(Role("--role", "worker", "--router", router.address, app=APP))
        return router.address

    def stop(self) -> None:
        for role in reversed(self.roles):
            role.stop()
        self.roles.clear()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    running = Cluster(tmp_path / "results.sqlite")
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def router(cluster: Cluster) -> str:
    return cluster.start()


async def jumpstart(*arguments: str, **env: str) -> subprocess.CompletedProcess[bytes]:
    """Run ``python -m jumpstarter ARGUMENTS`` to its end; ``env`` adds variables."""
    with trio.fail_after(TIMEOUT):
        return await trio.run_process(
            [sys.executable, "-m", "jumpstarter", *arguments],
            cwd=REPO,
            env={**os.environ, "COLUMNS": "200", **env},
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )


def out(done: subprocess.CompletedProcess[bytes]) -> list[str]:
    return done.stdout.decode().splitlines()


def err(done: subprocess.CompletedProcess[bytes]) -> str:
    return done.stderr.decode()


def quarantined_ids(done: subprocess.CompletedProcess[bytes]) -> list[str]:
    assert done.returncode == 0, err(done)
    return [json.loads(line)["id"] for line in out(done)]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


# -- the plugins are there -------------------------------------------------------------------


async def test_the_task_commands_are_listed_in_jumpstart_help():
    done = await jumpstart("--help")
    assert done.returncode == 0, err(done)
    listed = {line.split()[0] for line in out(done) if line.startswith("  ")}
    assert {"call", "dev", "quarantine", "run"} <= listed
    assert err(done) == ""


# -- jumpstart call --------------------------------------------------------------------------


@pytest.mark.slow
async def test_call_with_wait_prints_the_call_id_then_the_result_as_json(router):
    done = await jumpstart(
        "call", ADD, "--args", "[2, 3]", "--app", APP, "--router", router, "--wait"
    )
    assert done.returncode == 0, err(done)
    call_id, value = out(done)
    assert CALL_ID.match(call_id)
    assert json.loads(value) == 5


@pytest.mark.slow
async def test_call_takes_the_app_from_the_environment_and_keyword_arguments(router):
    done = await jumpstart(
        "call",
        ADD,
        "--kwargs",
        '{"x": 40, "y": 2}',
        "--router",
        router,
        "--wait",
        JUMPSTART_APP=APP,
    )
    assert done.returncode == 0, err(done)
    assert out(done)[1] == "42"


@pytest.mark.slow
async def test_call_without_wait_prints_the_id_and_the_call_runs(router):
    done = await jumpstart("call", ADD, "--args", "[20, 22]", "--app", APP, "--router", router)
    assert done.returncode == 0, err(done)
    (call_id,) = out(done)
    async with app.connect(router) as client:
        assert await client.result(call_id, ADD).get(timeout=TIMEOUT) == 42


@pytest.mark.slow
async def test_a_failing_call_exits_1_with_the_error_type_and_message(router):
    done = await jumpstart(
        "call", FAIL, "--args", '["the disk is full"]', "--app", APP, "--router", router, "--wait"
    )
    assert done.returncode == 1
    assert len(out(done)) == 1 and CALL_ID.match(out(done)[0])
    assert err(done) == "failed (quarantined): builtins.RuntimeError: the disk is full\n"


@pytest.mark.slow
async def test_a_call_revoked_meanwhile_exits_1(router):
    async def revoke_once_sent(call: trio.Process) -> None:
        assert call.stdout is not None
        line = b""
        while not line.endswith(b"\n"):
            line += await call.stdout.receive_some()
        call_id = line.decode().strip()
        async with app.connect(router) as client:
            assert await client.result(call_id).revoke()

    where = ("--app", APP, "--router", router)
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            process = await trio.lowlevel.open_process(
                [*JUMPSTART, "call", ADD, "--countdown", "3600", *where, "--wait"],
                cwd=REPO,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            nursery.start_soon(revoke_once_sent, process)
            assert await process.wait() == 1
            assert process.stderr is not None
            assert (await process.stderr.receive_some()).decode().startswith("revoked: ")


async def test_bad_json_is_a_usage_error_that_names_the_option():
    done = await jumpstart("call", ADD, "--args", "[2, 3", "--app", APP)
    assert done.returncode == 2
    assert "Invalid value for '--args': not valid JSON" in err(done)
    done = await jumpstart("call", ADD, "--kwargs", "[2, 3]", "--app", APP)
    assert done.returncode == 2
    assert "Invalid value for '--kwargs': the keyword arguments are a JSON object" in err(done)
    done = await jumpstart("call", ADD, "--args", '{"x": 2}', "--app", APP)
    assert done.returncode == 2
    assert "the positional arguments are a JSON array" in err(done)


async def test_an_app_that_is_not_there_is_a_usage_error():
    done = await jumpstart("call", ADD, "--app", "tests.celery_actors.cli_app:nothing")
    assert done.returncode == 2
    assert "is nothing, not a celery_actors App" in err(done)
    done = await jumpstart("call", ADD)
    assert done.returncode == 2
    assert "Missing option '--app'" in err(done)


@pytest.mark.slow
async def test_an_unreachable_router_is_one_line_that_names_its_address_and_exit_status_3():
    address = f"127.0.0.1:{free_port()}"
    done = await jumpstart("call", ADD, "--args", "[1, 2]", "--app", APP, "--router", address)
    assert done.returncode == 3
    assert out(done) == []
    (line,) = err(done).splitlines()
    assert line.startswith(f"Error: cannot reach the router of app 'cli-app' at {address} (")


@pytest.mark.slow
async def test_a_task_the_app_does_not_declare_is_sent_anyway(router):
    done = await jumpstart("call", "elsewhere.task", "--app", APP, "--router", router, "--wait")
    assert "declares no task 'elsewhere.task'; sending it anyway" in err(done)
    (call_id,) = out(done)
    assert CALL_ID.match(call_id)
    # the router has it, and no worker knows it
    assert done.returncode == 1
    assert "failed: celery_actors.TaskNotRegistered: no task named 'elsewhere.task'" in err(done)


# -- quarantine ------------------------------------------------------------------------------


@pytest.mark.slow
async def test_quarantine_lists_a_poisonous_call_and_retry_runs_it_again(router, tmp_path):
    number = tmp_path / "number.txt"
    number.write_text("seven")
    where = ("--app", APP, "--router", router)
    failed = await jumpstart(
        "call", READ_NUMBER, "--args", json.dumps([str(number)]), *where, "--wait"
    )
    assert failed.returncode == 1
    assert "failed (quarantined): builtins.ValueError: invalid literal" in err(failed)
    (call_id,) = out(failed)

    listed = await jumpstart("quarantine", "list", *where)
    assert listed.returncode == 0, err(listed)
    table = listed.stdout.decode()
    assert "1 quarantined call" in table
    assert call_id in table and f'{READ_NUMBER}("{number}")' in table
    assert "builtins.ValueError: invalid literal for int() with base 10: 'seven" in table
    (document,) = [
        json.loads(line) for line in out(await jumpstart("quarantine", "list", "--json", *where))
    ]
    assert document["id"] == call_id and document["args"] == [str(number)]
    assert document["error"]["type"] == "builtins.ValueError"

    number.write_text("7")  # the input is fixed: run the call again
    rerun = await jumpstart("quarantine", "retry", call_id, *where, "--wait")
    assert rerun.returncode == 0, err(rerun)
    new_id, value = out(rerun)
    assert CALL_ID.match(new_id) and new_id != call_id
    assert value == "7"
    assert out(await jumpstart("quarantine", "list", *where)) == ["no quarantined calls"]
    async with app.connect(router) as client:
        # the first id keeps its failure: results are stored once per id
        with pytest.raises(TaskFailed):
            await client.result(call_id).get(timeout=TIMEOUT)


@pytest.mark.slow
async def test_quarantine_drop_removes_a_call_and_an_unknown_id_is_an_error(router):
    where = ("--app", APP, "--router", router)
    ids = []
    for message in ("first", "second"):
        done = await jumpstart("call", FAIL, "--args", json.dumps([message]), *where, "--wait")
        ids.append(out(done)[0])
    assert quarantined_ids(await jumpstart("quarantine", "list", "--json", *where)) == ids
    dropped = await jumpstart("quarantine", "drop", ids[0], *where)
    assert (dropped.returncode, out(dropped)) == (0, [f"dropped {ids[0]}"])
    assert quarantined_ids(await jumpstart("quarantine", "list", "--json", *where)) == ids[1:]
    again = await jumpstart("quarantine", "drop", ids[0], *where)
    assert again.returncode == 1
    assert f"no call '{ids[0]}' in the quarantine of the router at {router}" in err(again)
    unknown = await jumpstart("quarantine", "retry", "no-such-id", *where)
    assert unknown.returncode == 1 and "no call 'no-such-id'" in err(unknown)


@pytest.mark.slow
async def test_the_quarantine_survives_a_router_restart_with_a_durable_sink(cluster, tmp_path):
    number = tmp_path / "number.txt"
    number.write_text("not yet")
    router = cluster.start()
    where = ("--app", APP, "--router", router)
    failed = await jumpstart(
        "call", READ_NUMBER, "--args", json.dumps([str(number)]), *where, "--wait"
    )
    (call_id,) = out(failed)
    dropped = await jumpstart("call", FAIL, "--args", '["dropped"]', *where, "--wait")
    assert (await jumpstart("quarantine", "drop", out(dropped)[0], *where)).returncode == 0
    cluster.stop()

    router = cluster.start()  # the same results file, a new router and worker
    where = ("--app", APP, "--router", router)
    assert quarantined_ids(await jumpstart("quarantine", "list", "--json", *where)) == [call_id]
    number.write_text("12")
    rerun = await jumpstart("quarantine", "retry", call_id, *where, "--wait")
    assert rerun.returncode == 0, err(rerun)
    assert out(rerun)[1] == "12"  # the arguments came back from the sink
    assert quarantined_ids(await jumpstart("quarantine", "list", "--json", *where)) == []


local_app = App("local-quarantine")


@local_app.task(retry=NO_RETRY)
async def explode(code: int, *, reason: str) -> None:
    raise OSError(code, reason)


@local_app.task
async def divide(x: int, y: int) -> float:
    with poisonous():
        return x / y


@pytest.mark.parametrize("durable", ["jsonl", "sqlite"])
async def test_the_client_lists_retries_and_drops_quarantined_calls_across_restarts(
    tmp_path, durable
):
    path = tmp_path / f"results.{durable}"

    def sinks() -> list[Sink]:
        return [MemorySink(), JsonLinesSink(path) if durable == "jsonl" else SQLiteSink(path)]

    async with local_app.local(sinks=sinks()) as client:
        boom = await explode.apply_async((28,), {"reason": "no space left"})
        zero = await divide.delay(1, 0)
        for handle in (boom, zero):
            assert (await handle.wait(timeout=TIMEOUT)).quarantined
        kept = {entry.call.id: entry for entry in await client.quarantine()}
        assert kept.keys() == {boom.id, zero.id}
        assert isinstance(kept[boom.id], QuarantinedCall)
        assert kept[boom.id].call.kwargs == {"reason": "no space left"}
        error = kept[boom.id].result.error
        assert error is not None and error.type == "builtins.OSError"
        assert await client.drop_quarantined(boom.id)
        assert not await client.drop_quarantined(boom.id)
        assert await client.retry_quarantined("nothing-of-the-kind") is None

    async with local_app.local(sinks=sinks()) as client:
        (entry,) = await client.quarantine()
        assert entry.call.id == zero.id and entry.call.args == [1, 0]
        assert entry.result.error is not None
        assert entry.result.error.type == "builtins.ZeroDivisionError"
        rerun = await client.retry_quarantined(zero.id)
        assert rerun is not None and rerun.id != zero.id and rerun.task == divide.name
        result = await rerun.wait(timeout=TIMEOUT)
        assert result.quarantined and result.attempt == 0  # a fresh run: it fails again
        assert [entry.call.id for entry in await client.quarantine()] == [rerun.id]


async def test_a_quarantine_in_memory_sinks_ends_with_the_router():
    async with local_app.local() as client:
        await (await explode.apply_async((5,), {"reason": "io"})).wait(timeout=TIMEOUT)
        assert len(await client.quarantine()) == 1
    async with local_app.local() as client:
        assert await client.quarantine() == []


# -- statistics ------------------------------------------------------------------------------


async def test_stats_count_calls_by_state_and_by_worker():
    async with local_app.local(workers=2, concurrency=3) as client:
        handles = [await divide.delay(6, 3) for _ in range(12)]
        handles.append(await divide.delay(1, 0))
        handles.append(await explode.apply_async((1,), {"reason": "x"}, countdown=3600))
        for handle in handles[:-1]:
            await handle.wait(timeout=TIMEOUT)
        stats = await client.stats()
    assert isinstance(stats, RouterStats)
    assert stats.states["succeeded"] == 12 and stats.states["failed"] == 1
    assert stats.states["pending"] == 1 and stats.total == 14
    assert stats.quarantined == 1
    assert len(stats.workers) == 2 and all(worker.up for worker in stats.workers)
    assert sum(worker.received for worker in stats.workers) == 13
    assert sum(worker.succeeded for worker in stats.workers) == 12
    assert sum(worker.failed for worker in stats.workers) == 1
    assert {worker.capacity for worker in stats.workers} == {3}


# -- jumpstart dev and open_dev_cluster ------------------------------------------------------


@pytest.mark.slow
async def test_dev_mode_runs_calls_sent_to_it_and_stops_cleanly_on_sigint():
    with trio.fail_after(TIMEOUT * 2):
        process = await trio.lowlevel.open_process(
            [
                *JUMPSTART,
                "dev",
                APP,
                "--workers",
                "2",
                "--router",
                "127.0.0.1:0",
                "--refresh",
                "0.1",
            ],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            assert process.stdout is not None and process.stderr is not None
            output = b""
            while b"send calls with" not in output:
                chunk = await process.stdout.receive_some()
                assert chunk, f"jumpstart dev exited: {output.decode()}"
                output += chunk
            first = output.decode().splitlines()[0]
            found = re.search(r"router at (127\.0\.0\.1:\d+) \((.*)\)", first)
            assert found is not None, first
            address = found.group(1)
            pids = [int(part.split()[1]) for part in found.group(2).split(", ")]
            assert len(pids) == 3
            async with app.connect(address) as client:
                handles = [await add.delay(i, 1) for i in range(20)]
                assert [await h.get(timeout=TIMEOUT) for h in handles] == list(range(1, 21))
                stats = await client.stats()
            assert len(stats.workers) == 2
            assert sum(worker.succeeded for worker in stats.workers) == 20

            process.send_signal(signal.SIGINT)
            async with trio.open_nursery() as nursery:

                async def drain(stream: trio.abc.ReceiveStream, into: list[bytes]) -> None:
                    async for chunk in stream:
                        into.append(chunk)

                rest: list[bytes] = []
                errors: list[bytes] = []
                nursery.start_soon(drain, process.stdout, rest)
                nursery.start_soon(drain, process.stderr, errors)
                assert await process.wait() == 0
        finally:
            if process.poll() is None:
                process.kill()
    text = (output + b"".join(rest)).decode()
    assert "total" in text and text.rstrip().endswith("stopped")
    assert "Traceback" not in b"".join(errors).decode()
    for pid in pids:  # the router and the workers are gone too
        assert not await trio.Path(f"/proc/{pid}").exists()


@pytest.mark.slow
async def test_a_dev_cluster_that_cannot_start_says_why(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        done = await jumpstart("dev", APP, "--router", address)
    assert done.returncode == 1
    assert "Error: the router (" in err(done) and "exited with status" in err(done)


@pytest.mark.slow
async def test_open_dev_cluster_starts_processes_that_run_calls_and_stops_them():
    lines: list[tuple[str, str]] = []

    def log(role: str, line: str) -> None:
        lines.append((role, line))

    async with open_dev_cluster(APP, workers=2, concurrency=2, cwd=REPO, log=log) as cluster:
        assert list(cluster.pids) == ["router", "worker-1", "worker-2"]
        async with app.connect(cluster.router):
            handles = [await add.delay(i, i) for i in range(10)]
            assert [await h.get(timeout=TIMEOUT) for h in handles] == [2 * i for i in range(10)]
        assert cluster.exited() == {}
    assert set(cluster.exited()) == {"router", "worker-1", "worker-2"}


# -- the README's demo -----------------------------------------------------------------------


@pytest.mark.slow
async def test_the_demo_runs_to_completion_without_a_terminal():
    with trio.fail_after(TIMEOUT * 2):
        done = await trio.run_process(
            [sys.executable, "-m", "examples.tasks_demo", "--calls", "200"],
            cwd=REPO,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    text = " ".join(done.stdout.decode().split())  # lines wrapped at 80 columns, joined
    assert done.returncode == 0, err(done)
    assert "finished" in text and "200/200" in text
    assert "what each worker did" in text and "what each task gave" in text
    assert re.search(r"200 calls in [\d.]+ s", text)
    assert "4 quarantined for inspection" in text  # the 4 parses of '#49', '#99'...
    assert "Traceback" not in err(done)
