"""Timers: send_after, send_every, keys, replacing and cancelling."""

import attrs
import trio
import trio.testing

from jumpstarter import Actor, ActorSystem, handler


@attrs.frozen
class Say:
    text: str


@attrs.frozen
class Snooze:
    seconds: float


@attrs.frozen
class StopRinging:
    pass


class AlarmClock(Actor):
    def on_start(self) -> None:
        # Once, 30 seconds from now. The key names the timer.
        self.send_after(30, Say("wake up"), key="alarm")
        # Every 10 seconds, starting 5 seconds from now.
        self.send_every(10, Say("tick"), key="ticking", initial_delay=5)
        # Without a key, the returned key is the handle.
        self.chime = self.send_after(12, Say("chime"))

    @handler
    def say(self, msg: Say) -> None:
        print(f"t={trio.current_time():>3.0f}  {msg.text}")

    @handler
    def snooze(self, msg: Snooze) -> None:
        # Starting a timer with the key of a live timer replaces it.
        self.send_after(msg.seconds, Say("wake up, really"), key="alarm")

    @handler
    def stop_ringing(self, msg: StopRinging) -> bool:
        print(f"t={trio.current_time():>3.0f}  cancel ticking:", self.cancel_timer("ticking"))
        print(f"t={trio.current_time():>3.0f}  cancel the chime:", self.cancel_timer(self.chime))
        return True


async def main() -> None:
    async with ActorSystem("bedroom") as system:
        clock = await system.spawn(AlarmClock)
        await trio.sleep(20)
        await clock.tell(Snooze(14))  # the alarm moves from t=30 to t=34
        await trio.sleep(20)
        await clock.ask(StopRinging())
        await trio.sleep(60)  # nothing more: the timers are gone


if __name__ == "__main__":
    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
