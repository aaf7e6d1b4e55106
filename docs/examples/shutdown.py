"""Graceful shutdown: mail is handled first; past the deadline the rest is dropped."""

import attrs
import trio
import trio.testing

from jumpstarter import Actor, ActorSystem, handler


@attrs.frozen
class Job:
    n: int


class Worker(Actor):
    def __init__(self, done: list[int]) -> None:
        self.done = done

    @handler
    async def job(self, msg: Job) -> None:
        await trio.sleep(1)  # each job takes a second
        self.done.append(msg.n)

    def on_stop(self) -> None:
        print("  on_stop")


async def run(shutdown_timeout: float) -> None:
    done: list[int] = []
    async with ActorSystem("jobs", shutdown_timeout=shutdown_timeout) as system:
        worker = await system.spawn(Worker, done)
        for n in range(5):
            await worker.tell(Job(n))
        start = trio.current_time()
        # Leaving the block shuts the system down.
    print(f"  took {trio.current_time() - start:.1f} s; jobs done: {done}")
    print(f"  dead letters: {[letter.message.n for letter in system.recent_dead_letters()]}")


async def main() -> None:
    print("shutdown_timeout=10:")
    await run(10)
    print("shutdown_timeout=2.5:")
    await run(2.5)


if __name__ == "__main__":
    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
