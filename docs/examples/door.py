"""A door whose position is a declared state machine."""

import attrs
import trio

from jumpstarter import Actor, ActorSystem, IllegalTransition, StateMachine, handler


@attrs.frozen
class Push:
    """Ask the door to take a trigger: "open", "close", "lock" or "unlock"."""

    trigger: str


@attrs.frozen
class Where:
    pass


@attrs.frozen
class Try:
    """Like Push, but only if the door can take the trigger now."""

    trigger: str


class Door(Actor):
    # The declaration lives on the class and is shared, immutable, by every door.
    # Each door instance gets its own small MachineState, in the initial state.
    position = StateMachine(
        states=["closed", "opened", "locked"],
        initial="closed",
        transitions=[
            # (trigger, source, destination)
            ("open", "closed", "opened"),
            ("close", "opened", "closed"),
            ("lock", "closed", "locked"),
            ("unlock", "locked", "closed"),
        ],
    )

    def on_start(self) -> None:
        # on_change calls back after every change with (old, new, trigger).
        self.position.on_change(
            lambda old, new, trigger: print(f"  {self.name}: {old} --{trigger}--> {new}")
        )

    @handler
    def push(self, msg: Push) -> str:
        return self.position.fire(msg.trigger)  # raises IllegalTransition if not allowed

    @handler
    def where(self, msg: Where) -> str:
        return self.position.state

    @handler
    def try_(self, msg: Try) -> bool:
        if not self.position.can(msg.trigger):
            return False
        self.position.fire(msg.trigger)
        return True


async def main() -> None:
    async with ActorSystem("house") as system:
        front = await system.spawn(Door, name="front")
        back = await system.spawn(Door, name="back")

        print("front:", await front.ask(Push("open")))
        print("front:", await front.ask(Push("close")))
        print("front:", await front.ask(Push("lock")))

        try:
            await front.ask(Push("open"))
        except IllegalTransition as exc:
            print("refused:", exc)
            print("  machine, state, trigger:", exc.machine, exc.state, exc.trigger)
        # Like any exception in a handler, it crashed the door, and the restarted
        # door is a new instance: its machine is back in the initial state.
        print("front after the restart:", await front.ask(Where()))

        print("back can lock?", await back.ask(Try("lock")))
        print("back can lock again?", await back.ask(Try("lock")))


if __name__ == "__main__":
    trio.run(main)
