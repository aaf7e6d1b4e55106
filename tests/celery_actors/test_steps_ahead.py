"""A chain's next steps go to the worker with the step before them (``Run.then``): the
worker runs them one after the other without waiting for the router, the router holds
each as running there, and pausing, failing, withdrawing and revoking stop them."""

from __future__ import annotations

import functools
import itertools
from collections import Counter
from collections.abc import AsyncIterator

import attrs
import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from celery_actors import App, RetryPolicy, TaskResult, TaskRevoked, chain
from celery_actors._protocol import (
    NextStep,
    Run,
    RunEnded,
    RunLost,
    TaskCall,
    TaskError,
    Terminate,
    Withdraw,
)
from jumpstarter import ActorRef, ActorSystem, handler

from .canvas_app import MODELS, add, app, fail, mul, recover, source
from .stand_in import StandInRouter, StandInWorker
from .test_router_properties import StartWorker, StopWorker, Wait
from .test_workflow_state import run_call

TIMEOUT = 30.0


# -- a real worker, told by a stand-in router


@attrs.define
class Heard:
    ended: list[TaskResult] = attrs.Factory(list)
    lost: list[RunLost] = attrs.Factory(list)
    changed: trio.Event = attrs.Factory(trio.Event)

    async def until(self, count: int) -> list[TaskResult]:
        with trio.fail_after(TIMEOUT):
            while len(self.ended) + len(self.lost) < count:
                self.changed = trio.Event()
                await self.changed.wait()
        return self.ended


class ListeningRouter(StandInRouter):
    def __init__(self, heard: Heard) -> None:
        super().__init__()
        self.heard = heard

    @handler
    def run_ended(self, msg: RunEnded) -> None:
        self.heard.ended.append(msg.result)
        self.heard.changed.set()

    @handler
    def run_lost(self, msg: RunLost) -> None:
        self.heard.lost.append(msg)
        self.heard.changed.set()


@pytest.fixture
async def worker_and_heard() -> AsyncIterator[tuple[ActorRef, Heard]]:
    async with ActorSystem("test-steps-ahead", registry=app.registry) as system:
        heard = Heard()
        router = await system.spawn(functools.partial(ListeningRouter, heard), name="router")
        yield await app.start_worker(system, router), heard


def steps(*signatures: object) -> list[NextStep]:
    return [
        NextStep(
            call=TaskCall(id=f"step-{n}", task=s.task, args=list(s.args)),  # type: ignore[attr-defined]
            immutable=s.immutable,  # type: ignore[attr-defined]
        )
        for n, s in enumerate(signatures, 1)
    ]


async def test_a_worker_runs_the_steps_sent_ahead_each_given_the_value_before_it(
    worker_and_heard,
):
    worker, heard = worker_and_heard
    first = TaskCall(id="first", task="source", args=[2])
    await worker.tell(Run(first, steps(add.s(3), add.si(10), mul.s(2))))
    ended = await heard.until(4)
    assert [(r.id, r.state, r.value) for r in ended] == [
        ("first", "succeeded", 2),
        ("step-1", "succeeded", 5),
        ("step-2", "succeeded", 10),
        ("step-3", "succeeded", 20),
    ]


async def test_a_failed_step_ends_the_run_of_the_steps_after_it(worker_and_heard):
    worker, heard = worker_and_heard
    first = TaskCall(id="first", task="source", args=[2])
    await worker.tell(Run(first, steps(fail.s(), add.s(1))))
    ended = await heard.until(2)
    await trio.testing.wait_all_tasks_blocked()
    assert [(r.id, r.state) for r in ended] == [("first", "succeeded"), ("step-1", "failed")]
    assert heard.lost == []


async def test_a_step_sent_ahead_and_withdrawn_does_not_start(worker_and_heard):
    worker, heard = worker_and_heard
    gate = trio.Event()

    @app.task(name="test_steps_ahead.gated")
    async def gated(value: int) -> int:
        await gate.wait()
        return value

    try:
        first = TaskCall(id="first", task="test_steps_ahead.gated", args=[1])
        await worker.tell(Run(first, steps(add.s(1), add.s(2))))
        await trio.testing.wait_all_tasks_blocked()
        assert await worker.ask(Withdraw("step-2")) is False  # not a run it holds
        assert await worker.ask(Withdraw("step-2", ahead=True)) is True  # nor the one after it
        assert await worker.ask(Withdraw("step-2", ahead=True)) is True  # still true
        gate.set()
        ended = await heard.until(2)
        await trio.testing.wait_all_tasks_blocked()
        assert [(r.id, r.value) for r in ended] == [("first", 1), ("step-1", 2)]
    finally:
        del app.tasks["test_steps_ahead.gated"]


class CloggedRouter(StandInRouter):
    """Takes one message at a time, and none until ``gate`` is set."""

    mailbox_size = 1

    def __init__(self, heard: Heard, gate: trio.Event) -> None:
        super().__init__()
        self.heard = heard
        self.gate = gate

    @handler
    async def run_ended(self, msg: RunEnded) -> None:
        await self.gate.wait()
        self.heard.ended.append(msg.result)
        self.heard.changed.set()


async def test_the_ends_of_the_steps_reach_a_clogged_router_in_order():
    async with ActorSystem("test-steps-ahead", registry=app.registry) as system:
        heard, gate = Heard(), trio.Event()
        router = await system.spawn(functools.partial(CloggedRouter, heard, gate))
        worker = await app.start_worker(system, router)
        first = TaskCall(id="first", task="source", args=[0])
        await worker.tell(Run(first, steps(*[add.s(1) for _ in range(6)])))
        await trio.testing.wait_all_tasks_blocked()
        gate.set()
        ended = await heard.until(7)
    assert [r.value for r in ended] == list(range(7))


# -- the real router, running a workflow with a stand-in worker


def path(call: TaskCall) -> str:
    return call.id.split("/", 1)[1]


class EagerWorker(StandInWorker):
    """Offers the canvas app's tasks to the router; runs each call at once from the
    models, and goes on with the steps sent ahead (or, ``hands_back``, hands back the
    first of them with ``RunLost``, as a pausing worker does). Keeps the runs it got."""

    def __init__(self, router: ActorRef, runs: list[Run], *, hands_back: bool = False) -> None:
        super().__init__(router, MODELS)
        self.runs = runs
        self.hands_back = hands_back

    @handler
    async def run(self, msg: Run) -> None:
        self.runs.append(msg)
        result = run_call(msg.call)
        await self.router.tell(RunEnded(result, self.ref.address))
        for step in msg.then:
            if self.hands_back:
                self.hands_back = False
                lost = RunLost(step.call.id, 0, self.ref.address, "paused")
                await self.router.tell(lost)
                return
            result = run_call(step.after(result.value))
            await self.router.tell(RunEnded(result, self.ref.address))


@pytest.mark.parametrize("hands_back", [False, True], ids=["goes-on", "hands-back"])
async def test_the_router_sends_a_chain_s_next_steps_with_its_step_and_holds_them(hands_back):
    canvas = chain(source.si(2), add.s(3), add.si(10), mul.s(2), add.s(1))
    async with app.local(workers=0, default=False) as client:
        runs: list[Run] = []
        await client.system.spawn(
            functools.partial(EagerWorker, client.router, runs, hands_back=hands_back)
        )
        result = await client.start_workflow(canvas)
        assert await result.get(timeout=TIMEOUT) == 21
        status = await result.status()
    assert [m.state for m in status.members] == ["succeeded"] * 5
    sent = [
        (run.call.id.split("/")[1], [s.call.id.split("/")[1] for s in run.then]) for run in runs
    ]
    if hands_back:  # the step handed back is sent again, with the steps after it
        assert sent == [("w.0", ["w.1", "w.2", "w.3", "w.4"]), ("w.1", ["w.2", "w.3", "w.4"])]
        assert runs[1].call.args == [2, 3]  # given the value of the step before it
    else:
        assert sent == [("w.0", ["w.1", "w.2", "w.3", "w.4"])]


async def test_after_a_step_sent_ahead_fails_and_its_handler_recovers_the_chain_goes_ahead_again():
    canvas = chain(source.si(2), fail.s().on_error(recover.s()), add.s(1), add.s(2), add.s(3))
    async with app.local(workers=0, default=False) as client:
        runs: list[Run] = []
        await client.system.spawn(functools.partial(EagerWorker, client.router, runs))
        result = await client.start_workflow(canvas)
        assert await result.get(timeout=TIMEOUT) == 13
    sent = [(path(run.call), [path(step.call) for step in run.then]) for run in runs]
    assert sent == [
        ("w.0", ["w.1", "w.2", "w.3", "w.4"]),
        ("w.1.e", []),  # the error handler
        ("w.2", ["w.3", "w.4"]),
    ]


@attrs.frozen
class _Finish:
    """Told to a :class:`StartedAheadWorker`: end the run it holds now."""


class StartedAheadWorker(StandInWorker):
    """Holds each run without ending it, and says that every step sent ahead with it
    has started; told :class:`_Finish`, ends the run and each step ahead, in order:
    ``revoked`` those it was told to terminate, the others from the models."""

    def __init__(self, router: ActorRef, log: list[tuple[str, str]], held: trio.Event) -> None:
        super().__init__(router, MODELS)
        self.log = log
        self.holding = held
        self.held: Run | None = None
        self.terminated: set[str] = set()

    @handler
    def run(self, msg: Run) -> None:
        self.held = msg
        self.holding.set()

    @handler
    def withdraw(self, msg: Withdraw) -> bool:
        return False  # started

    @handler
    def terminate(self, msg: Terminate) -> None:
        self.log.append(("terminate", msg.id.split("/", 1)[1]))
        self.terminated.add(msg.id)

    @handler
    async def finish(self, msg: _Finish) -> None:
        assert self.held is not None
        calls = [self.held.call]
        for index, call in enumerate(calls):
            if call.id in self.terminated:
                error = TaskError(type="celery_actors.TaskRevoked", message="terminated")
                result = TaskResult.of(call, "revoked", 0.0, error=error)
            else:
                result = run_call(call)
            await self.router.tell(RunEnded(result, self.ref.address))
            if result.state != "succeeded" or index == len(self.held.then):
                return
            calls.append(self.held.then[index].after(result.value))


@pytest.mark.parametrize("terminate", [False, True])
async def test_revoking_a_workflow_whose_steps_ahead_started_treats_them_as_running(terminate):
    async with app.local(workers=0, default=False) as client:
        log: list[tuple[str, str]] = []
        held = trio.Event()
        worker = await client.system.spawn(
            functools.partial(StartedAheadWorker, client.router, log, held)
        )
        result = await client.start_workflow(chain(source.si(2), add.s(3), add.s(4)))
        await held.wait()
        assert await result.revoke(terminate=terminate) is True
        await worker.tell(_Finish())
        final = await result.wait(timeout=TIMEOUT)
        states = [member.state for member in (await result.status()).members]
    if terminate:  # each is cancelled on its worker
        assert sorted(log) == [("terminate", "w.0"), ("terminate", "w.1"), ("terminate", "w.2")]
        assert (final.state, states) == ("revoked", ["revoked", "skipped", "skipped"])
    else:  # they run on, and their results stand
        assert log == []
        assert (final.state, final.value) == ("succeeded", 9)
        assert states == ["succeeded"] * 3


# -- through the public API


async def test_a_paused_worker_hands_the_next_step_back_and_another_runs_the_rest():
    started, gate = trio.Event(), trio.Event()

    @app.task(name="test_steps_ahead.held")
    async def held(value: int) -> int:
        started.set()
        await gate.wait()
        return value

    try:
        async with app.local(workers=2, default=False) as client:
            result = await client.start_workflow(chain(held.si(1), add.s(1), add.s(2)))
            await started.wait()
            first = f"{result.id}/w.0"
            [busy] = [w for w in (await client.stats()).workers if w.running]
            control = client.control(busy.address)
            assert await control.pause() is True
            gate.set()
            assert await result.get(timeout=TIMEOUT) == 4
            workers = [
                (await client.result(f"{result.id}/w.{n}").wait(timeout=TIMEOUT)).worker
                for n in range(3)
            ]
            assert (await client.result(first).wait()).worker == busy.address
            assert workers[1] == workers[2] != busy.address
    finally:
        del app.tasks["test_steps_ahead.held"]


async def test_revoking_a_workflow_while_a_step_runs_starts_none_of_the_steps_sent_ahead():
    started, gate = trio.Event(), trio.Event()
    ran: list[int] = []

    @app.task(name="test_steps_ahead.blocked")
    async def blocked(value: int) -> int:
        started.set()
        await gate.wait()
        return value

    @app.task(name="test_steps_ahead.noted")
    async def noted(value: int) -> int:
        ran.append(value)
        return value

    try:
        async with app.local(default=False) as client:
            result = await client.start_workflow(chain(blocked.si(1), noted.s(), noted.s()))
            await started.wait()
            assert await result.revoke() is True  # without terminate: the step runs on
            gate.set()
            with pytest.raises(TaskRevoked):
                await result.get(timeout=TIMEOUT)
            status = await result.status()
            await trio.testing.wait_all_tasks_blocked()
        assert [m.state for m in status.members] == ["succeeded", "revoked", "skipped"]
        assert ran == []
    finally:
        del app.tasks["test_steps_ahead.blocked"]
        del app.tasks["test_steps_ahead.noted"]


# -- random chains through worker stops, retries and revocation, in virtual time

MAX_RETRIES = 2
completed: Counter[str] = Counter()  # runs of each step's body that returned or raised
failing: Counter[str] = Counter()
chains = App("test-steps-ahead-chains")


@chains.task(retry=RetryPolicy(max_retries=MAX_RETRIES, interval_step=0.5, jitter=0))
async def counted_step(value: int, key: str, failures: int, seconds: float) -> int:
    await trio.sleep(seconds)
    completed[key] += 1
    if failing[key] < failures:
        failing[key] += 1
        raise ConnectionError(f"{key}: failure {failing[key]}")
    return value + 1


@attrs.frozen
class Step:
    failures: int
    seconds: float


@attrs.frozen
class RevokeWorkflow:
    terminate: bool


step_strategy = st.builds(
    Step,
    st.integers(0, MAX_RETRIES + 1),  # one more than the retries allow: the chain fails
    st.sampled_from([0.0, 0.3, 1.0]),
)
operations = st.one_of(
    st.builds(StopWorker, st.integers(0, 5)),
    st.builds(StartWorker),
    st.builds(Wait, st.sampled_from([0.1, 0.5, 2.0])),
    st.builds(RevokeWorkflow, st.booleans()),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(step_strategy, min_size=1, max_size=14),
    st.lists(operations, max_size=12),
)
def test_a_chain_s_steps_each_end_once_through_worker_stops_retries_and_revocation(steps, ops):
    completed.clear()
    failing.clear()
    keys = [f"step-{n}" for n in range(len(steps))]
    signatures = [counted_step.si(0, keys[0], steps[0].failures, steps[0].seconds)]
    signatures += [
        counted_step.s(key, step.failures, step.seconds)
        for key, step in zip(keys[1:], steps[1:], strict=True)
    ]

    async def main() -> None:
        async with chains.local(workers=1, concurrency=2) as client:
            workers = [client.system.lookup("/user/worker-1")]
            numbers = itertools.count(2)
            result = await client.start_workflow(chain(*signatures))
            revoked = False
            for op in ops:
                if isinstance(op, StopWorker) and len(workers) > 1:
                    await client.system.stop(workers.pop(op.index % len(workers)))
                elif isinstance(op, StartWorker):
                    name = f"worker-{next(numbers)}"
                    worker = await chains.start_worker(
                        client.system, client.router, concurrency=2, name=name
                    )
                    workers.append(worker)
                elif isinstance(op, Wait):
                    await trio.sleep(op.seconds)
                elif isinstance(op, RevokeWorkflow):
                    revoked = await result.revoke(terminate=op.terminate) or revoked
            final = await result.wait(timeout=600)
            statuses = [member.state for member in (await result.status()).members]
            await trio.testing.wait_all_tasks_blocked()
        fails_at = next(
            (n for n, step in enumerate(steps) if step.failures > MAX_RETRIES), len(steps)
        )
        if final.state == "succeeded":
            assert fails_at == len(steps)
            assert final.value == len(steps)
        elif final.state == "failed":
            assert fails_at < len(steps)
        else:
            assert final.state == "revoked" and revoked, "revoked without asking"
        # No step ran more than its failures allow, and none after the chain stopped.
        ended = 0
        for n, (key, step, state) in enumerate(zip(keys, steps, statuses, strict=True)):
            assert completed[key] <= min(step.failures, MAX_RETRIES) + 1, f"{key} ran too often"
            if state == "succeeded":
                assert completed[key] == step.failures + 1, f"{key}: {completed[key]} runs"
                ended = n + 1
            elif state in ("waiting", "skipped"):
                assert completed[key] == 0, f"{key} ran, but the chain had stopped before it"
        assert ended <= fails_at

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
