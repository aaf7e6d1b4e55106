"""``jumpstart run MODULE:APP --role ...`` processes for the multi-process tests."""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PROC_APP = "tests.celery_actors.proc_app:app"
STOP_TIMEOUT = 60.0  # seconds; only ever reached when something hangs


class Role:
    """One ``jumpstart run`` process of ``app``; ``line`` is the first line it printed
    (``<app>: router at amqp://HOST:PORT/...`` or ``<app>: worker at ...``)."""

    def __init__(self, *options: str, app: str = PROC_APP) -> None:
        self.scratch = tempfile.TemporaryDirectory(prefix="role-")
        if "--workflows" not in options and "worker" not in options:
            # Each router its own workflow store, not one in the repository.
            options = (*options, "--workflows", f"{self.scratch.name}/workflows.sqlite3")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "jumpstarter", "run", app, *options],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.line = self.process.stdout.readline()
        if not self.line:
            assert self.process.stderr is not None
            error = self.process.stderr.read()
            self.stop()
            pytest.fail(f"jumpstart run {app} {' '.join(options)} exited: {error}")

    @property
    def address(self) -> str:
        """``HOST:PORT`` of the process's node."""
        return self.line.split("amqp://", 1)[1].split("/", 1)[0]

    @property
    def port(self) -> int:
        return int(self.address.rsplit(":", 1)[1])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_TIMEOUT)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()
        self.scratch.cleanup()
