"""Senders, refs, paths and addresses."""

import attrs
import trio

from jumpstarter import Actor, ActorRef, ActorSystem, handler


@attrs.frozen
class Ping:
    n: int


@attrs.frozen
class Pong:
    n: int


@attrs.frozen
class Start:
    rounds: int


class Ponger(Actor):
    @handler
    async def ping(self, msg: Ping) -> None:
        # `self.sender` is the ref the sender passed with `sender=`, or None.
        if self.sender is not None:
            await self.sender.tell(Pong(msg.n), sender=self.ref)


class Pinger(Actor):
    def __init__(self, ponger: ActorRef, done: trio.Event) -> None:
        self.ponger = ponger
        self.done = done
        self.rounds = 0

    @handler
    async def start(self, msg: Start) -> None:
        self.rounds = msg.rounds
        await self.ponger.tell(Ping(1), sender=self.ref)

    @handler
    async def pong(self, msg: Pong) -> None:
        print(f"{self.name} got Pong({msg.n}) from {self.sender.path}")
        if msg.n < self.rounds:
            await self.ponger.tell(Ping(msg.n + 1), sender=self.ref)
        else:
            self.done.set()


async def main() -> None:
    async with ActorSystem("table") as system:
        done = trio.Event()
        ponger = await system.spawn(Ponger, name="ponger")
        pinger = await system.spawn(Pinger, ponger, done, name="pinger")
        await pinger.tell(Start(rounds=3))
        await done.wait()

        # A ref names an actor by path inside its system, and by a full address.
        print("path:   ", ponger.path)
        print("address:", ponger.address)
        # Refs can be found again by path or address, and compare by address.
        assert system.lookup("ponger") == ponger  # relative to /user
        assert system.lookup("/user/ponger") == ponger
        assert system.ref("local://table/user/ponger") == ponger
        print("refs as dict keys:", {ponger: "the ponger"}[system.lookup("ponger")])


if __name__ == "__main__":
    trio.run(main)
