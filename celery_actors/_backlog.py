"""Backlogs: where a publisher keeps the messages a broker has not accepted yet.

A publisher puts every message in its backlog first and takes it out once a broker has
accepted it, so the backlog holds exactly what is still owed to the brokers, in the
order it was published. In memory by default; :class:`SQLiteBacklog` keeps it on disk,
so that messages published while every broker was unreachable survive a restart of the
publishing process too.
"""

from __future__ import annotations

import collections
import os
import pickle
import sqlite3
import threading
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import attrs

__all__ = ["Backlog", "MemoryBacklog", "Outgoing", "SQLiteBacklog"]


@attrs.frozen
class Outgoing:
    """A message owed to a broker: publish ``message`` to ``address`` as ``message_id``.

    ``seq`` orders the backlog; it is the backlog's to give (see :meth:`Backlog.add`).
    """

    address: str
    message: Any
    message_id: str
    seq: int = 0


@runtime_checkable
class Backlog(Protocol):
    """What a publisher needs from a backlog. Calls are quick and synchronous."""

    def add(self, address: str, message: Any, message_id: str) -> Outgoing:
        """Append a message at the end; return it with its place in line."""

    def head(self, limit: int) -> list[Outgoing]:
        """The first ``limit`` messages, oldest first (they stay in the backlog)."""

    def remove(self, items: list[Outgoing]) -> None:
        """Forget messages a broker has accepted."""

    def __len__(self) -> int: ...

    def close(self) -> None:
        """Release what the backlog holds open (a file)."""


class MemoryBacklog:
    """A backlog in memory: lost if the process ends before the broker comes back."""

    def __init__(self) -> None:
        self._items: collections.OrderedDict[int, Outgoing] = collections.OrderedDict()
        self._next = 0

    def __repr__(self) -> str:
        return f"<MemoryBacklog: {len(self)} messages>"

    def add(self, address: str, message: Any, message_id: str) -> Outgoing:
        self._next += 1
        item = Outgoing(address, message, message_id, self._next)
        self._items[item.seq] = item
        return item

    def head(self, limit: int) -> list[Outgoing]:
        out: list[Outgoing] = []
        for item in self._items.values():
            if len(out) >= limit:
                break
            out.append(item)
        return out

    def remove(self, items: list[Outgoing]) -> None:
        for item in items:
            self._items.pop(item.seq, None)

    def __len__(self) -> int:
        return len(self._items)

    def close(self) -> None:
        self._items.clear()


class SQLiteBacklog:
    """A backlog in an SQLite file: what was not published yet is published after a
    restart of the process, first.

    Messages are stored pickled: the file is the process's own, to be read back by
    the same application (never load one from elsewhere). It is created if needed;
    one process at a time should use it.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS backlog ("
            "seq INTEGER PRIMARY KEY AUTOINCREMENT, address TEXT NOT NULL, "
            "message_id TEXT NOT NULL, body BLOB NOT NULL)"
        )

    def __repr__(self) -> str:
        return f"<SQLiteBacklog {str(self.path)!r}: {len(self)} messages>"

    def add(self, address: str, message: Any, message_id: str) -> Outgoing:
        body = pickle.dumps(message)
        with self._lock:
            cursor = self._db.execute(
                "INSERT INTO backlog (address, message_id, body) VALUES (?, ?, ?)",
                (address, message_id, body),
            )
        return Outgoing(address, message, message_id, cursor.lastrowid or 0)

    def head(self, limit: int) -> list[Outgoing]:
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, address, message_id, body FROM backlog ORDER BY seq LIMIT ?",
                (limit,),
            ).fetchall()
        return [
            Outgoing(address, pickle.loads(body), message_id, seq)
            for seq, address, message_id, body in rows
        ]

    def remove(self, items: list[Outgoing]) -> None:
        with self._lock:
            self._db.executemany("DELETE FROM backlog WHERE seq = ?", [(i.seq,) for i in items])

    def __len__(self) -> int:
        with self._lock:
            (count,) = self._db.execute("SELECT COUNT(*) FROM backlog").fetchone()
        return int(count)

    def close(self) -> None:
        with self._lock:
            self._db.close()
