"""Testing actors with the jumpstarter.testing pytest plugin.

Run with ``python -m pytest docs/examples/test_reminder.py``.
"""

import attrs
import pytest
import trio

from jumpstarter import Actor, ActorRef, ActorSystem, Backoff, OneForOne, handler
from jumpstarter.testing import DeadLetterRecorder, Probe

# Needed only where pytest-trio's trio_mode is not switched on in the pytest configuration.
pytestmark = pytest.mark.trio


@attrs.frozen
class RemindIn:
    seconds: float
    text: str


@attrs.frozen
class Reminded:
    text: str


class Reminder(Actor):
    """Tells `listener` Reminded(text) once the given number of seconds have passed."""

    def __init__(self, listener: ActorRef) -> None:
        self.listener = listener

    @handler
    def remind_in(self, msg: RemindIn) -> None:
        self.send_after(msg.seconds, Reminded(msg.text))

    @handler
    async def reminded(self, msg: Reminded) -> None:
        await self.listener.tell(msg)


async def test_a_reminder_arrives_after_an_hour_of_virtual_time(
    actor_system, probe, autojump_clock
):
    reminder = await actor_system.spawn(Reminder, probe.ref)
    await reminder.tell(RemindIn(seconds=3600, text="tea"))

    await probe.expect_no_message(within=3599)
    assert await probe.expect(Reminded) == Reminded("tea")
    assert trio.current_time() == pytest.approx(3600)


async def test_reminders_arrive_in_time_order(actor_system, probe, autojump_clock):
    reminder = await actor_system.spawn(Reminder, probe.ref)
    for seconds, text in [(30, "c"), (10, "a"), (20, "b")]:
        await reminder.tell(RemindIn(seconds, text))
    assert [(await probe.expect(Reminded, timeout=60)).text for _ in range(3)] == ["a", "b", "c"]
    assert probe.received == [Reminded("a"), Reminded("b"), Reminded("c")]


async def test_a_stopped_reminder_sends_nothing_and_its_mail_is_dead(actor_system, probe):
    recorder = await DeadLetterRecorder.start(actor_system)
    reminder = await actor_system.spawn(Reminder, probe.ref)
    await actor_system.stop(reminder)

    await reminder.tell(RemindIn(1, "too late"))
    letter = await recorder.expect()
    assert letter.message == RemindIn(1, "too late")
    assert letter.recipient == reminder.address
    assert probe.pending == 0


async def test_with_a_system_of_your_own(autojump_clock):
    # The fixture is a plain ActorSystem("test", seed=0); build one yourself
    # when a test needs other settings.
    supervisor = OneForOne(backoff=Backoff(initial=1.0, jitter=0.0))
    async with ActorSystem("custom", supervisor=supervisor, ask_timeout=5) as system:
        inbox = await Probe.spawn(system, name="inbox")
        reminder = await system.spawn(Reminder, inbox.ref)
        await reminder.tell(RemindIn(5, "stretch"))
        assert (await inbox.receive(timeout=10)) == Reminded("stretch")
