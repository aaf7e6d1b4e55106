"""A client that knows only AMQP 1.0 (``foreign_client.py``: the standard library and
proton, nothing of this project) runs tasks on a real router, as ``docs/protocol.md``
says it can."""

from __future__ import annotations

import json
import secrets
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

from celery_actors import App
from jumpstarter import ActorSystem, Keyring, RemoteSettings
from tests.celery_actors.roles import Role

REPO = Path(__file__).resolve().parents[2]
CLIENT = [sys.executable, str(Path(__file__).with_name("foreign_client.py"))]
APP = "proc-app"
ADD = "tests.celery_actors.proc_app.add"
TIMEOUT = 30.0


@pytest.fixture
def router() -> Iterator[str]:
    """``jumpstart run tests.celery_actors.proc_app:app --role all``: a router and a
    worker in their own process; its HOST:PORT."""
    role = Role("--role", "all", "--router", "127.0.0.1:0")
    try:
        yield f"127.0.0.1:{role.port}"
    finally:
        role.stop()


async def foreign(*arguments: str) -> list[dict[str, Any]]:
    """Run the foreign client; the JSON lines it printed, one per ask."""
    with trio.fail_after(3 * TIMEOUT):
        done = await trio.run_process(
            [*CLIENT, *arguments],
            cwd=REPO,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    stdout, stderr = done.stdout.decode(), done.stderr.decode()
    assert done.returncode == 0, f"the foreign client failed:\n{stdout}\n{stderr}"
    return [json.loads(line) for line in stdout.splitlines()]


def answered(line: dict[str, Any], type_name: str) -> Any:
    assert line["outcome"] == "answered", line
    assert line["error"] is None, line
    assert line["type"] == type_name, line
    return line["body"]


async def test_a_foreign_client_submits_a_call_and_reads_its_result(router):
    submitted, awaited = await foreign(
        router, APP, "call", ADD, "--args", "[2, 3]", "--id", "foreign-1"
    )
    assert submitted["ask"] == "celery.submit.v1"
    assert answered(submitted, "bool") is True
    assert awaited["ask"] == "celery.await-result.v1"
    result = answered(awaited, "celery.result.v1")
    assert result["id"] == "foreign-1"
    assert result["task"] == ADD
    assert result["state"] == "succeeded"
    assert result["value"] == 5
    assert result["error"] is None
    (state,) = await foreign(router, APP, "ask", "celery.get-state.v1", '{"id": "foreign-1"}')
    assert answered(state, "str") == "succeeded"


async def test_keyword_arguments_reach_the_task(router):
    _, awaited = await foreign(router, APP, "call", ADD, "--kwargs", '{"x": 40, "y": 2}')
    assert answered(awaited, "celery.result.v1")["value"] == 42


async def test_a_call_of_an_unknown_task_ends_failed_with_task_not_registered(router):
    submitted, awaited = await foreign(
        router, APP, "--timeout", str(TIMEOUT), "call", "nowhere.missing", "--args", "[1]"
    )
    assert answered(submitted, "bool") is True
    result = answered(awaited, "celery.result.v1")
    assert result["state"] == "failed"
    assert result["value"] is None
    error = result["error"]
    assert error["$type"] == "celery.error.v1"
    assert error["type"] == "celery_actors.TaskNotRegistered"
    assert "nowhere.missing" in error["message"]


async def test_a_malformed_call_is_refused_with_a_clear_reason_and_the_router_goes_on(router):
    # no "$type" on the nested call, and no task name
    (refused,) = await foreign(
        router, APP, "ask", "celery.submit.v1", '{"call": {"id": "bad-1", "args": []}}'
    )
    assert refused["outcome"] == "rejected"
    assert refused["condition"] == "amqp:decode-error"
    assert "celery.submit.v1" in refused["description"]
    assert "$type" in refused["description"]
    (unknown,) = await foreign(router, APP, "ask", "celery.launch.v9", '{"id": "bad-2"}')
    assert unknown["outcome"] == "rejected"
    assert unknown["condition"] == "amqp:decode-error"
    assert "celery.launch.v9" in unknown["description"]
    _, awaited = await foreign(router, APP, "call", ADD, "--args", "[20, 22]")
    assert answered(awaited, "celery.result.v1")["value"] == 42


async def test_a_message_the_router_does_not_handle_gets_an_error_answer(router):
    document = json.dumps({"id": "doc-1", "task": ADD, "state": "succeeded", "value": 1})
    (answer,) = await foreign(router, APP, "ask", "celery.result.v1", document)
    assert answer["outcome"] == "answered"
    assert answer["body"] is None
    assert answer["error"]["type"] == "jumpstarter._exceptions.UnhandledMessage"
    assert "TaskResult" in answer["error"]["message"]
    _, awaited = await foreign(router, APP, "call", ADD, "--args", "[1, 1]")
    assert answered(awaited, "celery.result.v1")["value"] == 2


KEY_ID = "2025-06"
KEY = secrets.token_bytes(32)
signed_app = App("signed-app", remote=RemoteSettings(signing=Keyring({KEY_ID: KEY}, KEY_ID)))


@signed_app.task(name="add")
async def add(x: int, y: int) -> int:
    return x + y


@pytest.fixture
async def signed_router() -> AsyncIterator[str]:
    """A router and a worker of an app that signs its messages, listening on
    127.0.0.1 in this trio run; its HOST:PORT."""
    async with ActorSystem(
        signed_app.name,
        listen="127.0.0.1:0",
        registry=signed_app.registry,
        remote=signed_app.remote,
    ) as system:
        router = await signed_app.start_router(system)
        await signed_app.start_worker(system, router)
        host, port = system.listen_address or ("", 0)
        yield f"{host}:{port}"


async def test_a_router_with_signing_keys_runs_a_signed_foreign_call(signed_router):
    key = ["--key-id", KEY_ID, "--key-hex", KEY.hex()]
    submitted, awaited = await foreign(
        signed_router, signed_app.name, *key, "call", "add", "--args", "[2, 3]"
    )
    assert answered(submitted, "bool") is True
    assert answered(awaited, "celery.result.v1")["value"] == 5


async def test_a_router_with_signing_keys_refuses_an_unsigned_foreign_call(signed_router):
    (refused,) = await foreign(signed_router, signed_app.name, "call", "add")
    assert refused["ask"] == "celery.submit.v1"
    assert refused["outcome"] == "rejected"
    assert refused["condition"] == "amqp:unauthorized-access"
    assert "sign" in refused["description"]
    wrong = ["--key-id", KEY_ID, "--key-hex", secrets.token_bytes(32).hex()]
    (forged,) = await foreign(signed_router, signed_app.name, *wrong, "call", "add")
    assert forged["outcome"] == "rejected"
    assert forged["condition"] == "amqp:unauthorized-access"
