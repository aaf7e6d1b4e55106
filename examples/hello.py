"""A first actor system: greetings, a door with a state machine, and a ticking timer.

Run it from the repository's root::

    jumpstart run examples.hello:main

and draw the door's state machine::

    jumpstart graph examples.hello:Door --machine position -o door.svg

``Host`` is a parent with two declared children: a ``Door`` and a ``Greeter``
that depends on it. ``main`` asks them a few things, then tells the host to
start a ``Ticker`` child that ticks on a timer and stops itself. When the
ticker has stopped, the host stops too (children first, the greeter before the
door it depends on), nothing is left running, and the command ends.
"""

from __future__ import annotations

import attrs

from jumpstarter import Actor, ActorSystem, ChildSpec, StateMachine, Terminated, handler

# -- messages: plain frozen attrs classes -------------------------------------------------


@attrs.frozen
class Greet:
    name: str


@attrs.frozen
class Open:
    pass


@attrs.frozen
class Close:
    pass


@attrs.frozen
class Lock:
    pass


@attrs.frozen
class Unlock:
    pass


@attrs.frozen
class StartTicking:
    ticks: int
    interval: float


@attrs.frozen
class Tick:
    pass


def say(who: str, text: str) -> None:
    """Print one line of the story, with who is speaking."""
    print(f"{who:<18} {text}", flush=True)


# -- actors ----------------------------------------------------------------------------------


class Greeter(Actor):
    """Answers ``Greet`` with a greeting; counts the visitors."""

    def __init__(self, greeting: str) -> None:
        self.greeting = greeting
        self.visitors = 0

    @handler
    def greet(self, msg: Greet) -> str:
        self.visitors += 1
        return f"{self.greeting}, {msg.name}!"

    def on_stop(self) -> None:
        say(self.path, f"stopped after greeting {self.visitors} visitors")


class Door(Actor):
    """A door whose position is a declared state machine.

    ``jumpstart graph examples.hello:Door --machine position -o door.svg`` draws it.
    """

    position = StateMachine(
        states=["closed", "opened", "locked"],
        initial="closed",
        transitions=[
            ("open", "closed", "opened"),
            ("close", "opened", "closed"),
            ("lock", "closed", "locked"),
            ("unlock", "locked", "closed"),
        ],
    )

    @handler(Open, Close, Lock, Unlock)
    def push(self, msg: Open | Close | Lock | Unlock) -> str:
        trigger = type(msg).__name__.lower()
        before = self.position.state
        if not self.position.can(trigger):
            return f"cannot {trigger} the door: it is {before}"
        return f"{before} -> {self.position.fire(trigger)}"

    def on_stop(self) -> None:
        say(self.path, f"stopped, {self.position.state}")


class Ticker(Actor):
    """Ticks on a timer, ``ticks`` times, then stops itself."""

    def __init__(self, ticks: int, interval: float) -> None:
        self.ticks = ticks
        self.interval = interval
        self.count = 0

    def on_start(self) -> None:
        self.send_every(self.interval, Tick())

    @handler
    def tick(self, msg: Tick) -> None:
        self.count += 1
        say(self.path, f"tick {self.count}/{self.ticks}")
        if self.count == self.ticks:
            self.stop()


class Host(Actor):
    """The parent: starts a door and a greeter, and a ticker on request."""

    # The greeter stands at the door: the door starts first and stops last.
    child_specs = (
        ChildSpec("door", Door),
        ChildSpec("greeter", Greeter, args=("Hello",), depends_on=("door",)),
    )

    @handler
    def start_ticking(self, msg: StartTicking) -> None:
        ticker = self.spawn_soon(Ticker, msg.ticks, msg.interval, name="ticker")
        self.watch(ticker)
        say(self.path, f"started {ticker.path}: {msg.ticks} ticks, every {msg.interval} s")

    @handler
    def child_stopped(self, msg: Terminated) -> None:
        say(self.path, f"{msg.ref.path} has stopped, so I stop too")
        self.stop()

    def on_stop(self) -> None:
        say(self.path, "stopped after its children; nothing is left running")


# -- the factory `jumpstart run` calls ---------------------------------------------------


async def main(system: ActorSystem) -> None:
    """Spawn the host, talk to its children, then let the ticker run down."""
    host = await system.spawn(Host, name="host")
    say("main", f"actors: {', '.join(system.actors)}")

    greeter = system.lookup("host/greeter")
    for name in ("trio", "actors"):
        say("main", f"greeter says: {await greeter.ask(Greet(name))}")

    door = system.lookup("host/door")
    for push in (Open(), Close(), Lock(), Open()):
        say("main", f"door: {await door.ask(push)}")

    await host.tell(StartTicking(ticks=3, interval=0.2))
    # main returns now; `jumpstart run` keeps the system running until the host stops.
