"""Restart backoff: exponential, capped, with jitter; seeded for reproducible runs."""

import logging
import random

import attrs
import trio
import trio.testing

from jumpstarter import Actor, ActorSystem, Backoff, OneForOne, handler

logging.getLogger("jumpstarter").setLevel(logging.CRITICAL)  # the crashes here are on purpose

steady = Backoff(initial=0.5, factor=2.0, maximum=4.0, jitter=0.0)
print("without jitter:", [steady.delay(n) for n in range(6)])

jittery = Backoff(initial=0.5, factor=2.0, maximum=4.0, jitter=0.1)
rng = random.Random(42)
print("with 10% jitter:", [round(jittery.delay(n, rng), 3) for n in range(6)])


@attrs.frozen
class Crash:
    pass


class Fragile(Actor):
    @handler
    def crash(self, msg: Crash) -> None:
        raise RuntimeError("again")


async def main() -> None:
    strategy = OneForOne(backoff=steady, max_restarts=10, within=60)
    async with ActorSystem("backoff", supervisor=strategy, seed=1) as system:
        fragile = await system.spawn(Fragile)
        waits = []
        for _ in range(5):
            await fragile.tell(Crash())
            await system.wait_for_state(fragile, "crashed")
            crashed_at = trio.current_time()
            await system.wait_for_state(fragile, "started")
            waits.append(trio.current_time() - crashed_at)
        print("measured waits:", [round(w, 2) for w in waits])


if __name__ == "__main__":
    # A virtual clock that jumps ahead whenever every task is waiting: the
    # 11.5 seconds of backoff take no real time.
    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
