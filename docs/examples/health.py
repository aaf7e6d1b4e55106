"""Health: checked periodically (or reported), seen in the lifecycle and by the parent."""

import attrs
import trio
import trio.testing

from jumpstarter import Actor, ActorSystem, ChildSpec, Health, HealthChanged, handler


@attrs.frozen
class Failure:
    pass


class Uplink(Actor):
    health_check_interval = 10.0  # seconds between calls of health_check

    def __init__(self) -> None:
        self.failures = 0

    async def health_check(self) -> Health:
        if self.failures >= 3:
            return Health.UNHEALTHY
        return Health.DEGRADED if self.failures else Health.HEALTHY

    @handler
    def failure(self, msg: Failure) -> None:
        self.failures += 1  # an actor can also call self.report_health(...) itself


class Router(Actor):
    child_specs = (ChildSpec("uplink", Uplink),)

    # A parent with a handler for HealthChanged is told when a child's health changes.
    @handler
    def health_changed(self, msg: HealthChanged) -> None:
        print(
            f"t={trio.current_time():>3.0f}  {msg.ref.path}: "
            f"{msg.previous.value} -> {msg.health.value}"
        )


async def main() -> None:
    async with ActorSystem("net") as system:
        await system.spawn(Router, name="router")
        uplink = system.lookup("router/uplink")
        await uplink.tell(Failure())
        await trio.sleep(15)
        print(f"t={trio.current_time():>3.0f}  state: {system.state_of(uplink)}")
        for _ in range(2):
            await uplink.tell(Failure())
        await trio.sleep(10)
        print(f"t={trio.current_time():>3.0f}  state: {system.state_of(uplink)}")


if __name__ == "__main__":
    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
