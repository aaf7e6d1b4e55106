"""Sinks: a sink of your own beside the ones celery_actors provides, deduplication by
call id, and results read back after the router restarted.

A router stores each call's final result in every one of its sinks, then answers
whoever waits for it. ``DictSink`` is the smallest complete sink: three async methods.
"""

import json
import sqlite3
import tempfile
from pathlib import Path

import trio

from celery_actors import App, JsonLinesSink, MemorySink, Sink, SQLiteSink, TaskResult

app = App("sinks")
runs = {"charge": 0}


@app.task
async def charge(order: str, cents: int) -> str:
    runs["charge"] += 1
    return f"charged {cents} for {order}"


class DictSink:
    """Keeps the results in a dict you give it, by call id: a stand-in for a sink that
    writes to your own database, or posts each result to a web service."""

    def __init__(self, into: dict[str, TaskResult]) -> None:
        self.into = into

    async def store(self, result: TaskResult) -> bool:
        """Store a final result once per id: ``False`` (and nothing stored) for an id
        that has a result already."""
        if result.id in self.into:
            return False
        self.into[result.id] = result
        return True

    async def load(self, id: str) -> TaskResult | None:
        """The result stored for call ``id``, or ``None``."""
        return self.into.get(id)

    async def aclose(self) -> None:
        """Nothing to release: the dict is the caller's."""


async def main(folder: Path) -> None:
    mine: dict[str, TaskResult] = {}
    assert isinstance(DictSink(mine), Sink)  # Sink is a runtime-checkable protocol
    jsonl, sqlite = folder / "results.jsonl", folder / "results.sqlite"
    sinks = [MemorySink(), JsonLinesSink(jsonl), SQLiteSink(sqlite), DictSink(mine)]

    async with app.local(sinks=sinks):
        first = await charge.apply_async(("order-7", 1250), task_id="charge-order-7")
        again = await charge.apply_async(("order-7", 1250), task_id="charge-order-7")
        print(await first.get(timeout=10), "|", await again.get(timeout=10))
        assert runs["charge"] == 1  # one id, one run, one result in each sink
        other = await charge.delay("order-8", 990)
        await other.get(timeout=10)

    print("in the dict:", {id: result.value for id, result in mine.items()})
    assert set(mine) == {"charge-order-7", other.id}
    document = json.loads(jsonl.read_text().splitlines()[0])
    print("a JSON line:", document)
    assert document["id"] == "charge-order-7" and document["state"] == "succeeded"
    with sqlite3.connect(sqlite) as db:
        rows = db.execute("SELECT id, task, state FROM results ORDER BY finished").fetchall()
    db.close()
    print("SQLite rows:", rows)
    assert [row[0] for row in rows] == ["charge-order-7", other.id]

    # A new router (the process restarted) with a sink on the same file: results of
    # calls it never saw come from the sink, and nothing runs again.
    before = runs["charge"]
    async with app.local(sinks=[JsonLinesSink(jsonl)]) as client:
        stored = await client.result("charge-order-7").wait(timeout=10)
        print("after a restart:", stored.state, stored.value)
        assert stored.value == "charged 1250 for order-7" and runs["charge"] == before


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as folder:
        trio.run(main, Path(folder))
