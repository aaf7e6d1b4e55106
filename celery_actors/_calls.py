"""How a call is made: :class:`CallOptions` and :func:`new_call`, shared by tasks, the
canvas, events, sources and the command line."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, TypedDict

from ._clock import FOREVER, wall_time
from ._protocol import TaskCall

__all__ = ["CallOptions", "new_call"]


class CallOptions(TypedDict, total=False):
    """The options of a call (:meth:`Task.apply_async`, :meth:`Task.make_call`).

    Attributes:
        countdown: start no sooner than this many seconds from now.
        eta: start no sooner than this time (seconds since the epoch).
        expires: seconds from now (or, above one year, a time since the epoch) after
            which the call is revoked instead of started.
        priority: 0 to 9; higher starts first among waiting calls (the task's own by
            default).
        queue: the queue the call goes to (brokers); the task's own by default.
        task_id: the call's id; a call sent again with the same id runs once.
    """

    countdown: float | None
    eta: float | None
    expires: float | None
    priority: int | None
    queue: str | None
    task_id: str | None


def new_call(
    task: str,
    args: Sequence[Any] = (),
    kwargs: dict[str, Any] | None = None,
    *,
    countdown: float | None = None,
    eta: float | None = None,
    expires: float | None = None,
    priority: int | None = None,
    queue: str | None = None,
    task_id: str | None = None,
) -> TaskCall:
    """The :class:`TaskCall` of task ``task`` (by name: it may be declared elsewhere)
    with these arguments and :class:`CallOptions`; times follow trio's clock."""
    if countdown is not None:
        eta = wall_time() + countdown
    if expires is not None and expires < FOREVER:
        expires = wall_time() + expires
    return TaskCall(
        id=task_id or uuid.uuid4().hex,
        task=task,
        args=list(args),
        kwargs=dict(kwargs or {}),
        eta=eta,
        expires=expires,
        priority=priority or 0,
        queue=queue or "default",
    )
