"""Workflows: a canvas checked once, drawn, and started as often as needed.

A :class:`Workflow` holds a canvas (a private copy of it, so that changing the lists it
was built from changes nothing) and the app whose tasks it calls. It is checked when
it is made, by walking the canvas the way the router runs it (see
:mod:`._workflow_state`): each node is visited knowing what it is given (nothing, the
workflow's arguments, the value of the step before it, a list of a group's values, a
:class:`TaskError` for an error handler), so that each call can be bound to its
function's signature, and each function's first parameter compared with the type of
what it gets. A node's type is what its task's function declares it returns (a chain's
is its last step's, a group's a list of its members', a chord's its body's). The type
check is deliberately shy: it speaks only when both sides name plain classes (or
generics of them) that cannot match, and says nothing about ``Any``, unions, type
variables or missing annotations.

The same walk runs again, with the actual arguments, each time the workflow starts.
"""

from __future__ import annotations

import collections.abc
import contextlib
import copy
import difflib
import inspect
import json
import reprlib
import sys
import types
import typing
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, final

import attrs

from ._canvas import Chain, Chord, Chunks, Fanout, Group, Signature
from ._errors import WorkflowInvalid
from ._protocol import TaskError
from ._workflow_state import ROOT

if TYPE_CHECKING:
    from ._app import App
    from ._canvas import Canvas
    from ._workflow_result import WorkflowResult

__all__ = ["Workflow"]

_NODES = (Signature, Chain, Group, Fanout, Chunks, Chord)


def _own_copy(canvas: Canvas) -> Canvas:
    """A workflow's copy of its canvas: changing the lists it was built from then
    changes nothing in what was checked."""
    return copy.deepcopy(canvas)


@final
@attrs.frozen(eq=False)
class Workflow:
    """A canvas checked before it runs, that can be drawn and started many times.

    Making one checks the whole canvas, and raises :class:`WorkflowInvalid` listing
    every problem found: tasks the app does not know, a canvas that contains itself,
    arguments that do not fit a task's function, and a step given a value its
    function's annotations refuse (``int`` where it takes ``list[int]``). Once made,
    it does not change (its attributes cannot be set, and it holds its own copy of the
    canvas).

    Example::

        app = App("shop")

        @app.task
        async def unit_price(item: str) -> float: ...

        @app.task
        async def for_quantity(unit: float, quantity: int) -> float: ...

        @app.task
        async def price_list(prices: list[float]) -> str: ...

        quote = Workflow(
            unit_price.s() | chord(for_quantity.map([1, 10, 100]), price_list.s()),
            app=app,
            name="quote",
        )
        print(quote.to_mermaid())
        async with app.local():
            started = [await quote.delay(item) for item in ("tea", "coffee")]
            lists = [await result.get() for result in started]

    Attributes:
        canvas: what it runs.
        app: the app whose tasks it calls, and through whose client it starts.
        name: a name for messages and drawings.
    """

    canvas: Canvas = attrs.field(converter=_own_copy, repr=False)
    app: App = attrs.field(kw_only=True)
    name: str | None = attrs.field(default=None, kw_only=True)

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.canvas, _NODES):
            raise TypeError(
                f"{self.canvas!r} is not a canvas: make a workflow of task.s(...), "
                "chain(...), group(...) or chord(...)"
            )
        problems = _Checker(self.app).check(self.canvas, _START_UNKNOWN)
        if problems:
            raise WorkflowInvalid(self.name, problems)

    async def apply_async(
        self,
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
        workflow_id: str | None = None,
    ) -> WorkflowResult:
        """Start the workflow with ``args`` (and ``kwargs``) given to its first tasks,
        through the app's client (see :meth:`App.client`); return its handle.

        A workflow started again with the same ``workflow_id`` runs once.

        Raises:
            WorkflowInvalid: the arguments do not fit the first tasks (nothing started).
            NotConnected: no client of the app is open.
        """
        args = list(args)
        kwargs = dict(kwargs or {})
        start = _Input(
            len(args),
            type(args[0]) if args else Any,
            frozenset(kwargs),
            "the workflow's arguments",
        )
        problems = _Checker(self.app).check(self.canvas, start)
        if problems:
            raise WorkflowInvalid(self.name, problems)
        client = self.app.client()
        return await client.start_workflow(
            self.canvas, args=args, kwargs=kwargs, workflow_id=workflow_id
        )

    async def delay(self, *args: Any, **kwargs: Any) -> WorkflowResult:
        """:meth:`apply_async` with these arguments."""
        return await self.apply_async(args, kwargs)

    def to_mermaid(self) -> str:
        """The workflow as a Mermaid ``flowchart LR``: a node per call (a fan-out or
        chunks as one node, labelled with the task and how many calls), arrows where
        values flow, a dashed arrow labelled ``on error`` to each error handler."""
        drawing = _Drawing.of(self.canvas)
        title = json.dumps(self.name, ensure_ascii=False)  # a YAML string, quoted
        lines = [] if self.name is None else ["---", f"title: {title}", "---"]
        lines.append("flowchart LR")
        lines.extend(drawing.mermaid_items(drawing.items, "    "))
        for edge in drawing.edges:
            source = edge.cluster or edge.source
            arrow = "-. on error .->" if edge.on_error else "-->"
            lines.append(f"    {source} {arrow} {edge.target}")
        return "\n".join(lines) + "\n"

    def to_dot(self) -> str:
        """The workflow as a Graphviz ``digraph``, drawn as :meth:`to_mermaid` draws it."""
        drawing = _Drawing.of(self.canvas)
        title = "workflow" if self.name is None else _dot_quote(self.name)
        lines = [
            f"digraph {title} {{",
            "    rankdir=LR;",
            "    compound=true;",
            "    node [shape=box];",
        ]
        lines.extend(drawing.dot_items(drawing.items, "    "))
        for edge in drawing.edges:
            attributes = []
            if edge.on_error:
                attributes += ["style=dashed", 'label="on error"']
            if edge.cluster:
                attributes.append(f"ltail=cluster_{edge.cluster}")
            suffix = f" [{', '.join(attributes)}]" if attributes else ""
            lines.append(f"    {edge.source} -> {edge.target}{suffix};")
        lines.append("}")
        return "\n".join(lines) + "\n"


# -- checking


@attrs.frozen
class _Input:
    """What a node is given: ``count`` values put before its own arguments (``None``:
    not known yet), the type of the first (``Any``: not known), the names of keyword
    arguments merged into its own (``None``: not known), and where they come from."""

    count: int | None
    first: Any
    kwargs: frozenset[str] | None
    source: str


_START_UNKNOWN = _Input(None, Any, None, "the workflow's arguments")
_ERROR = _Input(1, TaskError, frozenset(), "the error it handles")


def _value(type_: Any, source: str) -> _Input:
    return _Input(1, type_, frozenset(), source)


class _Placeholder:
    """Stands for an argument whose value is not known when binding a signature."""

    __slots__ = ()


_PLACEHOLDER = _Placeholder()


@attrs.frozen
class _Function:
    """What the check needs of a task's function: its signature and type hints."""

    signature: inspect.Signature | None
    hints: dict[str, Any]


class _Checker:
    """One walk over a canvas, collecting problems (see the module's docstring)."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.problems: list[str] = []
        self._on_path: dict[int, str] = {}  # id of each node being walked -> its path
        self._functions: dict[str, _Function] = {}

    def check(self, canvas: Canvas, given: _Input) -> list[str]:
        self.node(canvas, ROOT, given)
        return self.problems

    def problem(self, path: str, what: str, message: str) -> None:
        self.problems.append(f"{path} ({what}): {message}")

    @contextlib.contextmanager
    def visiting(self, node: object, path: str) -> Iterator[bool]:
        """Enter ``node``; ``False`` (and a problem) if it is already being walked,
        that is if it contains itself."""
        seen = self._on_path.get(id(node))
        if seen is not None:
            self.problem(
                path,
                _what(node),
                f"this {_kind(node)} contains itself (it is also at {seen}): a canvas is "
                "a tree; build the repeated part again (task.s(...)) instead of putting "
                "a canvas inside itself",
            )
            yield False
            return
        self._on_path[id(node)] = path
        try:
            yield True
        finally:
            del self._on_path[id(node)]

    def node(self, node: Any, path: str, given: _Input) -> Any:
        """Check ``node`` and what is below it; return the type of its value."""
        if not isinstance(node, _NODES):
            self.problem(
                path,
                type(node).__name__,
                f"{reprlib.repr(node)} is not a canvas: use task.s(...), chain(...), "
                "group(...) or chord(...)",
            )
            return Any
        with self.visiting(node, path) as fresh:
            if not fresh:
                return Any
            out = self._inside(node, path, given)
            if node.error_handler is not None:
                out = self._handler(node.error_handler, f"{path}.e", out)
            return out

    def _handler(self, handler: Any, path: str, out: Any) -> Any:
        """Check an error handler; the node's type stands only if the handler's is
        the same (the handler's value replaces the node's when it runs)."""
        handled = self.node(handler, path, _ERROR)
        return out if handled == out else Any

    def _inside(self, node: Canvas, path: str, given: _Input) -> Any:
        if isinstance(node, Signature):
            return self.call(node, path, given)
        if isinstance(node, Chain):
            out: Any = given.first if given.count == 1 else Any
            for index, step in enumerate(node.steps):
                step_path = f"{path}.{index}"
                out = self.node(step, step_path, given)
                given = _value(out, f"the step before it ({step_path})")
            return out
        if isinstance(node, Group):
            outs = [
                self.node(member, f"{path}.{index}", given)
                for index, member in enumerate(node.members)
            ]
            return _list_of(outs)
        if isinstance(node, Fanout):
            return self._fanout(node, path, given)
        if isinstance(node, Chunks):
            return self._chunks(node, path)
        header = self.node(node.header, f"{path}.h", given)
        return self.node(node.body, f"{path}.b", _value(header, f"its header ({path}.h)"))

    def _fanout(self, node: Fanout, path: str, given: _Input) -> Any:
        template, member = node.template, f"{path}.*"
        if not isinstance(template, Signature):
            self.problem(path, "group", _NOT_A_TEMPLATE.format(kind=_kind(template)))
            return list
        with self.visiting(template, member) as fresh:
            if not fresh:
                return list
            out = self.call(template, member, given, _by_length(node.arguments, path, 1))
            if template.error_handler is not None:
                out = self._handler(template.error_handler, f"{member}.e", out)
        return list[out] if out is not Any else list  # type: ignore[valid-type]

    def _chunks(self, node: Chunks, path: str) -> Any:
        template, size = node.template, node.size
        if not isinstance(template, Signature):
            self.problem(path, "chunks", _NOT_A_TEMPLATE.format(kind=_kind(template)))
            return list
        if not isinstance(size, int) or size < 1:
            self.problem(
                path,
                template.task,
                f"chunks of size {size!r}: make them with task.chunks(items, size), "
                "a size of at least 1",
            )
            return list
        out = self.call(template, f"{path}.*", _NO_INPUT, _by_length(node.items, path, size))
        return list[list[out]] if out is not Any else list  # type: ignore[valid-type]

    def function(self, name: str) -> _Function | None:
        """The signature and type hints of task ``name``'s function; ``None`` if the
        app has no such task."""
        known = self._functions.get(name)
        if known is not None:
            return known
        task = self.app.tasks.get(name)
        if task is None:
            return None
        try:
            signature: inspect.Signature | None = inspect.signature(task.fn)
        except (TypeError, ValueError):
            signature = None
        try:
            hints = typing.get_type_hints(task.fn)
        except Exception:  # unresolvable annotations: treat them as absent
            hints = {}
        if signature is not None:  # shown in problems with annotations resolved
            signature = signature.replace(
                parameters=[
                    p.replace(annotation=hints.get(p.name, p.annotation))
                    for p in signature.parameters.values()
                ],
                return_annotation=hints.get("return", signature.return_annotation),
            )
        function = self._functions[name] = _Function(signature, hints)
        return function

    def call(
        self,
        node: Signature,
        path: str,
        given: _Input,
        own: dict[int, str] | None = None,
    ) -> Any:
        """Check a call of ``node``, given ``given``, then its own arguments (for a
        fan-out or chunks, each distinct count of them, at the member's path); return
        the type of its value."""
        function = self.function(node.task)
        if function is None:
            names = [name for name in self.app.tasks if not name.startswith("celery.")]
            close = difflib.get_close_matches(node.task, names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            self.problem(
                path,
                node.task,
                f"app {self.app.name!r} has no task of that name{hint}: register it "
                "with @app.task, or fix the name",
            )
            return Any
        if node.immutable:
            given = _NO_INPUT
        if function.signature is not None:
            for count, where in (own if own is not None else {0: path}).items():
                self._bind(node, where, given, count, function.signature)
        if given.count and given.first is not Any and function.signature is not None:
            self._first_type(node, path, given, function)
        return function.hints.get("return", Any)

    def _bind(
        self,
        node: Signature,
        path: str,
        given: _Input,
        own: int,
        signature: inspect.Signature,
    ) -> None:
        placeholders = [_PLACEHOLDER] * own
        try:
            if given.count is None or given.kwargs is None:
                signature.bind_partial(*placeholders, *node.args, **node.kwargs)
            else:
                merged = {**dict.fromkeys(given.kwargs, _PLACEHOLDER), **node.kwargs}
                signature.bind(*[_PLACEHOLDER] * given.count, *placeholders, *node.args, **merged)
        except TypeError as exc:
            parts = []
            if given.count:
                parts.append(f"{given.count} from {given.source}")
            if own:
                parts.append(f"{own} of the member's own")
            if node.args:
                parts.append(f"{len(node.args)} of the signature's")
            positional = " + ".join(parts) or "none"
            hint = " (or .si(...) if it should ignore its input)" if given.count else ""
            self.problem(
                path,
                node.task,
                f"its arguments do not fit {node.task}{signature}: {exc} (positional: "
                f"{positional}); change the signature's arguments{hint}",
            )

    def _first_type(self, node: Signature, path: str, given: _Input, function: _Function) -> None:
        assert function.signature is not None
        parameter = next(
            (
                p
                for p in function.signature.parameters.values()
                if p.kind
                in (
                    inspect.Parameter.POSITIONAL_ONLY,
                    inspect.Parameter.POSITIONAL_OR_KEYWORD,
                    inspect.Parameter.VAR_POSITIONAL,
                )
            ),
            None,
        )
        if parameter is None or parameter.name not in function.hints:
            return
        annotation = function.hints[parameter.name]
        if not _accepts(annotation, given.first):
            self.problem(
                path,
                node.task,
                f"gets {_type_name(given.first)} from {given.source} as its first "
                f"argument, but its parameter {parameter.name!r} is annotated "
                f"{_type_name(annotation)}: fix the annotation or the canvas (.si(...) "
                "if it should ignore its input)",
            )


_NO_INPUT = _Input(0, Any, frozenset(), "nothing")

_NOT_A_TEMPLATE = (
    "its template is a {kind}, not a signature: make it with task.map(...), "
    "task.starmap(...), task.chunks(...) or group(task.s(...) for ...)"
)


def _by_length(arguments: Sequence[Sequence[Any]], path: str, size: int) -> dict[int, str]:
    """Each distinct number of own arguments among a fan-out's members (or chunks'
    items), with the path of the first member (or chunk) that has it."""
    first: dict[int, str] = {}
    for index, own in enumerate(arguments):
        first.setdefault(len(own), f"{path}.{index // size}")
    return first


def _list_of(types_: list[Any]) -> Any:
    if types_ and types_[0] is not Any and all(t == types_[0] for t in types_):
        return list[types_[0]]  # type: ignore[valid-type]
    return list


def _what(node: object) -> str:
    return node.task if isinstance(node, Signature) else _kind(node)


def _kind(node: object) -> str:
    return {
        Signature: "signature",
        Chain: "chain",
        Group: "group",
        Fanout: "group",
        Chunks: "chunks",
        Chord: "chord",
    }.get(type(node), type(node).__name__)


_SEQUENCES = (
    list,
    collections.abc.Sequence,
    collections.abc.MutableSequence,
    collections.abc.Collection,
    collections.abc.Iterable,
)


def _concrete(annotation: Any) -> type | None:
    """The class an annotation names (a generic's origin), or ``None`` if it names
    none that can be compared soundly (``Any``, a union, a type variable...)."""
    if annotation is Any:
        return None
    origin = typing.get_origin(annotation)
    if origin is None:
        return annotation if isinstance(annotation, type) else None
    if origin is types.UnionType or not isinstance(origin, type):
        return None
    return origin


def _accepts(parameter: Any, value: Any) -> bool:
    """Whether a parameter annotated ``parameter`` may take a value of type ``value``;
    ``True`` whenever that cannot be told for sure."""
    wanted, given = _concrete(parameter), _concrete(value)
    if wanted is None or given is None:
        return True
    try:
        if not issubclass(given, wanted):
            return (given is int and wanted in (float, complex)) or (
                given is float and wanted is complex
            )
    except TypeError:  # a protocol that cannot be checked at run time
        return True
    wanted_args, given_args = typing.get_args(parameter), typing.get_args(value)
    if given is list and wanted in _SEQUENCES and len(wanted_args) == len(given_args) == 1:
        return _accepts(wanted_args[0], given_args[0])
    return True


def _type_name(annotation: Any) -> str:
    """``int``, ``list[int]``, ``celery_actors.TaskError`` (the public name of a class
    that a package exports from a private module)."""
    origin, arguments = typing.get_origin(annotation), typing.get_args(annotation)
    if isinstance(origin, type) and origin is not types.UnionType and arguments:
        inside = ", ".join(_type_name(argument) for argument in arguments)
        return f"{_type_name(origin)}[{inside}]"
    if isinstance(annotation, list):  # a Callable's parameters
        return "[" + ", ".join(_type_name(item) for item in annotation) + "]"
    if not isinstance(annotation, type) or origin is not None:
        return repr(annotation)
    module, name = annotation.__module__, annotation.__qualname__
    if module == "builtins":
        return name
    public = module.split("._")[0]
    if getattr(sys.modules.get(public), name, None) is annotation:
        module = public
    return f"{module}.{name}"


# -- drawing


@attrs.frozen
class _Box:
    id: str
    label: str
    many: bool  # a fan-out or chunks: one box for many calls


@attrs.frozen
class _Cluster:
    """Nodes drawn together, because an error handler guards them as a whole."""

    id: str
    label: str
    items: list[_Box | _Cluster]


@attrs.frozen
class _Edge:
    source: str
    target: str
    on_error: bool = False
    cluster: str | None = None  # drawn from this cluster rather than from ``source``


_LABEL_LENGTH = 32
_TIMES = "\N{MULTIPLICATION SIGN}"
_reprs = reprlib.Repr()
_reprs.maxlevel = 2
_reprs.maxlist = _reprs.maxtuple = _reprs.maxset = 3
_reprs.maxdict = 2
_reprs.maxstring = _reprs.maxother = 16


@attrs.define
class _Drawing:
    """Boxes, clusters and edges of a canvas, numbered in the order of the walk."""

    items: list[_Box | _Cluster] = attrs.field(factory=list)
    edges: list[_Edge] = attrs.field(factory=list)
    count: int = 0

    @classmethod
    def of(cls, canvas: Canvas) -> _Drawing:
        drawing = cls()
        drawing.draw(canvas, drawing.items)
        drawing.edges.sort(key=lambda edge: (int(edge.source[1:]), int(edge.target[1:])))
        return drawing

    def new_id(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}{self.count - 1}"

    def draw(self, node: Canvas, into: list[_Box | _Cluster]) -> tuple[list[str], list[str]]:
        """Draw ``node`` into ``into``; return the boxes values enter it by, and those
        its value leaves by."""
        cluster: _Cluster | None = None
        if node.error_handler is not None and not isinstance(node, Signature):
            cluster = _Cluster(self.new_id("c"), _kind(node), [])
            into.append(cluster)
        entries, exits = self._draw_inside(node, into if cluster is None else cluster.items)
        if node.error_handler is not None:
            handler_entries, handler_exits = self.draw(node.error_handler, into)
            source = exits[0] if cluster is None else _first_box(cluster)
            if source is not None:
                for target in handler_entries:
                    self.edges.append(_Edge(source, target, True, cluster.id if cluster else None))
            exits = exits + handler_exits
        return entries, exits

    def _draw_inside(
        self, node: Canvas, into: list[_Box | _Cluster]
    ) -> tuple[list[str], list[str]]:
        if isinstance(node, Signature):
            box = self.box(_signature_label(node), into)
            return [box], [box]
        if isinstance(node, Fanout):
            box = self.box(f"{node.template.task} {_TIMES}{len(node.arguments)}", into, many=True)
            return [box], [box]
        if isinstance(node, Chunks):
            chunks = (len(node.items) + node.size - 1) // node.size
            label = f"{node.template.task} {_TIMES}{len(node.items)} in {chunks} chunks"
            box = self.box(label, into, many=True)
            return [box], [box]
        if isinstance(node, Chain):
            entries: list[str] | None = None
            exits: list[str] = []
            for step in node.steps:
                step_entries, step_exits = self.draw(step, into)
                self.join(exits, step_entries)
                if entries is None:
                    entries = step_entries
                exits = step_exits
            return entries or [], exits
        if isinstance(node, Group):
            entries, exits = [], []
            for member in node.members:
                member_entries, member_exits = self.draw(member, into)
                entries += member_entries
                exits += member_exits
            return entries, exits
        entries, header_exits = self.draw(node.header, into)
        body_entries, exits = self.draw(node.body, into)
        self.join(header_exits, body_entries)
        return entries, exits

    def box(self, label: str, into: list[_Box | _Cluster], *, many: bool = False) -> str:
        box = _Box(self.new_id("n"), label, many)
        into.append(box)
        return box.id

    def join(self, sources: list[str], targets: list[str]) -> None:
        self.edges.extend(_Edge(source, target) for source in sources for target in targets)

    def mermaid_items(self, items: list[_Box | _Cluster], indent: str) -> Iterator[str]:
        for item in items:
            if isinstance(item, _Box):
                label = _mermaid_quote(item.label)
                yield (
                    f"{indent}{item.id}[[{label}]]" if item.many else f"{indent}{item.id}[{label}]"
                )
            else:
                yield f"{indent}subgraph {item.id} [{_mermaid_quote(item.label)}]"
                yield from self.mermaid_items(item.items, indent + "    ")
                yield f"{indent}end"

    def dot_items(self, items: list[_Box | _Cluster], indent: str) -> Iterator[str]:
        for item in items:
            if isinstance(item, _Box):
                shape = ", shape=box3d" if item.many else ""
                yield f"{indent}{item.id} [label={_dot_quote(item.label)}{shape}];"
            else:
                yield f"{indent}subgraph cluster_{item.id} {{"
                yield f"{indent}    label={_dot_quote(item.label)};"
                yield f"{indent}    style=dashed;"
                yield from self.dot_items(item.items, indent + "    ")
                yield f"{indent}}}"


def _first_box(cluster: _Cluster) -> str | None:
    for item in cluster.items:
        if isinstance(item, _Box):
            return item.id
        inner = _first_box(item)
        if inner is not None:
            return inner
    return None


def _signature_label(node: Signature) -> str:
    arguments = [_reprs.repr(arg) for arg in node.args]
    arguments += [f"{key}={_reprs.repr(value)}" for key, value in node.kwargs.items()]
    text = ", ".join(arguments)
    if len(text) > _LABEL_LENGTH:
        text = text[: _LABEL_LENGTH - 1] + "…"
    return f"{node.task}.{'si' if node.immutable else 's'}({text})"


def _mermaid_quote(text: str) -> str:
    escaped = text.replace("#", "#35;").replace('"', "#quot;")
    return f'"{escaped.replace("<", "#lt;").replace(">", "#gt;")}"'


def _dot_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
