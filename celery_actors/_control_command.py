"""``jumpstart control ACTION WORKER_ADDRESS --app MODULE:APP``: a control command to one
worker (a plugin of the ``jumpstart`` command line, like ``call``; see
``docs/workers.md``).

Exit statuses: 0 done; 1 the worker refused the command; 2 a usage error; 3 the worker
cannot be reached.
"""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path
from typing import Any

import attrs
import click
import trio

from jumpstarter import (
    ActorNotFound,
    ActorSystem,
    AskTimeout,
    Keyring,
    MessageRefused,
    PeerUnreachable,
    RemoteSettings,
)

from ._commands import APP_ENV, EXIT_FAILED, EXIT_UNREACHABLE, load_app
from ._control import CONTROL_TIMEOUT, ControlRefused, WorkerControl

__all__ = ["ACTIONS", "control"]

ACTIONS = ("ping", "stats", "revoke", "shutdown", "pause", "resume")


@click.command("control")
@click.argument("action", type=click.Choice(ACTIONS))
@click.argument("worker_address", metavar="WORKER_ADDRESS")
@click.option(
    "--app",
    "app_spec",
    metavar="MODULE:APP",
    envvar=APP_ENV,
    required=True,
    help=f"The app, as MODULE:APP (or the {APP_ENV} environment variable).",
)
@click.option("--id", "task_id", metavar="TASK_ID", help="revoke: the call to cancel.")
@click.option("--cold", is_flag=True, help="shutdown: hand every call back to the router now.")
@click.option(
    "--shutdown-timeout",
    type=click.FloatRange(min=0),
    metavar="SECONDS",
    help="shutdown: how long running calls may finish.  [default: the worker's]",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=CONTROL_TIMEOUT,
    show_default=True,
    metavar="SECONDS",
    help="How long to wait for the worker's answer.",
)
@click.option(
    "--signing-key-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Sign the command with the shared secret in this file, as the worker's node "
    "does.  [default: the app's remote settings]",
)
@click.option(
    "--signing-key-id",
    default="default",
    show_default=True,
    metavar="ID",
    help="The id of that key.",
)
def control(
    action: str,
    worker_address: str,
    app_spec: str,
    task_id: str | None,
    cold: bool,
    shutdown_timeout: float | None,
    timeout: float,
    signing_key_file: Path | None,
    signing_key_id: str,
) -> None:
    """Send a control command to the worker at WORKER_ADDRESS (the address ``jumpstart run
    --role worker`` prints) and print its answer as JSON.

    ACTION is ping (address, uptime, state), stats (calls held and ended, concurrency,
    boxed pool, boot steps), revoke --id TASK_ID (cancel a running call), shutdown
    (warm; --cold to hand every call back now), pause (take no new calls) or resume.

    A worker carries out commands from another process only if its messages are signed:
    give this command the worker's key with --signing-key-file (or set it in the app's
    remote settings).

    \b
    Examples:
        jumpstart control ping amqp://127.0.0.1:40123/proj-worker-7/user/worker --app proj:app
        jumpstart control shutdown ADDRESS --app proj:app --signing-key-file secret.key
    """
    if action == "revoke" and task_id is None:
        raise click.UsageError("revoke needs --id TASK_ID, the call to cancel")
    app = load_app(app_spec)
    remote = app.remote
    if signing_key_file is not None:
        secret = signing_key_file.read_bytes().strip()
        try:
            keyring = Keyring({signing_key_id: secret}, active=signing_key_id)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="'--signing-key-file'") from None
        remote = attrs.evolve(remote or RemoteSettings(), signing=keyring)

    async def send() -> Any:
        name = f"{app.name}-control-{uuid.uuid4().hex[:8]}"
        async with ActorSystem(name, registry=app.registry, remote=remote) as system:
            worker = WorkerControl(system, worker_address, timeout=timeout)
            if action == "ping":
                return await worker.ping()
            if action == "stats":
                return await worker.stats()
            if action == "revoke":
                assert task_id is not None
                return await worker.revoke(task_id)
            if action == "shutdown":
                return await worker.shutdown(cold=cold, timeout=shutdown_timeout)
            if action == "pause":
                return await worker.pause()
            return await worker.resume()

    try:
        answer = trio.run(send)
    except BaseException as exc:
        leaf = _leaf(exc)
        if isinstance(leaf, ControlRefused | MessageRefused):
            click.echo(f"jumpstart: {leaf}", err=True)
            sys.exit(EXIT_FAILED)
        if isinstance(leaf, PeerUnreachable | AskTimeout | ActorNotFound):
            click.echo(
                f"jumpstart: cannot reach the worker at {worker_address} ({leaf}); check the "
                "address that 'jumpstart run --role worker' printed",
                err=True,
            )
            sys.exit(EXIT_UNREACHABLE)
        if leaf is not exc:
            raise leaf from None
        raise
    if attrs.has(type(answer)):
        answer = attrs.asdict(answer)
    click.echo(json.dumps(answer))


def _leaf(error: BaseException) -> BaseException:
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return error
