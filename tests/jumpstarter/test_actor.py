import functools

import attrs
import pytest
import trio
import trio.lowlevel

from jumpstarter import (
    Actor,
    ActorRef,
    ActorStopped,
    AskTimeout,
    DeadLetter,
    UnhandledMessage,
    handler,
)
from jumpstarter.testing import DeadLetterRecorder


@attrs.frozen
class Add:
    amount: int


@attrs.frozen
class Get:
    pass


@attrs.frozen
class Slow:
    seconds: float


@attrs.frozen
class Fail:
    text: str = "broken"


class Base:
    pass


@attrs.frozen
class Derived(Base):
    pass


class Accumulator(Actor):
    def __init__(self, start: int = 0, *, step: int = 1) -> None:
        self.total = start
        self.step = step
        self.seen: list[object] = []

    @handler
    def add(self, msg: Add) -> int:
        self.total += msg.amount * self.step
        self.seen.append(msg)
        return self.total

    @handler
    def get(self, msg: Get) -> int:
        return self.total

    @handler
    async def slow(self, msg: Slow) -> str:
        await trio.sleep(msg.seconds)
        return "done"

    @handler
    def fail(self, msg: Fail) -> None:
        raise KeyError(msg.text)

    @handler
    def base(self, msg: Base) -> str:
        return "base"


async def test_a_handler_return_value_answers_an_ask(actor_system):
    ref = await actor_system.spawn(Accumulator, 10)
    assert await ref.ask(Add(5)) == 15


async def test_constructor_keywords_pass_through_a_partial(actor_system):
    ref = await actor_system.spawn(functools.partial(Accumulator, step=3))
    assert await ref.ask(Add(2)) == 6


async def test_messages_are_handled_one_at_a_time_in_the_order_sent(actor_system):
    ref = await actor_system.spawn(Accumulator)
    for i in range(1000):
        await ref.tell(Add(i))
    assert await ref.ask(Get()) == sum(range(1000))
    actor = ref._cell.actor
    assert [m.amount for m in actor.seen] == list(range(1000))


async def test_an_async_handler_may_await_and_still_answers(actor_system, autojump_clock):
    ref = await actor_system.spawn(Accumulator)
    assert await ref.ask(Slow(3)) == "done"


async def test_a_handler_exception_fails_the_ask_with_the_same_exception(actor_system):
    ref = await actor_system.spawn(Accumulator)
    with pytest.raises(KeyError, match="broken") as caught:
        await ref.ask(Fail())
    frames = [entry.name for entry in caught.traceback]
    assert "fail" in frames


async def test_an_exception_from_an_async_handler_fails_the_ask(actor_system):
    class Failing(Actor):
        @handler
        async def go(self, msg: Fail) -> None:
            await trio.lowlevel.checkpoint()
            raise ValueError(msg.text)

    ref = await actor_system.spawn(Failing)
    with pytest.raises(ValueError, match="boom"):
        await ref.ask(Fail("boom"))


async def test_a_message_is_dispatched_on_its_base_class(actor_system):
    ref = await actor_system.spawn(Accumulator)
    assert await ref.ask(Derived()) == "base"


async def test_an_unknown_message_type_fails_the_ask_and_goes_to_dead_letters(actor_system):
    recorder = await DeadLetterRecorder.start(actor_system)
    ref = await actor_system.spawn(Accumulator)
    with pytest.raises(UnhandledMessage, match="no handler for int"):
        await ref.ask(42)
    letter = await recorder.expect()
    assert letter.message == 42
    assert "no handler" in letter.reason
    assert await ref.ask(Add(1)) == 1, "an unknown message does not crash the actor"


async def test_an_unknown_told_message_goes_to_dead_letters(actor_system):
    recorder = await DeadLetterRecorder.start(actor_system)
    ref = await actor_system.spawn(Accumulator)
    await ref.tell("what?")
    letter = await recorder.expect()
    assert letter == DeadLetter(
        message="what?", recipient=ref.address, sender=None, reason=letter.reason
    )


async def test_an_ask_times_out_with_ask_timeout(actor_system, autojump_clock):
    ref = await actor_system.spawn(Accumulator)
    with pytest.raises(AskTimeout) as caught:
        await ref.ask(Slow(10), timeout=1)
    assert isinstance(caught.value, TimeoutError)
    assert trio.current_time() == pytest.approx(1, abs=0.01)


async def test_the_default_ask_timeout_comes_from_the_system(autojump_clock):
    from jumpstarter import ActorSystem

    async with ActorSystem("t", ask_timeout=2.5) as system:
        ref = await system.spawn(Accumulator)
        with pytest.raises(AskTimeout):
            await ref.ask(Slow(10))
        assert trio.current_time() == pytest.approx(2.5, abs=0.01)


async def test_a_late_reply_after_a_timeout_is_dropped_quietly(actor_system, autojump_clock):
    ref = await actor_system.spawn(Accumulator)
    with pytest.raises(AskTimeout):
        await ref.ask(Slow(5), timeout=1)
    assert await ref.ask(Add(1)) == 1


async def test_the_sender_is_visible_to_the_handler(actor_system):
    class Echo(Actor):
        @handler
        def echo(self, msg: Get) -> ActorRef | None:
            return self.sender

    echo = await actor_system.spawn(Echo)
    other = await actor_system.spawn(Accumulator)
    assert await echo.ask(Get(), sender=other) == other
    assert await echo.ask(Get()) is None


async def test_refs_compare_and_hash_by_address(actor_system):
    ref = await actor_system.spawn(Accumulator, name="acc")
    again = actor_system.lookup("/user/acc")
    assert ref == again
    assert hash(ref) == hash(again)
    assert {ref: 1}[again] == 1
    assert ref.address == "local://test/user/acc"
    assert ref != await actor_system.spawn(Accumulator, name="other")


def test_refs_have_no_public_constructor():
    with pytest.raises(TypeError, match="spawn"):
        ActorRef()


async def test_a_ref_to_a_stopped_actor_sends_to_dead_letters(actor_system):
    recorder = await DeadLetterRecorder.start(actor_system)
    ref = await actor_system.spawn(Accumulator)
    await actor_system.stop(ref)
    await ref.tell(Add(1))
    ref.tell_nowait(Add(2))
    with pytest.raises(ActorStopped):
        await ref.ask(Add(3))
    letters = [await recorder.expect() for _ in range(3)]
    assert [letter.message for letter in letters] == [Add(1), Add(2), Add(3)]
    assert all("stopped" in letter.reason for letter in letters)


async def test_a_handler_needs_a_message_type():
    with pytest.raises(TypeError, match="needs a message type"):

        class Untyped(Actor):
            @handler
            def anything(self, msg):  # type: ignore[no-untyped-def]
                pass


async def test_a_handler_may_name_several_message_types():
    class Multi(Actor):
        @handler(Add, Get)
        def either(self, msg: object) -> str:
            return type(msg).__name__

    assert set(Multi._handlers) == {Add, Get}


async def test_a_union_annotation_registers_each_member(actor_system):
    class Union(Actor):
        @handler
        def either(self, msg: Add | Get) -> str:
            return type(msg).__name__

    ref = await actor_system.spawn(Union)
    assert await ref.ask(Add(1)) == "Add"
    assert await ref.ask(Get()) == "Get"


async def test_a_subclass_overrides_a_handler_of_its_parent(actor_system):
    class Doubling(Accumulator):
        @handler
        def add(self, msg: Add) -> int:
            self.total += 2 * msg.amount
            return self.total

    ref = await actor_system.spawn(Doubling)
    assert await ref.ask(Add(2)) == 4
    assert await ref.ask(Get()) == 4


async def test_the_actor_knows_its_context(actor_system):
    class Context(Actor):
        @handler
        def get(self, msg: Get) -> tuple[str, str, object, object]:
            return self.path, self.name, self.system, self.ref

    ref = await actor_system.spawn(Context, name="ctx")
    path, name, system, own = await ref.ask(Get())
    assert (path, name, system, own) == ("/user/ctx", "ctx", actor_system, ref)


async def test_answered_asks_do_not_pile_up_in_the_timeout_bookkeeping(actor_system):
    class Async(Actor):
        @handler
        async def echo(self, msg: Add) -> int:
            return msg.amount

    ref = await actor_system.spawn(Async)
    for n in range(5000):
        assert await ref.ask(Add(n)) == n
    assert len(actor_system._deadlines._heap) <= 2048


async def test_many_concurrent_asks_each_time_out_at_their_own_deadline(
    actor_system, autojump_clock
):
    ref = await actor_system.spawn(Accumulator)
    outcomes: dict[float, float] = {}

    async def ask_with(timeout: float) -> None:
        with pytest.raises(AskTimeout):
            await ref.ask(Slow(100), timeout=timeout)
        outcomes[timeout] = trio.current_time()

    async with trio.open_nursery() as nursery:
        for timeout in (3.0, 1.0, 2.0):
            nursery.start_soon(ask_with, timeout)
    assert outcomes == {t: pytest.approx(t, abs=0.01) for t in (1.0, 2.0, 3.0)}
