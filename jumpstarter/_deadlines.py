"""One task per system enforces the timeouts of pending asks.

A cancel scope per ask costs more than the rest of a local ask put together,
so an ask that does not have to wait for room registers its reply here
instead: a heap of deadlines, watched by one task that fails each reply still
pending at its deadline with :class:`AskTimeout`. Replies answered in time are
left in the heap and dropped lazily (at the top, or when the heap is compacted
after it has doubled), which keeps memory bounded by the number of asks
pending in one timeout window.
"""

from __future__ import annotations

import heapq
import itertools
import math
from typing import Any

import trio
from trio.lowlevel import Abort, current_task, reschedule, wait_task_rescheduled

from ._exceptions import AskTimeout
from ._messages import Reply

__all__ = ["Deadlines", "ask_timeout_text"]

_COMPACT_AT = 1024


def ask_timeout_text(path: str, message: object, timeout: float) -> str:
    """The message of the AskTimeout of an ask of ``message`` to the actor at ``path``."""
    return f"{path} did not answer {type(message).__name__} within {timeout} s"


class Deadlines:
    """The pending asks' deadlines, and the task that enforces them."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Reply, tuple[str, object, float]]] = []
        self._counter = itertools.count()
        self._wake_at = math.inf
        self._parked: trio.lowlevel.Task | None = None
        self._compact_at = _COMPACT_AT

    def add(
        self, deadline: float, reply: Reply, path: str, message: object, timeout: float
    ) -> None:
        """Fail ``reply`` with :class:`AskTimeout` if it is still pending at ``deadline``.

        The error's text is only formatted if the ask does time out.
        """
        heap = self._heap
        heapq.heappush(heap, (deadline, next(self._counter), reply, (path, message, timeout)))
        if len(heap) >= self._compact_at:
            self._compact()
        if deadline < self._wake_at and self._parked is not None:
            task, self._parked = self._parked, None
            reschedule(task)

    def _compact(self) -> None:
        heap = [entry for entry in self._heap if not entry[2].done]
        heapq.heapify(heap)
        self._heap = heap
        self._compact_at = max(_COMPACT_AT, 2 * len(heap))

    async def run(self) -> None:
        """Fail overdue replies, forever; started in the system's nursery."""
        while True:
            heap = self._heap
            now = trio.current_time()
            while heap and (heap[0][2].done or heap[0][0] <= now):
                _, _, reply, ask = heapq.heappop(heap)
                if not reply.done:
                    reply.fail(AskTimeout(ask_timeout_text(*ask)))
            self._wake_at = heap[0][0] if heap else math.inf
            with trio.move_on_at(self._wake_at):
                self._parked = current_task()

                def abort(_: Any) -> Abort:
                    self._parked = None
                    return Abort.SUCCEEDED

                await wait_task_rescheduled(abort)
