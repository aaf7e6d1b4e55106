"""``jumpstart run MODULE:APP --role ...``: the options an app takes on the command line."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from jumpstarter import ActorSystem, RunPlan

from ._app import _broker_settings
from ._sinks import JsonLinesSink, MemorySink, Sink, SQLiteSink

if TYPE_CHECKING:
    from ._app import App

__all__ = ["plan"]


@click.command("jumpstart run MODULE:APP", add_help_option=False)
@click.option(
    "--role",
    type=click.Choice(["all", "router", "worker"]),
    default="all",
    show_default=True,
    help="router: hold calls and results; worker: run tasks; all: both in one process.",
)
@click.option(
    "--router",
    "router_address",
    metavar="HOST:PORT",
    help="Where the router listens (router, all) or is found (worker).  "
    "[default: the app's router setting]",
)
@click.option(
    "--broker",
    "brokers",
    metavar="URL",
    multiple=True,
    help="Take calls from this broker (amqp://USER:PASSWORD@HOST:PORT/VHOST); repeat for "
    "several.  [default: the app's broker setting]",
)
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="Calls a worker runs at once.",
)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    help="Of those, def tasks running at once (threads).  [default: up to 10]",
)
@click.option(
    "--prefetch",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="A worker takes up to concurrency x prefetch calls at once: more keeps a busy "
    "worker fed with short tasks.",
)
@click.option(
    "--recent-ids",
    type=click.IntRange(min=0),
    default=100,
    show_default=True,
    help="Finished runs a worker remembers, to answer a run it receives twice.",
)
@click.option(
    "--boxed",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="Child processes a worker runs boxed tasks in.",
)
@click.option(
    "--results",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Store final results in this file too: .jsonl (JSON lines) or .sqlite/.db "
    "(SQLite).  [default: in memory only]",
)
@click.option(
    "--workflows",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The SQLite file where the router keeps workflows (chains, groups, chords), so "
    "that it resumes them when started again; 'memory' keeps them in memory only.  "
    "[default: APP.workflows.sqlite3 in the current directory]",
)
def _options(**options: Any) -> dict[str, Any]:
    return options


def plan(app: App, arguments: Sequence[str]) -> RunPlan:
    """Parse the app's options from ``jumpstart run`` and say what to run."""
    with _options.make_context(_options.name or "", list(arguments)) as ctx:
        options = ctx.params
    role: str = options["role"]
    if options["brokers"]:
        app.brokers = _broker_settings(list(options["brokers"]))
    router_address: str = options["router_address"] or app.router
    concurrency: int = options["concurrency"]
    threads: int | None = options["threads"]
    worker_options: dict[str, Any] = {
        "warm_shutdown": True,  # SIGTERM: running calls may finish (docs/workers.md)
        "recent_ids": options["recent_ids"],
        "boxed": options["boxed"],
        "prefetch": options["prefetch"],
    }
    sinks: list[Sink] = [MemorySink()]
    results: Path | None = options["results"]
    if results is not None:
        if results.suffix == ".jsonl":
            sinks.append(JsonLinesSink(results))
        elif results.suffix in (".sqlite", ".db"):
            sinks.append(SQLiteSink(results))
        else:
            raise click.BadParameter(
                f"{str(results)!r}: name a .jsonl file (JSON lines) or a .sqlite or .db "
                "file (SQLite)",
                param_hint="'--results'",
            )

    workflows: Path | None = options["workflows"]
    if workflows is None:
        workflows = Path(f"{app.name}.workflows.sqlite3")

    async def run_router(system: ActorSystem) -> None:
        store = None if str(workflows) == "memory" else workflows
        router = await app.start_router(system, sinks=sinks, workflows=store)
        print(f"{app.name}: router at {router.address}", flush=True)
        if role == "all":
            await app.start_worker(
                system, router, concurrency=concurrency, threads=threads, **worker_options
            )

    async def run_worker(system: ActorSystem) -> None:
        address = f"amqp://{router_address}/{app.name}/user/router"
        worker = await app.start_worker(
            system, address, concurrency=concurrency, threads=threads, **worker_options
        )
        print(f"{app.name}: worker at {worker.address} for {address}", flush=True)

    if role == "worker":
        return RunPlan(
            factory=run_worker,
            name=f"{app.name}-worker-{os.getpid()}",
            listen="127.0.0.1:0",
            registry=app.registry,
            remote=app.remote,
        )
    return RunPlan(
        factory=run_router,
        name=app.name,
        listen=router_address,
        registry=app.registry,
        remote=app.remote,
    )
