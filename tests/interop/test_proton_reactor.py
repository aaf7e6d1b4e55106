"""Interop with proton's reactor: a client and a listener no one here wrote."""

from __future__ import annotations

import functools
import json
import socket
import subprocess
import sys
from pathlib import Path

import attrs
import trio

from jumpstarter import Actor, ActorSystem, TypeRegistry, handler

REPO = Path(__file__).resolve().parents[2]
PEERS = [sys.executable, "-m", "tests.interop.reactor_peers"]

registry = TypeRegistry()


@registry.message(name="interop.Deposit")
@attrs.frozen(kw_only=True)
class Deposit:
    account: str
    cents: int


class Teller(Actor):
    def __init__(self) -> None:
        self.total = 0

    @handler
    def deposit(self, msg: Deposit) -> int:
        self.total += msg.cents
        return self.total


async def test_a_proton_reactor_client_asks_an_actor_and_gets_the_answer_on_its_reply_to():
    async with ActorSystem("bank", listen="127.0.0.1:0", registry=registry) as bank:
        await bank.spawn(Teller, name="teller")
        port = (bank.listen_address or ("", 0))[1]
        body = json.dumps({"account": "alice", "cents": 42})
        with trio.fail_after(30):
            result = await trio.run_process(
                [*PEERS, "ask", f"127.0.0.1:{port}", "/bank/user/teller", "interop.Deposit", body],
                cwd=REPO,
                capture_stdout=True,
                capture_stderr=True,
                check=False,
            )
        assert result.returncode == 0, result.stderr.decode()
        answer = json.loads(result.stdout.decode().strip().splitlines()[-1])
        assert answer == {
            "correlation_id": answer["correlation_id"],
            "matches": True,
            "type": "int",
            "error": None,
            "body": 42,
        }


async def test_an_actor_system_sends_to_a_proton_reactor_receiver():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with ActorSystem("shop", registry=registry) as shop, trio.open_nursery() as nursery:
        process = await nursery.start(
            functools.partial(
                trio.run_process,
                [*PEERS, "receive", str(port), "2"],
                cwd=REPO,
                stdout=subprocess.PIPE,
            )
        )
        assert process.stdout is not None
        output = b""
        with trio.fail_after(30):
            while b"ready" not in output:
                output += await process.stdout.receive_some()
            remote = shop.ref(f"amqp://127.0.0.1:{port}/inbox/user/anyone")
            await remote.tell(Deposit(account="bob", cents=7))
            await remote.tell("plain text")
            async for chunk in process.stdout:
                output += chunk
        lines = [json.loads(line) for line in output.decode().splitlines()[1:]]
    assert lines == [
        {
            "to": f"amqp://127.0.0.1:{port}/inbox/user/anyone",
            "link_target": "/inbox/user/anyone",
            "type": "interop.Deposit",
            "body": {"account": "bob", "cents": 7},
        },
        {
            "to": f"amqp://127.0.0.1:{port}/inbox/user/anyone",
            "link_target": "/inbox/user/anyone",
            "type": "str",
            "body": "plain text",
        },
    ]
