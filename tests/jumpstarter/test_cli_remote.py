"""``jumpstart run --listen``, ``tell``, ``ask`` and ``inspect`` against a real node in
another process, and the two-process example of the README."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from jumpstarter._cli import main

REPO = Path(__file__).resolve().parents[2]
JUMPSTART = [sys.executable, "-m", "jumpstarter"]
TIMEOUT = 30.0


@pytest.fixture
def bank() -> Iterator[tuple[subprocess.Popen[str], str]]:
    """The example bank in its own process; yields it and its system's address."""
    process = subprocess.Popen(
        [*JUMPSTART, "run", "examples.bank:serve", "--name", "bank", "--listen", "127.0.0.1:0"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("bank: teller at "), line + (
            process.stderr.read() if process.stderr else ""
        )
        teller = line.removeprefix("bank: teller at ").strip()
        yield process, teller.removesuffix("/user/teller")
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(TIMEOUT)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def test_ask_tell_and_inspect_talk_to_a_node_in_another_process(bank) -> None:
    process, system = bank
    teller = f"{system}/user/teller"
    code, out = invoke("ask", teller, "bank.Deposit", '{"account": "alice", "cents": 250}')
    assert (code, json.loads(out)) == (0, 250)
    code, out = invoke("tell", teller, "bank.Deposit", '{"account": "alice", "cents": 5}')
    assert (code, out) == (0, "")
    code, out = invoke("ask", teller, "bank.Balance", '{"account": "alice"}')
    assert (code, json.loads(out)) == (0, 255)

    code, out = invoke("ask", teller, "bank.Withdraw", '{"account": "bob", "cents": 1}')
    assert code == 1
    assert "InsufficientFunds" in out and "bob has 0 cents" in out
    assert "Remote traceback" in out

    code, out = invoke("inspect", system)
    assert code == 0, out
    assert "bank at amqp://127.0.0.1:" in out
    assert "/user/teller" in out and "started.running.healthy" in out

    code, out = invoke("tell", teller, "bank.Close")
    assert code == 0, out
    assert process.wait(TIMEOUT) == 0
    assert process.stdout is not None
    assert "closing; balances {'alice': 255}" in process.stdout.read()


def test_ask_reports_an_unknown_actor_and_a_bad_address_clearly(bank) -> None:
    _, system = bank
    code, out = invoke("ask", f"{system}/user/nobody", "bank.Balance", '{"account": "a"}')
    assert code == 1
    assert "ActorNotFound" in out and "/user/nobody" in out
    code, out = invoke("ask", "amqp://127.0.0.1/no-port", "str", '"x"')
    assert code == 2
    assert "amqp://host:port/system/path" in out


def test_ask_reports_invalid_json_and_a_type_mismatch() -> None:
    code, out = invoke("ask", "amqp://127.0.0.1:1/x/user/y", "bank.Balance", "{nope")
    assert code == 2 and "not valid JSON" in out
    code, out = invoke("ask", "amqp://127.0.0.1:1/x/user/y", "int", '"seven"')
    assert code == 2 and "needs a JSON value of that type" in out


def test_ask_reports_a_node_that_is_not_there() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code, out = invoke("tell", f"amqp://127.0.0.1:{port}/bank/user/teller", "str", '"x"')
    assert code == 1
    assert "PeerUnreachable" in out and "cannot reach" in out


def test_run_reports_a_busy_port_clearly() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [*JUMPSTART, "run", "examples.bank:serve", "--listen", f"127.0.0.1:{port}"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_run_reports_a_malformed_listen_address() -> None:
    code, out = invoke("run", "examples.bank:serve", "--listen", "localhost")
    assert code == 2 and "HOST:PORT" in out


def test_the_two_process_example_runs_to_completion() -> None:
    result = subprocess.run(
        [*JUMPSTART, "run", "examples.bank:demo", "--name", "shop"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "[bank process] bank: teller at amqp://127.0.0.1:" in out
    assert "shop: alice's balance is 400 cents" in out
    assert "shop: after withdrawing 120: 280" in out
    assert "shop: the bank refused: examples.bank.InsufficientFunds" in out
    assert "[bank process] bank: closing; balances {'alice': 280}" in out
    assert "shop: the bank process exited with status 0" in out
