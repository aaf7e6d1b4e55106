"""Deciders choose a directive per exception; intensity turns restarts into escalation."""

import logging

import attrs
import trio

from jumpstarter import Actor, ActorSystem, ChildSpec, Directive, OneForOne, Terminated, handler

logging.getLogger("jumpstarter").setLevel(logging.CRITICAL)  # the crashes here are on purpose


@attrs.frozen
class Work:
    error: Exception | None = None


@attrs.frozen
class Done:
    pass


def decide(exc: BaseException) -> Directive:
    if isinstance(exc, ValueError):
        return Directive.RESUME  # a bad message: skip it, keep the state
    if isinstance(exc, PermissionError):
        return Directive.STOP  # nothing a restart could fix
    if isinstance(exc, ConnectionError):
        return Directive.RESTART  # start again from a clean instance
    return Directive.ESCALATE  # unknown: let the parent's supervisor decide


class Worker(Actor):
    def __init__(self) -> None:
        self.done = 0

    @handler
    def work(self, msg: Work) -> int:
        if msg.error is not None:
            raise msg.error
        self.done += 1
        return self.done


class Boss(Actor):
    supervisor_strategy = OneForOne(decider=decide, max_restarts=2, within=60, backoff=None)
    child_specs = (ChildSpec("w1", Worker), ChildSpec("w2", Worker))

    def on_start(self) -> None:
        # Declared children have started by the time on_start runs.
        print(f"{self.path} starts, watching {', '.join(self.children)}")
        for child in self.children.values():
            self.watch(child)

    @handler
    def terminated(self, msg: Terminated) -> None:
        print(f"{self.path} saw {msg.ref.path} stop: {msg.reason!r}")

    @handler
    def done(self, msg: Done) -> None:
        self.stop()


async def attempt(ref, error: Exception | None = None) -> None:
    try:
        print(f"  {ref.path}: done {await ref.ask(Work(error))}")
    except Exception as exc:
        print(f"  {ref.path}: raised {exc!r}")


async def main() -> None:
    async with ActorSystem("office") as system:
        boss = await system.spawn(Boss, name="boss")
        w1, w2 = system.lookup("boss/w1"), system.lookup("boss/w2")

        await attempt(w1)
        await attempt(w1, ValueError("bad input"))  # RESUME: the count goes on
        await attempt(w1)
        await attempt(w1, ConnectionError("lost"))  # RESTART: a new instance
        await attempt(w1)
        await attempt(w1, PermissionError("denied"))  # STOP: the boss gets Terminated
        await trio.sleep(0.01)

        # ConnectionError restarts w2 twice; the third one within 60 s exceeds
        # max_restarts=2 and escalates: w2 stops and the boss fails with the same
        # error. The system restarts the boss, which starts new workers.
        for _ in range(3):
            await attempt(w2, ConnectionError("flapping"))
        await system.wait_for_state(boss, "restarting")
        await system.wait_for_state(boss, "started")
        print("actors now:", ", ".join(system.actors))
        print("boss restarts:", system.statistics().actors["/user/boss"].restarts)
        await boss.tell(Done())


if __name__ == "__main__":
    trio.run(main)
