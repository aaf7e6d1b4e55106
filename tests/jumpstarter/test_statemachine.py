import pytest
import trio

from jumpstarter import (
    LIFECYCLE,
    Actor,
    ActorSystem,
    IllegalTransition,
    State,
    StateMachine,
    Transition,
    handler,
)

DOOR = dict(
    states=["closed", "opened", "locked"],
    initial="closed",
    transitions=[
        ("open", "closed", "opened"),
        ("close", "opened", "closed"),
        ("lock", "closed", "locked"),
        ("unlock", "locked", "closed"),
    ],
)


class Door(Actor):
    position = StateMachine(name="position", **DOOR)

    @handler
    def open(self, msg: str) -> str:
        return self.position.fire(msg)


def test_a_machine_starts_in_its_initial_state():
    assert StateMachine(**DOOR).new_state().state == "closed"


def test_firing_a_trigger_moves_to_the_destination():
    state = StateMachine(**DOOR).new_state()
    assert state.fire("open") == "opened"
    assert state.state == "opened"


def test_an_illegal_transition_names_the_state_and_the_trigger():
    state = StateMachine(name="door", **DOOR).new_state()
    with pytest.raises(IllegalTransition) as caught:
        state.fire("unlock")
    assert caught.value.state == "closed"
    assert caught.value.trigger == "unlock"
    assert "'unlock'" in str(caught.value) and "'closed'" in str(caught.value)
    assert state.state == "closed"


def test_an_unknown_destination_is_rejected_at_declaration():
    with pytest.raises(ValueError, match="invalid state machine"):
        StateMachine(states=["a"], initial="a", transitions=[("go", "a", "nowhere")])


def test_a_transition_from_a_parent_state_applies_to_its_children():
    machine = StateMachine(
        states=[State("on", ("low", "high"), initial="low"), "off"],
        initial="off",
        transitions=[
            Transition("switch_on", "off", "on"),
            Transition("boost", "on.low", "on.high"),
            Transition("switch_off", "on", "off"),
        ],
    )
    state = machine.new_state()
    assert state.fire("switch_on") == "on.low"
    assert state.fire("boost") == "on.high"
    assert state.is_in("on")
    assert state.fire("switch_off") == "off"


def test_observers_see_every_change_with_its_trigger():
    state = StateMachine(**DOOR).new_state()
    seen = []
    unsubscribe = state.on_change(lambda old, new, trigger: seen.append((old, new, trigger)))
    state.fire("open")
    unsubscribe()
    state.fire("close")
    assert seen == [("closed", "opened", "open")]


async def test_wait_for_returns_when_the_state_is_reached():
    state = StateMachine(**DOOR).new_state()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(state.wait_for, "locked")
        await trio.testing.wait_all_tasks_blocked()
        state.fire("lock")
    assert state.state == "locked"


def test_extending_a_machine_leaves_the_original_unchanged():
    base = StateMachine(**DOOR)
    extended = base.extend(states=["broken"], transitions=[("kick", "*", "broken")])
    assert "broken" in extended.leaves
    assert "broken" not in base.leaves
    assert not base.new_state().can("kick")
    assert extended.new_state().can("kick")


def test_subclasses_declaring_machines_do_not_share_state_or_tables():
    class Vault(Door):
        position = Door.position.extend(
            states=["sealed"], transitions=[("seal", "locked", "sealed")]
        )

    assert "sealed" in Vault.position.leaves
    assert "sealed" not in Door.position.leaves


async def test_each_actor_instance_has_its_own_machine_state():
    async with ActorSystem("doors") as system:
        first = await system.spawn(Door)
        second = await system.spawn(Door)
        assert await first.ask("open") == "opened"
        assert first._cell.actor.position.state == "opened"
        assert second._cell.actor.position.state == "closed"


async def test_an_illegal_transition_in_a_handler_fails_the_ask():
    async with ActorSystem("doors") as system:
        door = await system.spawn(Door)
        with pytest.raises(IllegalTransition):
            await door.ask("unlock")


def test_the_lifecycle_declares_the_documented_states():
    for state in (
        "initializing",
        "initialized",
        "starting.dependencies_started",
        "starting.resources_acquired",
        "starting.tasks_started",
        "started.running.healthy",
        "started.running.degraded",
        "started.running.unhealthy",
        "started.paused",
        "stopping.tasks_stopped",
        "stopping.resources_released",
        "stopping.dependencies_stopped",
        "stopped",
        "crashed",
        "restarting",
    ):
        assert state in LIFECYCLE.leaves


def test_a_machine_draws_to_dot_and_mermaid(tmp_path):
    machine = StateMachine(name="door", **DOOR)
    machine.draw(tmp_path / "door.dot")
    machine.draw(tmp_path / "door.mmd")
    assert "opened" in (tmp_path / "door.dot").read_text()
    assert "stateDiagram" in (tmp_path / "door.mmd").read_text()


def test_drawing_to_an_unknown_format_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"\.svg"):
        StateMachine(**DOOR).draw(tmp_path / "door.bmp")


def test_the_lifecycle_draws_to_svg(tmp_path):
    LIFECYCLE.draw(tmp_path / "lifecycle.svg")
    assert "<svg" in (tmp_path / "lifecycle.svg").read_text()
