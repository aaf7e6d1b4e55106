import attrs
import pytest
import trio

from jumpstarter import (
    Actor,
    ActorCrashed,
    ActorStopped,
    ActorSystem,
    Backoff,
    Directive,
    OneForAll,
    OneForOne,
    RestForOne,
    Terminated,
    handler,
)


@attrs.frozen
class Crash:
    text: str = "boom"


@attrs.frozen
class Get:
    pass


@attrs.frozen
class Bump:
    pass


@attrs.frozen
class Block:
    pass


class Stateful(Actor):
    """Counts bumps; the count is lost on restart (a new instance)."""

    instances = 0

    def __init__(self) -> None:
        self.count = 0
        type(self).instances += 1

    @handler
    def bump(self, msg: Bump) -> int:
        self.count += 1
        return self.count

    @handler
    def get(self, msg: Get) -> int:
        return self.count

    @handler
    def crash(self, msg: Crash) -> None:
        raise RuntimeError(msg.text)

    @handler
    async def block(self, msg: Block) -> None:
        await trio.sleep_forever()

    @handler
    async def crash_later(self, msg: trio.Event) -> None:
        await msg.wait()
        raise RuntimeError("later")


def supervisor(strategy):
    class Supervisor(Actor):
        supervisor_strategy = strategy

        @handler
        async def spawn_children(self, msg: int) -> list:
            return [await self.spawn(Stateful, name=f"c{i}") for i in range(msg)]

    return Supervisor


async def restarted(system: ActorSystem, ref, before=None) -> None:
    """Wait until ``ref`` runs a new instance (other than ``before``, if given)."""
    old = before if before is not None else ref._cell.actor
    while ref._cell.actor is old or not system.state_of(ref).startswith("started"):  # noqa: ASYNC110
        await trio.sleep(0.001)


async def test_a_crashed_actor_is_restarted_with_fresh_state_and_keeps_its_ref(
    actor_system, autojump_clock
):
    ref = await actor_system.spawn(Stateful)
    assert await ref.ask(Bump()) == 1
    with pytest.raises(RuntimeError):
        await ref.ask(Crash())
    await actor_system.wait_for_state(ref, "started")
    assert await ref.ask(Get()) == 0
    assert actor_system.statistics().actors[ref.path].restarts == 1


async def test_queued_tells_survive_a_restart(actor_system, autojump_clock):
    ref = await actor_system.spawn(Stateful)
    await ref.tell(Crash())
    for _ in range(3):
        await ref.tell(Bump())
    await actor_system.wait_for_state(ref, "crashed")
    await actor_system.wait_for_state(ref, "started")
    assert await ref.ask(Get()) == 3


async def test_pending_asks_of_a_crashed_actor_fail_at_once(actor_system, autojump_clock):
    ref = await actor_system.spawn(Stateful)
    results: list[object] = []

    async def ask_get() -> None:
        try:
            results.append(await ref.ask(Get()))
        except ActorCrashed as exc:
            results.append(exc)

    go = trio.Event()
    await ref.tell(go)
    async with trio.open_nursery() as nursery:
        for _ in range(3):
            nursery.start_soon(ask_get)
        await trio.testing.wait_all_tasks_blocked()
        assert actor_system.statistics().actors[ref.path].mailbox_depth == 3
        go.set()
    assert len(results) == 3
    for result in results:
        assert isinstance(result, ActorCrashed)
        assert isinstance(result.__cause__, RuntimeError)
    assert trio.current_time() < 0.01, "they did not wait for the restart"


async def test_a_crash_does_not_affect_unrelated_actors(actor_system, autojump_clock):
    crashing = await actor_system.spawn(Stateful)
    bystander = await actor_system.spawn(Stateful)
    await bystander.ask(Bump())
    with pytest.raises(RuntimeError):
        await crashing.ask(Crash())
    assert await bystander.ask(Get()) == 1
    assert actor_system.statistics().actors[bystander.path].restarts == 0


async def test_one_for_one_restarts_only_the_failed_child(actor_system, autojump_clock):
    parent = await actor_system.spawn(supervisor(OneForOne()))
    c0, c1, c2 = await parent.ask(3)
    for child in (c0, c1, c2):
        await child.ask(Bump())
    await c1.tell(Crash())
    await restarted(actor_system, c1)
    assert [await c.ask(Get()) for c in (c0, c1, c2)] == [1, 0, 1]


async def test_one_for_all_restarts_every_child(actor_system, autojump_clock):
    parent = await actor_system.spawn(supervisor(OneForAll()))
    children = await parent.ask(3)
    for child in children:
        await child.ask(Bump())
    before = [c._cell.actor for c in children]
    await children[1].tell(Crash())
    for child, old in zip(children, before, strict=True):
        await restarted(actor_system, child, old)
    assert [await c.ask(Get()) for c in children] == [0, 0, 0]


async def test_rest_for_one_restarts_the_failed_child_and_later_siblings(
    actor_system, autojump_clock
):
    parent = await actor_system.spawn(supervisor(RestForOne()))
    children = await parent.ask(3)
    for child in children:
        await child.ask(Bump())
    before = [c._cell.actor for c in children]
    await children[1].tell(Crash())
    await restarted(actor_system, children[1], before[1])
    await restarted(actor_system, children[2], before[2])
    assert children[0]._cell.actor is before[0]
    assert [await c.ask(Get()) for c in children] == [1, 0, 0]


async def test_restarts_back_off_exponentially(autojump_clock):
    backoff = Backoff(initial=1.0, factor=2.0, maximum=100.0, jitter=0.0)
    async with ActorSystem("t", supervisor=OneForOne(backoff=backoff, max_restarts=10)) as system:
        ref = await system.spawn(Stateful)
        times = []
        for _ in range(4):
            await ref.tell(Crash())
            await system.wait_for_state(ref, "crashed")
            crashed_at = trio.current_time()
            await system.wait_for_state(ref, "started")
            times.append(trio.current_time() - crashed_at)
        assert times == pytest.approx([1.0, 2.0, 4.0, 8.0], abs=0.01)


def test_backoff_jitter_stays_within_its_bounds():
    import random

    backoff = Backoff(initial=1.0, factor=2.0, maximum=5.0, jitter=0.5)
    rng = random.Random(7)
    for attempt in range(10):
        base = min(5.0, 2.0**attempt)
        assert base * 0.5 <= backoff.delay(attempt, rng) <= base * 1.5


async def test_too_many_restarts_escalate_to_the_parent(actor_system, autojump_clock):
    strategy = OneForOne(max_restarts=2, within=60, backoff=None)
    parent = await actor_system.spawn(supervisor(strategy))
    [child] = await parent.ask(1)
    for _ in range(2):
        await child.tell(Crash())
        await restarted(actor_system, child)
    old_cell = child._cell
    await child.tell(Crash())
    await actor_system.wait_for_state(parent, "restarting")
    await actor_system.wait_for_state(parent, "started")
    assert old_cell.finished, "the escalated child is stopped"
    assert actor_system.statistics().actors[parent.path].restarts == 1


async def test_restart_intensity_forgets_old_restarts(actor_system, autojump_clock):
    strategy = OneForOne(max_restarts=2, within=10, backoff=None)
    parent = await actor_system.spawn(supervisor(strategy))
    [child] = await parent.ask(1)
    for _ in range(5):
        await child.tell(Crash())
        await restarted(actor_system, child)
        await trio.sleep(11)
    assert actor_system.statistics().actors[parent.path].restarts == 0
    assert actor_system.statistics().actors[child.path].restarts == 5


async def test_a_top_level_actor_that_keeps_failing_is_stopped_not_the_process(autojump_clock):
    async with ActorSystem("t", supervisor=OneForOne(max_restarts=1, backoff=None)) as system:
        ref = await system.spawn(Stateful)
        await ref.tell(Crash())
        await restarted(system, ref)
        await ref.tell(Crash())
        await system.wait_for_state(ref, "stopped")
        with pytest.raises(ActorStopped):
            await ref.ask(Get())
        other = await system.spawn(Stateful)
        assert await other.ask(Bump()) == 1


async def test_the_decider_chooses_resume_stop_or_restart(actor_system, autojump_clock):
    def decide(exc: BaseException) -> Directive:
        return {"resume": Directive.RESUME, "stop": Directive.STOP}.get(str(exc), Directive.RESTART)

    parent = await actor_system.spawn(supervisor(OneForOne(decider=decide)))
    [child] = await parent.ask(1)
    await child.ask(Bump())
    with pytest.raises(RuntimeError):
        await child.ask(Crash("resume"))
    assert await child.ask(Get()) == 1, "resumed: state kept"
    await child.tell(Crash("stop"))
    await actor_system.wait_for_state(child, "stopped")


async def test_watchers_get_terminated_with_the_reason(actor_system, probe, autojump_clock):
    parent = await actor_system.spawn(supervisor(OneForOne(decider=lambda exc: Directive.STOP)))
    [child] = await parent.ask(1)
    actor_system.watch(probe.ref, child)
    await child.tell(Crash("fatal"))
    notice = await probe.expect(Terminated)
    assert notice.ref == child
    assert isinstance(notice.reason, RuntimeError)


async def test_watching_a_stopped_actor_notifies_at_once(actor_system, probe):
    ref = await actor_system.spawn(Stateful)
    await actor_system.stop(ref)
    actor_system.watch(probe.ref, ref)
    notice = await probe.expect(Terminated)
    assert notice == Terminated(ref=ref, reason=None)


async def test_an_actor_can_watch_another_from_a_handler(actor_system, autojump_clock):
    class Watcher(Actor):
        def __init__(self) -> None:
            self.stopped: list[object] = []

        @handler
        def watch_it(self, msg: Bump) -> None:
            self.watch(self.system.lookup("/user/target"))

        @handler
        def terminated(self, msg: Terminated) -> None:
            self.stopped.append(msg.ref.path)

        @handler
        def get(self, msg: Get) -> list:
            return self.stopped

    target = await actor_system.spawn(Stateful, name="target")
    watcher = await actor_system.spawn(Watcher)
    await watcher.ask(Bump())
    await actor_system.stop(target)
    assert await watcher.ask(Get()) == ["/user/target"]


async def test_a_one_for_all_restart_waits_for_a_sibling_busy_in_a_handler(
    actor_system, autojump_clock
):
    parent = await actor_system.spawn(supervisor(OneForAll(backoff=None)))
    busy, crashing = await parent.ask(2)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(busy.ask, Block())
        await trio.testing.wait_all_tasks_blocked()
        await crashing.tell(Crash())
        await restarted(actor_system, crashing)
        assert actor_system.state_of(busy) == "started.running.healthy"
        nursery.cancel_scope.cancel()


async def test_a_restarted_actor_comes_back_healthy(actor_system, autojump_clock):
    from jumpstarter import Health

    class Sick(Stateful):
        @handler
        def feel(self, msg: Health) -> None:
            self.report_health(msg)

    ref = await actor_system.spawn(Sick)
    await ref.ask(Health.UNHEALTHY)
    with pytest.raises(RuntimeError):
        await ref.ask(Crash())
    await restarted(actor_system, ref)
    assert actor_system.state_of(ref) == "started.running.healthy"


async def test_a_restarted_parent_is_not_told_about_children_its_restart_stopped(
    actor_system, autojump_clock
):
    class Parent(Actor):
        def __init__(self) -> None:
            self.terminated: list[object] = []

        @handler
        async def adopt(self, msg: int) -> object:
            child = await self.spawn(Stateful, name=f"c{msg}")
            self.watch(child)
            return child

        @handler
        def crash(self, msg: Crash) -> None:
            raise RuntimeError("parent")

        @handler
        def terminated(self, msg: Terminated) -> None:
            self.terminated.append(msg)

        @handler
        def get(self, msg: Get) -> list:
            return self.terminated

    parent = await actor_system.spawn(Parent)
    await parent.ask(1)
    with pytest.raises(RuntimeError):
        await parent.ask(Crash())
    await restarted(actor_system, parent)
    assert await parent.ask(Get()) == []
