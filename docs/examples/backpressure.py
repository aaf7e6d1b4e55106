"""Bounded mailboxes: tell waits for room, tell_nowait refuses."""

import attrs
import trio

from jumpstarter import Actor, ActorSystem, MailboxFull, handler


@attrs.frozen
class Job:
    n: int


class SlowWorker(Actor):
    mailbox_size = 3  # at most 3 messages wait; the default is 1000

    @handler
    async def job(self, msg: Job) -> None:
        await trio.sleep(0.1)


async def main() -> None:
    async with ActorSystem("pressure") as system:
        worker = await system.spawn(SlowWorker)

        # tell_nowait never waits: when the mailbox is full it raises MailboxFull,
        # and the message is still yours to retry, drop or count.
        refused = []
        for n in range(6):
            try:
                worker.tell_nowait(Job(n))
            except MailboxFull:
                refused.append(n)
        print("tell_nowait refused jobs", refused)

        # tell waits while the mailbox is full, so a fast producer is slowed
        # down to the pace of the consumer instead of filling memory.
        start = trio.current_time()
        for n in range(6, 12):
            await worker.tell(Job(n))
        waited = trio.current_time() - start
        print(f"tell waited about {waited:.1f} s for room")


if __name__ == "__main__":
    trio.run(main)
