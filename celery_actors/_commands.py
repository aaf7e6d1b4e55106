"""The ``jumpstart`` commands of celery_actors: ``call``, ``quarantine`` and ``dev``.

They are plugins of the ``jumpstart`` command line (the ``jumpstarter.commands``
entry points in ``pyproject.toml``), and a thin shell over the app's client
(:meth:`App.connect`) and over :func:`open_dev_cluster`, which starts a router and
workers of an app in processes of their own.

Exit statuses: 0 done; 1 the call failed, was revoked or gave no result in time (or
a process of ``dev`` failed); 2 a usage error (a bad option, bad JSON); 3 the router
cannot be reached.
"""

from __future__ import annotations

import contextlib
import datetime
import importlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import attrs
import click
import trio
from rich import box
from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from jumpstarter import AskTimeout, PeerUnreachable

from ._app import App, Client
from ._calls import new_call
from ._errors import CeleryActorsError, ResultTimeout
from ._protocol import QuarantinedCall, RouterStats, TaskCall, TaskResult
from ._sinks import _encode, _Unstorable

__all__ = [
    "APP_ENV",
    "ClusterStartError",
    "DevCluster",
    "call",
    "dev",
    "open_dev_cluster",
    "quarantine",
]

APP_ENV = "JUMPSTART_APP"
"""The environment variable ``--app`` is read from when it is not given."""

EXIT_FAILED = 1
EXIT_UNREACHABLE = 3

START_TIMEOUT = 60.0
"""Seconds a process of :func:`open_dev_cluster` has to say it is up."""

STOP_TIMEOUT = 15.0
"""Seconds a process of :func:`open_dev_cluster` has to stop after SIGTERM, before it
is killed."""

_ADDRESS = re.compile(r"amqp://([^/\s]+)/")
_STDERR_KEPT = 20  # lines of a process's stderr kept to explain its early exit

_T = TypeVar("_T")


# -- the app and its router ---------------------------------------------------------------


def load_app(spec: str) -> App:
    """Import ``MODULE:APP`` and return the :class:`App` (the current directory comes
    first on ``sys.path``, as with ``python -m``).

    Raises:
        click.BadParameter: the spec is malformed, the module cannot be found, or
            the attribute is missing or not an App.
    """
    hint = "'--app' / 'MODULE:APP'"
    module_name, _, attribute = (part.strip() for part in spec.partition(":"))
    if not module_name or not attribute:
        raise click.BadParameter(
            f"expected MODULE:APP, such as 'myapp.tasks:app'; got {spec!r}", param_hint=hint
        )
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is None or not (module_name + ".").startswith(exc.name + "."):
            raise  # the module exists, and imports something that does not
        raise click.BadParameter(
            f"module {module_name!r} not found; it must be importable from the current "
            f"directory ({cwd}) or from PYTHONPATH",
            param_hint=hint,
        ) from None
    app: Any = module
    for part in attribute.split("."):
        app = getattr(app, part, None)
    if not isinstance(app, App):
        what = "nothing" if app is None else f"a {type(app).__name__}"
        raise click.BadParameter(f"{spec!r} is {what}, not a celery_actors App", param_hint=hint)
    return app


class RouterUnreachable(click.ClickException):
    """The router did not answer: exit status 3, one line naming its address."""

    exit_code = EXIT_UNREACHABLE


def _unreachable(app: App, router: str, error: BaseException) -> RouterUnreachable:
    reason = str(error).split(". ", 1)[0].rstrip(".")  # its first sentence
    return RouterUnreachable(
        f"cannot reach the router of app {app.name!r} at {router} ({reason}); start it with "
        "'jumpstart run MODULE:APP --role router', or give its address with --router HOST:PORT"
    )


def _leaf(error: BaseException) -> BaseException:
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return error


def _with_client(app: App, router: str | None, work: Callable[[Client], Awaitable[_T]]) -> _T:
    """Run ``await work(client)`` with a client of the router, in a new trio run."""
    address = router or app.router

    async def main() -> _T:
        async with app.connect(address) as client:
            return await work(client)

    try:
        return trio.run(main)
    except BaseException as exc:
        leaf = _leaf(exc)
        if isinstance(leaf, PeerUnreachable | AskTimeout):
            raise _unreachable(app, address, leaf) from None
        if leaf is not exc:
            raise leaf from None
        raise


def _app_option(command: Callable[..., Any]) -> Callable[..., Any]:
    command = click.option(
        "--router",
        metavar="HOST:PORT",
        help="Where the router listens.  [default: the app's router setting]",
    )(command)
    return click.option(
        "--app",
        "app_spec",
        metavar="MODULE:APP",
        envvar=APP_ENV,
        required=True,
        help=f"The app, as MODULE:APP (or the {APP_ENV} environment variable).",
    )(command)


# -- values and results as text -------------------------------------------------------------


def to_json(value: Any) -> str:
    """``value`` as JSON, written the way the file sinks write results (bytes as
    ``{"$bytes": ...}``, attrs instances as their fields and ``$type``); what JSON
    cannot hold is written as its ``repr``."""
    try:
        return json.dumps(_encode(value, "value", set()), ensure_ascii=False, allow_nan=False)
    except (_Unstorable, ValueError):
        return json.dumps(repr(value), ensure_ascii=False)


def _json_option(text: str | None, kind: type, param: str) -> Any:
    if text is None:
        return kind()
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not valid JSON ({exc}): {text!r}", param_hint=param) from None
    if kind is list and not isinstance(value, list):
        raise click.BadParameter(
            f"the positional arguments are a JSON array, such as '[2, 3]'; got {text!r}",
            param_hint=param,
        )
    if kind is dict and not isinstance(value, dict):
        raise click.BadParameter(
            f"the keyword arguments are a JSON object, such as '{{\"x\": 2}}'; got {text!r}",
            param_hint=param,
        )
    return value


def _report(result: TaskResult) -> NoReturn:
    """Print a final result, and exit with its status."""
    if result.state == "succeeded":
        click.echo(to_json(result.value))
        sys.exit(0)
    error = result.error
    what = f"{error.type}: {error.message}" if error is not None else "no error recorded"
    if result.state == "revoked":
        click.echo(f"revoked: {what}", err=True)
    else:
        quarantined = " (quarantined)" if result.quarantined else ""
        click.echo(f"failed{quarantined}: {what}", err=True)
    sys.exit(EXIT_FAILED)


def _timed_out(error: ResultTimeout) -> NoReturn:
    click.echo(f"{error}; it may still finish later", err=True)
    sys.exit(EXIT_FAILED)


# -- jumpstart call -------------------------------------------------------------------------


def make_call(
    app: App,
    name: str,
    args: Sequence[Any] = (),
    kwargs: dict[str, Any] | None = None,
    *,
    countdown: float | None = None,
    priority: int | None = None,
    queue: str | None = None,
) -> TaskCall:
    """The :class:`TaskCall` of task ``name`` with these arguments: the task's own
    :meth:`~celery_actors.Task.make_call` if the app has it, else a call built the same
    way with the default options (a worker may know a task the app does not). Call it
    in a trio run (times follow trio's clock)."""
    task = app.tasks.get(name)
    if task is not None:
        return task.make_call(args, kwargs, countdown=countdown, priority=priority, queue=queue)
    return new_call(name, args, kwargs, countdown=countdown, priority=priority, queue=queue)


@click.command("call")
@click.argument("task_name", metavar="TASK_NAME")
@click.option("--args", "args_json", metavar="JSON", help="Positional arguments: a JSON array.")
@click.option("--kwargs", "kwargs_json", metavar="JSON", help="Keyword arguments: a JSON object.")
@click.option("--wait", is_flag=True, help="Wait for the result and print it as JSON.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    metavar="SECONDS",
    help="With --wait, give up after this long (the call goes on).  [default: no limit]",
)
@click.option(
    "--countdown",
    type=click.FloatRange(min=0),
    metavar="SECONDS",
    help="Start no sooner than this many seconds from now.",
)
@click.option("--queue", metavar="QUEUE", help="The queue.  [default: the task's]")
@click.option(
    "--priority",
    type=click.IntRange(0, 9),
    metavar="0-9",
    help="Higher starts first among waiting calls.  [default: the task's]",
)
@_app_option
def call(
    task_name: str,
    args_json: str | None,
    kwargs_json: str | None,
    wait: bool,
    timeout: float | None,
    countdown: float | None,
    queue: str | None,
    priority: int | None,
    app_spec: str,
    router: str | None,
) -> None:
    """Send a call of TASK_NAME to the app's router and print the call's id.

    With --wait, then print the result as JSON, or the error's type and message
    (exit status 1 if the call failed or was revoked). A task the app does not
    declare is sent anyway: it runs if a worker of the router knows it.

    \b
    Examples:
        jumpstart call myapp.tasks.add --args '[2, 3]' --app myapp.tasks:app --wait
        JUMPSTART_APP=myapp.tasks:app jumpstart call myapp.tasks.add --kwargs '{"x": 2, "y": 3}'
    """
    args = _json_option(args_json, list, "'--args'")
    kwargs = _json_option(kwargs_json, dict, "'--kwargs'")
    app = load_app(app_spec)
    if task_name not in app.tasks:
        click.echo(
            f"jumpstart: app {app.name!r} declares no task {task_name!r}; sending it anyway "
            "(it runs if a worker of the router knows it, and fails otherwise)",
            err=True,
        )

    async def send(client: Client) -> TaskResult | None:
        message = make_call(
            app, task_name, args, kwargs, countdown=countdown, priority=priority, queue=queue
        )
        handle = await client.submit(message)
        click.echo(handle.id)
        if not wait:
            return None
        return await handle.wait(timeout)

    try:
        result = _with_client(app, router, send)
    except ResultTimeout as exc:
        _timed_out(exc)
    if result is not None:
        _report(result)


# -- jumpstart quarantine -------------------------------------------------------------------


@click.group("quarantine")
def quarantine() -> None:
    """List, re-run or drop the calls that failed for good.

    A call that fails past its retries, or at a poisonous() step, is kept by the
    router with its arguments, for inspection: see the Quarantine section of the
    tasks guide.
    """


def _arguments(call: TaskCall) -> str:
    parts = [to_json(arg) for arg in call.args]
    parts += [f"{key}={to_json(value)}" for key, value in call.kwargs.items()]
    return ", ".join(parts)


def _when(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds).strftime("%Y-%m-%d %H:%M:%S")


def quarantine_table(calls: Sequence[QuarantinedCall]) -> Table:
    """The quarantined calls as a rich table: each call's id and runs, then the call,
    its error and when it failed, one under the other."""
    table = Table(
        title=f"{len(calls)} quarantined call{'s' if len(calls) != 1 else ''}",
        box=box.SIMPLE_HEAD,
        title_justify="left",
    )
    table.add_column("ID", no_wrap=True, style="bold")
    table.add_column("RUNS", justify="right")
    table.add_column("CALL / ERROR / FAILED AT", overflow="fold")
    for kept in calls:
        error = kept.result.error
        table.add_row(
            kept.call.id,
            str(kept.result.attempt + 1),
            Text.assemble(
                f"{kept.call.task}({_arguments(kept.call)})\n",
                (f"{error.type}: {error.message}" if error is not None else "no error", "red"),
                "\n",
                (_when(kept.result.finished), "dim"),
            ),
        )
    return table


@quarantine.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per call, for scripts.")
@_app_option
def quarantine_list(as_json: bool, app_spec: str, router: str | None) -> None:
    """List the quarantined calls, oldest first."""
    app = load_app(app_spec)

    async def fetch(client: Client) -> list[QuarantinedCall]:
        return await client.quarantine()

    calls = _with_client(app, router, fetch)
    if as_json:
        for kept in calls:
            error = kept.result.error
            click.echo(
                json.dumps(
                    {
                        "id": kept.call.id,
                        "task": kept.call.task,
                        "args": json.loads(to_json(kept.call.args)),
                        "kwargs": json.loads(to_json(kept.call.kwargs)),
                        "error": None if error is None else attrs.asdict(error),
                        "attempt": kept.result.attempt,
                        "finished": kept.result.finished,
                    }
                )
            )
        return
    if not calls:
        click.echo("no quarantined calls")
        return
    Console().print(quarantine_table(calls))


@quarantine.command("retry")
@click.argument("task_id", metavar="ID")
@click.option("--wait", is_flag=True, help="Wait for the re-run's result and print it as JSON.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    metavar="SECONDS",
    help="With --wait, give up after this long.  [default: no limit]",
)
@_app_option
def quarantine_retry(
    task_id: str, wait: bool, timeout: float | None, app_spec: str, router: str | None
) -> None:
    """Run the quarantined call ID again, and print the re-run's id.

    The re-run is a new call (same task and arguments, a full retry budget) with a
    new id: results are stored once per id, and ID's failure stays stored. ID leaves
    the quarantine; if the re-run fails for good, it is quarantined in turn.
    """
    app = load_app(app_spec)

    async def retry(client: Client) -> tuple[str | None, TaskResult | None]:
        handle = await client.retry_quarantined(task_id)
        if handle is None:
            return None, None
        click.echo(handle.id)
        return handle.id, (await handle.wait(timeout) if wait else None)

    try:
        new_id, result = _with_client(app, router, retry)
    except ResultTimeout as exc:
        _timed_out(exc)
    if new_id is None:
        _not_quarantined(task_id, app, router)
    if result is not None:
        _report(result)


@quarantine.command("drop")
@click.argument("task_id", metavar="ID")
@_app_option
def quarantine_drop(task_id: str, app_spec: str, router: str | None) -> None:
    """Take the call ID out of the quarantine without running it again (its result
    stays stored)."""
    app = load_app(app_spec)

    async def drop(client: Client) -> bool:
        return await client.drop_quarantined(task_id)

    if not _with_client(app, router, drop):
        _not_quarantined(task_id, app, router)
    click.echo(f"dropped {task_id}")


def _not_quarantined(task_id: str, app: App, router: str | None) -> NoReturn:
    raise click.ClickException(
        f"no call {task_id!r} in the quarantine of the router at {router or app.router}; "
        "see the quarantined calls with: jumpstart quarantine list"
    )


# -- a router and workers in their own processes ---------------------------------------------


class ClusterStartError(CeleryActorsError):
    """A process of :func:`open_dev_cluster` exited, or said nothing, before it was up.

    The message holds the command and the last lines the process wrote on stderr.
    """


class _Lines:
    """The lines of a byte stream, decoded."""

    def __init__(self, stream: trio.abc.ReceiveStream) -> None:
        self.stream = stream
        self.buffer = bytearray()

    async def next(self) -> str | None:
        """The next line, without its end; ``None`` at the end of the stream."""
        while True:
            end = self.buffer.find(b"\n")
            if end >= 0:
                line = bytes(self.buffer[:end])
                del self.buffer[: end + 1]
                return line.decode(errors="replace").rstrip("\r")
            chunk = await self.stream.receive_some()
            if not chunk:
                if not self.buffer:
                    return None
                line, self.buffer = bytes(self.buffer), bytearray()
                return line.decode(errors="replace")
            self.buffer += chunk


@attrs.define(eq=False)
class _Process:
    """One ``jumpstart run`` process of a cluster."""

    role: str
    command: list[str]
    process: trio.Process
    stdout: _Lines
    address: str = ""
    stderr_tail: list[str] = attrs.Factory(list)
    stderr_done: trio.Event = attrs.Factory(trio.Event)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        return self.process.poll()


Log = Callable[[str, str], None]
"""Where the lines processes write go: ``log(role, line)``."""


def _log_to_stderr(role: str, line: str) -> None:
    click.echo(f"[{role}] {line}", err=True)


@attrs.define(eq=False)
class DevCluster:
    """A router and workers of an app, each a ``jumpstart run`` process on this machine,
    linked peer-to-peer (see :func:`open_dev_cluster`).

    Attributes:
        app: the app, as ``MODULE:APP``.
        router: ``HOST:PORT`` where the router listens (for :meth:`App.connect`).
        processes: the router's process, then the workers'.
    """

    app: str
    router: str = ""
    processes: list[_Process] = attrs.Factory(list)
    log: Log = _log_to_stderr
    cwd: str | None = None
    stopping: bool = False

    @property
    def pids(self) -> dict[str, int]:
        """The process id of each role (``router``, ``worker-1``...)."""
        return {process.role: process.pid for process in self.processes}

    def exited(self) -> dict[str, int]:
        """The roles whose process has exited, with its status."""
        return {
            process.role: code
            for process in self.processes
            if (code := process.returncode) is not None
        }

    async def _start(self, nursery: trio.Nursery, role: str, options: Sequence[str]) -> _Process:
        command = [sys.executable, "-m", "jumpstarter", "run", self.app, *options]
        process = await trio.lowlevel.open_process(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=self.cwd,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            process_group=0,  # a Ctrl-C in the terminal is for us; we stop them
        )
        assert process.stdout is not None and process.stderr is not None
        child = _Process(role, command, process, _Lines(process.stdout))
        self.processes.append(child)
        nursery.start_soon(self._forward_stderr, child, _Lines(process.stderr))
        with trio.move_on_after(START_TIMEOUT):
            first = await child.stdout.next()
            if first is not None and (found := _ADDRESS.search(first)) is not None:
                child.address = found.group(1)
                nursery.start_soon(self._forward_stdout, child)
                return child
            await child.process.wait()
            with trio.move_on_after(STOP_TIMEOUT):
                await child.stderr_done.wait()
            raise ClusterStartError(
                f"the {role} ({' '.join(command)}) exited with status {child.returncode} "
                + (f"after printing {first!r}" if first else "before it was up")
                + (":\n" + "\n".join(child.stderr_tail) if child.stderr_tail else "")
            )
        raise ClusterStartError(
            f"the {role} ({' '.join(command)}) said nothing for {START_TIMEOUT:g} s"
        )

    async def _forward_stderr(self, child: _Process, lines: _Lines) -> None:
        try:
            while (line := await lines.next()) is not None:
                child.stderr_tail = [*child.stderr_tail[1 - _STDERR_KEPT :], line]
                if not self.stopping and child.address:
                    self.log(child.role, line)
        finally:
            child.stderr_done.set()

    async def _forward_stdout(self, child: _Process) -> None:
        while (line := await child.stdout.next()) is not None:
            if not self.stopping:
                self.log(child.role, line)

    async def stop(self) -> None:
        """Stop every process: the workers, then the router (SIGTERM, then SIGKILL
        after :data:`STOP_TIMEOUT` seconds). Shielded from cancellation."""
        self.stopping = True
        with trio.CancelScope(shield=True):
            async with trio.open_nursery() as nursery:
                for child in self.processes[1:]:
                    nursery.start_soon(_stop_process, child.process)
            if self.processes:
                await _stop_process(self.processes[0].process)


async def _stop_process(process: trio.Process) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        with trio.move_on_after(STOP_TIMEOUT):
            await process.wait()
            return
        with contextlib.suppress(ProcessLookupError):
            process.kill()
    await process.wait()


@contextlib.asynccontextmanager
async def open_dev_cluster(
    app: str,
    *,
    workers: int = 2,
    concurrency: int = 10,
    router: str = "127.0.0.1:0",
    results: str | os.PathLike[str] | None = None,
    workflows: str | os.PathLike[str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    log: Log | None = None,
) -> AsyncIterator[DevCluster]:
    """Start a router and ``workers`` workers of the app ``MODULE:APP``, each in a
    ``python -m jumpstarter run`` process of its own, linked peer-to-peer with no
    broker; stop them all when the block ends.

    Args:
        app: the app, as ``MODULE:APP``, importable from ``cwd``.
        workers: how many worker processes.
        concurrency: calls each worker runs at once.
        router: ``HOST:PORT`` the router listens on (port 0: any free one; the
            cluster's :attr:`DevCluster.router` says which).
        results: a ``.jsonl`` or ``.sqlite`` file the router stores results in too.
        workflows: the SQLite file the router keeps workflows in (default: in memory,
            as the cluster is for development).
        cwd: the processes' working directory (default: this one's).
        log: what the processes print after they are up goes to ``log(role, line)``
            (default: stderr, each line after its role).

    Raises:
        ClusterStartError: a process exited before it was up (its stderr is in the
            message), or said nothing for :data:`START_TIMEOUT` seconds.
    """
    if workers < 0:
        raise ValueError(f"workers must be >= 0, not {workers!r}")
    cluster = DevCluster(app, log=log or _log_to_stderr, cwd=None if cwd is None else str(cwd))
    router_options = ["--role", "router", "--router", router]
    if results is not None:
        router_options += ["--results", os.fspath(results)]
    router_options += ["--workflows", "memory" if workflows is None else os.fspath(workflows)]
    async with trio.open_nursery() as nursery:
        try:
            cluster.router = (await cluster._start(nursery, "router", router_options)).address
            for number in range(1, workers + 1):
                await cluster._start(
                    nursery,
                    f"worker-{number}",
                    [
                        "--role",
                        "worker",
                        "--router",
                        cluster.router,
                        "--concurrency",
                        f"{concurrency}",
                    ],
                )
            yield cluster
        finally:
            await cluster.stop()
            nursery.cancel_scope.cancel()


# -- jumpstart dev ----------------------------------------------------------------------------


def _worker_name(address: str) -> str:
    """``amqp://127.0.0.1:4242/app-worker-31337/user/worker`` -> ``app-worker-31337``."""
    parts = address.split("/")
    return parts[3] if len(parts) > 3 else address


def stats_table(stats: RouterStats | None, *, title: str = "") -> Table:
    """The router's statistics as a rich table: a row per worker, and the totals."""
    table = Table(title=title or None, title_justify="left")
    table.add_column("worker", no_wrap=True)
    for column in ("received", "running", "succeeded", "failed", "retried"):
        table.add_column(column, justify="right")
    if stats is None:
        table.caption = "waiting for the router..."
        return table
    for worker in stats.workers:
        name = _worker_name(worker.address) + ("" if worker.up else " (gone)")
        table.add_row(
            Text(name, style="" if worker.up else "dim"),
            str(worker.received),
            str(worker.running),
            str(worker.succeeded),
            str(worker.failed),
            str(worker.retried),
        )
    states = stats.states
    table.add_section()
    table.add_row(
        Text("total", style="bold"),
        str(stats.total),
        str(states.get("running", 0)),
        str(states.get("succeeded", 0)),
        str(states.get("failed", 0)),
        str(sum(worker.retried for worker in stats.workers)),
    )
    table.caption = (
        f"pending {states.get('pending', 0)} · retrying {states.get('retrying', 0)} · "
        f"revoked {states.get('revoked', 0)} · quarantined {stats.quarantined}"
    )
    return table


async def _watch(
    app: App,
    cluster: DevCluster,
    console: Console,
    refresh: float,
    started: float,
) -> str | None:
    """Show the live table until a process exits (its description is returned) or
    this is cancelled."""
    stats: RouterStats | None = None

    def view() -> Group:
        header = Text.assemble(
            (f"{app.name}", "bold"),
            f" · router at {cluster.router} · {len(cluster.processes) - 1} workers · "
            f"up {time.monotonic() - started:.0f} s · Ctrl-C stops",
        )
        return Group(header, stats_table(stats))

    async with app.connect(cluster.router) as client:
        try:
            with Live(view(), console=console, auto_refresh=False) as live:
                while True:
                    gone = cluster.exited()
                    if gone:
                        return ", ".join(
                            f"{role} exited with status {code}" for role, code in gone.items()
                        )
                    with contextlib.suppress(PeerUnreachable, AskTimeout):
                        stats = await client.stats()
                    live.update(view(), refresh=True)
                    await trio.sleep(refresh)
        finally:
            if not console.is_terminal:  # the last table was printed without its line end
                console.line()


async def _run_dev(
    target: str,
    app: App,
    workers: int,
    concurrency: int,
    router: str,
    results: Path | None,
    refresh: float,
    console: Console,
) -> str | None:
    def log(role: str, line: str) -> None:
        console.print(Text.assemble((f"[{role}] ", "dim"), line), highlight=False)

    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            problem: list[str] = []

            async def stop_on_signal() -> None:
                async for _ in signals:
                    console.print("stopping the router and the workers...", highlight=False)
                    nursery.cancel_scope.cancel()
                    return

            async def run() -> None:
                started = time.monotonic()
                async with open_dev_cluster(
                    target,
                    workers=workers,
                    concurrency=concurrency,
                    router=router,
                    results=results,
                    log=log,
                ) as cluster:
                    pids = ", ".join(f"{role} {pid}" for role, pid in cluster.pids.items())
                    console.print(
                        f"{escape(app.name)}: router at {cluster.router} ({pids})\n"
                        f"send calls with: jumpstart call TASK_NAME --app {escape(target)} "
                        f"--router {cluster.router} --args '[...]' --wait",
                        highlight=False,
                        soft_wrap=True,
                    )
                    gone = await _watch(app, cluster, console, refresh, started)
                    if gone is not None:
                        problem.append(gone)
                nursery.cancel_scope.cancel()

            nursery.start_soon(stop_on_signal)
            nursery.start_soon(run)
    return problem[0] if problem else None


@click.command("dev")
@click.argument("target", metavar="MODULE:APP")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="Worker processes.",
)
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="Calls each worker runs at once.",
)
@click.option(
    "--router",
    metavar="HOST:PORT",
    help="Where the router listens (port 0: any free one).  [default: the app's router setting]",
)
@click.option(
    "--results",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Store final results in this .jsonl or .sqlite file too.",
)
@click.option(
    "--refresh",
    type=click.FloatRange(min=0.05),
    default=0.5,
    show_default=True,
    metavar="SECONDS",
    help="How often the table is refreshed.",
)
def dev(
    target: str,
    workers: int,
    concurrency: int,
    router: str | None,
    results: Path | None,
    refresh: float,
) -> None:
    """Run a router and worker processes of MODULE:APP, and show what they do.

    The router and each worker are 'jumpstart run' processes, linked peer-to-peer
    with no broker. A live table shows, per worker and in total, the calls received,
    running, succeeded, failed and retried. Ctrl-C (or SIGTERM) stops them all.

    \b
    Example:
        jumpstart dev myapp.tasks:app --workers 4 --concurrency 20
    """
    app = load_app(target)
    console = Console()
    try:
        problem = trio.run(
            _run_dev,
            target,
            app,
            workers,
            concurrency,
            router or app.router,
            results,
            refresh,
            console,
        )
    except BaseException as exc:
        leaf = _leaf(exc)
        if isinstance(leaf, ClusterStartError):
            raise click.ClickException(str(leaf)) from None
        if isinstance(leaf, KeyboardInterrupt):
            return  # a Ctrl-C in the last moments: everything has stopped already
        if leaf is not exc:
            raise leaf from None
        raise
    if problem is not None:
        raise click.ClickException(f"{problem}; stopped the others")
    console.print("stopped", highlight=False)
