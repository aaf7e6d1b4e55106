"""A property-based test: hypothesis generates command lists, each replayed in one trio run.

Run with ``python -m pytest docs/examples/test_counter_model.py``.
"""

import attrs
import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from jumpstarter import Actor, ActorSystem, OneForOne, handler


@attrs.frozen
class Add:
    amount: int


@attrs.frozen
class Get:
    pass


@attrs.frozen
class Crash:
    pass


class Counter(Actor):
    def __init__(self) -> None:
        self.total = 0

    @handler
    def add(self, msg: Add) -> int:
        self.total += msg.amount
        return self.total

    @handler
    def get(self, msg: Get) -> int:
        return self.total

    @handler
    def crash(self, msg: Crash) -> None:
        raise RuntimeError("crash on request")


# A command is a plain tuple: easy to generate, to shrink and to read in a failure report.
commands = st.one_of(
    st.tuples(st.just("tell"), st.integers(-5, 5)),
    st.tuples(st.just("ask"), st.integers(-5, 5)),
    st.tuples(st.just("crash")),
    st.tuples(st.just("sleep"), st.sampled_from([0.0, 0.01, 1.0])),
)


def replay(program: list[tuple]) -> None:
    """Run `program` against a Counter and check it against a model: a plain int."""

    async def main() -> None:
        # Never escalate, restart at once: this test is about the counting.
        supervisor = OneForOne(max_restarts=1_000, backoff=None)
        async with ActorSystem("model", supervisor=supervisor, seed=0) as system:
            counter = await system.spawn(Counter)
            model = 0
            crashes = 0
            for command in program:
                if command[0] == "tell":
                    await counter.tell(Add(command[1]))
                    model += command[1]
                elif command[0] == "ask":
                    model += command[1]
                    assert await counter.ask(Add(command[1])) == model
                elif command[0] == "crash":
                    # The ask waits for its turn, so everything told before it was
                    # handled by the old instance; the new one starts from zero.
                    with pytest.raises(RuntimeError):
                        await counter.ask(Crash())
                    model = 0
                    crashes += 1
                else:
                    await trio.sleep(command[1])
            assert await counter.ask(Get()) == model
            stats = system.statistics().actors[counter.path]
            assert stats.restarts == crashes
            assert stats.failed == crashes

    # A virtual clock: sleeps, backoff and timeouts take no real time.
    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


@settings(max_examples=200, deadline=None)
@given(st.lists(commands, max_size=40))
def test_the_counter_agrees_with_its_model(program):
    replay(program)


def test_a_known_program():
    # A failing example found by hypothesis can be kept as a plain test.
    replay([("tell", 3), ("crash",), ("ask", 2), ("tell", -1), ("sleep", 1.0)])
