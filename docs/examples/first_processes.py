"""The getting-started guide's processes: a router and two workers of ``first_tasks:app``,
each a ``jumpstart run`` process, called from async code, from sync code and from the
shell; then ``jumpstart dev``, which starts such processes itself.

Each command is the one the guide types in a terminal, with ``python -m jumpstarter``
for ``jumpstart``, and with any free port (``--router 127.0.0.1:0``) instead of the
default 5780, so that the script runs anywhere.
"""

import re
import signal
import subprocess
import sys
from pathlib import Path

import trio
from first_tasks import add, app, word_count

HERE = Path(__file__).resolve().parent  # the processes import first_tasks from here
JUMPSTART = [sys.executable, "-m", "jumpstarter"]
ANY_PORT = "127.0.0.1:0"
TIMEOUT = 30  # seconds, generous: a slow machine still makes it


def start(*arguments: str) -> tuple[subprocess.Popen[str], str]:
    """Start ``jumpstart ARGUMENTS``; return the process and the first line it printed,
    which it prints once it is up."""
    process = subprocess.Popen(
        [*JUMPSTART, *arguments], cwd=HERE, stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    if not line:
        process.wait(TIMEOUT)
        raise SystemExit(f"jumpstart {' '.join(arguments)} exited with {process.returncode}")
    return process, line


def stop(process: subprocess.Popen[str], how: int = signal.SIGTERM) -> int:
    """Stop a process as Ctrl-C would (a graceful shutdown); return its exit status."""
    if process.poll() is None:
        process.send_signal(how)
    process.communicate(timeout=TIMEOUT)
    return process.returncode


async def call_from_async_code(router: str) -> None:
    async with app.connect(router):  # a client of the router at HOST:PORT
        result = await add.delay(2, 3)
        value = await result.get(timeout=TIMEOUT)
        print("from async code: add(2, 3) =", value, "on", result.document.worker)
        assert value == 5


def call_from_sync_code(router: str) -> None:
    with app.connect_blocking(router) as client:  # a client kept open in a thread
        result = client.delay(word_count, "hello from sync code")
        value = result.get(timeout=TIMEOUT)
        print("from sync code: word_count(...) =", value)
        assert value == 4


def call_from_the_shell(router: str) -> None:
    shell = subprocess.run(
        [
            *JUMPSTART,
            "call",
            "first_tasks.add",
            "--args",
            "[2, 3]",
            "--app",
            "first_tasks:app",
            "--router",
            router,
            "--wait",
        ],
        cwd=HERE,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=True,
    )
    call_id, value = shell.stdout.split()  # the call's id, then its result as JSON
    print(f"from the shell: call {call_id} gave {value}")
    assert value == "5"


def main() -> None:
    processes = []
    try:
        router, line = start("run", "first_tasks:app", "--role", "router", "--router", ANY_PORT)
        processes.append(router)
        print(line)  # first: router at amqp://127.0.0.1:PORT/first/user/router
        address = line.split("amqp://", 1)[1].split("/", 1)[0]  # 127.0.0.1:PORT
        for _ in range(2):
            worker, line = start("run", "first_tasks:app", "--role", "worker", "--router", address)
            processes.append(worker)
            print(line)
        trio.run(call_from_async_code, address)
        call_from_sync_code(address)
        call_from_the_shell(address)
    finally:
        for process in reversed(processes):  # the workers, then the router
            stop(process)

    dev, line = start("dev", "first_tasks:app", "--router", ANY_PORT)
    try:
        print(line)  # first: router at 127.0.0.1:PORT (router PID, worker-1 PID, worker-2 PID)
        found = re.search(r"router at (\S+)", line)
        assert found is not None
        call_from_the_shell(found.group(1))
    finally:
        status = stop(dev, signal.SIGINT)  # Ctrl-C stops the workers, then the router
    assert status == 0, status


if __name__ == "__main__":
    main()
