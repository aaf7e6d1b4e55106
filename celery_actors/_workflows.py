"""The router's workflow actor: the process manager of chains, groups and chords.

It owns every workflow's state (a :class:`~._workflow_state.WorkflowState` each) and
keeps it in a :class:`~._workflow_store.WorkflowStore`. Member calls are ordinary
calls: it hands them to the router (:class:`Admit`), which runs them like any other
and tells it their final results (:class:`MembersEnded`). Results are recorded in the
store, in batches, *before* the workflows go on, so that a router killed at any moment
rebuilds each workflow from its store when it starts again, makes again only the calls
still outstanding, and counts every result once.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Mapping
from typing import Any

import attrs

from jumpstarter import Actor, ActorRef, JumpstarterError, MailboxFull, PendingReply, handler

from ._canvas import iter_tasks
from ._clock import wall_time
from ._protocol import NextStep, Revoke, TaskCall, TaskError, TaskResult
from ._workflow_messages import (
    UPDATE_LIMIT,
    WORKFLOW_TASK,
    AwaitWorkflow,
    GetWorkflowStatus,
    MemberStatus,
    RevokeWorkflow,
    StartWorkflow,
    WatchWorkflow,
    WorkflowStatus,
    WorkflowUpdate,
)
from ._workflow_state import WorkflowState, member_id, member_paths
from ._workflow_store import StoredWorkflow, WorkflowStore

__all__ = ["WORKFLOWS_NAME", "Admit", "GetStates", "MembersEnded", "WorkflowEnded", "Workflows"]

_logger = logging.getLogger("celery_actors.workflows")

WORKFLOWS_NAME = "workflows"
"""The workflow actor's name: ``/user/workflows``, beside the router."""

ENDED_KEPT = 1_000
"""Ended workflows kept in memory; the store answers about older ones."""


@attrs.frozen
class Admit:
    """Told to the router: run these member calls. ``fresh`` calls were never made
    before (no sink can hold their result yet). ``ahead`` has, by call id, the chain's
    next steps to send with a call to its worker (see ``Run.then``)."""

    calls: list[TaskCall]
    fresh: bool
    ahead: dict[str, list[NextStep]] = attrs.Factory(dict)


@attrs.frozen
class MembersEnded:
    """Told by the router: these member calls have final results."""

    results: list[TaskResult]


@attrs.frozen
class WorkflowEnded:
    """Told to the router: publish this workflow's result to ``reply_to`` (over a
    broker)."""

    reply_to: str
    result: TaskResult


@attrs.frozen
class GetStates:
    """Asked of the router: the states of these calls."""

    ids: list[str]


@attrs.define
class _Flow:
    state: WorkflowState
    outcome: TaskResult | None = None
    waiters: list[PendingReply] = attrs.Factory(list)
    watchers: list[tuple[int, PendingReply]] = attrs.Factory(list)
    revoking: bool = False
    reply_to: str | None = None
    ahead: set[str] = attrs.Factory(set)  # ids of calls sent ahead, not made yet
    started_ahead: set[str] = attrs.Factory(set)  # of those, started before a revocation


def workflow_of(call_id: str) -> str:
    return call_id.split("/", 1)[0]


class Workflows(Actor):
    """Runs workflows for one router; see the module docstring."""

    mailbox_size = 10_000

    def __init__(self, tasks: Mapping[str, Any], router: ActorRef, store: WorkflowStore) -> None:
        self.tasks = tasks
        self.router = router
        self.store = store
        self.flows: dict[str, _Flow] = {}
        self.ended: collections.OrderedDict[str, None] = collections.OrderedDict()

    async def on_start(self) -> None:
        for stored in await self.store.unfinished():
            flow = self._rebuild(stored)
            calls = list(flow.state.outstanding.values())
            if calls:
                self._admit(calls, fresh=False)
            if flow.state.done:  # its last result was recorded, its end was not
                await self._end(flow)
            _logger.info(
                "workflow %s resumed: %d results recorded, %d calls made again",
                stored.id,
                len(stored.results),
                len(calls),
            )

    async def on_stop(self) -> None:
        await self.store.aclose()

    def _rebuild(self, stored: StoredWorkflow) -> _Flow:
        state = WorkflowState(stored.id, stored.canvas, stored.args, stored.kwargs, self.tasks)
        state.start()
        for result in stored.results:
            state.ended(result)
        flow = self.flows[stored.id] = _Flow(
            state, outcome=stored.outcome, reply_to=stored.reply_to
        )
        return flow

    # -- starting

    @handler
    async def start_workflow(self, msg: StartWorkflow) -> bool:
        problem = None
        unknown = sorted({name for name in iter_tasks(msg.canvas) if name not in self.tasks})
        if "/" in msg.id:
            problem = f"workflow id {msg.id!r}: an id must not contain '/'"
        elif unknown:
            problem = (
                f"the canvas calls tasks the router does not know: {', '.join(unknown)}; "
                "check the names, or register the tasks with @app.task where the router runs"
            )
        if problem is not None:
            if msg.reply_to is None:
                raise ValueError(problem)
            # From a broker: refused, as a failed workflow (raising would have the
            # broker deliver it again and again).
            error = TaskError(type="builtins.ValueError", message=problem)
            refused = TaskResult(
                id=msg.id, task=WORKFLOW_TASK, state="failed", error=error, finished=wall_time()
            )
            self._publish(_Flow(WorkflowState(msg.id, msg.canvas), refused, reply_to=msg.reply_to))
            return True
        if msg.id in self.flows:
            return True  # started again: it runs once
        stored = StoredWorkflow(
            id=msg.id, canvas=msg.canvas, args=msg.args, kwargs=msg.kwargs, reply_to=msg.reply_to
        )
        if not await self.store.begin(stored):
            known = await self.store.load(msg.id)
            if known is not None and msg.id not in self.flows:
                flow = self._rebuild(known)
                if flow.outcome is not None:  # ended: its result, again
                    self._publish(flow)
            return True
        state = WorkflowState(msg.id, msg.canvas, msg.args, msg.kwargs, self.tasks)
        flow = self.flows[msg.id] = _Flow(state, reply_to=msg.reply_to)
        calls = state.start()
        if calls:
            self._admit(calls, fresh=True)
        if state.done:  # nothing to call (an empty group, say)
            await self._end(flow)
        return True

    def _admit(self, calls: list[TaskCall], *, fresh: bool) -> None:
        ahead: dict[str, list[NextStep]] = {}
        for call in calls:
            flow = self.flows.get(workflow_of(call.id))
            if flow is None:
                continue
            if call.id in flow.ahead:  # sent ahead with the step before it already
                flow.ahead.discard(call.id)
                continue
            steps = flow.state.next_steps(call.id)
            if steps:
                ahead[call.id] = steps
                flow.ahead.update(step.call.id for step in steps)
        admit = Admit(calls, fresh, ahead)
        try:
            self.router.tell_nowait(admit)
        except MailboxFull:  # rare: let a task wait for room rather than lose them
            self.start_task(self.router.tell, admit)

    # -- results

    @handler
    async def members_ended(self, msg: MembersEnded) -> None:
        """Record the results (the router sends them in batches: one transaction
        each), then let their workflows go on."""
        batch = []
        for result in msg.results:  # each is recorded once: those still outstanding
            flow = self.flows.get(workflow_of(result.id))
            if flow is not None and result.id in flow.state.outstanding:
                batch.append(result)
        await self.store.record([(workflow_of(result.id), result) for result in batch])
        calls: list[TaskCall] = []
        touched: dict[str, _Flow] = {}
        for result in batch:
            flow = self.flows.get(workflow_of(result.id))
            if flow is None or flow.outcome is not None:
                continue
            if flow.ahead and result.state != "succeeded":  # its worker did not go on
                flow.ahead.difference_update(s.call.id for s in flow.state.next_steps(result.id))
            calls.extend(self._advance(flow, flow.state.ended(result)))
            touched[flow.state.id] = flow
        if calls:
            self._admit(calls, fresh=True)
        for flow in touched.values():
            self._update_watchers(flow)
            if flow.state.done:
                await self._end(flow)

    def _advance(self, flow: _Flow, calls: list[TaskCall]) -> list[TaskCall]:
        """The calls to make of those the workflow asks for. While it is being
        revoked, only those a worker had started ahead of the revocation (they run on,
        as running members do, and their results stand); the others end revoked at
        once."""
        if not flow.revoking:
            return calls
        made: list[TaskCall] = []
        while calls:
            more: list[TaskCall] = []
            for call in calls:
                if call.id in flow.started_ahead:
                    made.append(call)
                    continue
                error = TaskError(type="celery_actors.TaskRevoked", message="workflow revoked")
                more.extend(
                    flow.state.ended(TaskResult.of(call, "revoked", wall_time(), error=error))
                )
            calls = more
        return made

    async def _end(self, flow: _Flow) -> None:
        state = flow.state
        failure = state.failure
        outcome = TaskResult(
            id=state.id,
            task=WORKFLOW_TASK,
            state=state.state,  # type: ignore[arg-type]
            value=state.value,
            error=None if failure is None else failure.error,
            finished=wall_time(),
        )
        await self.store.end(state.id, outcome)
        flow.outcome = outcome
        self._publish(flow)
        waiters, flow.waiters = flow.waiters, []
        for waiter in waiters:
            waiter.succeed(outcome)
        self._update_watchers(flow)
        self.ended[state.id] = None
        while len(self.ended) > ENDED_KEPT:
            old, _ = self.ended.popitem(last=False)
            self.flows.pop(old, None)

    def _publish(self, flow: _Flow) -> None:
        """Over a broker: have the router publish the workflow's result."""
        if flow.reply_to is None or flow.outcome is None:
            return
        ended = WorkflowEnded(flow.reply_to, flow.outcome)
        try:
            self.router.tell_nowait(ended)
        except MailboxFull:
            self.start_task(self.router.tell, ended)

    def _update_watchers(self, flow: _Flow) -> None:
        if not flow.watchers:
            return
        results = flow.state.arrived  # sliced, not copied, for each watcher
        keep = []
        for since, watcher in flow.watchers:
            if len(results) > since or flow.outcome is not None:
                page = results[since : since + UPDATE_LIMIT]
                done = flow.outcome is not None and since + len(page) == len(results)
                watcher.succeed(
                    WorkflowUpdate(results=page, done=done, result=flow.outcome if done else None)
                )
            else:
                keep.append((since, watcher))
        flow.watchers = keep

    # -- questions

    async def _flow(self, id: str) -> _Flow | None:
        flow = self.flows.get(id)
        if flow is None:
            stored = await self.store.load(id)
            if stored is not None:
                flow = self._rebuild(stored)
                self.ended[id] = None
        return flow

    @handler
    async def await_workflow(self, msg: AwaitWorkflow) -> TaskResult | None:
        flow = await self._flow(msg.id)
        if flow is None:
            raise LookupError(f"no workflow {msg.id!r} was started on this router")
        if flow.outcome is not None:
            return flow.outcome
        flow.waiters.append(self.reply_later())
        return None

    @handler
    async def watch_workflow(self, msg: WatchWorkflow) -> WorkflowUpdate | None:
        flow = await self._flow(msg.id)
        if flow is None:
            raise LookupError(f"no workflow {msg.id!r} was started on this router")
        flow.watchers.append((msg.since, self.reply_later()))
        self._update_watchers(flow)
        return None

    @handler
    async def get_workflow_status(self, msg: GetWorkflowStatus) -> WorkflowStatus | None:
        flow = await self._flow(msg.id)
        if flow is None:
            return None
        state = flow.state
        outstanding = list(state.outstanding)
        live: dict[str, str] = {}
        if outstanding and flow.outcome is None:
            try:
                states: list[str] = await self.router.ask(GetStates(outstanding))
            except JumpstarterError:
                states = ["pending"] * len(outstanding)
            live = dict(zip(outstanding, states, strict=True))
        members = []
        counts: collections.Counter[str] = collections.Counter()
        everyone = list(member_paths(state.canvas))
        for path, _task in everyone:
            id = member_id(state.id, path)
            result = state.results.get(id)
            if result is not None:
                counts[result.state] += 1
            elif id in state.outstanding:
                counts[live.get(id, "pending")] += 1
            else:
                counts["waiting" if flow.outcome is None else "skipped"] += 1
        for path, task in everyone[msg.offset : msg.offset + msg.limit]:
            id = member_id(state.id, path)
            result = state.results.get(id)
            if result is not None:
                members.append(
                    MemberStatus(
                        path=path,
                        task=result.task,
                        id=id,
                        state=result.state,
                        value=result.value,
                        error=result.error,
                    )
                )
            elif id in state.outstanding:
                members.append(
                    MemberStatus(path=path, task=task, id=id, state=live.get(id, "pending"))
                )
            else:
                waiting = "waiting" if flow.outcome is None else "skipped"
                members.append(MemberStatus(path=path, task=task, id=id, state=waiting))
        return WorkflowStatus(
            id=state.id,
            state=state.state if flow.outcome is None else flow.outcome.state,
            members=members,
            total=len(everyone),
            counts=dict(counts),
            result=flow.outcome,
        )

    @handler
    async def revoke_workflow(self, msg: RevokeWorkflow) -> bool:
        flow = await self._flow(msg.id)
        if flow is None or flow.outcome is not None:
            return False
        flow.revoking = True
        # The steps sent ahead too: a worker would run them after the outstanding ones.
        for id in [*flow.state.outstanding, *flow.ahead]:
            try:
                stopped = await self.router.ask(Revoke(id, msg.terminate))
            except JumpstarterError as exc:
                _logger.warning("could not revoke member %s of workflow %s: %s", id, msg.id, exc)
                continue
            if not stopped and id in flow.ahead:
                flow.started_ahead.add(id)
        return True
