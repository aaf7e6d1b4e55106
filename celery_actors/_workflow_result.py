"""The handle of a running workflow: its final value, its members, its progress."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import attrs

from jumpstarter import ActorRef, AskTimeout

from ._clock import FOREVER
from ._errors import ResultTimeout, value_of
from ._protocol import AwaitResult, TaskResult
from ._workflow_messages import (
    AwaitWorkflow,
    GetWorkflowStatus,
    RevokeWorkflow,
    WatchWorkflow,
    WorkflowStatus,
    WorkflowUpdate,
)

if TYPE_CHECKING:
    from ._app import Client

__all__ = ["STATUS_PAGE", "WorkflowResult"]

STATUS_PAGE = 1000
"""Members asked for at once by :meth:`WorkflowResult.status`."""


@attrs.define(eq=False)
class WorkflowResult:
    """The handle of a workflow (a canvas that was started): wait for its value, see
    every member's state, follow its members' results as they come, revoke it.

    Attributes:
        id: the workflow's id.
        state: the last state seen (``running`` until the end was seen).
    """

    id: str
    client: Client = attrs.field(repr=False)
    state: str = "running"
    document: TaskResult | None = attrs.field(default=None, repr=False)

    @property
    def _workflows(self) -> ActorRef:
        return self.client.workflows()

    async def wait(self, timeout: float | None = None) -> TaskResult:
        """Wait for the workflow's own final :class:`TaskResult` (``task`` is
        ``celery.workflow``): its state, and its value or error.

        Raises:
            ResultTimeout: it did not end in time (it goes on).
        """
        route = self.client.route
        where, question = (
            (self._workflows, AwaitWorkflow(self.id))
            if route is None
            else (route.inbox, AwaitResult(self.id))  # published to it when it ends
        )
        try:
            document: TaskResult = await where.ask(
                question, timeout=FOREVER if timeout is None else timeout
            )
        except AskTimeout as exc:
            raise ResultTimeout(f"workflow {self.id} did not end within {timeout} s") from exc
        self.document = document
        self.state = document.state
        return document

    async def get(self, timeout: float | None = None) -> Any:
        """Wait for the workflow to end and return its value: the last step's for a
        chain, the list of members' for a group, the body's for a chord.

        Raises:
            TaskFailed: it failed; the error names the member that failed.
            TaskRevoked: it was revoked.
            ResultTimeout: it did not end in time.
        """
        document = await self.wait(timeout)
        return value_of(document)

    async def status(self, *, members: bool = True) -> WorkflowStatus:
        """The workflow's state, how many members are in each state, and each member's
        state (see :class:`MemberStatus`), fetched in pages; ``members=False`` leaves
        the members out (the counts are there), for a large workflow watched often."""
        status: WorkflowStatus | None = await self._workflows.ask(
            GetWorkflowStatus(self.id, 0, STATUS_PAGE if members else 0)
        )
        if status is None:
            raise LookupError(f"no workflow {self.id!r} is known to the router")
        found = list(status.members)
        while members and len(found) < status.total:
            page: WorkflowStatus | None = await self._workflows.ask(
                GetWorkflowStatus(self.id, len(found), STATUS_PAGE)
            )
            if page is None or not page.members:
                break
            found.extend(page.members)
        self.state = status.state
        return attrs.evolve(status, members=found)

    async def results(self, timeout: float | None = None) -> AsyncIterator[TaskResult]:
        """The members' final results as they come (partial results), until the
        workflow ends; ``timeout`` bounds each wait for the next ones.

        Raises:
            ResultTimeout: nothing came within ``timeout`` seconds.
        """
        since = 0
        while True:
            try:
                update: WorkflowUpdate = await self._workflows.ask(
                    WatchWorkflow(self.id, since), timeout=FOREVER if timeout is None else timeout
                )
            except AskTimeout as exc:
                raise ResultTimeout(
                    f"workflow {self.id}: no member ended within {timeout} s"
                ) from exc
            for result in update.results:
                yield result
            since += len(update.results)
            if update.done:
                if update.result is not None:
                    self.document = update.result
                    self.state = update.result.state
                return

    async def revoke(self, *, terminate: bool = False) -> bool:
        """Revoke every member not ended yet (with ``terminate``, cancel running ones);
        the workflow ends ``revoked``. ``False`` if it had ended already."""
        revoked: bool = await self._workflows.ask(RevokeWorkflow(self.id, terminate))
        return revoked
