"""Remote actors when things go wrong: garbage on the listener, broken connections, and
one eliot tree across two processes."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import attrs
import eliot
import pytest
import trio
import trio.lowlevel
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jumpstarter import Actor, ActorSystem, TypeRegistry, disable_logging, enable_logging, handler

REPO = Path(__file__).resolve().parents[2]

registry = TypeRegistry()


@registry.message(name="test.Count")
@attrs.frozen(kw_only=True)
class Count:
    n: int


class Counter(Actor):
    def __init__(self, seen: list[int] | None = None, expected: int = 0) -> None:
        self.seen = seen if seen is not None else []
        self.expected = expected
        self.done = trio.Event()

    @handler
    async def count(self, msg: Count) -> int:
        await trio.lowlevel.checkpoint()
        self.seen.append(msg.n)
        return len(self.seen)


# -- garbage on the listener -----------------------------------------------------------


class NodeThread:
    """A node running in its own thread (its own trio run), for blocking-socket tests."""

    def __init__(self) -> None:
        self.port = 0
        self.ready = threading.Event()
        self.stop: trio.lowlevel.TrioToken | None = None
        self.cancel: trio.CancelScope | None = None
        self.thread = threading.Thread(target=trio.run, args=(self._main,), daemon=True)

    async def _main(self) -> None:
        with trio.CancelScope() as self.cancel:
            async with ActorSystem("target", listen="127.0.0.1:0", registry=registry) as system:
                await system.spawn(Counter, name="counter")
                self.port = (system.listen_address or ("", 0))[1]
                self.stop = trio.lowlevel.current_trio_token()
                self.ready.set()
                await trio.sleep_forever()

    def close(self) -> None:
        assert self.stop is not None and self.cancel is not None
        self.stop.run_sync_soon(self.cancel.cancel)
        self.thread.join(30)


@pytest.fixture(scope="module")
def target_node() -> Iterator[NodeThread]:
    node = NodeThread()
    node.thread.start()
    assert node.ready.wait(30)
    yield node
    node.close()


def ask_once(port: int) -> int:
    async def ask() -> int:
        async with ActorSystem("prober", registry=registry) as prober:
            ref = prober.ref(f"amqp://127.0.0.1:{port}/target/user/counter")
            with trio.fail_after(10):
                result: int = await ref.ask(Count(n=1))
                return result

    return trio.run(ask)


AMQP_HEADER = b"AMQP\x00\x01\x00\x00"
SASL_HEADER = b"AMQP\x03\x01\x00\x00"


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    prefix=st.sampled_from([b"", AMQP_HEADER, SASL_HEADER]),
    garbage=st.binary(max_size=2000),
    close_abruptly=st.booleans(),
)
def test_garbage_bytes_never_crash_or_hang_the_node(
    target_node: NodeThread, prefix: bytes, garbage: bytes, close_abruptly: bool
) -> None:
    with socket.create_connection(("127.0.0.1", target_node.port), timeout=10) as sock:
        sock.sendall(prefix + garbage)
        if close_abruptly:
            sock.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
            )
        else:
            sock.shutdown(socket.SHUT_WR)
            sock.settimeout(10)
            try:
                while sock.recv(65536):  # the node answers (an error, a close) and hangs up
                    pass
            except ConnectionResetError:
                pass
    assert ask_once(target_node.port) >= 1


def test_a_peer_that_stops_talking_mid_frame_does_not_block_others(target_node: NodeThread) -> None:
    with socket.create_connection(("127.0.0.1", target_node.port), timeout=10) as silent:
        silent.sendall(AMQP_HEADER + b"\x00\x00\x01\x00")  # a frame header promising 256 bytes
        assert ask_once(target_node.port) >= 1


# -- broken connections ----------------------------------------------------------------


async def test_after_handled_messages_are_sent_again_when_the_connection_breaks():
    seen: list[int] = []
    async with (
        ActorSystem("bank", listen="127.0.0.1:0", registry=registry) as bank,
        ActorSystem("shop", registry=registry) as shop,
    ):
        counter = await bank.spawn(Counter, seen, name="counter", mailbox_size=16)
        remote = shop.ref(counter.address, settle="after-handled")
        for n in range(100):
            await remote.tell(Count(n=n))
            if n == 50:  # cut every connection of the bank under the sender's feet
                for connection in list(bank._node._connections):
                    await connection.stream.aclose()
        with trio.fail_after(30):
            # an ask is answered after everything sent before it on its link
            await remote.ask(Count(n=-1))
        assert set(range(100)) <= set(seen)  # at least once: nothing lost
        ordered = [n for n in seen if n >= 0]
        first_seen = sorted(set(ordered), key=ordered.index)
        assert first_seen == list(range(100))  # and in order, duplicates aside


async def test_a_sender_reconnects_after_the_peer_comes_back_on_the_same_port():
    async with ActorSystem("shop", registry=registry) as shop:
        async with ActorSystem("bank", listen="127.0.0.1:0", registry=registry) as bank:
            await bank.spawn(Counter, name="counter")
            host, port = bank.listen_address or ("", 0)
            remote = shop.ref(f"amqp://{host}:{port}/bank/user/counter")
            assert await remote.ask(Count(n=1)) == 1
        async with ActorSystem("bank", listen=f"{host}:{port}", registry=registry) as again:
            await again.spawn(Counter, name="counter")
            with trio.fail_after(30):
                assert await remote.ask(Count(n=1)) == 1  # a new counter: it starts again


# -- one eliot tree across two processes -----------------------------------------------


def test_one_eliot_task_spans_the_asking_and_the_answering_process(tmp_path: Path) -> None:
    server_log = tmp_path / "server.log"
    client_log = tmp_path / "client.log"
    server = subprocess.Popen(
        [
            *(sys.executable, "-m", "jumpstarter", "run", "examples.bank:serve"),
            *("--name", "bank", "--listen", "127.0.0.1:0", "--log", str(server_log)),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        teller = server.stdout.readline().removeprefix("bank: teller at ").strip()
        from examples.bank import Close, Deposit
        from examples.bank import registry as bank_registry

        async def client() -> None:
            async with ActorSystem("shop", registry=bank_registry) as shop:
                ref = shop.ref(teller)
                with eliot.start_action(action_type="shop:checkout") as action:
                    assert await ref.ask(Deposit(account="a", cents=3)) == 3
                    task = action.task_uuid
                await ref.tell(Close())
                client_task.append(task)

        client_task: list[str] = []
        enable_logging(str(client_log))
        try:
            trio.run(client)
        finally:
            disable_logging()
        assert server.wait(30) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(30)
        if server.stdout is not None:
            server.stdout.close()
    handled = [
        json.loads(line)
        for line in server_log.read_text().splitlines()
        if '"jumpstarter:handle"' in line and '"Deposit"' in line
    ]
    assert handled, server_log.read_text()
    assert {entry["task_uuid"] for entry in handled} == {client_task[0]}
    client_entries = [json.loads(line) for line in client_log.read_text().splitlines()]
    assert any(entry.get("action_type") == "shop:checkout" for entry in client_entries)
