"""What both sides of the ``remote`` suite share: messages, the server process, queues.

Every remote measurement runs in two processes on 127.0.0.1. The worker process
(:mod:`benchmarks._worker`) is the *client*: it starts the *server* with
:func:`server` (``python -m benchmarks._remote_server PEER MODE``), reads the port
the server prints on its first line of output, runs the traffic and reports the
figures. The server runs until it gets SIGTERM.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any, Final

import attrs

from jumpstarter import TypeRegistry

from ._runner import ROOT

__all__ = [
    "BROKER_HOST",
    "BROKER_PORT",
    "BROKER_URL",
    "PREFETCH",
    "SERVER_SYSTEM",
    "Count",
    "Ping",
    "broker_reachable",
    "delete_queue",
    "new_queue",
    "registry",
    "server",
]

registry = TypeRegistry()
"""The message classes that travel between the jumpstarter client and server."""


@registry.message(name="bench.Ping")
@attrs.frozen
class Ping:
    """The message of every remote measurement (the same shape as ``_common.Ping``)."""

    i: int


@registry.message(name="bench.Count")
@attrs.frozen
class Count:
    """Ask the server's actor how many pings it has handled."""


SERVER_SYSTEM: Final = "bench-server"
"""The name of the jumpstarter server's actor system (the first part of its addresses)."""

SINK_PATH: Final = "/user/sink"
"""Where the jumpstarter server's counting actor lives."""

REACTOR_ADDRESS: Final = "/bench/sink"
"""The link target the reactor client sends to (the reactor server takes any)."""

PREFETCH: Final = 1000
"""Credit window of every receiver: the reactor's ``prefetch``, the broker consumers'."""

BROKER_HOST: Final = "127.0.0.1"
BROKER_PORT: Final = 5672
BROKER_URL: Final = f"amqp://guest:guest@{BROKER_HOST}:{BROKER_PORT}"

SERVER_PROFILE_ENV: Final = "BENCHMARKS_SERVER_PROFILE"
"""When set, the server runs under cProfile and writes its stats to this path."""

_SERVER_START_TIMEOUT: Final = 60.0
_SERVER_STOP_TIMEOUT: Final = 60.0


@contextlib.contextmanager
def server(peer: str, mode: str) -> Iterator[int]:
    """Run the server process of ``peer`` in ``mode``; yield the port it listens on.

    Leaving the block sends it SIGTERM and waits for it to exit.
    """
    command = [sys.executable, "-m", "benchmarks._remote_server", peer, mode]
    profile = os.environ.get(SERVER_PROFILE_ENV)
    if profile:
        command += ["--profile", profile]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.pop(SERVER_PROFILE_ENV, None)
    proc = subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True, cwd=ROOT, env=env
    )
    assert proc.stdout is not None
    failed = False
    try:
        ready, _, _ = select.select([proc.stdout], [], [], _SERVER_START_TIMEOUT)
        line = proc.stdout.readline() if ready else ""
        if not line.strip().isdigit():
            raise RuntimeError(
                f"the {peer} server did not print its port "
                f"({'it exited' if proc.poll() is not None else 'no answer'}; see its stderr)"
            )
        yield int(line)
    except BaseException:
        failed = True
        raise
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=_SERVER_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        if not failed and proc.returncode not in (0, -signal.SIGTERM):
            raise RuntimeError(f"the {peer} server exited with status {proc.returncode}")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def broker_reachable(timeout: float = 2.0) -> bool:
    """Whether something accepts TCP connections on the broker's port."""
    try:
        with socket.create_connection((BROKER_HOST, BROKER_PORT), timeout=timeout):
            return True
    except OSError:
        return False


def new_queue() -> tuple[str, str]:
    """A fresh queue: its name, and its RabbitMQ address (``/queue/NAME`` declares it)."""
    name = f"bench-{uuid.uuid4().hex[:12]}"
    return name, f"/queue/{name}"


def delete_queue(name: str) -> None:
    """Delete a benchmark's queue (best effort: ``/queue/NAME`` queues are not auto-deleted)."""
    rabbitmqctl = shutil.which("rabbitmqctl")
    if rabbitmqctl is None:
        return
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        subprocess.run(
            [rabbitmqctl, "-q", "delete_queue", name],
            capture_output=True,
            timeout=60,
            check=False,
        )


def not_measured(n: int, why: str) -> dict[str, Any]:
    """The figures of a measurement that could not run here, and why."""
    return {"n": n, "not_measured": why}


def rate(n: int, elapsed_ns: int) -> float:
    """Messages per second."""
    return n / (elapsed_ns / 1e9)
