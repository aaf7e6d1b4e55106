"""The messages of workflows: starting one, waiting for it, watching its members.

They go to the router's workflow actor (``/user/workflows`` beside ``/user/router``),
and are part of the protocol like the messages of :mod:`._protocol`
(``docs/protocol.md``); the canvas itself travels as the classes of :mod:`._canvas`.
"""

from __future__ import annotations

from typing import Any

import attrs

from ._canvas import Canvas
from ._protocol import TaskError, TaskResult, _message

__all__ = [
    "WORKFLOW_TASK",
    "AwaitWorkflow",
    "GetWorkflowStatus",
    "MemberStatus",
    "RevokeWorkflow",
    "StartWorkflow",
    "WatchWorkflow",
    "WorkflowStatus",
    "WorkflowUpdate",
]

WORKFLOW_TASK = "celery.workflow"

UPDATE_LIMIT = 1000
"""Members' results in one :class:`WorkflowUpdate` at most (messages stay small)."""
"""The ``task`` of a workflow's own result document (its id is the workflow's)."""


@_message("start-workflow")
@attrs.frozen(kw_only=True)
class StartWorkflow:
    """Run ``canvas`` as workflow ``id``, with ``args`` and ``kwargs`` given to its
    first tasks. Answered ``True`` once the workflow is stored (durably, with a
    durable store); a workflow started again with the same id runs once. Over a
    broker, the workflow's own result is published to ``reply_to`` when it ends."""

    id: str
    canvas: Canvas
    args: list[Any] = attrs.field(factory=list)
    kwargs: dict[str, Any] = attrs.field(factory=dict)
    reply_to: str | None = None


@_message("await-workflow")
@attrs.frozen
class AwaitWorkflow:
    """Answered with the workflow's final :class:`TaskResult` (``task`` is
    ``celery.workflow``) once it has ended."""

    id: str


@_message("watch-workflow")
@attrs.frozen
class WatchWorkflow:
    """Answered with a :class:`WorkflowUpdate` holding the members' final results
    after the first ``since`` of them (at most :data:`UPDATE_LIMIT`), as soon as there
    is one (or the workflow has ended)."""

    id: str
    since: int = 0


@_message("workflow-update")
@attrs.frozen(kw_only=True)
class WorkflowUpdate:
    """Members' final results, in the order they ended; ``done`` once the workflow
    has ended and these are the last of them (then ``result`` is its own)."""

    results: list[TaskResult]
    done: bool
    result: TaskResult | None = None


@_message("get-workflow-status")
@attrs.frozen
class GetWorkflowStatus:
    """Answered with the :class:`WorkflowStatus` of a workflow (``None`` if unknown),
    with its members from ``offset``, at most ``limit`` of them (a large workflow's
    members come in pages)."""

    id: str
    offset: int = 0
    limit: int = 1000


@_message("member-status")
@attrs.frozen(kw_only=True)
class MemberStatus:
    """One member call of a workflow: its path in the canvas (``w.0.h.3``), task, call
    id and state. ``waiting`` means not called yet (its inputs are not ready);
    ``skipped``, that the workflow ended without needing it."""

    path: str
    task: str
    id: str
    state: str
    value: Any = None
    error: TaskError | None = None


@_message("workflow-status")
@attrs.frozen(kw_only=True)
class WorkflowStatus:
    """Where a workflow is: ``running``, or its final state; how many of its members
    are in each state, and the members themselves (a page of them: ``total`` in all).
    """

    id: str
    state: str
    members: list[MemberStatus]
    total: int = 0
    counts: dict[str, int] = attrs.field(factory=dict)
    result: TaskResult | None = None


@_message("revoke-workflow")
@attrs.frozen
class RevokeWorkflow:
    """Revoke every member call of the workflow not ended yet (with ``terminate``,
    cancel those running); it then ends ``revoked``. Answered ``False`` if it had
    ended already."""

    id: str
    terminate: bool = False
