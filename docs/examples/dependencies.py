"""Dependencies: start order, stop order, and cycles refused at class definition."""

import trio

from jumpstarter import Actor, ActorSystem, ChildSpec, DependencyCycle


class Service(Actor):
    def __init__(self, label: str) -> None:
        self.label = label

    async def on_start(self) -> None:
        await trio.sleep(0.01)  # pretend to connect somewhere
        print(f"  start {self.label}")

    async def on_stop(self) -> None:
        print(f"  stop  {self.label}")


class App(Actor):
    # Declared children, spawned while the App starts. A child starts only
    # after the children it depends on have started, and stops before them.
    child_specs = (
        ChildSpec("web", Service, args=("web",), depends_on=("db", "cache")),
        ChildSpec("cache", Service, args=("cache",), depends_on=("db",)),
        ChildSpec("db", Service, args=("db",)),
    )


async def main() -> None:
    async with ActorSystem("deps") as system:
        print("declared children:")
        app = await system.spawn(App, name="app")  # returns once web has started
        print("running:", ", ".join(system.actors))
        await system.stop(app)

        print("top-level actors with depends_on:")
        broker = system.spawn_soon(Service, "broker", name="broker")
        worker = system.spawn_soon(Service, "worker", name="worker", depends_on=[broker])
        await system.wait_for_state(worker, "started")
        await system.stop(broker)  # stops the worker first
        print("worker is", system.state_of(worker))

    print("a cycle:")
    try:

        class Knot(Actor):
            child_specs = (
                ChildSpec("a", Service, args=("a",), depends_on=("b",)),
                ChildSpec("b", Service, args=("b",), depends_on=("a",)),
            )

    except DependencyCycle as exc:
        print(" ", exc)


if __name__ == "__main__":
    trio.run(main)
