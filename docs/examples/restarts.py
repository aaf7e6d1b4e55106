"""What a crash does: the ask fails, queued asks fail, queued tells survive the restart."""

import logging
import sys

import attrs
import trio

from jumpstarter import Actor, ActorCrashed, ActorSystem, handler

# The runtime reports crashes and escalations to the standard logger "jumpstarter".
logging.basicConfig(stream=sys.stdout, format="log: %(name)s: %(message)s")


@attrs.frozen
class Bump:
    pass


@attrs.frozen
class Get:
    pass


@attrs.frozen
class CrashWhen:
    event: trio.Event


class Counter(Actor):
    def __init__(self) -> None:
        self.count = 0

    @handler
    def bump(self, msg: Bump) -> int:
        self.count += 1
        return self.count

    @handler
    def get(self, msg: Get) -> int:
        return self.count

    @handler
    async def crash_when(self, msg: CrashWhen) -> None:
        await msg.event.wait()
        raise RuntimeError("disk on fire")


async def main() -> None:
    async with ActorSystem("restarts") as system:
        counter = await system.spawn(Counter, name="counter")
        await counter.ask(Bump())
        print("count before:", await counter.ask(Bump()))

        go = trio.Event()
        await counter.tell(CrashWhen(go))  # the counter will crash in this handler
        await counter.tell(Bump())  # a tell queued behind it

        async def queued_ask() -> None:
            try:
                await counter.ask(Get())
            except ActorCrashed as exc:
                print("queued ask:", type(exc).__name__, "caused by", repr(exc.__cause__))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(queued_ask)
            await trio.sleep(0.01)
            go.set()

        await system.wait_for_state(counter, "started")
        # The new instance started from zero, then handled the queued Bump.
        print("count after:", await counter.ask(Get()))
        print("restarts:", system.statistics().actors[counter.path].restarts)


if __name__ == "__main__":
    trio.run(main)
