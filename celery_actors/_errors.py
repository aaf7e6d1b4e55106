"""The exceptions of celery_actors."""

from __future__ import annotations

from typing import TYPE_CHECKING

from jumpstarter import JumpstarterError

if TYPE_CHECKING:
    from ._protocol import TaskResult

__all__ = [
    "CeleryActorsError",
    "NotConnected",
    "ResultTimeout",
    "TaskFailed",
    "TaskNotRegistered",
    "TaskRevoked",
    "TimeLimitExceeded",
]


class CeleryActorsError(JumpstarterError):
    """Base class of the errors celery_actors raises."""


class NotConnected(CeleryActorsError):
    """A task was called with no client of its app open in this trio run."""


class TaskNotRegistered(CeleryActorsError, LookupError):
    """No task of that name is registered in the app (or on any worker)."""


class TaskFailed(CeleryActorsError):
    """The call failed; ``result.get()`` raises this.

    Attributes:
        result: the stored :class:`TaskResult`; ``result.error`` holds the remote
            exception's type, message and traceback.
    """

    def __init__(self, result: TaskResult) -> None:
        error = result.error
        what = f"{error.type}: {error.message}" if error is not None else "no error recorded"
        quarantined = " (quarantined)" if result.quarantined else ""
        super().__init__(f"task {result.task}[{result.id}] failed{quarantined}: {what}")
        self.result = result

    @property
    def traceback(self) -> str:
        """The traceback of the exception in the task, as the worker formatted it."""
        return self.result.error.traceback if self.result.error is not None else ""


class TaskRevoked(CeleryActorsError):
    """The call was revoked (or expired) before it could finish."""

    def __init__(self, result: TaskResult) -> None:
        reason = f": {result.error.message}" if result.error is not None else ""
        super().__init__(f"task {result.task}[{result.id}] was revoked{reason}")
        self.result = result


class ResultTimeout(CeleryActorsError, TimeoutError):
    """``result.get(timeout=...)`` ran out of time; the call may still finish later."""


class TimeLimitExceeded(CeleryActorsError):
    """A task ran past its ``time_limit`` and was cancelled."""
