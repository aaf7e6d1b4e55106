"""A first actor: a counter that is told to add and asked for its total."""

import attrs
import trio

from jumpstarter import Actor, ActorSystem, handler


# Messages are plain classes. Frozen attrs classes are a good fit: they are
# immutable, so sender and actor can never share mutable state through them.
@attrs.frozen
class Add:
    amount: int


@attrs.frozen
class GetTotal:
    pass


class Counter(Actor):
    def __init__(self, start: int) -> None:
        self.total = start

    # The annotation of the message parameter says which message type this
    # method handles. The return value is the answer to an ask.
    @handler
    def add(self, msg: Add) -> None:
        self.total += msg.amount

    @handler
    def get_total(self, msg: GetTotal) -> int:
        return self.total


async def main() -> None:
    async with ActorSystem("demo") as system:
        counter = await system.spawn(Counter, 100, name="counter")
        print("spawned", counter)

        for amount in (1, 2, 3):
            await counter.tell(Add(amount))  # fire and forget
        total = await counter.ask(GetTotal())  # request and reply
        print("total:", total)
    # Leaving the block stops every actor gracefully.
    print("state after shutdown:", system.state_of(counter))


if __name__ == "__main__":
    trio.run(main)
