"""One workflow's progress: which calls to make next, given the results so far.

A pure state machine (no I/O, no clock of its own): :meth:`WorkflowState.start` gives
the first calls, :meth:`WorkflowState.ended` takes a member's final result and gives
the calls it makes possible, until :attr:`WorkflowState.outcome` is set. The same
canvas, inputs and results, fed in the same order, always give the same calls with
the same ids, so a router that restarts rebuilds a workflow by replaying the results
it had recorded, and only the calls still outstanding are made again.

Each node of the canvas has a path (``w`` for the root, ``w.0`` for a chain's first
step or a group's first member, ``w.h`` and ``w.b`` for a chord's header and body,
``w.e`` for an error handler); a member call's id is ``<workflow id>/<path>``.

A chain's step that is a single call knows the plain calls that follow it
(:meth:`WorkflowState.next_steps`): the router sends them with the step, and the
worker runs them one after the other without waiting for the router in between. The
workflow still takes each of their results through :meth:`WorkflowState.ended`, in
order, as if it had made their calls itself.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Protocol

import attrs

from ._calls import new_call
from ._canvas import STARMAP_TASK, Canvas, Chain, Chord, Chunks, Fanout, Group, Signature
from ._protocol import NextStep, TaskCall, TaskError, TaskResult

__all__ = ["STEPS_AHEAD", "Failure", "WorkflowState", "member_id", "member_paths"]

ROOT = "w"

STEPS_AHEAD = 8
"""How many of a chain's next steps go with a step to its worker, at most."""


class _TaskDefaults(Protocol):
    queue: str
    priority: int


@attrs.frozen
class Failure:
    """Why a node of the canvas failed: the error, its state (``failed`` or
    ``revoked``), and the member call where it started."""

    error: TaskError
    state: str
    task: str
    id: str


_Then = Callable[[Any, "Failure | None"], None]
_Start = Callable[[str, _Then], None]  # start a member at a path, then call back


def member_id(workflow: str, path: str) -> str:
    return f"{workflow}/{path}"


class WorkflowState:
    """The progress of workflow ``id`` running ``canvas`` with these inputs."""

    def __init__(
        self,
        id: str,
        canvas: Canvas,
        args: list[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        tasks: Mapping[str, _TaskDefaults] | None = None,
    ) -> None:
        self.id = id
        self.canvas = canvas
        self.args = list(args or [])
        self.kwargs = dict(kwargs or {})
        self.tasks = tasks or {}
        self.outstanding: dict[str, TaskCall] = {}  # made, not ended
        self.results: dict[str, TaskResult] = {}  # member results, by call id
        self.arrived: list[TaskResult] = []  # the same, in the order they came
        self.paths: dict[str, str] = {}  # call id -> path, of every call made
        self.done = False
        self.value: Any = None
        self.failure: Failure | None = None
        self._then: dict[str, _Then] = {}
        self._made: list[TaskCall] = []
        self._chained: dict[str, tuple[list[Canvas], int, str]] = {}  # call id -> its chain

    # -- driving it

    def start(self) -> list[TaskCall]:
        """The first calls to make."""
        self._activate(self.canvas, ROOT, self.args, self.kwargs, self._finish)
        return self._take_made()

    def ended(self, result: TaskResult) -> list[TaskCall]:
        """Take member call ``result.id``'s final result; return the calls to make
        next. A result of a call not outstanding (seen already) changes nothing."""
        then = self._then.pop(result.id, None)
        if then is None:
            return []
        self.outstanding.pop(result.id, None)
        self._chained.pop(result.id, None)
        self.results[result.id] = result
        self.arrived.append(result)
        if result.state == "succeeded":
            then(result.value, None)
        else:
            error = result.error or TaskError(type="celery_actors.TaskFailed", message="")
            then(None, Failure(error, result.state, result.task, result.id))
        return self._take_made()

    def next_steps(self, id: str, limit: int = STEPS_AHEAD) -> list[NextStep]:
        """The steps that follow outstanding call ``id`` in its chain, up to ``limit``
        of them, that its worker may run right after it (see :class:`NextStep`):
        single calls that start as soon as they are given their input (no
        ``countdown``, ``eta`` or ``expires``, which count from when a call is made).
        Empty if the call is not a chain's step, or the next step is not such a call."""
        chained = self._chained.get(id)
        if chained is None:
            return []
        steps, index, path = chained
        ahead: list[NextStep] = []
        for number in range(index + 1, min(len(steps), index + 1 + limit)):
            node = steps[number]
            if not isinstance(node, Signature) or not _starts_when_given(node):
                break
            call = self._new_call(f"{path}.{number}", node, list(node.args), dict(node.kwargs))
            ahead.append(NextStep(call=call, immutable=node.immutable))
        return ahead

    @property
    def state(self) -> str:
        if not self.done:
            return "running"
        if self.failure is None:
            return "succeeded"
        return "revoked" if self.failure.state == "revoked" else "failed"

    # -- how nodes run

    def _take_made(self) -> list[TaskCall]:
        made, self._made = self._made, []
        return made

    def _finish(self, value: Any, failure: Failure | None) -> None:
        self.done = True
        self.value = value
        self.failure = failure

    def _activate(
        self, node: Canvas, path: str, args: list[Any], kwargs: dict[str, Any], then: _Then
    ) -> None:
        """Run ``node`` with ``args`` (its input) first and ``kwargs`` merged in; call
        ``then(value, failure)`` when it ends."""
        if node.error_handler is not None:
            then = self._guarded(node.error_handler, path, then)
        if isinstance(node, Signature):
            if node.immutable:
                args, kwargs = [], {}
            self._call(path, node, [*args, *node.args], {**node.kwargs, **kwargs}, then)
        elif isinstance(node, Chain):
            self._chain(node.steps, 0, path, args, kwargs, then)
        elif isinstance(node, Group):
            members: list[_Start] = [
                functools.partial(self._start_node, member, args, kwargs) for member in node.members
            ]
            self._join(path, members, "group", then)
        elif isinstance(node, Fanout):
            template = node.template
            if template.error_handler is None:
                prefix = [] if template.immutable else args
                merged = template.kwargs if template.immutable else {**template.kwargs, **kwargs}
                members = [
                    functools.partial(
                        self._start_call, template, [*prefix, *own, *template.args], merged
                    )
                    for own in node.arguments
                ]
            else:
                members = [
                    functools.partial(
                        self._start_node,
                        attrs.evolve(template, args=[*own, *template.args]),
                        args,
                        kwargs,
                    )
                    for own in node.arguments
                ]
            self._join(path, members, "group", then)
        elif isinstance(node, Chunks):
            template, size = node.template, node.size
            chunks = [node.items[i : i + size] for i in range(0, len(node.items), size)]
            starter = Signature(task=STARMAP_TASK, options=template.options)
            self._join(
                path,
                [
                    functools.partial(
                        self._start_call,
                        starter,
                        [template.task, chunk, template.args, template.kwargs],
                        {},
                    )
                    for chunk in chunks
                ],
                "chunks",
                then,
            )
        else:
            self._chord(node, path, args, kwargs, then)

    def _start_node(
        self, node: Canvas, args: list[Any], kwargs: dict[str, Any], path: str, then: _Then
    ) -> None:
        self._activate(node, path, args, kwargs, then)

    def _start_call(
        self, node: Signature, args: list[Any], kwargs: dict[str, Any], path: str, then: _Then
    ) -> None:
        self._call(path, node, args, kwargs, then)

    def _guarded(self, handler: Canvas, path: str, then: _Then) -> _Then:
        """``then`` for a node with an error handler: on failure the handler runs with
        the error, and its result (if it succeeds) stands for the node's."""

        def after(value: Any, failure: Failure | None) -> None:
            if failure is None:
                then(value, None)
                return

            def handled(value: Any, handler_failure: Failure | None) -> None:
                if handler_failure is None:
                    then(value, None)
                else:  # the first error is the one that matters
                    then(None, failure)

            self._activate(handler, f"{path}.e", [failure.error], {}, handled)

        return after

    def _call(
        self, path: str, node: Signature, args: list[Any], kwargs: dict[str, Any], then: _Then
    ) -> None:
        call = self._new_call(path, node, args, kwargs)
        id = call.id
        self.outstanding[id] = call
        self.paths[id] = path
        self._then[id] = then
        self._made.append(call)

    def _new_call(
        self, path: str, node: Signature, args: list[Any], kwargs: dict[str, Any]
    ) -> TaskCall:
        defaults = self.tasks.get(node.task)
        options = dict(node.options)
        if defaults is not None:
            options.setdefault("queue", defaults.queue)
            options.setdefault("priority", defaults.priority)
        return new_call(node.task, args, kwargs, task_id=member_id(self.id, path), **options)

    def _chain(
        self,
        steps: list[Canvas],
        index: int,
        path: str,
        args: list[Any],
        kwargs: dict[str, Any],
        then: _Then,
    ) -> None:
        if index == len(steps):
            then(args[0] if args else None, None)
            return

        def step_ended(value: Any, failure: Failure | None) -> None:
            if failure is not None:
                then(None, failure)
            else:
                self._chain(steps, index + 1, path, [value], {}, then)

        step = steps[index]
        if isinstance(step, Signature):
            self._chained[member_id(self.id, f"{path}.{index}")] = (steps, index, path)
        self._activate(step, f"{path}.{index}", args, kwargs, step_ended)

    def _join(
        self,
        path: str,
        starts: list[_Start],
        label: str,
        then: _Then,
    ) -> None:
        """Start every member; once all have ended, ``then`` gets their values in
        order, or the failure of the first that failed."""
        count = len(starts)
        if count == 0:
            then([], None)
            return
        values: list[Any] = [None] * count
        failures: list[Failure | None] = [None] * count
        left = [count]

        def member_ended(index: int, value: Any, failure: Failure | None) -> None:
            values[index] = value
            failures[index] = failure
            left[0] -= 1
            if left[0]:
                return
            for number, failed in enumerate(failures):
                if failed is not None:
                    then(None, _member_failed(label, number, failed))
                    return
            then(values, None)

        for index, start in enumerate(starts):
            start(f"{path}.{index}", functools.partial(member_ended, index))

    def _chord(
        self, node: Chord, path: str, args: list[Any], kwargs: dict[str, Any], then: _Then
    ) -> None:
        def header_ended(values: Any, failure: Failure | None) -> None:
            if failure is not None:
                then(None, _relabel(failure, "chord"))
            else:
                self._activate(node.body, f"{path}.b", [values], {}, then)

        self._activate(node.header, f"{path}.h", args, kwargs, header_ended)


def _starts_when_given(node: Signature) -> bool:
    return not any(node.options.get(option) is not None for option in _TIMED)


_TIMED = ("countdown", "eta", "expires")


def _member_failed(label: str, number: int, failure: Failure) -> Failure:
    cause = failure.error
    if cause.type == "celery_actors.MemberFailed":
        because = cause.message
    else:
        because = f"{failure.task}[{failure.id}] {failure.state}: {cause.type}: {cause.message}"
    error = TaskError(
        type="celery_actors.MemberFailed",
        message=f"member {number} of the {label} failed: {because}",
        traceback=cause.traceback,
    )
    return attrs.evolve(failure, error=error)


def _relabel(failure: Failure, label: str) -> Failure:
    error = failure.error
    if error.type == "celery_actors.MemberFailed" and error.message.startswith("member "):
        number, _, rest = error.message[len("member ") :].partition(" of the ")
        _, _, rest = rest.partition(" failed: ")
        message = f"member {number} of the {label} failed: {rest}"
        return attrs.evolve(failure, error=attrs.evolve(error, message=message))
    return failure


def member_paths(canvas: Canvas, path: str = ROOT) -> Iterator[tuple[str, str]]:
    """Every member call the canvas may make, as ``(path, task)``, in order (error
    handlers included: they run only if needed)."""
    node = canvas
    if isinstance(node, Signature):
        yield path, node.task
    elif isinstance(node, Chain):
        for index, step in enumerate(node.steps):
            yield from member_paths(step, f"{path}.{index}")
    elif isinstance(node, Group):
        for index, member in enumerate(node.members):
            yield from member_paths(member, f"{path}.{index}")
    elif isinstance(node, Fanout):
        for index in range(len(node.arguments)):
            if node.template.error_handler is None:
                yield f"{path}.{index}", node.template.task
            else:
                yield from member_paths(node.template, f"{path}.{index}")
    elif isinstance(node, Chunks):
        for index in range(0, (len(node.items) + node.size - 1) // node.size):
            yield f"{path}.{index}", STARMAP_TASK
    else:
        yield from member_paths(node.header, f"{path}.h")
        yield from member_paths(node.body, f"{path}.b")
    if node.error_handler is not None:
        yield from member_paths(node.error_handler, f"{path}.e")
