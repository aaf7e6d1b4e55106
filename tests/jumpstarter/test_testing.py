"""The fixtures and helpers users get from jumpstarter.testing."""

import attrs
import pytest
import trio

from jumpstarter import Actor, ActorRef, ActorSystem, handler
from jumpstarter.testing import DeadLetterRecorder, Probe


@attrs.frozen
class RemindIn:
    seconds: float
    text: str


@attrs.frozen
class Reminded:
    text: str


class Reminder(Actor):
    def __init__(self, listener: ActorRef) -> None:
        self.listener = listener

    @handler
    def remind_in(self, msg: RemindIn) -> None:
        self.send_after(msg.seconds, Reminded(msg.text))

    @handler
    async def reminded(self, msg: Reminded) -> None:
        await self.listener.tell(msg)


async def test_the_actor_system_fixture_is_running(actor_system):
    assert isinstance(actor_system, ActorSystem)
    assert await actor_system.spawn(Reminder, actor_system.dead_letters)


async def test_a_probe_awaits_messages_in_virtual_time(actor_system, probe, autojump_clock):
    reminder = await actor_system.spawn(Reminder, probe.ref)
    await reminder.tell(RemindIn(seconds=3600, text="tea"))
    assert await probe.expect(Reminded, timeout=4000) == Reminded("tea")
    assert trio.current_time() == pytest.approx(3600, abs=0.01)


async def test_a_probe_reports_a_missing_message(actor_system, probe, autojump_clock):
    with pytest.raises(AssertionError, match="received nothing within 5"):
        await probe.receive(timeout=5)


async def test_a_probe_reports_an_unexpected_message(actor_system, probe):
    await probe.ref.tell("surprise")
    with pytest.raises(AssertionError, match="expected a Reminded"):
        await probe.expect(Reminded)


async def test_a_probe_checks_that_nothing_arrives(actor_system, probe, autojump_clock):
    await probe.expect_no_message(within=10)
    await probe.ref.tell("late")
    with pytest.raises(AssertionError, match="'late'"):
        await probe.expect_no_message(within=1)


async def test_a_dead_letter_recorder_sees_undelivered_mail(actor_system):
    recorder = await DeadLetterRecorder.start(actor_system)
    ref = await actor_system.spawn(Reminder, actor_system.dead_letters)
    await actor_system.stop(ref)
    await ref.tell(RemindIn(1, "x"))
    letter = await recorder.expect()
    assert letter.message == RemindIn(1, "x")
    assert recorder.letters == []  # taken by expect


async def test_probes_can_be_spawned_by_name(actor_system):
    named = await Probe.spawn(actor_system, name="inbox")
    assert named.ref.path == "/user/inbox"
