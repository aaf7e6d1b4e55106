"""Answering an ask after the handler returned, with ``Actor.reply_later``."""

from __future__ import annotations

import functools

import attrs
import pytest
import trio

from jumpstarter import (
    Actor,
    ActorSystem,
    AskTimeout,
    PendingReply,
    TypeRegistry,
    handler,
)

registry = TypeRegistry()


@registry.message(name="test.WaitFor")
@attrs.frozen
class WaitFor:
    key: str


@registry.message(name="test.Arrive")
@attrs.frozen
class Arrive:
    key: str
    value: int


@registry.message(name="test.Refuse")
@attrs.frozen
class Refuse:
    key: str


@registry.message(name="test.AnswerAtOnce")
@attrs.frozen
class AnswerAtOnce:
    value: int


@registry.message(name="test.DeferThenRaise")
@attrs.frozen
class DeferThenRaise:
    pass


class Rendezvous(Actor):
    """Answers ``WaitFor(key)`` when ``Arrive(key, value)`` comes, from another sender."""

    def __init__(self, deferrals: trio.MemorySendChannel[str] | None = None) -> None:
        self.waiting: dict[str, list[PendingReply]] = {}
        self.late: list[PendingReply] = []
        self.deferrals = deferrals

    @handler
    def wait_for(self, msg: WaitFor) -> str:
        self.waiting.setdefault(msg.key, []).append(self.reply_later())
        if self.deferrals is not None:
            self.deferrals.send_nowait(msg.key)
        return "not the answer"

    @handler
    async def arrive(self, msg: Arrive) -> int:
        await trio.lowlevel.checkpoint()
        waiting = self.waiting.pop(msg.key, [])
        for pending in waiting:
            pending.succeed(msg.value)
        return len(waiting)

    @handler
    def refuse(self, msg: Refuse) -> None:
        for pending in self.waiting.pop(msg.key, []):
            pending.fail(LookupError(msg.key))

    @handler
    def answer_at_once(self, msg: AnswerAtOnce) -> None:
        pending = self.reply_later()
        pending.succeed(msg.value)
        pending.succeed(msg.value + 1)  # ignored: the first answer counts
        self.late.append(pending)

    @handler
    def defer_then_raise(self, msg: DeferThenRaise) -> None:
        self.late.append(self.reply_later())
        raise ValueError("broke after deferring")


async def test_an_ask_is_answered_when_a_later_message_answers_it(actor_system):
    rendezvous = await actor_system.spawn(Rendezvous, name="rendezvous")
    async with trio.open_nursery() as nursery:
        answers: list[int] = []

        async def wait() -> None:
            answers.append(await rendezvous.ask(WaitFor("x")))

        nursery.start_soon(wait)
        nursery.start_soon(wait)
        await trio.testing.wait_all_tasks_blocked()
        assert answers == []
        # the actor kept handling its mail while the asks waited
        assert await rendezvous.ask(Arrive("x", 42)) == 2
    assert answers == [42, 42]


async def test_an_answer_given_inside_the_handler_itself_reaches_the_asker(actor_system):
    rendezvous = await actor_system.spawn(Rendezvous, name="rendezvous")
    assert await rendezvous.ask(AnswerAtOnce(7)) == 7
    assert all(pending.done for pending in rendezvous._cell.actor.late)


async def test_a_deferred_failure_is_raised_at_the_asker(actor_system):
    rendezvous = await actor_system.spawn(Rendezvous, name="rendezvous")
    async with trio.open_nursery() as nursery:

        async def wait() -> None:
            with pytest.raises(LookupError, match="y"):
                await rendezvous.ask(WaitFor("y"))

        nursery.start_soon(wait)
        await trio.testing.wait_all_tasks_blocked()
        await rendezvous.tell(Refuse("y"))


async def test_an_unanswered_deferred_ask_times_out(actor_system, autojump_clock):
    rendezvous = await actor_system.spawn(Rendezvous, name="rendezvous")
    with pytest.raises(AskTimeout):
        await rendezvous.ask(WaitFor("never"), timeout=5)


async def test_a_handler_that_raises_after_deferring_fails_the_ask(actor_system):
    rendezvous = await actor_system.spawn(Rendezvous, name="rendezvous")
    with pytest.raises(ValueError, match="broke after deferring"):
        await rendezvous.ask(DeferThenRaise())
    (pending,) = rendezvous._cell.actor.late
    pending.succeed(1)  # too late: ignored, nothing raised


async def test_deferring_a_tell_answers_nobody(actor_system):
    rendezvous = await actor_system.spawn(Rendezvous, name="rendezvous")
    await rendezvous.tell(WaitFor("z"))
    assert await rendezvous.ask(Arrive("z", 1)) == 1


async def test_a_queued_ask_is_answered_later_too(actor_system):
    """The ask waits in the mailbox behind a slow message, so it is not handled in the
    asker's task but by the actor's own."""
    rendezvous = await actor_system.spawn(Rendezvous, name="rendezvous")
    async with trio.open_nursery() as nursery:
        answers: list[int] = []

        async def wait() -> None:
            answers.append(await rendezvous.ask(WaitFor("q")))

        await rendezvous.tell(Arrive("nobody", 0))  # the actor is busy with it...
        nursery.start_soon(wait)  # ...so this ask is queued
        await trio.testing.wait_all_tasks_blocked()
        await rendezvous.tell(Arrive("q", 9))
    assert answers == [9]


async def test_a_remote_ask_is_answered_later_over_the_network():
    async with (
        ActorSystem("here", listen="127.0.0.1:0", registry=registry) as here,
        ActorSystem("there", registry=registry) as there,
    ):
        deferrals, deferred = trio.open_memory_channel[str](10)
        await here.spawn(functools.partial(Rendezvous, deferrals), name="rendezvous")
        remote = there.ref(here.address_of("/user/rendezvous"))
        async with trio.open_nursery() as nursery:
            answers: list[int] = []

            async def wait(key: str) -> None:
                answers.append(await remote.ask(WaitFor(key), timeout=10))

            nursery.start_soon(wait, "a")
            nursery.start_soon(wait, "b")
            assert {await deferred.receive(), await deferred.receive()} == {"a", "b"}
            assert await remote.ask(Arrive("b", 2)) == 1
            assert await remote.ask(Arrive("a", 1)) == 1
        assert sorted(answers) == [1, 2]

        async def refused() -> None:
            with pytest.raises(LookupError, match="c"):
                await remote.ask(WaitFor("c"), timeout=10)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(refused)
            assert await deferred.receive() == "c"
            await remote.tell(Refuse("c"))
