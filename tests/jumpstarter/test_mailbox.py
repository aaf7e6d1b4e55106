import functools

import attrs
import pytest
import trio
import trio.testing

from jumpstarter import Actor, MailboxFull, handler


@attrs.frozen
class Item:
    n: int


@attrs.frozen
class Hold:
    pass


@attrs.frozen
class Count:
    pass


class Gate(Actor):
    """Handles nothing until its gate opens; records what it handled."""

    mailbox_size = 4

    def __init__(self, gate: trio.Event) -> None:
        self.gate = gate
        self.items: list[int] = []

    @handler
    async def item(self, msg: Item) -> None:
        await self.gate.wait()
        self.items.append(msg.n)

    @handler
    def count(self, msg: Count) -> list[int]:
        return self.items


async def test_tell_nowait_raises_mailbox_full_and_keeps_the_message_with_the_sender(actor_system):
    gate = trio.Event()
    ref = await actor_system.spawn(Gate, gate)
    ref.tell_nowait(Item(0))
    await trio.testing.wait_all_tasks_blocked()  # the actor takes Item(0) and blocks on the gate
    for n in range(1, 5):
        ref.tell_nowait(Item(n))
    with pytest.raises(MailboxFull, match="full") as caught:
        ref.tell_nowait(Item(5))
    assert isinstance(caught.value, trio.WouldBlock)
    gate.set()
    assert await ref.ask(Count()) == [0, 1, 2, 3, 4]


async def test_tell_waits_for_room_when_the_mailbox_is_full(actor_system):
    gate = trio.Event()
    ref = await actor_system.spawn(Gate, gate)
    sent = []

    async def sender() -> None:
        for n in range(10):
            await ref.tell(Item(n))
            sent.append(n)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(sender)
        await trio.testing.wait_all_tasks_blocked()
        # one message in the handler, four in the mailbox, the sender waits with the sixth
        assert sent == [0, 1, 2, 3, 4]
        assert actor_system.statistics().actors[ref.path].mailbox_depth == 4
        gate.set()
    assert await ref.ask(Count()) == list(range(10))


async def test_blocked_senders_keep_their_own_order(actor_system):
    gate = trio.Event()
    ref = await actor_system.spawn(Gate, gate)

    async def sender(base: int) -> None:
        for n in range(base, base + 20):
            await ref.tell(Item(n))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(sender, 0)
        nursery.start_soon(sender, 100)
        await trio.testing.wait_all_tasks_blocked()
        gate.set()
    items = await ref.ask(Count())
    assert [n for n in items if n < 100] == list(range(20))
    assert [n for n in items if n >= 100] == list(range(100, 120))


async def test_a_cancelled_blocked_sender_does_not_deliver(actor_system):
    gate = trio.Event()
    ref = await actor_system.spawn(Gate, gate)
    for n in range(5):
        await ref.tell(Item(n))
    with trio.move_on_after(0.01):
        await ref.tell(Item(99))
    gate.set()
    assert 99 not in await ref.ask(Count())


async def test_a_paused_actor_keeps_its_mailbox_and_handles_nothing_until_resumed(actor_system):
    class Recorder(Actor):
        def __init__(self) -> None:
            self.items: list[int] = []

        @handler
        def item(self, msg: Item) -> None:
            self.items.append(msg.n)

        @handler
        def count(self, msg: Count) -> list[int]:
            return self.items

    ref = await actor_system.spawn(Recorder)
    actor_system.pause(ref)
    await actor_system.wait_for_state(ref, "started.paused")
    for n in range(3):
        await ref.tell(Item(n))
    await trio.testing.wait_all_tasks_blocked()
    assert ref._cell.actor.items == []
    assert actor_system.statistics().actors[ref.path].mailbox_depth == 3
    actor_system.resume(ref)
    assert await ref.ask(Count()) == [0, 1, 2]
    assert actor_system.state_of(ref) == "started.running.healthy"


async def test_system_requests_jump_ahead_of_queued_mail(actor_system):
    gate = trio.Event()
    ref = await actor_system.spawn(Gate, gate, mailbox_size=100)
    for n in range(10):
        await ref.tell(Item(n))
    await trio.testing.wait_all_tasks_blocked()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(actor_system.stop, ref)
        await trio.testing.wait_all_tasks_blocked()
        gate.set()
    # only the message being handled when the stop arrived was handled
    assert ref._cell.actor.items == [0]
    assert actor_system.statistics().dead_letters >= 9


async def test_a_busy_actor_drains_many_messages_per_wakeup(actor_system):
    class Counter(Actor):
        mailbox_size = 10_000

        def __init__(self) -> None:
            self.n = 0

        @handler
        def item(self, msg: Item) -> None:
            self.n += 1

        @handler
        def count(self, msg: Count) -> int:
            return self.n

    ref = await actor_system.spawn(Counter, name="counter")

    class StepCounter(trio.abc.Instrument):
        steps = 0

        def before_task_step(self, task: trio.lowlevel.Task) -> None:
            if task.name == "actor /user/counter":
                self.steps += 1

    for n in range(5000):
        ref.tell_nowait(Item(n))
    instrument = StepCounter()
    trio.lowlevel.add_instrument(instrument)
    try:
        assert await ref.ask(Count()) == 5000
    finally:
        trio.lowlevel.remove_instrument(instrument)
    # one scheduling step per batch of hundreds of messages, not one per message
    assert 0 < instrument.steps <= 5000 // 100


async def test_statistics_count_received_handled_and_failed(actor_system):
    class Flaky(Actor):
        @handler
        def item(self, msg: Item) -> int:
            if msg.n < 0:
                raise ValueError("negative")
            return msg.n

    ref = await actor_system.spawn(Flaky)
    for n in range(5):
        await ref.tell(Item(n))
    assert await ref.ask(Item(7)) == 7
    with pytest.raises(ValueError):
        await ref.ask(Item(-1))
    stats = actor_system.statistics().actors[ref.path]
    assert (stats.received, stats.handled, stats.failed) == (7, 6, 1)


class Batcher(Actor):
    """Collects told numbers; sends one batch per burst, once its mail is handled."""

    def __init__(self, batches: list[list[int]]) -> None:
        self.batches = batches
        self.batch: list[int] = []

    @handler
    def number(self, msg: int) -> None:
        if not self.batch:
            self.when_idle(self._flush)
        self.batch.append(msg)

    def _flush(self) -> None:
        self.batches.append(self.batch)
        self.batch = []


async def test_when_idle_runs_once_after_a_burst_is_handled(actor_system):
    batches: list[list[int]] = []
    ref = await actor_system.spawn(functools.partial(Batcher, batches))
    for n in range(50):  # told without a checkpoint: one burst in the mailbox
        ref.tell_nowait(n)
    await ref.ask(-1)  # handled after the burst: by then its batch is out
    ref.tell_nowait(100)
    await ref.ask(-2)
    assert batches == [[*range(50), -1], [100, -2]]
