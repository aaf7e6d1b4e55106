"""A broker stopped and started again under a client and a router: calls published
meanwhile wait in the client's backlog, and every call runs and is stored once.

It runs a RabbitMQ node of its own (on a free port, in a temporary directory), so
that stopping it disturbs no other test.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from celery_actors import App, SQLiteSink
from tests.celery_actors.test_brokers import CountingSink

pytestmark = pytest.mark.slow

TIMEOUT = 90.0  # seconds; only ever reached when something hangs


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Node:
    """A RabbitMQ node of the test's own."""

    def __init__(self, root: Path) -> None:
        self.port = free_port()
        self.name = f"ca-outage-{os.getpid()}@localhost"
        (root / "mnesia").mkdir(parents=True)
        (root / "log").mkdir()
        (root / "rabbitmq.conf").write_text(f"listeners.tcp.local = 127.0.0.1:{self.port}\n")
        if os.geteuid() == 0:  # rabbitmq-server runs as the rabbitmq user
            for path in (root, *root.rglob("*")):
                shutil.chown(path, "rabbitmq", "rabbitmq")
        self.env = {
            **os.environ,
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_DIST_PORT": str(free_port()),
            "RABBITMQ_CONFIG_FILE": str(root / "rabbitmq"),
            "RABBITMQ_MNESIA_BASE": str(root / "mnesia"),
            "RABBITMQ_LOG_BASE": str(root / "log"),
            "RABBITMQ_PID_FILE": str(root / "pid"),
            "RABBITMQ_FEATURE_FLAGS_FILE": str(root / "feature_flags"),
        }
        subprocess.run(["rabbitmq-server", "-detached"], env=self.env, check=True)
        self.wait_listening(True)

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}"

    def listening(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

    def wait_listening(self, up: bool) -> None:
        deadline = time.monotonic() + 60
        while self.listening() != up:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"RabbitMQ node {self.name} did not {'start' if up else 'stop'}"
                )
            time.sleep(0.2)

    def ctl(self, *args: str) -> None:
        subprocess.run(
            ["rabbitmqctl", "-q", "-n", self.name, *args], check=True, capture_output=True
        )

    async def stop_app(self) -> None:
        await trio.to_thread.run_sync(self.ctl, "stop_app")
        await trio.to_thread.run_sync(self.wait_listening, False)

    async def start_app(self) -> None:
        await trio.to_thread.run_sync(self.ctl, "start_app")
        await trio.to_thread.run_sync(self.wait_listening, True)


@pytest.fixture(scope="module")
def node() -> Iterator[Node]:
    if shutil.which("rabbitmq-server") is None:
        pytest.fail("rabbitmq-server is not installed: the broker outage test needs it")
    # Not under pytest's temporary directory, which the rabbitmq user cannot enter.
    root = Path(tempfile.mkdtemp(prefix="ca-rabbitmq-"))
    try:
        started = Node(root)
        yield started
        subprocess.run(["rabbitmqctl", "-q", "-n", started.name, "stop"], capture_output=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.parametrize("backlog", ["memory", "sqlite"])
async def test_calls_published_while_the_broker_is_down_run_once_when_it_is_back(
    node, backlog, tmp_path
):
    app = App(
        f"outage-{backlog}",
        broker=node.url,
        backlog=None if backlog == "memory" else tmp_path / "backlog.sqlite",
    )

    @app.task(name="double")
    async def double(n: int) -> int:
        return 2 * n

    sink = CountingSink()
    durable = SQLiteSink(tmp_path / "results.sqlite")
    with trio.fail_after(TIMEOUT):
        async with app.local(sinks=[sink, durable]) as client:
            before = [await double.delay(n) for n in range(20)]
            assert [await result.get() for result in before] == [2 * n for n in range(20)]

            await node.stop_app()
            during = [await double.delay(n) for n in range(20, 40)]
            status = await client.publisher_status()
            assert status is not None and status.backlog == 20 and status.connected is None

            await node.start_app()
            assert [await result.get() for result in during] == [2 * n for n in range(20, 40)]
            status = await client.publisher_status()
            assert status is not None and status.backlog == 0
    assert sorted(sink.stored) == sorted(result.id for result in before + during)
