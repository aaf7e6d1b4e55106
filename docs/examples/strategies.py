"""One-for-one, one-for-all and rest-for-one, side by side."""

import collections
import contextlib
import logging

import attrs
import trio

from jumpstarter import (
    Actor,
    ActorRef,
    ActorSystem,
    OneForAll,
    OneForOne,
    RestForOne,
    SupervisorStrategy,
    handler,
)

logging.getLogger("jumpstarter").setLevel(logging.ERROR)  # the crashes here are on purpose

instances: collections.Counter[str] = collections.Counter()  # instances made, by path


@attrs.frozen
class Crash:
    pass


@attrs.frozen
class Instance:
    pass


@attrs.frozen
class Children:
    pass


class Child(Actor):
    def on_start(self) -> None:
        instances[self.path] += 1
        self.instance = instances[self.path]  # 1 for the first instance, 2 after a restart...

    @handler
    def instance_(self, msg: Instance) -> int:
        return self.instance

    @handler
    def crash(self, msg: Crash) -> None:
        raise RuntimeError("crash")


def make_parent(strategy: SupervisorStrategy) -> type[Actor]:
    class Parent(Actor):
        supervisor_strategy = strategy  # applies to this actor's children

        async def on_start(self) -> None:
            for name in ("a", "b", "c"):  # spawn order matters for rest-for-one
                await self.spawn(Child, name=name)

        @handler
        def children_(self, msg: Children) -> list[ActorRef]:
            return list(self.children.values())

    return Parent


async def main() -> None:
    async with ActorSystem("strategies") as system:
        for strategy in (OneForOne(), OneForAll(), RestForOne()):
            parent = await system.spawn(make_parent(strategy))
            children = await parent.ask(Children())
            before = [await child.ask(Instance()) for child in children]
            with contextlib.suppress(RuntimeError):
                await children[1].ask(Crash())  # "b" fails; the ask re-raises its error
            after = [await child.ask(Instance()) for child in children]
            print(f"{type(strategy).__name__:<10}  instances of a, b, c: {before} -> {after}")
            await system.stop(parent)


if __name__ == "__main__":
    trio.run(main)
