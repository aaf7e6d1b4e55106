"""Random sequences of spawn/tell/ask/crash/stop/pause/resume checked against a model.

hypothesis generates a list of commands; each list is replayed inside one trio
run under a mock clock. After the system has shut down, the run must satisfy
the invariants every user relies on:

* no message is lost: each message that entered a mailbox was handled or is
  in the dead letters, and never both;
* each sender's messages to an actor were handled in the order sent;
* every ask ended: answered, failed or timed out;
* no actor restarted more often than its supervisor's intensity allows;
* shutdown left no task running and no actor alive.
"""

from __future__ import annotations

import collections

import attrs
import trio
import trio.lowlevel
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jumpstarter import (
    Actor,
    ActorCrashed,
    ActorStopped,
    ActorSystem,
    AskTimeout,
    Backoff,
    MailboxFull,
    OneForAll,
    OneForOne,
    handler,
)

SLOTS = 3  # top-level actors, each with two children supervised one-for-all
SENDERS = 2
MAX_RESTARTS = 3
WITHIN = 10.0


@attrs.frozen
class Msg:
    target: str
    sender: int
    seq: int


@attrs.frozen
class Crash:
    target: str
    seq: int


@attrs.frozen
class SpawnChildren:
    pass


class Node(Actor):
    """Records what it handles in a journal that outlives restarts."""

    supervisor_strategy = OneForAll(
        max_restarts=MAX_RESTARTS, within=WITHIN, backoff=Backoff(initial=0.1, maximum=1.0)
    )
    mailbox_size = 8

    def __init__(self, journal: list[object]) -> None:
        self.journal = journal

    @handler
    async def msg(self, msg: Msg) -> int:
        self.journal.append(msg)
        await trio.sleep(0.01)
        return msg.seq

    @handler
    def crash(self, msg: Crash) -> None:
        self.journal.append(msg)
        raise RuntimeError(f"crash {msg.seq}")

    @handler
    def spawn_children(self, msg: SpawnChildren) -> None:
        for name in ("a", "b"):
            self.spawn_soon(Node, self.journal, name=name)

    def on_start(self) -> None:
        if self.parent is None:
            self.spawn_children(SpawnChildren())


targets = st.sampled_from(
    [f"/user/n{i}" for i in range(SLOTS)]
    + [f"/user/n{i}/{child}" for i in range(SLOTS) for child in "ab"]
)
commands = st.one_of(
    st.tuples(st.just("spawn"), st.integers(0, SLOTS - 1)),
    st.tuples(st.just("tell"), targets, st.integers(0, SENDERS - 1)),
    st.tuples(st.just("ask"), targets, st.integers(0, SENDERS - 1)),
    st.tuples(st.just("crash"), targets),
    st.tuples(st.just("stop"), targets),
    st.tuples(st.just("pause"), targets),
    st.tuples(st.just("resume"), targets),
    st.tuples(st.just("sleep"), st.sampled_from([0.0, 0.005, 0.05, 0.5, 3.0])),
)


@attrs.define
class Run:
    journal: list[object] = attrs.Factory(list)
    sent: list[object] = attrs.Factory(list)
    asks_started: int = 0
    ask_outcomes: collections.Counter[str] = attrs.Factory(collections.Counter)
    restarts: dict[str, list[float]] = attrs.Factory(lambda: collections.defaultdict(list))
    seq: int = 0


def replay(program: list[tuple]) -> tuple[Run, ActorSystem]:
    run = Run()
    system = ActorSystem(
        "model",
        supervisor=OneForOne(
            max_restarts=MAX_RESTARTS, within=WITHIN, backoff=Backoff(initial=0.1, maximum=1.0)
        ),
        dead_letter_history=1_000_000,
        shutdown_timeout=60,
        ask_timeout=2.0,
        seed=0,
    )
    observed: set[int] = set()

    def observe(path: str) -> None:
        cell = system._registry.get(path)
        if cell is None or id(cell) in observed:
            return
        observed.add(id(cell))

        def on_change(old: str, new: str, trigger: str) -> None:
            if new == "restarting":
                run.restarts[f"{path}#{id(cell)}"].append(trio.current_time())

        cell.lifecycle.on_change(on_change)

    async def ask(ref, message: Msg) -> None:
        try:
            assert await ref.ask(message) == message.seq
            run.ask_outcomes["answered"] += 1
        except (ActorStopped, ActorCrashed):
            run.ask_outcomes["failed"] += 1
        except AskTimeout:
            run.ask_outcomes["timed out"] += 1

    async def main() -> None:
        async with system, trio.open_nursery() as asks:
            for command in program:
                kind = command[0]
                if kind == "spawn":
                    name = f"n{command[1]}"
                    if f"/user/{name}" not in system._registry:
                        system.spawn_soon(Node, run.journal, name=name)
                    continue
                if kind == "sleep":
                    await trio.sleep(command[1])
                    continue
                cell = system._registry.get(command[1])
                if cell is None:
                    continue
                for path in list(system._registry):
                    observe(path)
                ref = cell.ref
                run.seq += 1
                if kind == "tell":
                    message = Msg(command[1], command[2], run.seq)
                    try:
                        ref.tell_nowait(message)
                    except MailboxFull:
                        continue  # not sent: the sender still has it
                    run.sent.append(message)
                elif kind == "ask":
                    # The ask is sent when its task runs, concurrently with
                    # later commands: it is a sender of its own.
                    message = Msg(command[1], -run.seq, run.seq)
                    run.sent.append(message)
                    run.asks_started += 1
                    asks.start_soon(ask, ref, message)
                elif kind == "crash":
                    message = Crash(command[1], run.seq)
                    try:
                        ref.tell_nowait(message)
                    except MailboxFull:
                        continue
                    run.sent.append(message)
                elif kind == "stop":
                    asks.start_soon(system.stop, ref)
                elif kind == "pause":
                    system.pause(ref)
                elif kind == "resume":
                    system.resume(ref)
                await trio.lowlevel.checkpoint()
        assert not system._nursery.child_tasks, "shutdown left tasks running"

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    return run, system


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(st.lists(commands, max_size=60))
def test_random_programs_keep_every_invariant(program):
    run, system = replay(program)

    # nothing lost, nothing twice
    handled = collections.Counter(run.journal)
    dead = collections.Counter(
        letter.message
        for letter in system.recent_dead_letters()
        if isinstance(letter.message, Msg | Crash)
    )
    for message in run.sent:
        assert handled[message] + dead[message] >= 1, f"{message} was lost"
        assert handled[message] <= 1, f"{message} was handled twice"
    assert set(handled) | set(dead) <= set(run.sent)

    # order per sender and recipient
    order: dict[tuple[str, int], list[int]] = collections.defaultdict(list)
    for entry in run.journal:
        if isinstance(entry, Msg):
            order[entry.target, entry.sender].append(entry.seq)
    for seqs in order.values():
        assert seqs == sorted(seqs)

    # every ask ended
    assert sum(run.ask_outcomes.values()) == run.asks_started

    # restart intensity
    for times in run.restarts.values():
        for i, start in enumerate(times):
            window = [t for t in times[i:] if t - start <= WITHIN]
            assert len(window) <= MAX_RESTARTS + 1  # the one past the limit escalates

    # nothing left alive
    assert system.statistics().actors == {}
