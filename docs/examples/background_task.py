"""A background task: runs beside the handlers, tells the actor what it found."""

import logging
import sys

import attrs
import trio
import trio.testing

from jumpstarter import Actor, ActorSystem, handler

logging.basicConfig(stream=sys.stdout, format="log: %(message)s")


@attrs.frozen
class Reading:
    value: int


class Sensor:
    """A stand-in for something slow to read, which fails now and then."""

    def __init__(self) -> None:
        self.reads = 0

    async def read(self) -> int:
        await trio.sleep(1)
        self.reads += 1
        if self.reads == 4:
            raise OSError("sensor unplugged")
        return self.reads * 10


class Monitor(Actor):
    def __init__(self, sensor: Sensor) -> None:
        self.sensor = sensor

    def on_start(self) -> None:
        # Started with every instance, cancelled when the actor stops or restarts.
        self.start_task(self.poll, 2.0)

    async def poll(self, interval: float) -> None:
        # This runs concurrently with the handlers: rather than changing the
        # actor's attributes here, send the actor a message.
        while True:
            value = await self.sensor.read()  # an exception here crashes the actor
            await self.ref.tell(Reading(value))
            await trio.sleep(interval)

    @handler
    def reading(self, msg: Reading) -> None:
        print(f"t={trio.current_time():>2.0f}  reading {msg.value}")


async def main() -> None:
    async with ActorSystem("plant") as system:
        monitor = await system.spawn(Monitor, Sensor())
        await trio.sleep(14)
        print("restarts:", system.statistics().actors[monitor.path].restarts)
        await system.stop(monitor)  # cancels the poll task


if __name__ == "__main__":
    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
