"""A pure reference evaluator of canvases: what a workflow should end with.

It runs a canvas with plain Python functions, one call after the other, with the
semantics of the router's workflows (``docs/canvas.md``): inputs first, groups in
order, the first failed member (by position) failing its group or chord, error
handlers standing in for what failed. Property-based tests compare what real routers
and workers produce with it (see ``docs/testing.md``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from ._canvas import Canvas, Chain, Chunks, Fanout, Group, Signature
from ._protocol import TaskError, TaskResult

__all__ = ["Evaluation", "evaluate"]


@attrs.frozen
class Evaluation:
    """How a canvas ends: ``state`` (``succeeded`` or ``failed``), and its ``value``
    or the ``error`` that failed it (a ``celery_actors.MemberFailed`` for a group or
    chord, whose ``member`` is the path of the member, as in
    :class:`~celery_actors.MemberStatus`, where the failure started).

    ``calls`` counts the task calls made (error handlers included).
    """

    state: str
    value: Any = None
    error: TaskError | None = None
    member: str | None = None
    calls: int = 0

    def matches(self, result: TaskResult) -> bool:
        """Whether a workflow's final result is this evaluation: same state, and the
        same value or the same type of error."""
        if result.state != self.state:
            return False
        if self.state == "succeeded":
            return bool(result.value == self.value)
        return (
            result.error is not None
            and self.error is not None
            and (result.error.type == self.error.type)
        )


class _Failed(Exception):
    def __init__(self, error: TaskError, member: str) -> None:
        super().__init__(error.message)
        self.error = error
        self.member = member


def evaluate(
    canvas: Canvas,
    functions: Mapping[str, Callable[..., Any]],
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
) -> Evaluation:
    """Evaluate ``canvas`` with ``functions`` (task name → a plain function standing
    for the task), started with ``args`` and ``kwargs``.

    A function that raises fails its call for good (as a task does once its retries
    are spent): the error's type is the exception's ``module.QualName``.
    """
    counter = [0]
    try:
        value = _run(canvas, "w", list(args), dict(kwargs or {}), functions, counter)
    except _Failed as failed:
        return Evaluation("failed", error=failed.error, member=failed.member, calls=counter[0])
    return Evaluation("succeeded", value=value, calls=counter[0])


def _call(
    task: str,
    path: str,
    run: Callable[[Callable[..., Any]], Any],
    functions: Mapping[str, Callable[..., Any]],
    counter: list[int],
) -> Any:
    """One call of ``task``: ``run(its function)``, an exception failing it."""
    counter[0] += 1
    function = functions.get(task)
    if function is None:
        error = TaskError(type="celery_actors.TaskNotRegistered", message=task)
        raise _Failed(error, path)
    try:
        return run(function)
    except Exception as exc:
        raise _Failed(TaskError.from_exception(exc, with_traceback=False), path) from None


def _run(
    node: Canvas,
    path: str,
    args: list[Any],
    kwargs: dict[str, Any],
    functions: Mapping[str, Callable[..., Any]],
    counter: list[int],
) -> Any:
    try:
        return _run_node(node, path, args, kwargs, functions, counter)
    except _Failed as failed:
        if node.error_handler is None:
            raise
        try:
            return _run(node.error_handler, f"{path}.e", [failed.error], {}, functions, counter)
        except _Failed:
            raise failed from None


def _run_node(
    node: Canvas,
    path: str,
    args: list[Any],
    kwargs: dict[str, Any],
    functions: Mapping[str, Callable[..., Any]],
    counter: list[int],
) -> Any:
    if isinstance(node, Signature):
        if node.immutable:
            args, kwargs = [], {}
        call_args, call_kwargs = [*args, *node.args], {**node.kwargs, **kwargs}
        return _call(
            node.task,
            path,
            lambda function: function(*call_args, **call_kwargs),
            functions,
            counter,
        )
    if isinstance(node, Chain):
        value: Any = args[0] if args else None
        for index, step in enumerate(node.steps):
            value = _run(step, f"{path}.{index}", args, kwargs, functions, counter)
            args, kwargs = [value], {}
        return value
    if isinstance(node, Group):
        members = [
            functools.partial(_run_at, member, args, kwargs, functions, counter)
            for member in node.members
        ]
        return _join(path, members, "group")
    if isinstance(node, Fanout):
        template = node.template
        members = [
            functools.partial(
                _run_at,
                attrs.evolve(template, args=[*own, *template.args]),
                args,
                kwargs,
                functions,
                counter,
            )
            for own in node.arguments
        ]
        return _join(path, members, "group")
    if isinstance(node, Chunks):
        template, size = node.template, node.size
        chunks = [node.items[i : i + size] for i in range(0, len(node.items), size)]

        def run_chunk(chunk: list[list[Any]], p: str) -> Any:
            def run(function: Callable[..., Any]) -> list[Any]:
                return [function(*item, *template.args, **template.kwargs) for item in chunk]

            return _call(template.task, p, run, functions, counter)

        return _join(path, [functools.partial(run_chunk, chunk) for chunk in chunks], "chunks")
    try:
        values = _run(node.header, f"{path}.h", args, kwargs, functions, counter)
    except _Failed as failed:
        raise _Failed(_relabel(failed.error, "chord"), failed.member) from None
    return _run(node.body, f"{path}.b", [values], {}, functions, counter)


def _run_at(
    node: Canvas,
    args: list[Any],
    kwargs: dict[str, Any],
    functions: Mapping[str, Callable[..., Any]],
    counter: list[int],
    path: str,
) -> Any:
    return _run(node, path, args, kwargs, functions, counter)


def _join(path: str, members: Sequence[Callable[[str], Any]], label: str) -> list[Any]:
    values: list[Any] = []
    first: tuple[int, _Failed] | None = None
    for index, member in enumerate(members):
        try:
            values.append(member(f"{path}.{index}"))
        except _Failed as failure:
            values.append(None)
            if first is None:
                first = (index, failure)
    if first is not None:
        index, failed = first
        error = TaskError(
            type="celery_actors.MemberFailed",
            message=f"member {index} of the {label} failed: {failed.error.message}",
        )
        raise _Failed(error, failed.member)
    return values


def _relabel(error: TaskError, label: str) -> TaskError:
    if error.type != "celery_actors.MemberFailed":
        return error
    number, _, rest = error.message[len("member ") :].partition(" of the ")
    _, _, rest = rest.partition(" failed: ")
    return attrs.evolve(error, message=f"member {number} of the {label} failed: {rest}")
