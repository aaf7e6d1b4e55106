"""A task's states: nested states, is_in, wait_for, on_change, extend.

State machines are not tied to actors: any class can declare one.
"""

import trio

from jumpstarter import State, StateMachine

TASK = StateMachine(
    name="task",
    states=[
        "pending",
        "running",
        "retrying",
        # a parent state with two children; no transition leaves it
        State("finished", ["succeeded", "failed"]),
    ],
    initial="pending",
    transitions=[
        ("start", "pending", "running"),
        ("succeed", "running", "finished.succeeded"),
        ("fail", "running", "finished.failed"),
        ("retry", "running", "retrying"),
        ("start", "retrying", "running"),  # one trigger, several sources
    ],
)


class Task:
    state = TASK  # on an instance, `task.state` is that task's own MachineState

    def __init__(self, name: str, failures: int) -> None:
        self.name = name
        self.failures = failures  # how many attempts fail before one succeeds

    async def run(self, attempts: int) -> None:
        for attempt in range(1, attempts + 1):
            self.state.fire("start")
            await trio.sleep(0.01)  # the work
            if attempt > self.failures:
                self.state.fire("succeed")
                return
            if attempt == attempts:
                self.state.fire("fail")
                return
            self.state.fire("retry")
            await trio.sleep(0.01 * attempt)  # wait before the next attempt


async def main() -> None:
    flaky = Task("flaky", failures=2)
    doomed = Task("doomed", failures=5)
    history = [flaky.state.state]
    flaky.state.on_change(lambda old, new, trigger: history.append(f"-{trigger}-> {new}"))
    print("can start:", flaky.state.can("start"), "| can succeed:", flaky.state.can("succeed"))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(flaky.run, 3)
        nursery.start_soon(doomed.run, 3)
        # wait_for returns once the state is the given one or inside it
        print("doomed ended in", await doomed.state.wait_for("finished"))
        print("flaky ended in", await flaky.state.wait_for("finished"))

    print("flaky went", " ".join(history))

    print("flaky is in finished:", flaky.state.is_in("finished"))
    print("flaky is in finished.failed:", flaky.state.is_in("finished.failed"))

    # extend() returns a new declaration; TASK itself is unchanged.
    cancellable = TASK.extend(
        name="cancellable task",
        states=["cancelled"],
        transitions=[("cancel", ("pending", "running", "retrying"), "cancelled")],
    )
    job = cancellable.new_state()  # a MachineState without any class around it
    job.fire("start")
    print("cancellable:", job.fire("cancel"), "| TASK knows cancel:", "cancel" in TASK.triggers)
    print("leaves of TASK:", ", ".join(TASK.leaves))


if __name__ == "__main__":
    trio.run(main)
