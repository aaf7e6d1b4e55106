"""The canvas: signatures, and the chains, groups and chords built from them.

A canvas is a tree of frozen ``attrs`` objects. It is also its own wire format: each
class is a message of the protocol (``celery.signature.v1``, ``celery.chain.v1``...), so
a whole workflow travels to the router as one message, and any AMQP 1.0 client can
write one. The router runs it (see :mod:`._workflow_state`); nothing of it travels
with the task calls, so no message grows with the depth of the tree or with the
results of earlier steps.

How values flow (as in Celery): a step of a chain gets the result of the step before
it as its first argument, every member of a group gets the same input, a chord's body
gets the list of its header's results, and an *immutable* signature (``task.si()``)
gets nothing it was not given.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

import attrs

from ._protocol import _message

if TYPE_CHECKING:
    from ._app import App, Client
    from ._workflow_result import WorkflowResult

__all__ = [
    "STARMAP_TASK",
    "Canvas",
    "Chain",
    "Chord",
    "Chunks",
    "Fanout",
    "Group",
    "Signature",
    "chain",
    "chord",
    "group",
]

STARMAP_TASK = "celery.starmap"
"""The built-in task every app has, which runs one chunk of :class:`Chunks`: it calls a
task's function once per argument list, in one run."""

_OPTIONS = frozenset({"countdown", "eta", "expires", "priority", "queue"})


def _check_options(options: dict[str, Any]) -> dict[str, Any]:
    unknown = set(options) - _OPTIONS
    if unknown:
        raise TypeError(
            f"unknown call option(s) {sorted(unknown)}: a signature takes "
            f"{', '.join(sorted(_OPTIONS))} (a member's id is given by its workflow)"
        )
    return options


class _Node:
    """What every canvas has: composition with ``|``, an error handler, running it."""

    __slots__ = ()

    def __or__(self, other: Canvas) -> Chain:
        return chain(self, other)

    def on_error(self, handler: Canvas) -> Any:
        """A copy of this canvas with ``handler`` run if it fails: the handler gets the
        :class:`TaskError` as its first argument, and if it succeeds, its result stands
        for this canvas's (a chain goes on from it)."""
        return attrs.evolve(self, error_handler=handler)  # type: ignore[misc]

    async def apply_async(
        self,
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
        *,
        app: App | None = None,
        workflow_id: str | None = None,
    ) -> WorkflowResult:
        """Run this canvas as a workflow, with ``args`` (and ``kwargs``) given to the
        first tasks to run, as if added to their signatures; return its handle.

        The workflow goes through the client of the app of its first task (or of
        ``app``): see :meth:`App.client`. A workflow started again with the same
        ``workflow_id`` runs once.
        """
        client = _client_for(self, app)  # type: ignore[arg-type]
        return await client.start_workflow(
            self,  # type: ignore[arg-type]
            args=args,
            kwargs=kwargs,
            workflow_id=workflow_id,
        )

    async def delay(self, *args: Any, **kwargs: Any) -> WorkflowResult:
        """:meth:`apply_async` with these arguments."""
        return await self.apply_async(args, kwargs)


def _client_for(canvas: Canvas, app: App | None) -> Client:
    if app is None:
        from ._app import task_app

        name = next(iter(iter_tasks(canvas)), None)
        app = task_app(name) if name is not None else None
        if app is None:
            raise TypeError(
                "cannot tell which app runs this canvas: pass app= to apply_async, or build "
                "it from tasks of an app (task.s(...))"
            )
    return app.client()


@_message("signature")
@attrs.frozen(kw_only=True)
class Signature(_Node):
    """A task with (some of) its arguments and call options: ``task.s(2)``.

    Attributes:
        task: the task's name.
        args, kwargs: the arguments it is called with; an input (the result of the
            step before, in a chain) comes first.
        options: call options (``countdown``, ``eta``, ``expires``, ``priority``,
            ``queue``).
        immutable: ignore any input (``task.si(...)``).
        error_handler: run if the call fails for good (see :meth:`on_error`).
    """

    task: str
    args: list[Any] = attrs.field(factory=list)
    kwargs: dict[str, Any] = attrs.field(factory=dict)
    options: dict[str, Any] = attrs.field(factory=dict)
    immutable: bool = False
    error_handler: Canvas | None = None

    def clone(self, *args: Any, **kwargs: Any) -> Signature:
        """Partial application: a copy with ``args`` before its own arguments and
        ``kwargs`` over its own (Celery's ``sig.clone(args)``)."""
        return attrs.evolve(self, args=[*args, *self.args], kwargs={**self.kwargs, **kwargs})

    def set(self, **options: Any) -> Signature:
        """A copy with these call options (``countdown``, ``eta``, ``expires``,
        ``priority``, ``queue``) over its own."""
        return attrs.evolve(self, options={**self.options, **_check_options(options)})

    def map(self, items: Iterable[Any]) -> Fanout:
        """A group that calls this signature once per item, the item first."""
        return Fanout(template=self, arguments=[[item] for item in items])

    def starmap(self, items: Iterable[Iterable[Any]]) -> Fanout:
        """A group that calls this signature once per item, the item's values first."""
        return Fanout(template=self, arguments=[list(item) for item in items])

    def chunks(self, items: Iterable[Iterable[Any]], size: int) -> Chunks:
        """Calls of this signature with each item's values, ``size`` of them per task
        run (fewer messages for many small calls); the result is a list of lists."""
        if size < 1:
            raise ValueError(f"chunks of size {size}: the size must be at least 1")
        if self.immutable or self.error_handler is not None:
            raise ValueError("chunks take a plain signature (not immutable, no error handler)")
        return Chunks(template=self, items=[list(item) for item in items], size=size)


@_message("chain")
@attrs.frozen(kw_only=True)
class Chain(_Node):
    """Steps run one after the other, each given the result of the one before; the
    chain's result is the last step's. A failed step ends the chain."""

    steps: list[Canvas]
    error_handler: Canvas | None = None


@_message("group")
@attrs.frozen(kw_only=True)
class Group(_Node):
    """Members run at the same time, each given the group's input; the result is the
    list of their results, in order. The group fails if a member fails (once every
    member has ended), with an error that names the first failed member."""

    members: list[Canvas]
    error_handler: Canvas | None = None


@_message("fanout")
@attrs.frozen(kw_only=True)
class Fanout(_Node):
    """A group of calls of one signature, each with its own arguments first: the
    compact form of ``group(task.s(...) for ...)``, ``task.map()`` and
    ``task.starmap()`` (one template, then only the arguments of each member)."""

    template: Signature
    arguments: list[list[Any]]
    error_handler: Canvas | None = None


@_message("chunks")
@attrs.frozen(kw_only=True)
class Chunks(_Node):
    """Calls of ``template`` with each item's values, ``size`` per task run (the
    built-in task :data:`STARMAP_TASK`); the result is the list of the chunks' lists.
    Chunks ignore any input."""

    template: Signature
    items: list[list[Any]]
    size: int
    error_handler: Canvas | None = None


@_message("chord")
@attrs.frozen(kw_only=True)
class Chord(_Node):
    """A group (the header) whose list of results is given to ``body`` once every
    member has succeeded; the chord's result is the body's. If a member fails the body
    does not run and the chord fails, with an error that names the member."""

    header: Canvas
    body: Canvas
    error_handler: Canvas | None = None


Canvas: TypeAlias = Signature | Chain | Group | Fanout | Chunks | Chord
"""Any canvas: a signature, or a chain, group or chord of canvases."""

_NODES = (Signature, Chain, Group, Fanout, Chunks, Chord)


def _as_canvas(item: Any) -> Canvas:
    if isinstance(item, _NODES):
        return item
    signature = getattr(item, "s", None)
    if callable(signature):  # a Task: called with nothing but its input
        result: Signature = signature()
        return result
    raise TypeError(f"{item!r} is not a canvas: use task.s(...), chain, group or chord")


def _flatten(items: tuple[Any, ...]) -> list[Any]:
    if len(items) == 1 and not isinstance(items[0], _NODES) and isinstance(items[0], Iterable):
        return list(items[0])
    return list(items)


def chain(*steps: Any) -> Chain:
    """``chain(a.s(), b.s(), c.s())`` (or ``a.s() | b.s() | c.s()``): see :class:`Chain`.
    Chains given as steps are merged into this one."""
    flat: list[Canvas] = []
    for step in _flatten(steps):
        canvas = _as_canvas(step)
        if isinstance(canvas, Chain) and canvas.error_handler is None:
            flat.extend(canvas.steps)
        else:
            flat.append(canvas)
    if not flat:
        raise ValueError("a chain needs at least one step")
    return Chain(steps=flat)


def group(*members: Any) -> Group | Fanout:
    """``group(a.s(1), a.s(2))`` or ``group(a.s(i) for i in ...)``: see :class:`Group`.

    Members that are all signatures of one task with the same options are sent in the
    compact form (:class:`Fanout`), so a group of 10,000 calls costs little more on the
    wire than their arguments.
    """
    canvases = [_as_canvas(member) for member in _flatten(members)]
    first = canvases[0] if canvases else None
    if (
        isinstance(first, Signature)
        and len(canvases) > 1
        and all(
            isinstance(member, Signature)
            and member.task == first.task
            and member.kwargs == first.kwargs
            and member.options == first.options
            and member.immutable == first.immutable
            and member.error_handler == first.error_handler
            for member in canvases
        )
    ):
        template = attrs.evolve(first, args=[])
        return Fanout(template=template, arguments=[list(m.args) for m in canvases])  # type: ignore[union-attr]
    return Group(members=canvases)


def chord(header: Any, body: Any) -> Chord:
    """``chord(group_or_members, body)``: see :class:`Chord`."""
    if not isinstance(header, _NODES):
        header = group(header)
    return Chord(header=header, body=_as_canvas(body))


def iter_tasks(canvas: Canvas) -> Iterable[str]:
    """The names of the tasks ``canvas`` calls (error handlers included), each
    as often as it appears in the tree (a fan-out's template once)."""
    stack: list[Canvas] = [canvas]
    while stack:
        node = stack.pop()
        if node.error_handler is not None:
            stack.append(node.error_handler)
        if isinstance(node, Signature):
            yield node.task
        elif isinstance(node, Chain):
            stack.extend(reversed(node.steps))
        elif isinstance(node, Group):
            stack.extend(reversed(node.members))
        elif isinstance(node, (Fanout, Chunks)):
            yield node.template.task
        else:
            stack.append(node.body)
            stack.append(node.header)
