import contextlib

import attrs
import pytest
import trio
import trio.lowlevel

from jumpstarter import (
    Actor,
    ActorStartError,
    ChildSpec,
    DependencyCycle,
    DependencyError,
    Health,
    HealthChanged,
    handler,
    resource,
)


@attrs.frozen
class Get:
    pass


class Tracked(Actor):
    """Records each lifecycle state it passes through."""

    def __init__(self, journal: list[str]) -> None:
        self.journal = journal

    @handler
    def get(self, msg: Get) -> str:
        return self.lifecycle.state


async def test_a_started_actor_went_through_every_starting_step(actor_system):
    ref = actor_system.spawn_soon(Tracked, [])
    states: list[str] = []
    # spawn_soon of an actor with nothing to await is already started
    assert actor_system.state_of(ref) == "started.running.healthy"

    class Slow(Actor):
        async def on_start(self) -> None:
            await trio.lowlevel.checkpoint()

    slow = actor_system.spawn_soon(Slow)
    actor_system.on_state_change(slow, lambda old, new, trigger: states.append(new))
    await actor_system.wait_for_state(slow, "started")
    assert states == [
        "initialized",
        "starting.dependencies_started",
        "starting.resources_acquired",
        "starting.tasks_started",
        "started.running.healthy",
    ]


async def test_a_stopped_actor_went_through_every_stopping_step(actor_system):
    ref = await actor_system.spawn(Tracked, [])
    states: list[str] = []
    actor_system.on_state_change(ref, lambda old, new, trigger: states.append(new))
    await actor_system.stop(ref)
    assert states == [
        "stopping.tasks_stopped",
        "stopping.resources_released",
        "stopping.dependencies_stopped",
        "stopped",
    ]


async def test_the_actor_reports_its_health(actor_system):
    class Patient(Actor):
        @handler
        def feel(self, msg: Health) -> None:
            self.report_health(msg)

    ref = await actor_system.spawn(Patient)
    await ref.ask(Health.DEGRADED)
    assert actor_system.state_of(ref) == "started.running.degraded"
    await ref.ask(Health.UNHEALTHY)
    assert actor_system.state_of(ref) == "started.running.unhealthy"
    await ref.ask(Health.HEALTHY)
    assert actor_system.state_of(ref) == "started.running.healthy"


async def test_the_supervisor_sees_a_childs_health_change(actor_system, probe):
    class Patient(Actor):
        @handler
        def feel(self, msg: Health) -> None:
            self.report_health(msg)

    class Doctor(Actor):
        def __init__(self, listener) -> None:
            self.listener = listener

        @handler
        async def admit(self, msg: str) -> object:
            return await self.spawn(Patient, name=msg)

        @handler
        async def changed(self, msg: HealthChanged) -> None:
            await self.listener.tell(msg)

    doctor = await actor_system.spawn(Doctor, probe.ref)
    patient = await doctor.ask("bob")
    await patient.tell(Health.DEGRADED)
    notice = await probe.expect(HealthChanged)
    assert notice == HealthChanged(ref=patient, previous=Health.HEALTHY, health=Health.DEGRADED)
    assert actor_system.state_of(patient) == "started.running.degraded"


async def test_health_survives_a_pause(actor_system):
    class Patient(Actor):
        @handler
        def feel(self, msg: Health) -> None:
            self.report_health(msg)

    ref = await actor_system.spawn(Patient)
    await ref.ask(Health.DEGRADED)
    actor_system.pause(ref)
    await actor_system.wait_for_state(ref, "started.paused")
    actor_system.resume(ref)
    await actor_system.wait_for_state(ref, "started.running")
    assert actor_system.state_of(ref) == "started.running.degraded"


async def test_a_health_check_sets_the_state_periodically(actor_system, autojump_clock):
    class Probe(Actor):
        health_check_interval = 10.0

        def __init__(self) -> None:
            self.calls = 0

        async def health_check(self) -> Health:
            self.calls += 1
            return Health.UNHEALTHY if self.calls >= 2 else Health.HEALTHY

    ref = await actor_system.spawn(Probe)
    await actor_system.wait_for_state(ref, "started.running.unhealthy")
    assert trio.current_time() == pytest.approx(20, abs=0.1)


async def test_resources_are_acquired_in_order_and_released_in_reverse(actor_system):
    journal: list[str] = []

    @contextlib.asynccontextmanager
    async def connection(name: str):
        journal.append(f"open {name}")
        yield f"conn:{name}"
        journal.append(f"close {name}")

    @contextlib.contextmanager
    def blocking_file(name: str):
        journal.append(f"open {name}")
        yield f"file:{name}"
        journal.append(f"close {name}")

    class Service(Actor):
        @resource
        def db(self):
            return connection("db")

        @resource
        def log(self):
            return blocking_file("log")

        @handler
        def get(self, msg: Get) -> tuple[str, str]:
            return self.db, self.log

    ref = await actor_system.spawn(Service)
    assert await ref.ask(Get()) == ("conn:db", "file:log")
    await actor_system.stop(ref)
    assert journal == ["open db", "open log", "close log", "close db"]


async def test_a_resource_is_not_readable_before_the_actor_starts():
    class Service(Actor):
        @resource
        def db(self):
            return contextlib.nullcontext("db")

    with pytest.raises(AttributeError, match="only available while the actor is started"):
        Service().db  # noqa: B018


async def test_a_failing_resource_fails_spawn_and_releases_what_was_acquired(actor_system):
    journal: list[str] = []

    @contextlib.asynccontextmanager
    async def good():
        journal.append("open good")
        yield "good"
        journal.append("close good")

    class Service(Actor):
        @resource
        def first(self):
            return good()

        @resource
        def second(self):
            raise ConnectionError("database is down")

    with pytest.raises(ActorStartError, match="database is down") as caught:
        await actor_system.spawn(Service, name="svc")
    assert isinstance(caught.value.__cause__, ConnectionError)
    assert journal == ["open good", "close good"]
    assert "/user/svc" not in actor_system.actors


async def test_a_failing_synchronous_start_raises_from_spawn_soon(actor_system):
    class Broken(Actor):
        def on_start(self) -> None:
            raise ValueError("bad config")

    with pytest.raises(ActorStartError, match="bad config"):
        actor_system.spawn_soon(Broken)


async def test_a_dependency_starts_before_and_stops_after_its_dependent(actor_system):
    journal: list[str] = []

    class Step(Actor):
        def __init__(self, label: str) -> None:
            self.label = label

        async def on_start(self) -> None:
            await trio.lowlevel.checkpoint()
            journal.append(f"start {self.label}")

        async def on_stop(self) -> None:
            await trio.lowlevel.checkpoint()
            journal.append(f"stop {self.label}")

    db = actor_system.spawn_soon(Step, "db")
    app = actor_system.spawn_soon(Step, "app", depends_on=[db])
    await actor_system.wait_for_state(app, "started")
    await actor_system.stop(db)
    assert journal == ["start db", "start app", "stop app", "stop db"]
    assert actor_system.state_of(app) == "stopped"


async def test_declared_children_start_in_dependency_order(actor_system):
    journal: list[str] = []

    class Step(Actor):
        def __init__(self, label: str) -> None:
            self.label = label

        async def on_start(self) -> None:
            journal.append(f"start {self.label}")

        async def on_stop(self) -> None:
            journal.append(f"stop {self.label}")

    class App(Actor):
        child_specs = (
            ChildSpec("web", Step, ("web",), depends_on=("db", "cache")),
            ChildSpec("cache", Step, ("cache",), depends_on=("db",)),
            ChildSpec("db", Step, ("db",)),
        )

    app = await actor_system.spawn(App, name="app")
    assert journal == ["start db", "start cache", "start web"]
    assert actor_system.lookup("app/web")
    await actor_system.stop(app)
    assert journal[3:] == ["stop web", "stop cache", "stop db"]


def test_a_dependency_cycle_is_an_error_when_the_class_is_declared():
    with pytest.raises(DependencyCycle, match="a -> b -> c -> a"):

        class Cyclic(Actor):
            child_specs = (
                ChildSpec("a", Tracked, depends_on=("b",)),
                ChildSpec("b", Tracked, depends_on=("c",)),
                ChildSpec("c", Tracked, depends_on=("a",)),
            )


def test_depending_on_an_undeclared_child_is_an_error():
    with pytest.raises(DependencyError, match="'missing'"):

        class Incomplete(Actor):
            child_specs = (ChildSpec("a", Tracked, depends_on=("missing",)),)


async def test_depending_on_a_stopped_actor_is_refused(actor_system):
    dead = await actor_system.spawn(Tracked, [])
    await actor_system.stop(dead)
    with pytest.raises(DependencyError, match="stopped"):
        actor_system.spawn_soon(Tracked, [], depends_on=[dead])


async def test_stopping_a_dependency_first_stops_a_dependent_still_waiting_to_start(
    actor_system, autojump_clock
):
    class Never(Actor):
        async def on_start(self) -> None:
            await trio.sleep_forever()

    never = actor_system.spawn_soon(Never)
    app = actor_system.spawn_soon(Tracked, [], depends_on=[never])
    async with trio.open_nursery() as nursery:
        nursery.start_soon(actor_system.stop, never)
    assert actor_system.state_of(app) == "stopped"
    with pytest.raises(ActorStartError, match="stopped before it started"):
        await app._cell.wait_started()
