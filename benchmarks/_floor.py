"""Machine floor: what the interpreter and trio cost here, before any actor runtime.

These figures put the others in context on a given machine: no runtime can
tell faster than its sender can build a message and await a coroutine, and
no trio task switch is cheaper than a checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import trio

from ._common import Ping, clock

__all__ = ["SCENARIOS"]


async def _nothing(message: Any) -> None:
    return None


def floor(n: int, warmup: int) -> dict[str, Any]:
    """Per-operation costs of the building blocks every benchmark uses."""

    async def main() -> dict[str, Any]:
        start = clock()
        for i in range(n):
            Ping(i)
        ping = clock() - start
        start = clock()
        for i in range(n):
            await _nothing(Ping(i))
        sender = clock() - start
        rounds = max(1, n // 20)
        start = clock()
        for _ in range(rounds):
            await trio.lowlevel.checkpoint()
        checkpoint = clock() - start
        start = clock()
        for _ in range(rounds):
            with trio.move_on_after(30):  # noqa: ASYNC100 -- the scope's own cost is measured
                pass
        scope = clock() - start
        return {
            "n": n,
            "ping_us": ping / n / 1e3,
            "sender_us": sender / n / 1e3,
            "sender_msgs_per_s": n / (sender / 1e9),
            "checkpoint_us": checkpoint / rounds / 1e3,
            "cancel_scope_us": scope / rounds / 1e3,
        }

    return trio.run(main)


SCENARIOS: dict[str, Callable[[int, int], dict[str, Any]]] = {"floor": floor}
