"""The tasks of the boxed-task tests: boxed processes import them from here."""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from pathlib import Path

import trio
import trio.lowlevel

from celery_actors import NO_RETRY, App, RetryPolicy, SoftTimeLimitExceeded, poisonous

app = App("test-boxed")
REAL_TIMEOUT = 60.0  # seconds of real time a task waits to be interrupted


@app.task(boxed=True)
def pid() -> int:
    return os.getpid()


@app.task(boxed=True)
async def async_pid() -> int:
    await trio.lowlevel.checkpoint()
    return os.getpid()


@app.task
def worker_pid() -> int:
    return os.getpid()


@app.task(boxed=True, retry=NO_RETRY)
def exit_with(code: int) -> None:
    os._exit(code)


@app.task(boxed=True, retry=NO_RETRY)
def kill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


@app.task(boxed=True, retry=RetryPolicy(max_retries=2, interval_start=0, interval_step=0))
def crash_counted(marker_dir: str) -> None:
    Path(marker_dir, str(len(os.listdir(marker_dir)))).write_text(str(os.getpid()))
    os._exit(3)


@app.task(boxed=True, retry=NO_RETRY)
def fail(message: str) -> None:
    raise ValueError(message)


@app.task(boxed=True)
def fail_poisonous(marker_dir: str) -> None:
    Path(marker_dir, str(len(os.listdir(marker_dir)))).write_text("ran")
    with poisonous():
        raise KeyError("bad input")


@app.task(boxed=True)
def chatty(lines: int) -> str:
    for n in range(lines):
        print(f"line {n}: this goes to stderr, not to the worker's pipe")
    sys.stdout.flush()
    return "quiet answer"


def _report_pid(host: str, port: int) -> socket.socket:
    """Connect to the test, and tell it which process runs the call."""
    conn = socket.create_connection((host, port))
    conn.sendall(f"{os.getpid()}\n".encode())
    return conn


@app.task(boxed=True, time_limit=10, retry=NO_RETRY)
def hang(host: str, port: int) -> None:
    conn = _report_pid(host, port)
    time.sleep(3600)
    conn.close()


@app.task(boxed=True)
def hang_forever(host: str, port: int) -> None:
    conn = _report_pid(host, port)
    time.sleep(3600)
    conn.close()


@app.task(boxed=True, soft_time_limit=0.2, time_limit=10_000)
def soft_blocking() -> str:
    try:
        time.sleep(REAL_TIMEOUT)
    except SoftTimeLimitExceeded:
        return f"interrupted in {os.getpid()}"
    return "never interrupted"


@app.task(boxed=True, soft_time_limit=0.2, time_limit=10_000)
async def soft_async() -> str:
    try:
        await trio.sleep(REAL_TIMEOUT)
    except SoftTimeLimitExceeded:
        await trio.sleep(0.01)  # cleanup awaits
        return f"interrupted in {os.getpid()}"
    return "never interrupted"
