"""ask: answers, timeouts, errors re-raised at the asker, unknown types, base classes."""

import attrs
import trio

from jumpstarter import Actor, ActorSystem, AskTimeout, UnhandledMessage, handler


@attrs.frozen
class Divide:
    a: float
    b: float


@attrs.frozen
class Answered:
    pass


@attrs.frozen
class Think:
    seconds: float


class Shape:
    """A base class: one handler serves every subclass."""


@attrs.frozen
class Square(Shape):
    side: float


@attrs.frozen
class Circle(Shape):
    radius: float


class Calculator(Actor):
    def __init__(self) -> None:
        self.answered = 0

    @handler
    def divide(self, msg: Divide) -> float:
        self.answered += 1
        return msg.a / msg.b  # b == 0 raises ZeroDivisionError

    @handler
    def count(self, msg: Answered) -> int:
        return self.answered

    @handler
    async def think(self, msg: Think) -> str:
        await trio.sleep(msg.seconds)
        return "thought about it"

    @handler
    def shape(self, msg: Shape) -> str:
        return f"a {type(msg).__name__.lower()}"

    @handler
    def square(self, msg: Square) -> float:  # the exact type wins over the base class
        return msg.side**2


async def main() -> None:
    async with ActorSystem("calc") as system:
        calc = await system.spawn(Calculator)

        print("6 / 3 =", await calc.ask(Divide(6, 3)))

        # An ask waits for the reply, at most `timeout` seconds.
        try:
            await calc.ask(Think(seconds=0.5), timeout=0.1)
        except AskTimeout as exc:
            print("timed out:", exc, "| a TimeoutError:", isinstance(exc, TimeoutError))

        # An exception raised by the handler is re-raised at the asker...
        try:
            await calc.ask(Divide(1, 0))
        except ZeroDivisionError as exc:
            print("the asker gets:", repr(exc))
        # ...and the actor crashed: its supervisor restarted it with a new instance.
        print("answered by the new instance:", await calc.ask(Answered()))
        print("state:", system.state_of(calc))

        # A message type without a handler fails the ask; the actor is unharmed.
        try:
            await calc.ask("what is the answer?")
        except UnhandledMessage as exc:
            print("unhandled:", exc)

        # Dispatch looks at the exact type first, then at its base classes.
        print(await calc.ask(Circle(1.0)), "/", await calc.ask(Square(3.0)))


if __name__ == "__main__":
    trio.run(main)
