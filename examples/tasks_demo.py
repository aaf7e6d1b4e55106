"""The README's demo: a router and two worker processes, linked peer-to-peer, run a few
hundred task calls.

Run it from the repository's root::

    python -m examples.tasks_demo            # or: nox -s demo
    python -m examples.tasks_demo --calls 1000 --workers 4

It starts the router and the workers with :func:`celery_actors.open_dev_cluster` (each
is a ``jumpstart run examples.tasks_demo:app --role ...`` process; no broker), sends
the calls from this process with a progress bar, waits for every result, and prints a
summary: what each worker did, what each task gave, and how long it took. Some calls
fail on purpose: ``demo.fetch`` fails now and then and is retried; ``demo.parse`` of
text that is not a number fails at a ``poisonous()`` step and is quarantined.

The same app runs under ``jumpstart dev examples.tasks_demo:app``, with calls sent by
``jumpstart call demo.add --args '[2, 3]' --app examples.tasks_demo:app --wait``.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

import click
import trio
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from celery_actors import App, AsyncResult, RetryPolicy, TaskResult, open_dev_cluster, poisonous

ROOT = Path(__file__).resolve().parents[1]
"""The workers import this module from the repository's root."""

# Task names are given: this module runs as __main__ here, and as examples.tasks_demo
# in the workers, and a call names its task the same way on both sides.
app = App("tasks-demo")


@app.task(name="demo.add")
async def add(x: int, y: int) -> int:
    """I/O-bound: waits a little, as a request to another service would."""
    await trio.sleep(random.uniform(0.05, 0.15))
    return x + y


@app.task(name="demo.checksum")
def checksum(text: str, rounds: int) -> str:
    """CPU-bound: a plain def, run in a worker thread."""
    digest = text.encode()
    for _ in range(rounds):
        digest = hashlib.sha256(digest).digest()
    return digest.hex()[:12]


_cold_pages: set[int] = set()
"""The pages the flaky upstream service of ``fetch`` has seen, in this worker process."""


@app.task(
    name="demo.fetch",
    retry=RetryPolicy(max_retries=4, interval_start=0.02, interval_step=0.02, interval_max=0.1),
)
async def fetch(page: int) -> int:
    """Flaky: the upstream service times out the first time a worker asks it for one
    page in three; the call is retried (on either worker), and gets it."""
    await trio.sleep(random.uniform(0.02, 0.08))
    if page % 3 == 0 and page not in _cold_pages:
        _cold_pages.add(page)
        raise ConnectionError(f"page {page}: the upstream service timed out")
    return page * 10


@app.task(name="demo.parse")
async def parse(text: str) -> int:
    """Bad input stays bad: text that is not a number fails at once, quarantined."""
    with poisonous():
        return int(text)


def calls_to_send(count: int) -> list[tuple[Any, tuple[Any, ...]]]:
    """``count`` calls: half ``add``, the rest ``checksum``, ``fetch`` and ``parse``
    (one ``parse`` in five of text that is not a number)."""
    calls: list[tuple[Any, tuple[Any, ...]]] = []
    for number in range(count):
        kind = number % 10
        if kind < 5:
            calls.append((add, (number, number)))
        elif kind < 7:
            calls.append((checksum, (f"block-{number}", 2000)))
        elif kind < 9:
            calls.append((fetch, (number,)))
        else:
            calls.append((parse, (f"#{number}" if number % 50 == 49 else str(number),)))
    return calls


def _worker_name(address: str) -> str:
    parts = address.split("/")
    return parts[3] if len(parts) > 3 else address


async def run(calls: int, workers: int, console: Console) -> None:
    """Start the processes, send the calls, print the summary."""
    started = time.monotonic()

    def log(role: str, line: str) -> None:
        console.print(Text.assemble((f"  [{role}] ", "dim"), line), highlight=False)

    console.print(f"starting a router and {workers} workers of examples.tasks_demo:app...")
    async with open_dev_cluster(
        "examples.tasks_demo:app", workers=workers, concurrency=8, cwd=ROOT, log=log
    ) as cluster:
        pids = ", ".join(f"{role} pid {pid}" for role, pid in cluster.pids.items())
        console.print(
            f"up in {time.monotonic() - started:.1f} s: router at {cluster.router} ({pids})",
            highlight=False,
        )
        async with app.connect(cluster.router) as client:
            results: list[TaskResult] = []
            progress = Progress(
                TextColumn("{task.description:<8}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console,
            )
            with progress:
                sending = progress.add_task("sent", total=calls)
                finishing = progress.add_task("finished", total=calls)
                first_sent = time.monotonic()

                async def wait_for(handle: AsyncResult) -> None:
                    results.append(await handle.wait(timeout=120))
                    progress.advance(finishing)

                async with trio.open_nursery() as nursery:
                    for task, args in calls_to_send(calls):
                        handle = await task.apply_async(args)
                        progress.advance(sending)
                        nursery.start_soon(wait_for, handle)
                wall = time.monotonic() - first_sent
            stats = await client.stats()
            quarantined = await client.quarantine()

    per_worker = Table(title="what each worker did", title_justify="left")
    for column in ("worker", "runs", "succeeded", "failed", "retried"):
        per_worker.add_column(column, justify="left" if column == "worker" else "right")
    for worker in stats.workers:
        per_worker.add_row(
            _worker_name(worker.address),
            str(worker.received),
            str(worker.succeeded),
            str(worker.failed),
            str(worker.retried),
        )
    per_worker.add_section()
    per_worker.add_row(
        Text("total", style="bold"),
        str(sum(worker.received for worker in stats.workers)),
        str(sum(worker.succeeded for worker in stats.workers)),
        str(sum(worker.failed for worker in stats.workers)),
        str(sum(worker.retried for worker in stats.workers)),
    )
    console.print(per_worker)

    per_task = Table(title="what each task gave", title_justify="left")
    for column in ("task", "calls", "succeeded", "failed", "retries"):
        per_task.add_column(column, justify="left" if column == "task" else "right")
    by_task: dict[str, Counter[str]] = {}
    for result in results:
        counts = by_task.setdefault(result.task, Counter())
        counts["calls"] += 1
        counts[result.state] += 1
        counts["retries"] += result.attempt
    for name in sorted(by_task):
        counts = by_task[name]
        per_task.add_row(
            name,
            *(str(counts[key]) for key in ("calls", "succeeded", "failed", "retries")),
        )
    console.print(per_task)

    console.print(
        f"{len(results)} calls in {wall:.2f} s ({len(results) / wall:.0f} calls/s) on "
        f"{workers} worker processes; {len(quarantined)} quarantined for inspection:",
        highlight=False,
    )
    shown = 3
    for kept in quarantined[:shown]:
        error = kept.result.error
        arguments = ", ".join(map(repr, kept.call.args))
        console.print(
            f"  {kept.call.task}({arguments}) -> "
            + (f"{error.type}: {error.message}" if error is not None else "?"),
            highlight=False,
        )
    if len(quarantined) > shown:
        console.print(f"  and {len(quarantined) - shown} more", highlight=False)
    console.print("stopped the router and the workers; done", highlight=False)


@click.command()
@click.option("--calls", type=click.IntRange(min=1), default=300, show_default=True)
@click.option("--workers", type=click.IntRange(min=1), default=2, show_default=True)
def main(calls: int, workers: int) -> None:
    """Run the demo: a router, worker processes, and CALLS task calls."""
    trio.run(run, calls, workers, Console())


if __name__ == "__main__":
    main()
