"""Dead letters: where undeliverable messages go, and how to watch them."""

import attrs
import trio

from jumpstarter import (
    Actor,
    ActorStopped,
    ActorSystem,
    DeadLetter,
    SubscribeDeadLetters,
    handler,
)


@attrs.frozen
class Work:
    n: int


class Worker(Actor):
    @handler
    async def work(self, msg: Work) -> None:
        await trio.sleep(0.1)


class Auditor(Actor):
    """Receives a copy of every dead letter once subscribed."""

    @handler
    def dead_letter(self, letter: DeadLetter) -> None:
        print(f"audit: {letter.message!r} to {letter.recipient}: {letter.reason}")


async def main() -> None:
    async with ActorSystem("audit") as system:
        auditor = await system.spawn(Auditor, name="auditor")
        await system.dead_letters.ask(SubscribeDeadLetters(auditor))

        worker = await system.spawn(Worker, name="worker")
        await worker.tell("not a Work")  # no handler for str
        for n in range(3):
            await worker.tell(Work(n))
        await trio.sleep(0.05)  # Work(0) is being handled, Work(1) and Work(2) wait
        await system.stop(worker)  # without drain=True, queued mail is not handled

        await worker.tell(Work(3))  # the actor is stopped
        try:
            await worker.ask(Work(4))
        except ActorStopped as exc:
            error = exc

        await trio.sleep(0.01)  # let the auditor handle its mail
        print("the ask failed:", error)
        print("dead letters so far:", system.statistics().dead_letters)
        print("the last one:", system.recent_dead_letters()[-1].message)


if __name__ == "__main__":
    trio.run(main)
