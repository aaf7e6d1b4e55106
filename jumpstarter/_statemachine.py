"""Declared state machines: tables validated by ``transitions``, fired in O(1).

A :class:`StateMachine` is a *declaration*: states (possibly nested), the initial
state, and a table of transitions ``(trigger, source, dest)``. It is immutable.
When it is created, the declaration is handed to ``transitions``'
``HierarchicalMachine``, which validates it (unknown states, bad nesting) and
resolves hierarchical semantics (a transition from a parent state applies to
its children; entering a parent enters its initial child). The result is
*compiled* into a plain table ``leaf state -> trigger -> leaf state``.

Each object that uses a machine holds only a small :class:`MachineState`: its
current state and, if anyone asked, its observers. Firing a trigger is a dict
lookup, so a hundred thousand actors can each run their lifecycle without each
owning a ``transitions`` machine, and no class-level machine is ever mutated:
:meth:`StateMachine.extend` returns a new declaration.

State names are dotted paths (``"started.running.healthy"``); a state *is in*
every one of its ancestors (``"started"`` matches ``"started.running.healthy"``).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Final, overload

import attrs
import trio

from ._exceptions import IllegalTransition

__all__ = [
    "MachineState",
    "State",
    "StateMachine",
    "Transition",
]

SEPARATOR: Final = "."

Observer = Callable[[str, str, str], object]
"""``callback(old_state, new_state, trigger)`` called after every state change."""


def _state_tuple(children: Iterable[State | str]) -> tuple[State | str, ...]:
    return tuple(children)


@attrs.frozen
class State:
    """A state with nested children; plain strings are leaf states."""

    name: str
    children: tuple[State | str, ...] = attrs.field(default=(), converter=_state_tuple)
    initial: str | None = None


@attrs.frozen
class Transition:
    """``trigger`` moves the machine from ``source`` to ``dest``.

    ``source`` is one state, a tuple of states, or ``"*"`` for every state.
    """

    trigger: str
    source: str | tuple[str, ...]
    dest: str

    def _as_transitions_row(self) -> list[Any]:
        source = list(self.source) if isinstance(self.source, tuple) else self.source
        return [self.trigger, source, self.dest]


def _coerce_transition(row: Transition | Sequence[Any]) -> Transition:
    if isinstance(row, Transition):
        return row
    trigger, source, dest = row
    if not isinstance(source, str):
        source = tuple(source)
    return Transition(trigger, source, dest)


def _to_transitions_state(state: State | str) -> Any:
    if isinstance(state, str):
        return state
    declared: dict[str, Any] = {
        "name": state.name,
        "children": [_to_transitions_state(child) for child in state.children],
    }
    if state.initial is not None:
        declared["initial"] = state.initial
    return declared


@functools.cache
def _machine_classes() -> tuple[type[Any], type[Any]]:
    """The ``transitions`` classes, with our separator, built on first use."""
    from transitions.extensions.nesting import HierarchicalMachine, NestedState

    class _DottedState(NestedState):
        separator = SEPARATOR

    class _DottedMachine(HierarchicalMachine):
        state_cls = _DottedState

    return _DottedState, _DottedMachine


@contextlib.contextmanager
def _quiet_transitions() -> Iterator[None]:
    """Keep ``transitions``' INFO lines about probe moves out of the user's logs."""
    log = logging.getLogger("transitions")
    level = log.level
    log.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        log.setLevel(level)


class _Probe:
    """A throwaway model that ``transitions`` moves around during compilation."""

    state: str


class StateMachine:
    """The declaration of a state machine, usable as a descriptor on a class.

    Example::

        class Door(Actor):
            position = StateMachine(
                name="position",
                states=["closed", "opened", "locked"],
                initial="closed",
                transitions=[
                    ("open", "closed", "opened"),
                    ("close", "opened", "closed"),
                    ("lock", "closed", "locked"),
                    ("unlock", "locked", "closed"),
                ],
            )

            def open(self) -> None:
                self.position.fire("open")

    On an instance, ``door.position`` is that instance's :class:`MachineState`.
    Declaring the machine on a subclass, or extending it there with
    :meth:`extend`, never changes the parent's machine.

    Raises:
        ValueError: the declaration is invalid (unknown state, bad initial state).
    """

    def __init__(
        self,
        *,
        states: Iterable[State | str],
        initial: str,
        transitions: Iterable[Transition | Sequence[Any]],
        name: str | None = None,
    ) -> None:
        self.states: tuple[State | str, ...] = tuple(states)
        self.initial = initial
        self.transitions: tuple[Transition, ...] = tuple(
            _coerce_transition(row) for row in transitions
        )
        self.name = name
        self._attribute: str | None = None
        self.table, self.leaves, self.initial_leaf = self._compile()
        self.triggers: frozenset[str] = frozenset(t.trigger for t in self.transitions)

    def __repr__(self) -> str:
        return f"<StateMachine {self.name or self._attribute or '?'}: {len(self.leaves)} states>"

    def extend(
        self,
        *,
        states: Iterable[State | str] = (),
        transitions: Iterable[Transition | Sequence[Any]] = (),
        initial: str | None = None,
        name: str | None = None,
    ) -> StateMachine:
        """A new declaration with more states and transitions; this one is unchanged."""
        return StateMachine(
            states=(*self.states, *states),
            initial=initial or self.initial,
            transitions=(*self.transitions, *(_coerce_transition(t) for t in transitions)),
            name=name or self.name,
        )

    def _build(self, *, graph: bool = False, **options: Any) -> Any:
        if graph:
            from transitions.extensions.diagrams import HierarchicalGraphMachine

            class _GraphMachine(HierarchicalGraphMachine):
                pass

            _GraphMachine.state_cls = type("_GraphState", (_GraphMachine.state_cls,), {})
            _GraphMachine.state_cls.separator = SEPARATOR
            machine_cls: type[Any] = _GraphMachine
        else:
            machine_cls = _machine_classes()[1]
        return machine_cls(
            model=_Probe() if graph else None,
            states=[_to_transitions_state(s) for s in self.states],
            transitions=[t._as_transitions_row() for t in self.transitions],
            initial=self.initial,
            auto_transitions=False,
            **options,
        )

    def _compile(self) -> tuple[dict[str, dict[str, str]], tuple[str, ...], str]:
        from transitions.core import MachineError

        try:
            with _quiet_transitions():
                return self._compile_with(MachineError)
        except (ValueError, MachineError) as exc:
            raise ValueError(f"invalid state machine declaration {self.name or ''}: {exc}") from exc

    def _compile_with(
        self, machine_error: type[Exception]
    ) -> tuple[dict[str, dict[str, str]], tuple[str, ...], str]:
        machine = self._build()
        probe = _Probe()
        machine.add_model(probe)
        initial_leaf = probe.state
        names = machine.get_nested_state_names()
        leaves = tuple(
            n for n in names if not any(other.startswith(n + SEPARATOR) for other in names)
        )
        triggers = {t.trigger for t in self.transitions}
        table: dict[str, dict[str, str]] = {}
        for leaf in leaves:
            row: dict[str, str] = {}
            for trigger in sorted(triggers):
                machine.set_state(leaf, model=probe)
                try:
                    moved = machine.trigger_event(probe, trigger)
                except machine_error:
                    continue
                if moved:
                    row[trigger] = probe.state
            table[leaf] = row
        return table, leaves, initial_leaf

    # -- descriptor protocol -------------------------------------------------

    def __set_name__(self, owner: type, name: str) -> None:
        self._attribute = name
        if self.name is None:
            self.name = name

    @overload
    def __get__(self, instance: None, owner: type) -> StateMachine: ...
    @overload
    def __get__(self, instance: object, owner: type) -> MachineState: ...
    def __get__(self, instance: object | None, owner: type) -> StateMachine | MachineState:
        if instance is None:
            return self
        assert self._attribute is not None
        state: MachineState | None = instance.__dict__.get(self._attribute)
        if state is None:
            state = instance.__dict__[self._attribute] = MachineState(self)
        return state

    def new_state(self) -> MachineState:
        """A fresh :class:`MachineState` of this machine, in its initial state."""
        return MachineState(self)

    # -- drawing ---------------------------------------------------------------

    def to_dot(self) -> str:
        """The machine as Graphviz ``dot`` source (needs the ``graphviz`` package).

        Raises:
            RuntimeError: the ``graphviz`` package is not installed.
        """
        import importlib.util

        if importlib.util.find_spec("graphviz") is None:
            raise RuntimeError(
                "drawing as Graphviz needs the 'graphviz' package: "
                "pip install 'jumpstarter[graph]', or draw to a .mmd file"
            )
        machine = self._build(graph=True, graph_engine="graphviz", title=self.name or "")
        return str(machine.get_graph().source)

    def to_mermaid(self) -> str:
        """The machine as a Mermaid ``stateDiagram-v2`` text."""
        machine = self._build(graph=True, graph_engine="mermaid", title=self.name or "")
        return str(machine.get_graph().source)

    def draw(self, path: str | os.PathLike[str]) -> None:
        """Write a drawing of the machine; the format comes from the suffix.

        ``.dot``/``.gv`` and ``.mmd`` are text and need no binary; ``.svg``,
        ``.png`` and ``.pdf`` are rendered by Graphviz's ``dot`` program.
        """
        target = os.fspath(path)
        suffix = os.path.splitext(target)[1].lower().lstrip(".")
        if suffix in ("dot", "gv"):
            text = self.to_dot()
        elif suffix in ("mmd", "mermaid"):
            text = self.to_mermaid()
        elif suffix in ("svg", "png", "pdf"):
            _render_with_dot(self.to_dot(), target, suffix)
            return
        else:
            raise ValueError(
                f"cannot draw to {target!r}: use a .svg, .png, .pdf, .dot or .mmd file name"
            )
        with open(target, "w", encoding="utf-8") as out:
            out.write(text)


def _render_with_dot(source: str, target: str, fmt: str) -> None:
    import shutil
    import subprocess

    dot = shutil.which("dot")
    if dot is None:
        raise RuntimeError(
            f"drawing {target!r} needs Graphviz's 'dot' program, which is not installed "
            "(on Debian: apt-get install graphviz); or write a .dot or .mmd file instead"
        )
    subprocess.run([dot, f"-T{fmt}", "-o", target], input=source.encode(), check=True)


def _is_in(current: str, state: str) -> bool:
    return current == state or current.startswith(state + SEPARATOR)


class MachineState:
    """The current state of one object's machine, and the way to change it.

    Triggers are fired with :meth:`fire`; wrap them in methods of your class so
    that callers use typed names rather than strings.
    """

    # Observers and waiters are rare: class-level defaults until someone subscribes.
    _observers: list[Observer] | None = None
    _waiters: list[tuple[str, trio.Event]] | None = None

    def __init__(self, machine: StateMachine) -> None:
        self.machine: StateMachine = machine
        self._table: dict[str, dict[str, str]] = machine.table
        self.state: str = machine.initial_leaf

    def __repr__(self) -> str:
        return f"<MachineState {self.machine.name}={self.state}>"

    def fire(self, trigger: str) -> str:
        """Take the transition for ``trigger`` from the current state; return the new state.

        Raises:
            IllegalTransition: no transition for ``trigger`` leaves the current state.
        """
        old = self.state
        new = self._table[old].get(trigger)
        if new is None:
            raise IllegalTransition(self.machine.name or "?", old, trigger)
        self.state = new
        if self._observers is not None or self._waiters is not None:
            self._notify(old, new, trigger)
        return new

    def can(self, trigger: str) -> bool:
        """Whether :meth:`fire` would succeed for ``trigger`` now."""
        return trigger in self._table[self.state]

    def is_in(self, state: str) -> bool:
        """Whether the current state is ``state`` or one of its descendants."""
        return _is_in(self.state, state)

    def set(self, state: str) -> None:
        """Force a state, bypassing the table (used to restore a saved state)."""
        if state not in self._table:
            raise ValueError(f"{state!r} is not a leaf state of {self.machine.name!r}")
        old, self.state = self.state, state
        if self._observers is not None or self._waiters is not None:
            self._notify(old, state, "")

    def on_change(self, callback: Observer) -> Callable[[], None]:
        """Call ``callback(old, new, trigger)`` after each change; returns an unsubscriber."""
        if self._observers is None:
            self._observers = []
        self._observers.append(callback)

        def unsubscribe() -> None:
            if self._observers is not None and callback in self._observers:
                self._observers.remove(callback)

        return unsubscribe

    async def wait_for(self, *states: str) -> str:
        """Return the current state once it is in one of ``states`` (or a descendant).

        Returns at once (after a checkpoint) if it already is.
        """
        if any(self.is_in(s) for s in states):
            await trio.lowlevel.checkpoint()
            return self.state
        event = trio.Event()
        if self._waiters is None:
            self._waiters = []
        entries = [(s, event) for s in states]
        self._waiters.extend(entries)
        try:
            await event.wait()
        finally:
            if self._waiters is not None:
                for entry in entries:
                    if entry in self._waiters:
                        self._waiters.remove(entry)
        return self.state

    def _notify(self, old: str, new: str, trigger: str) -> None:
        if self._waiters:
            for wanted, event in self._waiters:
                if _is_in(new, wanted):
                    event.set()
        if self._observers:
            for callback in tuple(self._observers):
                callback(old, new, trigger)
