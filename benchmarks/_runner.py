"""Run a measurement in a fresh subprocess and collect its figures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import attrs

__all__ = ["ROOT", "Job", "JobFailed", "run_job"]

ROOT = Path(__file__).resolve().parent.parent
"""The directory holding the ``benchmarks`` and ``jumpstarter`` packages."""


class JobFailed(Exception):
    """A worker exited with an error, timed out, or printed no figures."""


@attrs.frozen
class Job:
    """One measurement: a peer, a scenario and its size."""

    peer: str
    scenario: str
    n: int
    warmup: int = 0
    tracemalloc: bool = False

    @property
    def key(self) -> str:
        """Where the job's figures are filed: the scenario, marked if traced."""
        return f"{self.scenario}+tracemalloc" if self.tracemalloc else self.scenario

    def command(self) -> list[str]:
        command = [
            sys.executable,
            "-m",
            "benchmarks._worker",
            self.peer,
            self.scenario,
            "--n",
            str(self.n),
            "--warmup",
            str(self.warmup),
        ]
        if self.tracemalloc:
            command.append("--tracemalloc")
        return command


def _environment() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.pop("JUMPSTARTER_LOG", None)  # per-message logging would dominate every figure
    return env


def run_job(job: Job, timeout: float = 900.0) -> dict[str, Any]:
    """Run ``job`` in a new interpreter; return the figures it printed."""
    try:
        proc = subprocess.run(
            job.command(),
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=_environment(),
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise JobFailed(f"{job.peer} {job.key}: no result within {timeout:.0f} s") from None
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise JobFailed(f"{job.peer} {job.key}: exit {proc.returncode}: {tail}")
    figures: dict[str, Any] = json.loads(lines[-1])
    return figures
