"""Where the router keeps its workflows: what each runs, and its members' results.

A workflow's state is its canvas and inputs plus the final results of its members so
far, in the order they came: :class:`~._workflow_state.WorkflowState` rebuilds the rest
by replaying them. The router records each member's result before it lets the
workflow go on, so a router killed at any moment starts again from its store, and
counts each result once (a member that ran again after the kill is recorded only the
first time).

:class:`SQLiteWorkflowStore` is the durable default of ``jumpstart run``;
:class:`MemoryWorkflowStore` keeps workflows for the life of the process (the default
of :meth:`App.local`). Any object with the methods of :class:`WorkflowStore` will do.
"""

from __future__ import annotations

import os
import pickle
import sqlite3
from collections.abc import Sequence
from typing import Any, Final, Protocol

import attrs
import trio

from ._canvas import Canvas
from ._errors import CeleryActorsError
from ._protocol import TaskResult

__all__ = [
    "MemoryWorkflowStore",
    "SQLiteWorkflowStore",
    "StoredWorkflow",
    "WorkflowStore",
    "WorkflowStoreError",
]

_LOCK_TIMEOUT = 2.0  # seconds to wait for another router to let go of the file
_INLINE_ROWS = 64  # member results recorded without a thread, at most
_INLINE_BYTES = 64 * 1024  # a workflow (or outcome) stored without a thread, at most


class WorkflowStoreError(CeleryActorsError):
    """A workflow store cannot be opened or read."""


@attrs.frozen(kw_only=True)
class StoredWorkflow:
    """A workflow as stored: what it runs, its members' results in the order they
    were recorded, and its own result once it has ended."""

    id: str
    canvas: Canvas
    args: list[Any]
    kwargs: dict[str, Any]
    results: list[TaskResult] = attrs.field(factory=list)
    outcome: TaskResult | None = None
    reply_to: str | None = None
    """Over a broker: where the workflow's own result is published when it ends."""


class WorkflowStore(Protocol):
    """What the router needs of a workflow store."""

    async def begin(self, workflow: StoredWorkflow) -> bool:
        """Store a new workflow; ``False`` if one with its id is stored already."""

    async def record(self, results: Sequence[tuple[str, TaskResult]]) -> None:
        """Add ``(workflow id, member result)`` pairs, in order, all or none (the
        router records each member's result once)."""

    async def end(self, id: str, outcome: TaskResult) -> None:
        """Mark workflow ``id`` ended with ``outcome``."""

    async def load(self, id: str) -> StoredWorkflow | None:
        """Workflow ``id`` with its results, or ``None``."""

    async def unfinished(self) -> list[StoredWorkflow]:
        """Every workflow that has not ended, oldest first, with its results."""

    async def aclose(self) -> None:
        """Release what the store holds open."""


class MemoryWorkflowStore:
    """Keeps workflows in this process, for as long as it runs.

    Its methods take no time, so they do not pass through the scheduler (they are
    still cancellable)."""

    def __init__(self) -> None:
        self._workflows: dict[str, StoredWorkflow] = {}
        self._seen: set[str] = set()

    async def begin(self, workflow: StoredWorkflow) -> bool:
        await trio.lowlevel.checkpoint_if_cancelled()
        if workflow.id in self._workflows:
            return False
        self._workflows[workflow.id] = workflow
        return True

    async def record(self, results: Sequence[tuple[str, TaskResult]]) -> None:
        await trio.lowlevel.checkpoint_if_cancelled()
        for workflow, result in results:
            stored = self._workflows.get(workflow)
            if stored is not None and result.id not in self._seen:
                self._seen.add(result.id)
                stored.results.append(result)

    async def end(self, id: str, outcome: TaskResult) -> None:
        await trio.lowlevel.checkpoint_if_cancelled()
        stored = self._workflows.get(id)
        if stored is not None:
            self._workflows[id] = attrs.evolve(stored, outcome=outcome)

    async def load(self, id: str) -> StoredWorkflow | None:
        await trio.lowlevel.checkpoint_if_cancelled()
        return self._workflows.get(id)

    async def unfinished(self) -> list[StoredWorkflow]:
        await trio.lowlevel.checkpoint_if_cancelled()
        return [w for w in self._workflows.values() if w.outcome is None]

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint_if_cancelled()


class SQLiteWorkflowStore:
    """Keeps workflows in a SQLite database (tables ``workflows`` and ``members``).

    Each :meth:`record` is one transaction, committed before it returns (write-ahead
    logging, ``synchronous=NORMAL``: a committed transaction survives the process
    being killed). Canvases and results are stored pickled: the file is the router's
    own, not an interface. One router at a time holds the file (an exclusive lock,
    taken when the store opens and kept until it closes): a second one gets a
    :class:`WorkflowStoreError` instead of resuming the same workflows twice.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path: Final = os.fspath(path)
        self._lock = trio.Lock()
        self._connection: sqlite3.Connection | None = None
        self._next = 0  # the sequence number of the next member result

    def __repr__(self) -> str:
        return f"SQLiteWorkflowStore({self.path!r})"

    async def begin(self, workflow: StoredWorkflow) -> bool:
        row = (
            workflow.id,
            pickle.dumps((workflow.canvas, workflow.args, workflow.kwargs, workflow.reply_to)),
        )
        return bool(await self._run(_begin, row, inline=len(row[1]) < _INLINE_BYTES))

    async def record(self, results: Sequence[tuple[str, TaskResult]]) -> None:
        if self._connection is None:
            await self._run(_nothing, None)  # opens it, and reads where the sequence is
        first = self._next
        self._next += len(results)
        rows = [
            (workflow, first + number, pickle.dumps(result))
            for number, (workflow, result) in enumerate(results)
        ]
        await self._run(_record, rows, inline=len(rows) <= _INLINE_ROWS)

    async def end(self, id: str, outcome: TaskResult) -> None:
        row = (pickle.dumps(outcome), id)
        await self._run(_end, row, inline=len(row[0]) < _INLINE_BYTES)

    async def load(self, id: str) -> StoredWorkflow | None:
        found = await self._run(_load, [id])
        return found[0] if found else None

    async def unfinished(self) -> list[StoredWorkflow]:
        found: list[StoredWorkflow] = await self._run(_load, None)
        return found

    async def aclose(self) -> None:
        with trio.CancelScope(shield=True):
            async with self._lock:
                if self._connection is not None:
                    connection, self._connection = self._connection, None
                    await trio.to_thread.run_sync(connection.close)

    async def _run(self, job: Any, argument: Any, *, inline: bool = False) -> Any:
        """Run ``job(connection, argument)``: in a thread, or, for a small ``inline``
        job when the connection is idle, at once (a small commit takes tens of
        microseconds, far less than a trip to a thread and back)."""
        connection = self._connection
        if inline and connection is not None and not self._lock.locked():
            result = job(connection, argument)
            await trio.lowlevel.checkpoint_if_cancelled()
            return result
        async with self._lock:
            if self._connection is None:
                self._connection, self._next = await trio.to_thread.run_sync(self._connect)
            return await trio.to_thread.run_sync(job, self._connection, argument)

    def _connect(self) -> tuple[sqlite3.Connection, int]:
        try:
            connection = sqlite3.connect(self.path, timeout=_LOCK_TIMEOUT, check_same_thread=False)
        except sqlite3.Error as exc:
            raise self._error(exc) from exc
        try:
            # One writer, this one: no file locking at each transaction (and no second
            # router on the same file).
            connection.execute("PRAGMA locking_mode=EXCLUSIVE")
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.execute("BEGIN EXCLUSIVE")  # takes the lock now, in this thread
            connection.execute(
                "CREATE TABLE IF NOT EXISTS workflows ("
                " id TEXT PRIMARY KEY NOT NULL, spec BLOB NOT NULL, outcome BLOB)"
            )
            # One b-tree: each result is one small write. Results come in the order
            # they were recorded (seq); the router records each once.
            connection.execute(
                "CREATE TABLE IF NOT EXISTS members ("
                " workflow TEXT NOT NULL, seq INTEGER NOT NULL, result BLOB NOT NULL,"
                " PRIMARY KEY (workflow, seq)) WITHOUT ROWID"
            )
            connection.commit()
            (last,) = connection.execute("SELECT max(seq) FROM members").fetchone()
        except sqlite3.Error as exc:
            connection.close()
            if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
                raise WorkflowStoreError(
                    f"the workflow store {self.path!r} is in use by another router: give "
                    "each router its own file (jumpstart run --workflows PATH)"
                ) from exc
            raise self._error(exc) from exc
        return connection, (-1 if last is None else last) + 1

    def _error(self, exc: sqlite3.Error) -> WorkflowStoreError:
        return WorkflowStoreError(
            f"cannot open the workflow store {self.path!r}: {exc}. Check that its "
            "directory exists and is writable, and that the file is a SQLite database."
        )


def _begin(connection: sqlite3.Connection, row: tuple[str, bytes]) -> bool:
    with connection:
        cursor = connection.execute("INSERT OR IGNORE INTO workflows (id, spec) VALUES (?, ?)", row)
    return cursor.rowcount == 1


def _nothing(connection: sqlite3.Connection, argument: None) -> None:
    pass


def _record(connection: sqlite3.Connection, rows: list[tuple[str, int, bytes]]) -> None:
    with connection:
        if len(rows) == 1:
            connection.execute(
                "INSERT INTO members (workflow, seq, result) VALUES (?, ?, ?)", *rows
            )
        else:
            connection.executemany(
                "INSERT INTO members (workflow, seq, result) VALUES (?, ?, ?)", rows
            )


def _end(connection: sqlite3.Connection, row: tuple[bytes, str]) -> None:
    with connection:
        connection.execute("UPDATE workflows SET outcome = ? WHERE id = ?", row)


def _load(connection: sqlite3.Connection, ids: list[str] | None) -> list[StoredWorkflow]:
    if ids is None:
        rows = connection.execute(
            "SELECT id, spec, outcome FROM workflows WHERE outcome IS NULL ORDER BY rowid"
        ).fetchall()
    else:
        rows = connection.execute(
            "SELECT id, spec, outcome FROM workflows WHERE id = ?", ids
        ).fetchall()
    found = []
    for id, spec, outcome in rows:
        canvas, args, kwargs, reply_to = pickle.loads(spec)
        results = [
            pickle.loads(result)
            for (result,) in connection.execute(
                "SELECT result FROM members WHERE workflow = ? ORDER BY seq", (id,)
            )
        ]
        found.append(
            StoredWorkflow(
                id=id,
                canvas=canvas,
                args=args,
                kwargs=kwargs,
                results=results,
                outcome=None if outcome is None else pickle.loads(outcome),
                reply_to=reply_to,
            )
        )
    return found
