import attrs
import pytest
import trio

from jumpstarter import Actor, handler


@attrs.frozen
class Tick:
    label: str = "tick"


@attrs.frozen
class Cancel:
    key: str


@attrs.frozen
class Get:
    pass


class Clock(Actor):
    def __init__(self) -> None:
        self.ticks: list[tuple[float, str]] = []

    def on_start(self) -> None:
        self.send_after(5, Tick("once"))
        self.send_every(2, Tick("every"), key="every")

    @handler
    def tick(self, msg: Tick) -> None:
        self.ticks.append((trio.current_time(), msg.label))

    @handler
    def cancel(self, msg: Cancel) -> bool:
        return self.cancel_timer(msg.key)

    @handler
    def get(self, msg: Get) -> list[tuple[float, str]]:
        return self.ticks


async def test_a_single_timer_fires_once_after_its_delay(actor_system, autojump_clock):
    ref = await actor_system.spawn(Clock)
    await trio.sleep(20)
    once = [t for t, label in await ref.ask(Get()) if label == "once"]
    assert once == [pytest.approx(5, abs=0.01)]


async def test_a_periodic_timer_fires_every_interval(actor_system, autojump_clock):
    ref = await actor_system.spawn(Clock)
    await trio.sleep(9)
    every = [t for t, label in await ref.ask(Get()) if label == "every"]
    assert every == pytest.approx([2, 4, 6, 8], abs=0.01)


async def test_a_cancelled_timer_stops_firing(actor_system, autojump_clock):
    ref = await actor_system.spawn(Clock)
    await trio.sleep(3)
    assert await ref.ask(Cancel("every")) is True
    await trio.sleep(10)
    every = [t for t, label in await ref.ask(Get()) if label == "every"]
    assert len(every) == 1
    assert await ref.ask(Cancel("every")) is False


async def test_a_timer_with_a_live_key_replaces_it(actor_system, autojump_clock):
    class Rearm(Clock):
        def on_start(self) -> None:
            self.send_after(5, Tick("first"), key="k")
            self.send_after(1, Tick("second"), key="k")

    ref = await actor_system.spawn(Rearm)
    await trio.sleep(10)
    assert await ref.ask(Get()) == [(pytest.approx(1, abs=0.01), "second")]


async def test_timers_are_cancelled_when_the_actor_stops(actor_system, autojump_clock):
    ref = await actor_system.spawn(Clock)
    await trio.sleep(3)
    await actor_system.stop(ref)
    await trio.sleep(10)
    assert actor_system.statistics().dead_letters == 0


async def test_timers_are_cancelled_and_restarted_on_restart(actor_system, autojump_clock):
    class Fragile(Clock):
        @handler
        def boom(self, msg: str) -> None:
            raise RuntimeError(msg)

    ref = await actor_system.spawn(Fragile)
    await trio.sleep(3)
    await ref.tell("boom")
    await actor_system.wait_for_state(ref, "crashed")
    await actor_system.wait_for_state(ref, "started")
    restarted_at = trio.current_time()
    await trio.sleep(4.5)
    every = [t for t, label in await ref.ask(Get()) if label == "every"]
    assert every == pytest.approx([restarted_at + 2, restarted_at + 4], abs=0.01)


async def test_a_background_task_runs_while_the_actor_runs(actor_system, autojump_clock):
    class Poller(Actor):
        def __init__(self) -> None:
            self.polls = 0

        def on_start(self) -> None:
            self.start_task(self.poll)

        async def poll(self) -> None:
            while True:
                await trio.sleep(1)
                await self.ref.tell(Tick())

        @handler
        def tick(self, msg: Tick) -> None:
            self.polls += 1

        @handler
        def get(self, msg: Get) -> int:
            return self.polls

    ref = await actor_system.spawn(Poller)
    await trio.sleep(5.5)
    assert await ref.ask(Get()) == 5
    await actor_system.stop(ref)
    await trio.sleep(5)


async def test_a_failing_background_task_crashes_the_actor(actor_system, autojump_clock):
    class Doomed(Actor):
        def on_start(self) -> None:
            self.start_task(self.explode)

        async def explode(self) -> None:
            await trio.sleep(1)
            raise RuntimeError("task failed")

    ref = await actor_system.spawn(Doomed)
    await actor_system.wait_for_state(ref, "crashed")
    assert trio.current_time() == pytest.approx(1, abs=0.01)
    await actor_system.wait_for_state(ref, "started")
