"""Following an actor through its lifecycle."""

import attrs
import trio

from jumpstarter import Actor, ActorSystem, Health, handler


@attrs.frozen
class Feel:
    health: Health


class Patient(Actor):
    async def on_start(self) -> None:
        await trio.sleep(0.01)  # an async on_start: the start happens in the background

    @handler
    def feel(self, msg: Feel) -> None:
        self.report_health(msg.health)


async def main() -> None:
    async with ActorSystem("ward") as system:
        patient = system.spawn_soon(Patient, name="patient")
        print("just spawned:", system.state_of(patient))
        system.on_state_change(
            patient, lambda old, new, trigger: print(f"  {trigger:>20} -> {new}")
        )
        await system.wait_for_state(patient, "started")

        await patient.ask(Feel(Health.DEGRADED))
        system.pause(patient)
        await system.wait_for_state(patient, "started.paused")
        system.resume(patient)
        await system.wait_for_state(patient, "started.running")

        await system.stop(patient)


if __name__ == "__main__":
    trio.run(main)
