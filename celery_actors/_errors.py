"""The exceptions of celery_actors."""

from __future__ import annotations

import signal
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from jumpstarter import JumpstarterError

if TYPE_CHECKING:
    from ._protocol import TaskResult

__all__ = [
    "BlockingCallInTrio",
    "BoxedTaskCrashed",
    "CeleryActorsError",
    "NotConnected",
    "ResultTimeout",
    "SoftTimeLimitExceeded",
    "TaskFailed",
    "TaskNotRegistered",
    "TaskRevoked",
    "TimeLimitExceeded",
    "WorkflowInvalid",
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


def value_of(result: TaskResult) -> Any:
    """The value of a final result; raises :class:`TaskRevoked` or :class:`TaskFailed`
    for one that did not succeed."""
    if result.state == "succeeded":
        return result.value
    if result.state == "revoked":
        raise TaskRevoked(result)
    raise TaskFailed(result)


class ResultTimeout(CeleryActorsError, TimeoutError):
    """``result.get(timeout=...)`` ran out of time; the call may still finish later."""


class TimeLimitExceeded(CeleryActorsError):
    """A task ran past its ``time_limit`` and was cancelled."""


class SoftTimeLimitExceeded(CeleryActorsError):
    """Raised *inside* a task that ran past its ``soft_time_limit``, so it can clean up.

    Catch it in the task body to tidy up, and even return a value: the call then
    succeeds. Left uncaught, it fails the call without retry. The hard ``time_limit``
    (if any) still applies while the task cleans up. See ``docs/tasks.md`` for where
    it arrives in ``async def``, ``def`` and boxed tasks.
    """

    def __init__(self, message: str = "the task ran past its soft_time_limit") -> None:
        super().__init__(message)


class BoxedTaskCrashed(CeleryActorsError):
    """The child process running a boxed call died before answering (a segfault,
    ``os._exit``, a signal); the worker is unharmed and runs other calls.

    The call follows the task's retry policy, like any unexpected error: give the
    task ``retry=NO_RETRY`` if a crash means that running it again would crash again.

    Attributes:
        returncode: the process's exit status; ``-N`` for signal ``N``.
    """

    def __init__(self, task: str, call_id: str, returncode: int) -> None:
        if returncode < 0:
            try:
                how = f"was killed by signal {signal.Signals(-returncode).name} ({-returncode})"
            except ValueError:
                how = f"was killed by signal {-returncode}"
        else:
            how = f"exited with code {returncode}"
        super().__init__(
            f"the boxed process running {task}[{call_id}] {how} before answering; "
            "the worker goes on, and the call follows the task's retry policy"
        )
        self.returncode = returncode


class BlockingCallInTrio(CeleryActorsError, RuntimeError):
    """A blocking client's method was called inside a trio run, whose loop it would stop."""


class WorkflowInvalid(CeleryActorsError, ValueError):
    """A :class:`~celery_actors.Workflow`'s canvas cannot run as it is: unknown tasks,
    a canvas inside itself, a step given a value its function does not take, arguments
    that do not fit a function. Nothing was started.

    Attributes:
        name: the workflow's name (``None`` if it has none).
        problems: every problem found, one line each: the step's path (``w.1.h.0``,
            see ``docs/workflows.md``), its task, what is wrong and what to do.
    """

    def __init__(self, name: str | None, problems: Sequence[str]) -> None:
        self.name = name
        self.problems = list(problems)
        what = f"workflow {name!r}" if name is not None else "this workflow"
        count = f"{len(self.problems)} problem{'s' if len(self.problems) != 1 else ''}"
        lines = "\n".join(f"  {problem}" for problem in self.problems)
        super().__init__(f"{what} cannot run ({count}):\n{lines}")


def _public(*classes: type) -> None:
    """Name errors after the package that exports them: a failure stores its
    exception's ``module.QualName`` (``celery_actors.TimeLimitExceeded``), and the
    private module is no name for users to match on."""
    for cls in classes:
        cls.__module__ = "celery_actors"


_public(
    CeleryActorsError,
    NotConnected,
    TaskNotRegistered,
    TaskFailed,
    TaskRevoked,
    ResultTimeout,
    TimeLimitExceeded,
    SoftTimeLimitExceeded,
    BoxedTaskCrashed,
    BlockingCallInTrio,
    WorkflowInvalid,
)
