import contextlib

import attrs
import pytest
import trio
import trio.testing

from jumpstarter import (
    Actor,
    ActorNotFound,
    ActorStopped,
    ActorSystem,
    DeadLetter,
    InvalidActorPath,
    SubscribeDeadLetters,
    SystemNotRunning,
    handler,
    resource,
)
from jumpstarter.testing import DeadLetterRecorder


@attrs.frozen
class Work:
    seconds: float = 0.0


@attrs.frozen
class Get:
    pass


class Worker(Actor):
    def __init__(self, journal: list[str] | None = None) -> None:
        self.journal = journal if journal is not None else []
        self.done = 0

    @handler
    async def work(self, msg: Work) -> None:
        await trio.sleep(msg.seconds)
        self.done += 1

    @handler
    def get(self, msg: Get) -> int:
        return self.done

    @handler
    async def spawn_child(self, msg: str) -> object:
        return await self.spawn(Worker, self.journal, name=msg)

    def on_stop(self) -> None:
        self.journal.append(self.path)


async def test_actors_have_hierarchical_paths_and_can_be_looked_up(actor_system):
    parent = await actor_system.spawn(Worker, name="parent")
    child = await parent.ask("child")
    grandchild = await child.ask("grandchild")
    assert grandchild.path == "/user/parent/child/grandchild"
    assert actor_system.lookup("/user/parent/child") == child
    assert actor_system.lookup("parent/child/grandchild") == grandchild
    assert actor_system.ref(grandchild.address) == grandchild
    assert set(actor_system.actors) == {
        "/user/parent",
        "/user/parent/child",
        "/user/parent/child/grandchild",
    }


async def test_looking_up_a_missing_actor_raises_actor_not_found(actor_system):
    with pytest.raises(ActorNotFound, match="/user/nobody"):
        actor_system.lookup("nobody")
    with pytest.raises(ActorNotFound):
        actor_system.ref("local://elsewhere/user/x")


async def test_anonymous_actors_get_unique_names(actor_system):
    first = await actor_system.spawn(Worker)
    second = await actor_system.spawn(Worker)
    assert first.path != second.path
    assert first.path.startswith("/user/$")


@pytest.mark.parametrize("name", ["", "a/b", "$x", " padded "])
async def test_a_malformed_name_is_refused(actor_system, name):
    with pytest.raises(InvalidActorPath):
        await actor_system.spawn(Worker, name=name)


async def test_a_taken_name_is_refused(actor_system):
    await actor_system.spawn(Worker, name="twin")
    with pytest.raises(InvalidActorPath, match="already exists"):
        await actor_system.spawn(Worker, name="twin")


async def test_a_stopped_actors_name_can_be_reused(actor_system):
    ref = await actor_system.spawn(Worker, name="phoenix")
    await actor_system.stop(ref)
    again = await actor_system.spawn(Worker, name="phoenix")
    assert again == ref and await again.ask(Get()) == 0


async def test_spawning_outside_a_running_system_is_refused():
    system = ActorSystem("idle")
    with pytest.raises(SystemNotRunning, match="async with"):
        system.spawn_soon(Worker)


async def test_spawn_takes_only_actor_classes(actor_system):
    with pytest.raises(TypeError, match="Actor subclass"):
        actor_system.spawn_soon(dict)  # type: ignore[arg-type]


async def test_stopping_a_parent_stops_its_children_first(actor_system):
    journal: list[str] = []
    parent = await actor_system.spawn(Worker, journal, name="p")
    child = await parent.ask("c")
    await child.ask("g")
    await actor_system.stop(parent)
    assert journal == ["/user/p/c/g", "/user/p/c", "/user/p"]
    assert actor_system.actors == {}


async def test_stop_without_drain_sends_queued_mail_to_dead_letters(actor_system, autojump_clock):
    recorder = await DeadLetterRecorder.start(actor_system)
    ref = await actor_system.spawn(Worker)
    for _ in range(5):
        await ref.tell(Work(1))
    await trio.sleep(0.5)  # the first message is being handled
    await actor_system.stop(ref)
    assert ref._cell.actor.done == 1
    letters = [await recorder.expect() for _ in range(4)]
    assert all(letter.message == Work(1) for letter in letters)


async def test_stop_with_drain_handles_queued_mail_first(actor_system, autojump_clock):
    ref = await actor_system.spawn(Worker)
    for _ in range(5):
        await ref.tell(Work(1))
    await actor_system.stop(ref, drain=True)
    assert ref._cell.actor.done == 5


async def test_an_actor_can_stop_itself(actor_system):
    class Quitter(Actor):
        @handler
        def quit(self, msg: Get) -> str:
            self.stop()
            return "bye"

    ref = await actor_system.spawn(Quitter)
    assert await ref.ask(Get()) == "bye"
    await actor_system.wait_for_state(ref, "stopped")


async def test_graceful_shutdown_drains_mailboxes(autojump_clock):
    async with ActorSystem("t") as system:
        ref = await system.spawn(Worker)
        for _ in range(10):
            await ref.tell(Work(1))
        actor = ref._cell.actor
    assert actor.done == 10
    assert system.statistics().dead_letters == 0


async def test_shutdown_past_its_deadline_stops_the_rest_and_dead_letters_their_mail(
    autojump_clock,
):
    async with ActorSystem("t", shutdown_timeout=5) as system:
        ref = await system.spawn(Worker)
        for _ in range(10):
            await ref.tell(Work(1))
        actor = ref._cell.actor
        started = trio.current_time()
    assert trio.current_time() - started == pytest.approx(5, abs=0.1)
    assert actor.done == 5
    letters = system.recent_dead_letters()
    assert len(letters) == 5
    assert all(letter.message == Work(1) for letter in letters)
    assert "deadline passed while it was being handled" in letters[0].reason
    assert system.statistics().actors == {}


async def test_shutdown_stops_dependents_before_their_dependencies():
    journal: list[str] = []
    async with ActorSystem("t") as system:
        db = await system.spawn(Worker, journal, name="db")
        await system.spawn(Worker, journal, name="app", depends_on=[db])
        await system.spawn(Worker, journal, name="other")
    assert journal.index("/user/app") < journal.index("/user/db")
    assert len(journal) == 3


async def test_spawning_during_shutdown_is_refused(autojump_clock):
    refused: list[BaseException] = []

    class Spawner(Actor):
        async def on_stop(self) -> None:
            try:
                self.system.spawn_soon(Worker)
            except SystemNotRunning as exc:
                refused.append(exc)

    async with ActorSystem("t") as system:
        await system.spawn(Spawner)
    assert len(refused) == 1


async def test_an_error_in_the_block_still_shuts_down_and_propagates():
    journal: list[str] = []
    with pytest.raises(ZeroDivisionError):
        async with ActorSystem("t") as system:
            await system.spawn(Worker, journal, name="w")
            1 / 0  # noqa: B018
    assert journal == ["/user/w"], "the actor was stopped, and its on_stop ran"
    assert system.statistics().actors == {}


async def test_subscribers_receive_every_dead_letter(actor_system, probe):
    await actor_system.dead_letters.ask(SubscribeDeadLetters(probe.ref))
    ref = await actor_system.spawn(Worker)
    await actor_system.stop(ref)
    await ref.tell(Get(), sender=probe.ref)
    letter = await probe.expect(DeadLetter)
    assert letter.message == Get()
    assert letter.sender == probe.ref
    assert letter.recipient == ref.address
    assert actor_system.recent_dead_letters()[-1] == letter


async def test_statistics_list_every_live_actor(actor_system):
    ref = await actor_system.spawn(Worker, name="w")
    await ref.ask(Get())
    stats = actor_system.statistics()
    assert stats.actors["/user/w"].state == "started.running.healthy"
    assert stats.actors["/user/w"].received == 1
    assert "/system/dead_letters" in stats.actors


async def test_wait_until_idle_returns_when_every_top_level_actor_stopped(
    actor_system, autojump_clock
):
    class Brief(Actor):
        def on_start(self) -> None:
            self.send_after(3, Get())

        @handler
        def get(self, msg: Get) -> None:
            self.stop()

    await actor_system.spawn(Brief)
    await actor_system.spawn(Brief)
    await actor_system.wait_until_idle()
    assert trio.current_time() == pytest.approx(3, abs=0.1)


async def test_children_spawned_by_a_stopping_parent_are_refused(actor_system):
    class Parent(Actor):
        async def on_stop(self) -> None:
            with pytest.raises(ActorStopped):
                self.spawn_soon(Worker)

    ref = await actor_system.spawn(Parent)
    await actor_system.stop(ref)


async def test_a_stopped_subscriber_is_dropped_without_looping(actor_system, probe):
    await actor_system.dead_letters.ask(SubscribeDeadLetters(probe.ref))
    await actor_system.stop(probe.ref)
    ref = await actor_system.spawn(Worker)
    await actor_system.stop(ref)
    await ref.tell(Get())
    await trio.testing.wait_all_tasks_blocked()
    messages = [letter.message for letter in actor_system.recent_dead_letters()]
    assert messages.count(Get()) == 1


async def test_a_forced_stop_still_calls_on_stop_and_releases_resources(autojump_clock):
    journal: list[str] = []

    class Stubborn(Worker):
        @resource
        def conn(self):
            @contextlib.asynccontextmanager
            async def cm():
                yield "conn"
                journal.append("released")

            return cm()

    async with ActorSystem("t", shutdown_timeout=1) as system:
        ref = await system.spawn(Stubborn, journal)
        await ref.tell(Work(100))
    assert journal == ["/user/$1", "released"]
