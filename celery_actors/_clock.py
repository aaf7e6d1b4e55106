"""Wall-clock time that follows trio's clock, so that virtual time governs calls in tests.

Times in messages (a call's ``eta`` and ``expires``, a result's ``finished``) are
seconds since the epoch, since they cross processes. Reading ``time.time()`` directly
would ignore trio's clock: with a ``MockClock`` a countdown would never come due. So
each trio run reads the wall clock once and advances it with ``trio.current_time()``.
"""

from __future__ import annotations

import time
from typing import Final

import trio

from jumpstarter import Backoff

__all__ = ["FOREVER", "RECONNECT", "wall_time"]

_OFFSET: trio.lowlevel.RunVar[float] = trio.lowlevel.RunVar("celery_actors_wall_offset")


def wall_time() -> float:
    """Seconds since the epoch, advancing with this trio run's clock."""
    now = trio.current_time()
    try:
        offset = _OFFSET.get()
    except LookupError:
        offset = time.time() - now
        _OFFSET.set(offset)
    return offset + now


FOREVER: Final = 365 * 24 * 3600.0
"""Seconds that stand for "as long as it takes": the timeout of an ask that waits as
long as a call runs."""

RECONNECT: Final = Backoff(initial=0.1, factor=2.0, maximum=5.0, jitter=0.0)
"""Pauses between attempts to reach a broker or a router that does not answer."""
