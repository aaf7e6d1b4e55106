"""Sinks: where the router stores the final result of each task call.

A sink maps a call id to that call's final :class:`~celery_actors._protocol.TaskResult`,
and keeps one result per id. Delivery is at least once, so after a crash a call may run
again and report a second result: :meth:`Sink.store` then answers ``False`` and writes
nothing. The first result stored wins.

Three sinks come with celery_actors:

* :class:`MemorySink` keeps results in a dict, for tests and for apps that do not need
  results after a restart;
* :class:`JsonLinesSink` appends one JSON object per result to a file that any tool can
  read;
* :class:`SQLiteSink` keeps results in a SQLite table that several processes can share.

To write your own, implement the three methods of :class:`Sink`. The file sinks do
their I/O in worker threads, so a slow disk never blocks the event loop, and every
stored result is on disk (written and synced) before ``store`` returns.

The JSON format
---------------

The file sinks write a result as one JSON object (strict JSON: no ``NaN`` or infinities;
non-ASCII text is written as ``\\u`` escapes)::

    {"id": "...", "task": "...", "state": "succeeded", "value": ...,
     "error": null or {"type": "...", "message": "...", "traceback": "..."},
     "attempt": 0, "retry_in": null or seconds, "quarantined": false,
     "worker": "...", "finished": seconds since the epoch}

``value`` is written as follows:

* ``None``, booleans, integers, finite floats, strings, lists, and dicts with string
  keys, as themselves; tuples as lists;
* ``bytes`` and ``bytearray`` as ``{"$bytes": "<base64>"}``;
* an ``attrs`` instance as ``{"$type": "module.QualName", "<field>": <value>, ...}``, its
  fields written by these same rules;
* a dict key that starts with ``$`` gets one more ``$`` in front (``"$x"`` is written
  ``"$$x"``), so that no dict is mistaken for one of the forms above.

Anything else (a set, a dict with a non-string key, an instance of another class) cannot
be stored, and ``store`` raises :class:`SinkError`: tasks should return plain values.

Reading a result back turns ``$bytes`` into ``bytes`` and drops the extra ``$`` of
escaped keys. Tuples come back as lists, and an ``attrs`` instance comes back as the
plain dict that was written, ``$type`` key included: the reader may not have the class,
and a stored document should not decide which classes get instantiated.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
import os
import sqlite3
import time
from typing import Any, Final, Protocol, cast, get_args, runtime_checkable

import attrs
import trio

from ._errors import CeleryActorsError
from ._protocol import TaskError, TaskResult, TaskState

__all__ = ["JsonLinesSink", "MemorySink", "SQLiteSink", "Sink", "SinkError"]

_logger = logging.getLogger("celery_actors.sinks")

_STATES: Final = frozenset(get_args(TaskState))
_BUSY_TIMEOUT: Final = 30.0
"""Seconds a SQLite sink waits for another connection's write to finish."""


class SinkError(CeleryActorsError):
    """A sink cannot store or read a result.

    The message says why and what to do: return plain values from the task, or fix or
    remove the damaged record, or fix the sink's path.
    """


@runtime_checkable
class Sink(Protocol):
    """A place where final results are stored, once per call id.

    Implement these three methods to write your own sink.
    """

    async def store(self, result: TaskResult) -> bool:
        """Store ``result``, a final result.

        Return ``True`` once it is stored, or ``False`` without writing anything if a
        result with the same id is already stored.
        """
        ...

    async def load(self, id: str) -> TaskResult | None:
        """Return the result stored for call ``id``, or ``None`` if there is none."""
        ...

    async def aclose(self) -> None:
        """Release the sink's resources; the sink cannot be used afterwards."""
        ...


def _check_final(result: TaskResult) -> None:
    if not result.final:
        raise ValueError(
            f"a sink stores final results only, and call {result.id!r} is {result.state!r}"
        )


def _closed() -> trio.ClosedResourceError:
    return trio.ClosedResourceError("this sink is closed")


# -- the JSON mapping


class _Unstorable(Exception):
    pass


def _type_name(value: object) -> str:
    cls = type(value)
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


def _encode(value: object, path: str, active: set[int]) -> object:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _Unstorable(f"{path} is {value!r}, and JSON has no NaN or infinity")
        return value
    if isinstance(value, bytes | bytearray):
        return {"$bytes": base64.b64encode(value).decode("ascii")}
    if isinstance(value, list | tuple | dict) or attrs.has(type(value)):
        if id(value) in active:
            raise _Unstorable(f"{path} contains itself")
        active.add(id(value))
        try:
            return _encode_container(value, path, active)
        finally:
            active.discard(id(value))
    raise _Unstorable(f"{path} is a {_type_name(value)}")


def _encode_container(value: object, path: str, active: set[int]) -> object:
    if isinstance(value, list | tuple):
        return [_encode(item, f"{path}[{i}]", active) for i, item in enumerate(value)]
    if isinstance(value, dict):
        doc: dict[str, object] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise _Unstorable(
                    f"{path} has the key {key!r}, a {_type_name(key)}, and JSON keys are strings"
                )
            doc["$" + key if key.startswith("$") else key] = _encode(
                item, f"{path}[{key!r}]", active
            )
        return doc
    cls = type(value)
    assert attrs.has(cls)
    doc = {"$type": f"{cls.__module__}.{cls.__qualname__}"}
    for field in attrs.fields(cls):
        doc[field.name] = _encode(getattr(value, field.name), f"{path}.{field.name}", active)
    return doc


def _dumps(result: TaskResult) -> str:
    """Return ``result`` as one line of JSON, or raise :class:`SinkError`."""
    try:
        error = result.error
        doc = {
            "id": result.id,
            "task": result.task,
            "state": result.state,
            "value": _encode(result.value, "value", set()),
            "error": None
            if error is None
            else {"type": error.type, "message": error.message, "traceback": error.traceback},
            "attempt": result.attempt,
            "retry_in": result.retry_in,
            "quarantined": result.quarantined,
            "worker": result.worker,
            "finished": result.finished,
        }
        return json.dumps(doc, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    except (_Unstorable, TypeError, ValueError) as exc:
        raise SinkError(
            f"cannot store the result of call {result.id!r} (task {result.task!r}) as JSON: "
            f"{exc}. Return plain values from tasks: None, booleans, numbers, strings, bytes, "
            "lists, dicts with string keys, and attrs instances made of these."
        ) from None


def _decode(doc: object) -> object:
    if isinstance(doc, list):
        return [_decode(item) for item in doc]
    if isinstance(doc, dict):
        if len(doc) == 1 and "$bytes" in doc:
            data = doc["$bytes"]
            if not isinstance(data, str):
                raise ValueError(f"$bytes holds {data!r}, not a base64 string")
            try:
                return base64.b64decode(data, validate=True)
            except binascii.Error:
                raise ValueError(f"$bytes holds {data!r}, not a base64 string") from None
        return {
            (key[1:] if key.startswith("$$") else key): _decode(item) for key, item in doc.items()
        }
    return doc


_REQUIRED: Final = object()


def _get(doc: dict[str, Any], key: str, kinds: tuple[type, ...], default: object) -> Any:
    if key not in doc:
        if default is _REQUIRED:
            raise ValueError(f"the {key!r} field is missing")
        return default
    value = doc[key]
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        raise ValueError(f"the {key!r} field holds {value!r}")
    return value


def _result_from_doc(doc: object) -> TaskResult:
    """Return the result a JSON document describes, or raise :class:`ValueError`."""
    if not isinstance(doc, dict):
        raise ValueError(f"{doc!r} is not a JSON object")
    state = _get(doc, "state", (str,), _REQUIRED)
    if state not in _STATES:
        raise ValueError(f"the 'state' field holds {state!r}")
    error_doc = _get(doc, "error", (dict, type(None)), None)
    error = None
    if error_doc is not None:
        error = TaskError(
            type=_get(error_doc, "type", (str,), _REQUIRED),
            message=_get(error_doc, "message", (str,), _REQUIRED),
            traceback=_get(error_doc, "traceback", (str,), ""),
        )
    retry_in = _get(doc, "retry_in", (int, float, type(None)), None)
    return TaskResult(
        id=_get(doc, "id", (str,), _REQUIRED),
        task=_get(doc, "task", (str,), _REQUIRED),
        state=cast(TaskState, state),
        value=_decode(doc.get("value")),
        error=error,
        attempt=_get(doc, "attempt", (int,), 0),
        retry_in=None if retry_in is None else float(retry_in),
        quarantined=_get(doc, "quarantined", (bool,), False),
        worker=_get(doc, "worker", (str,), ""),
        finished=float(_get(doc, "finished", (int, float), 0.0)),
    )


def _loads(text: str | bytes) -> TaskResult:
    """Parse one JSON document into a result, or raise :class:`ValueError`."""
    try:
        return _result_from_doc(json.loads(text))
    except RecursionError:
        raise ValueError("the document is nested too deeply") from None


# -- the sinks


class MemorySink(trio.abc.AsyncResource):
    """Keeps results in a dict, for as long as the process lives.

    For tests, and for apps that read results soon or never. Results are kept as they
    are, not converted to JSON. With ``limit``, only the ``limit`` most recently stored
    results are kept: the oldest are dropped first, and their ids are forgotten, so a
    late redelivery of a dropped call is stored again.
    """

    def __init__(self, limit: int | None = None) -> None:
        if limit is not None and limit < 1:
            raise ValueError(f"limit must be at least 1 (or None for no limit), not {limit!r}")
        self.limit: Final = limit
        self._results: dict[str, TaskResult] = {}
        self._closed = False

    async def store(self, result: TaskResult) -> bool:
        # Cancellable, but no trip through the scheduler: the router stores every
        # result, and this takes no time.
        await trio.lowlevel.checkpoint_if_cancelled()
        _check_final(result)
        if self._closed:
            raise _closed()
        if result.id in self._results:
            return False
        self._results[result.id] = result
        if self.limit is not None and len(self._results) > self.limit:
            del self._results[next(iter(self._results))]
        return True

    async def load(self, id: str) -> TaskResult | None:
        await trio.lowlevel.checkpoint_if_cancelled()
        if self._closed:
            raise _closed()
        return self._results.get(id)

    async def aclose(self) -> None:
        self._closed = True
        self._results.clear()
        await trio.lowlevel.checkpoint()


class JsonLinesSink(trio.abc.AsyncResource):
    """Appends each result to a file as one line of JSON (see the module's docstring).

    A plain, append-only file that ``grep``, ``jq`` or any language can read. The file
    is read on first use to learn which calls already have a result, so a restarted
    process keeps refusing duplicates; a damaged line, such as the last line of a write
    cut short by a crash, is skipped with a warning on the ``celery_actors.sinks`` logger.
    All results are kept in memory too, to answer :meth:`load`.

    One process writes a file at a time: two sinks open at once on the same file do not
    see each other's results. Use :class:`SQLiteSink` to share results between processes.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path: Final = os.fspath(path)
        self._lock = trio.Lock()
        self._fd: int | None = None
        self._index: dict[str, str] = {}  # call id -> its line, without the newline
        self._newline_first = False  # the file ends with a line cut short
        self._closed = False

    async def store(self, result: TaskResult) -> bool:
        _check_final(result)
        line = _dumps(result)
        async with self._lock:
            fd = await self._open()
            if result.id in self._index:
                return False
            await trio.to_thread.run_sync(self._append, fd, line)
            self._index[result.id] = line
            return True

    async def load(self, id: str) -> TaskResult | None:
        async with self._lock:
            await self._open()
            line = self._index.get(id)
        if line is None:
            return None
        return _loads(line)

    async def aclose(self) -> None:
        self._closed = True
        with trio.CancelScope(shield=True):
            async with self._lock:
                if self._fd is not None:
                    fd, self._fd = self._fd, None
                    await trio.to_thread.run_sync(os.close, fd)
                self._index.clear()
        await trio.lowlevel.checkpoint()

    async def _open(self) -> int:
        # Called with the lock held.
        if self._closed:
            raise _closed()
        if self._fd is None:
            self._fd = await trio.to_thread.run_sync(self._open_sync)
        return self._fd

    def _open_sync(self) -> int:
        try:
            created = not os.path.exists(self.path)
            fd = os.open(
                self.path,
                os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_BINARY", 0),
                0o666,
            )
        except OSError as exc:
            raise SinkError(
                f"cannot open the JSON-lines sink at {self.path!r}: {exc}. "
                "Check that its directory exists and is writable."
            ) from exc
        try:
            if created:
                _sync_directory(self.path)
            self._read()
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _read(self) -> None:
        index: dict[str, str] = {}
        ends_with_newline = True
        with open(self.path, "rb") as file:
            for number, raw in enumerate(file, 1):
                ends_with_newline = raw.endswith(b"\n")
                data = raw.strip()
                if not data:
                    continue
                try:
                    line = data.decode("utf-8")
                    result = _loads(line)
                except ValueError as exc:
                    reason = str(exc)
                    if not ends_with_newline:
                        reason += " (the line is unfinished: a write was probably cut short)"
                    _logger.warning(
                        "%s, line %d, is not a valid result and was skipped: %s. "
                        "Fix or remove the line to silence this warning.",
                        self.path,
                        number,
                        reason,
                    )
                    continue
                index.setdefault(result.id, line)
        self._index = index
        self._newline_first = not ends_with_newline

    def _append(self, fd: int, line: str) -> None:
        data = line.encode("ascii") + b"\n"
        if self._newline_first:
            data = b"\n" + data
        size = os.fstat(fd).st_size
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        except BaseException:
            # Take back a partial line, so that the next line starts on a line of its own.
            try:
                os.ftruncate(fd, size)
            except OSError:
                self._newline_first = True
            raise
        self._newline_first = False


def _sync_directory(path: str) -> None:
    """Make a new file's directory entry durable, where the platform allows it."""
    try:
        fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class SQLiteSink(trio.abc.AsyncResource):
    """Keeps results in a SQLite database, in a table named ``results``.

    Durable, indexed, and shareable: several processes (or several sinks in one process)
    can use the same file at once, and each call id is stored once across all of them.
    The table's columns are ``id`` (the primary key), ``task``, ``state`` and
    ``finished`` for your queries, and ``result``, the result as JSON (see the module's
    docstring). The database uses write-ahead logging, and each result is committed
    before :meth:`store` returns.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path: Final = os.fspath(path)
        self._lock = trio.Lock()
        self._connection: sqlite3.Connection | None = None
        self._closed = False

    async def store(self, result: TaskResult) -> bool:
        _check_final(result)
        text = _dumps(result)
        async with self._lock:
            connection = await self._connect()
            return await trio.to_thread.run_sync(_insert, connection, result, text)

    async def load(self, id: str) -> TaskResult | None:
        async with self._lock:
            connection = await self._connect()
            row = await trio.to_thread.run_sync(_select, connection, id)
        if row is None:
            return None
        try:
            return _loads(row)
        except ValueError as exc:
            raise SinkError(
                f"the result of call {id!r} in {self.path!r} is damaged: {exc}. "
                "Fix or delete its row in the 'results' table."
            ) from None

    async def aclose(self) -> None:
        self._closed = True
        with trio.CancelScope(shield=True):
            async with self._lock:
                if self._connection is not None:
                    connection, self._connection = self._connection, None
                    await trio.to_thread.run_sync(connection.close)
        await trio.lowlevel.checkpoint()

    async def _connect(self) -> sqlite3.Connection:
        # Called with the lock held.
        if self._closed:
            raise _closed()
        if self._connection is None:
            self._connection = await trio.to_thread.run_sync(self._connect_sync)
        return self._connection

    def _connect_sync(self) -> sqlite3.Connection:
        deadline = time.monotonic() + _BUSY_TIMEOUT
        pause = 0.001
        while True:
            try:
                connection = sqlite3.connect(
                    self.path, timeout=_BUSY_TIMEOUT, check_same_thread=False
                )
            except sqlite3.Error as exc:
                raise self._open_error(exc) from exc
            try:
                _set_up(connection)
            except sqlite3.Error as exc:
                connection.close()
                # Where waiting could deadlock (two connections setting up a new file
                # at once, each holding the lock the other's next step needs), SQLite
                # does not wait: it answers "database is locked" at once, and the way
                # out is to start again.
                if _is_busy(exc) and time.monotonic() < deadline:
                    time.sleep(pause)
                    pause = min(pause * 2, 0.1)
                    continue
                raise self._open_error(exc) from exc
            except BaseException:
                connection.close()
                raise
            return connection

    def _open_error(self, exc: sqlite3.Error) -> SinkError:
        return SinkError(
            f"cannot open the SQLite sink at {self.path!r}: {exc}. Check that its directory "
            "exists and is writable, and that the file is a SQLite database."
        )


def _set_up(connection: sqlite3.Connection) -> None:
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")
    connection.execute(
        "CREATE TABLE IF NOT EXISTS results ("
        " id TEXT PRIMARY KEY NOT NULL,"
        " task TEXT NOT NULL,"
        " state TEXT NOT NULL,"
        " finished REAL NOT NULL,"
        " result TEXT NOT NULL)"
    )
    connection.commit()


def _is_busy(exc: sqlite3.Error) -> bool:
    return getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_BUSY


def _insert(connection: sqlite3.Connection, result: TaskResult, text: str) -> bool:
    try:
        cursor = connection.execute(
            "INSERT OR IGNORE INTO results (id, task, state, finished, result)"
            " VALUES (?, ?, ?, ?, ?)",
            (result.id, result.task, result.state, result.finished, text),
        )
        stored = cursor.rowcount == 1
        connection.commit()
    except BaseException:
        connection.rollback()
        raise
    return stored


def _select(connection: sqlite3.Connection, id: str) -> str | None:
    row = connection.execute("SELECT result FROM results WHERE id = ?", (id,)).fetchone()
    return None if row is None else cast(str, row[0])
