"""The processes of the ``tasks`` suite: Redis, the peers' workers, RabbitMQ queues.

Every process a measurement starts is a :class:`Service`: its own session (so
stopping it stops its children too, such as Celery's prefork pool), its output in
a log file (the last line of which explains a failure), and, on Linux, a parent
death signal, so that nothing is left running if the measurement process is
killed.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Final, TypeVar

from ._remote_common import BROKER_HOST, BROKER_PORT, broker_reachable, free_port
from ._runner import ROOT

__all__ = [
    "CELERY_ACTORS_APP_ENV",
    "CELERY_ACTORS_BROKER_ENV",
    "RABBITMQ_AMQP10_URL",
    "RABBITMQ_URL",
    "START_TIMEOUT",
    "PeerFailed",
    "Service",
    "delete_queues",
    "delete_queues_with_rabbitmqctl",
    "import_with_env",
    "python_command",
    "redis",
    "require_rabbitmq",
    "service",
]

RABBITMQ_URL: Final = f"amqp://guest:guest@{BROKER_HOST}:{BROKER_PORT}/%2F"
"""RabbitMQ over AMQP 0.9.1, as Celery (kombu/py-amqp) and Dramatiq (pika) reach it."""

RABBITMQ_AMQP10_URL: Final = f"amqp://guest:guest@{BROKER_HOST}:{BROKER_PORT}"
"""The same RabbitMQ over AMQP 1.0 (its plugin), as celery_actors reaches it."""

CELERY_ACTORS_APP_ENV: Final = "BENCH_CELERY_ACTORS_APP"
"""Names the celery_actors app of :mod:`benchmarks._tasks_app`, in every process of a
measurement (router, worker, client); unset: ``bench-tasks``."""

CELERY_ACTORS_BROKER_ENV: Final = "BENCH_CELERY_ACTORS_BROKER"
"""Gives that app a broker's URL (its calls then travel through the broker); unset:
peer-to-peer."""

START_TIMEOUT: Final = 60.0
"""Seconds a peer has to start and run its first task."""

STOP_TIMEOUT: Final = 30.0
"""Seconds a process has to exit after SIGTERM before it is killed."""

_PR_SET_PDEATHSIG: Final = 1

T = TypeVar("T")


class PeerFailed(Exception):
    """A peer did not start, stopped, or did not finish its work in time."""


def _die_with_parent() -> None:  # pragma: no cover - runs in the child, before exec
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class Service:
    """A process this measurement started: its log, and how to stop it."""

    def __init__(self, name: str, command: Sequence[str], env: dict[str, str] | None = None):
        self.name = name
        self.command = list(command)
        self._log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in stop()
            mode="w+b", prefix=f"bench-{name}-", suffix=".log"
        )
        environment = dict(os.environ)
        environment["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(ROOT), environment.get("PYTHONPATH")])
        )
        environment.pop("JUMPSTARTER_LOG", None)
        environment.update(env or {})
        self.process = subprocess.Popen(
            self.command,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env=environment,
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )

    def output(self) -> str:
        """Everything the process printed so far."""
        self._log.flush()
        return Path(self._log.name).read_text(encoding="utf-8", errors="replace")

    def last_line(self) -> str:
        """The last line it printed, to explain a failure."""
        lines = [line for line in self.output().splitlines() if line.strip()]
        return lines[-1].strip() if lines else "(no output)"

    def check_alive(self) -> None:
        """Raise :class:`PeerFailed` if the process has exited."""
        if self.process.returncode is not None or self._exited(0):
            if self.process.returncode is None:
                self._signal_session(signal.SIGKILL)  # what it left behind
                self.process.wait()
            raise PeerFailed(
                f"{self.name} exited with status {self.process.returncode}: {self.last_line()}"
            )

    def wait_for(self, found: Callable[[str], T | None], what: str, timeout: float) -> T:
        """Poll the process's output until ``found`` finds something in it.

        Raises:
            PeerFailed: the process exited, or ``timeout`` seconds passed first.
        """
        deadline = time.monotonic() + timeout
        while True:
            value = found(self.output())
            if value is not None:
                return value
            self.check_alive()
            if time.monotonic() > deadline:
                raise PeerFailed(
                    f"{self.name} did not print {what} within {timeout:.0f} s: {self.last_line()}"
                )
            time.sleep(0.05)

    def _exited(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for the process to exit, without reaping it.

        While it is not reaped, its id (and so its session's) cannot be reused, so
        signalling the session afterwards reaches only what this process started.
        """
        deadline = time.monotonic() + timeout
        while True:
            try:
                done = os.waitid(os.P_PID, self.process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:  # already reaped
                return True
            if done is not None:
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)

    def _signal_session(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signum)

    def stop(self) -> None:
        """SIGTERM to its whole session; SIGKILL to what is left after a while."""
        if self.process.returncode is None:
            self._signal_session(signal.SIGTERM)
            self._exited(STOP_TIMEOUT)
            self._signal_session(signal.SIGKILL)  # what outlived it, or all if it hangs
            self.process.wait()
        self._log.close()


@contextlib.contextmanager
def service(
    name: str, command: Sequence[str], env: dict[str, str] | None = None
) -> Iterator[Service]:
    """Start a :class:`Service` for the duration of the block."""
    started = Service(name, command, env)
    try:
        yield started
    finally:
        started.stop()


@contextlib.contextmanager
def redis() -> Iterator[str]:
    """A Redis server of this measurement's own, on a free port; yield its URL.

    It keeps nothing on disk, and no other process uses it.
    """
    port = free_port()
    command = [
        "redis-server",
        "--bind",
        "127.0.0.1",
        "--port",
        str(port),
        "--save",
        "",
        "--appendonly",
        "no",
    ]
    try:
        started = Service("redis-server", command)
    except FileNotFoundError:
        raise PeerFailed(
            "redis-server is not installed (Debian: apt-get install redis-server)"
        ) from None
    try:
        started.wait_for(
            lambda out: True if "Ready to accept connections" in out else None,
            "'Ready to accept connections'",
            START_TIMEOUT,
        )
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        started.stop()


def require_rabbitmq() -> None:
    """Raise :class:`PeerFailed` unless RabbitMQ accepts connections."""
    if not broker_reachable():
        raise PeerFailed(
            f"nothing listens on {BROKER_HOST}:{BROKER_PORT}: start RabbitMQ "
            "(rabbitmq-server -detached)"
        )


def delete_queues(names: Sequence[str], exchanges: Sequence[str] = ()) -> None:
    """Delete queues (and exchanges) of a measurement from RabbitMQ; missing ones are fine.

    Deleting before a run purges whatever an earlier run left behind; deleting after
    it leaves nothing in the broker, which tests share.
    """
    from kombu.connection import Connection

    with Connection(RABBITMQ_URL, connect_timeout=10) as connection:  # type: ignore[no-untyped-call]
        channel = connection.channel()
        try:
            for name in names:
                channel.queue_delete(name)
            for name in exchanges:
                channel.exchange_delete(name)
        finally:
            channel.close()


def delete_queues_with_rabbitmqctl(names: Sequence[str]) -> None:
    """Delete queues with ``rabbitmqctl`` (no AMQP 0.9.1 client needed: celery_actors
    alone speaks AMQP 1.0); missing ones are fine."""
    for name in names:
        subprocess.run(
            ["rabbitmqctl", "-q", "delete_queue", name], capture_output=True, check=False
        )


def python_command(*arguments: str) -> list[str]:
    """``python ARGUMENTS`` with this interpreter: a service's command line."""
    return [sys.executable, *arguments]


def import_with_env(module: str, env: dict[str, str]) -> Any:
    """Import a peer's app module once the environment names this measurement's queue
    (and servers): the module reads them when it is imported."""
    os.environ.update(env)
    return importlib.import_module(module)
