"""A parent, a child, an async handler, and a factory for ``jumpstart run``.

Run it with Python::

    python frontdesk.py

or, from this directory, with the command line::

    jumpstart run frontdesk:main
"""

import attrs
import trio

from jumpstarter import Actor, ActorSystem, handler


@attrs.frozen
class Greet:
    name: str


@attrs.frozen
class Visit:
    name: str


@attrs.frozen
class Close:
    pass


class Greeter(Actor):
    @handler
    def greet(self, msg: Greet) -> str:
        return f"Hello, {msg.name}!"


class FrontDesk(Actor):
    def __init__(self) -> None:
        self.visitors = 0

    async def on_start(self) -> None:
        # A child: supervised by this actor, stopped before it.
        self.greeter = await self.spawn(Greeter, name="greeter")

    # An async handler may await, for instance an ask to another actor.
    # The front desk still handles one message at a time.
    @handler
    async def visit(self, msg: Visit) -> str:
        self.visitors += 1
        greeting = await self.greeter.ask(Greet(msg.name))
        return f"{greeting} You are visitor number {self.visitors}."

    @handler
    def close(self, msg: Close) -> None:
        self.stop()  # after this message; the greeter stops first

    def on_stop(self) -> None:
        print(f"{self.path}: closing after {self.visitors} visitors")


async def main(system: ActorSystem) -> None:
    """The factory: spawn the actors and give them something to do."""
    desk = await system.spawn(FrontDesk, name="desk")
    print("actors:", ", ".join(system.actors))
    for name in ("Ada", "Grace"):
        print(await desk.ask(Visit(name)))
    await desk.tell(Close())


async def run() -> None:
    # What `jumpstart run frontdesk:main` does, give or take signal handling:
    async with ActorSystem("frontdesk") as system:
        await main(system)
        await system.wait_until_idle()  # until every top-level actor has stopped


if __name__ == "__main__":
    trio.run(run)
