"""Random sequences of calls, failures, revocations and worker stops and starts, run
against a real router and workers in virtual time: no call is lost, every call ends once,
as its failures and revocation say it must."""

from __future__ import annotations

import itertools
from collections import Counter

import attrs
import trio
import trio.testing
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from celery_actors import (
    App,
    MemorySink,
    ResultTimeout,
    RetryPolicy,
    TaskFailed,
    TaskRevoked,
)

MAX_RETRIES = 2

app = App("test-properties")
completed: Counter[str] = Counter()  # runs of each call's body that returned or raised
failing: Counter[str] = Counter()


@app.task(retry=RetryPolicy(max_retries=MAX_RETRIES, interval_step=0.5, jitter=0))
async def work(key: str, failures: int, seconds: float) -> str:
    await trio.sleep(seconds)
    completed[key] += 1
    if failing[key] < failures:
        failing[key] += 1
        raise ConnectionError(f"{key}: failure {failing[key]}")
    return key.upper()


@attrs.frozen
class Call:
    failures: int
    seconds: float


@attrs.frozen
class RevokeCall:
    index: int
    terminate: bool


@attrs.frozen
class StopWorker:
    index: int


@attrs.frozen
class StartWorker:
    pass


@attrs.frozen
class Wait:
    seconds: float


operations = st.one_of(
    st.builds(Call, st.integers(0, MAX_RETRIES + 1), st.sampled_from([0.0, 0.3, 1.0, 3.0])),
    st.builds(RevokeCall, st.integers(0, 50), st.booleans()),
    st.builds(StopWorker, st.integers(0, 5)),
    st.builds(StartWorker),
    st.builds(Wait, st.sampled_from([0.1, 0.5, 2.0])),
)


WORKER_GONE_BEFORE_ITS_OFFER = [
    *(StartWorker(), Call(0, 0.0), StartWorker(), StartWorker(), Call(0, 0.0)),
    *(StartWorker(), StopWorker(4)),
]
"""Found once: a worker stopped while its first WorkerUp waited in the router's mailbox."""


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(operations, max_size=40))
@example(WORKER_GONE_BEFORE_ITS_OFFER)
def test_every_call_ends_once_as_its_failures_and_revocation_say(steps):
    completed.clear()
    failing.clear()

    async def main() -> None:
        sink = MemorySink()
        async with app.local(workers=1, concurrency=2, sinks=[sink]) as client:
            workers = [client.system.lookup("/user/worker-1")]
            numbers = itertools.count(2)
            calls: list[tuple[str, Call]] = []
            revoked: dict[str, bool] = {}
            for step in steps:
                if isinstance(step, Call):
                    key = f"call-{len(calls)}"
                    result = await work.delay(key, step.failures, step.seconds)
                    calls.append((result.id, step))
                elif isinstance(step, RevokeCall) and calls:
                    call_id = calls[step.index % len(calls)][0]
                    done = await client.result(call_id).revoke(terminate=step.terminate)
                    revoked[call_id] = revoked.get(call_id, False) or done
                elif isinstance(step, StopWorker) and len(workers) > 1:
                    await client.system.stop(workers.pop(step.index % len(workers)))
                elif isinstance(step, StartWorker):
                    name = f"worker-{next(numbers)}"
                    worker = await app.start_worker(
                        client.system, client.router, concurrency=2, name=name
                    )
                    workers.append(worker)
                elif isinstance(step, Wait):
                    await trio.sleep(step.seconds)
            for index, (call_id, call) in enumerate(calls):
                key = f"call-{index}"
                handle = client.result(call_id, "work")
                try:
                    value = await handle.get(timeout=600)
                except TaskRevoked:
                    assert revoked.get(call_id), f"{key} was revoked without asking"
                    continue
                except TaskFailed as failure:
                    assert call.failures > MAX_RETRIES, f"{key} failed early: {failure}"
                    assert failure.result.quarantined
                    assert completed[key] == MAX_RETRIES + 1
                    continue
                except ResultTimeout:
                    raise AssertionError(f"{key} never ended") from None
                assert value == key.upper()
                assert call.failures <= MAX_RETRIES
                assert completed[key] == call.failures + 1, f"{key} ran too often"
                # a call that ended is stored once, and is final
                assert (await sink.load(call_id)) == handle.document
            router = client.system.statistics().actors["/user/router"]
            assert (router.failed, router.restarts) == (0, 0)  # its state never got lost

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
