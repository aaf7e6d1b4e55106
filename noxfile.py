"""Nox sessions for jumpstarter: tests, lint, bench, docs and demo.

Run ``nox -l`` to list them; plain ``nox`` runs only ``tests``.
"""

from __future__ import annotations

import os
import shutil
import socket
import time
from pathlib import Path

import nox

nox.options.sessions = ["tests"]
nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True

RABBITMQ_HOST = "127.0.0.1"
RABBITMQ_PORT = 5672
RABBITMQ_START_TIMEOUT = 60.0  # seconds


def _port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    """Return True if something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _is_root_on_debian() -> bool:
    return os.geteuid() == 0 and Path("/etc/debian_version").exists()


def _ensure_graphviz(session: nox.Session) -> None:
    """Make sure Graphviz's ``dot`` binary is on PATH (apt-get it when we can)."""
    if shutil.which("dot") is not None:
        return
    if not _is_root_on_debian():
        session.warn("Graphviz `dot` not found and not root on Debian: graph tests may fail.")
        return
    session.log("Graphviz `dot` not found: installing Debian package graphviz.")
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    install = ("apt-get", "install", "-y", "--no-install-recommends", "graphviz")
    try:
        session.run(*install, env=env, external=True)
    except nox.command.CommandFailed:
        session.log("apt-get install failed: running apt-get update, then retrying.")
        session.run("apt-get", "update", env=env, external=True)
        session.run(*install, env=env, external=True)


def _ensure_rabbitmq(session: nox.Session) -> None:
    """Make sure RabbitMQ listens on 127.0.0.1:5672 with the AMQP 1.0 plugin enabled.

    Starts the broker with ``rabbitmq-server -detached`` if nothing listens on the
    port, waits up to 60 s for it, then enables ``rabbitmq_amqp1_0`` (idempotent:
    a no-op when it is already enabled). Fails the session if RabbitMQ is missing.
    """
    tools = ("rabbitmq-server", "rabbitmqctl", "rabbitmq-plugins")
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        session.error(
            f"RabbitMQ is required by the tests but {', '.join(missing)} not found on PATH. "
            "Install it (Debian: `apt-get install -y rabbitmq-server`) and re-run."
        )

    if not _port_open(RABBITMQ_HOST, RABBITMQ_PORT):
        session.log(f"Nothing listens on {RABBITMQ_HOST}:{RABBITMQ_PORT}: starting RabbitMQ.")
        session.run("rabbitmq-server", "-detached", external=True)
        deadline = time.monotonic() + RABBITMQ_START_TIMEOUT
        while not _port_open(RABBITMQ_HOST, RABBITMQ_PORT):
            if time.monotonic() > deadline:
                session.error(
                    f"RabbitMQ did not listen on {RABBITMQ_HOST}:{RABBITMQ_PORT} "
                    f"within {RABBITMQ_START_TIMEOUT:.0f} s; see /var/log/rabbitmq/."
                )
            time.sleep(1)
        session.run("rabbitmqctl", "await_startup", "--timeout", "60", external=True)

    session.run("rabbitmq-plugins", "enable", "rabbitmq_amqp1_0", external=True)


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite in parallel (pytest -n auto); extra args go to pytest."""
    session.install(".[test]")
    _ensure_graphviz(session)
    _ensure_rabbitmq(session)
    session.run("pytest", "-n", "auto", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """Check style and formatting with ruff and types with mypy."""
    session.install(".[lint,test]")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy", "jumpstarter", "celery_actors")


@nox.session
def bench(session: nox.Session) -> None:
    """Run the benchmarks (python -m benchmarks); extra args go to the benchmarks."""
    session.install(".[bench]")
    session.run("python", "-m", "benchmarks", *session.posargs)


@nox.session
def docs(session: nox.Session) -> None:
    """Build the HTML docs into docs/_build/html, treating warnings as errors."""
    session.install(".[docs,test]")  # the API page documents jumpstarter.testing
    session.run("sphinx-build", "-W", "--keep-going", "-b", "html", "docs", "docs/_build/html")


@nox.session
def demo(session: nox.Session) -> None:
    """Run the README's demo: a router and two worker processes run a few hundred task
    calls (examples/tasks_demo.py); extra args go to the demo (--calls N, --workers N)."""
    session.install(".")
    session.run("python", "-m", "examples.tasks_demo", *session.posargs)
