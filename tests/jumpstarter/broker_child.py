"""A consumer process for test_broker: it takes messages and never settles them.

Run as ``python broker_child.py URL ADDRESS``. It prints ``consuming`` once the broker
has attached its link, then ``received <message>`` for each message its actor gets;
the actor then blocks forever, so the delivery stays unsettled until the process dies.
"""

from __future__ import annotations

import functools
import sys

import trio

from jumpstarter import Actor, ActorSystem, handler, open_broker


class Stuck(Actor):
    @handler
    async def take(self, message: str) -> None:
        print(f"received {message}", flush=True)
        await trio.sleep_forever()


async def main(url: str, address: str) -> None:
    async with ActorSystem("child") as system, open_broker(url) as broker:
        stuck = await system.spawn(Stuck, name="stuck")
        async with trio.open_nursery() as nursery:
            consume = functools.partial(broker.consume, prefetch=1, ask_timeout=3600)
            await nursery.start(consume, address, stuck)
            print("consuming", flush=True)


if __name__ == "__main__":
    trio.run(main, sys.argv[1], sys.argv[2])
