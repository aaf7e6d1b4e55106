"""Canvas through the public API, with a router and workers in the test's trio run."""

from __future__ import annotations

import contextlib

import pytest
import trio

from celery_actors import (
    App,
    Chunks,
    Fanout,
    Group,
    SQLiteWorkflowStore,
    TaskFailed,
    TaskRevoked,
    chain,
    chord,
    group,
)
from celery_actors._workflow_messages import StartWorkflow
from jumpstarter import ActorStartError
from jumpstarter._amqp import Codec, WireEnvelope

from .canvas_app import add, app, fail, mul, recover, source, total

TIMEOUT = 30


async def test_a_chain_gives_each_step_the_result_before_it():
    async with app.local():
        result = await (source.si(2) | add.s(3) | mul.s(10)).delay()
        assert await result.get(timeout=TIMEOUT) == 50
        assert result.state == "succeeded"


async def test_a_workflow_s_arguments_go_to_its_first_tasks():
    async with app.local():
        assert await (await chain(add.s(1), mul.s(2)).delay(4)).get(timeout=TIMEOUT) == 10
        assert await (await group(add.s(1), add.s(2)).delay(10)).get(timeout=TIMEOUT) == [11, 12]
        assert await (await add.s(5).apply_async((6,))).get(timeout=TIMEOUT) == 11


async def test_partial_application_and_options():
    partial = add.s(2)
    assert partial.clone(40).args == [40, 2]
    with_options = partial.set(priority=5, queue="default")
    assert with_options.options == {"priority": 5, "queue": "default"}
    with pytest.raises(TypeError, match="unknown call option"):
        partial.set(task_id="x")
    async with app.local():
        assert await (await with_options.clone(40).delay()).get(timeout=TIMEOUT) == 42


async def test_a_group_gives_its_members_results_in_order():
    async with app.local(concurrency=4):
        result = await group(add.si(i, 100 - i) for i in range(20)).delay()
        assert await result.get(timeout=TIMEOUT) == [100] * 20


async def test_a_chord_gives_its_body_the_list_of_its_header_s_results():
    async with app.local(concurrency=8):
        result = await chord((add.si(i, i) for i in range(10)), total.s()).delay()
        assert await result.get(timeout=TIMEOUT) == sum(2 * i for i in range(10))


async def test_map_starmap_and_chunks():
    async with app.local(concurrency=8):
        assert await (await add.map([1, 2, 3]).delay()).get(timeout=TIMEOUT) == [1, 2, 3]
        starmap = add.starmap([(1, 2), (3, 4)])
        assert await (await starmap.delay()).get(timeout=TIMEOUT) == [3, 7]
        chunks = add.chunks([(i, i) for i in range(7)], 3)
        expected = [[0, 2, 4], [6, 8, 10], [12]]
        assert await (await chunks.delay()).get(timeout=TIMEOUT) == expected


async def test_nested_canvases_a_chord_of_chains_of_groups_and_a_chain_with_a_chord():
    header = [
        chain(source.si(i), group(add.s(1), add.s(2)), total.s()) for i in range(3)
    ]  # each: (i+1) + (i+2)
    canvas = source.si(5) | chord([add.s(1), chord(header, total.s())], total.s()) | add.s(1000)
    async with app.local(concurrency=8):
        result = await canvas.delay()
        expected = 1000 + (5 + 1) + sum((i + 1) + (i + 2) for i in range(3))
        assert await result.get(timeout=TIMEOUT) == expected


async def test_a_group_of_chords():
    canvas = group(chord([add.si(i, 1), add.si(i, 2)], total.s()) for i in range(4))
    async with app.local(concurrency=8):
        assert await (await canvas.delay()).get(timeout=TIMEOUT) == [2 * i + 3 for i in range(4)]


async def test_a_failed_member_fails_its_chord_with_an_error_that_names_it():
    async with app.local(concurrency=4):
        result = await chord([add.si(1, 1), fail.si(), add.si(2, 2)], total.s()).delay()
        with pytest.raises(TaskFailed) as failed:
            await result.get(timeout=TIMEOUT)
        error = failed.value.result.error
        assert error is not None
        assert error.type == "celery_actors.MemberFailed"
        assert error.message.startswith(f"member 1 of the chord failed: fail[{result.id}/w.h.1]")
        assert "ValueError: failing on purpose" in error.message
        status = await result.status()
        states = {member.path: member.state for member in status.members}
        assert states == {"w.h.0": "succeeded", "w.h.1": "failed", "w.h.2": "succeeded",
                          "w.b": "skipped"}  # fmt: skip


async def test_an_error_handler_gets_the_error_and_the_chain_goes_on_from_its_result():
    async with app.local():
        canvas = source.si(1) | fail.s().on_error(recover.s()) | add.s(100)
        assert await (await canvas.delay()).get(timeout=TIMEOUT) == 107


async def test_an_error_handler_on_a_group_stands_for_the_whole_group():
    async with app.local():
        canvas = group(add.si(1, 1), fail.si()).on_error(recover.s()) | add.s(1)
        assert await (await canvas.delay()).get(timeout=TIMEOUT) == 8


async def test_a_failed_step_ends_its_chain():
    async with app.local():
        result = await (source.si(1) | fail.s() | add.s(1)).delay()
        with pytest.raises(TaskFailed, match="ValueError"):
            await result.get(timeout=TIMEOUT)
        status = await result.status()
        assert [m.state for m in status.members] == ["succeeded", "failed", "skipped"]


async def test_partial_results_arrive_as_members_end():
    gate = trio.Event()

    @app.task(name="test_canvas.gated")
    async def gated(value: int) -> int:
        await gate.wait()
        return value

    try:
        async with app.local(concurrency=4):
            result = await chord([source.si(1), gated.si(2)], total.s()).delay()
            seen = []
            async for member in result.results(timeout=TIMEOUT):
                seen.append((member.id.split("/")[1], member.value))
                if len(seen) == 1:
                    assert (await result.status()).state == "running"
                    gate.set()
            assert seen == [("w.h.0", 1), ("w.h.1", 2), ("w.b", 3)]
            assert result.state == "succeeded"
    finally:
        del app.tasks["test_canvas.gated"]


async def test_every_member_s_state_is_visible_while_it_runs():
    started, gate = trio.Event(), trio.Event()

    @app.task(name="test_canvas.slow")
    async def slow(value: int) -> int:
        started.set()
        await gate.wait()
        return value

    try:
        async with app.local():
            result = await (slow.si(1) | add.s(1)).delay()
            await started.wait()
            status = await result.status()
            assert [(m.task, m.state) for m in status.members] == [
                ("test_canvas.slow", "running"),
                ("add", "waiting"),
            ]
            gate.set()
            assert await result.get(timeout=TIMEOUT) == 2
    finally:
        del app.tasks["test_canvas.slow"]


async def test_revoking_a_workflow_revokes_its_members_and_nothing_more_starts():
    gate = trio.Event()

    @app.task(name="test_canvas.blocked")
    async def blocked(value: int) -> int:
        await gate.wait()
        return value

    try:
        async with app.local():
            result = await (blocked.si(1) | add.s(1)).delay()
            assert await result.revoke(terminate=True)
            with pytest.raises(TaskRevoked):
                await result.get(timeout=TIMEOUT)
            status = await result.status()
            assert [m.state for m in status.members] == ["revoked", "skipped"]
            assert not await result.revoke()
    finally:
        del app.tasks["test_canvas.blocked"]


async def test_an_empty_group_ends_at_once_with_an_empty_list():
    async with app.local():
        result = await Group(members=[]).apply_async(app=app)
        assert await result.get(timeout=TIMEOUT) == []


async def test_a_canvas_calling_an_unknown_task_is_refused_before_it_runs():
    other = App("other")

    @other.task(name="nowhere")
    def nowhere() -> None: ...

    async with app.local() as client:
        with pytest.raises(ValueError, match="does not know: nowhere"):
            await client.start_workflow(source.si(1) | nowhere.s())


async def test_a_workflow_started_twice_with_one_id_runs_once(tmp_path):
    async with app.local() as client:
        canvas = source.si(3) | add.s(1)
        first = await client.start_workflow(canvas, workflow_id="once")
        again = await client.start_workflow(canvas, workflow_id="once")
        assert await first.get(timeout=TIMEOUT) == await again.get(timeout=TIMEOUT) == 4
        stats = await client.stats()
        assert stats.states["succeeded"] == 2  # source and add, once each


def encoded_size(message: object) -> int:
    codec = Codec(app.registry)
    envelope = WireEnvelope(
        message_id="m", type_name=codec.type_name_of(message), body=message, to="x", created=0.0
    )
    encoded = codec.encode(envelope)
    assert codec.decode(encoded).body == message
    return len(encoded)


def test_a_large_group_is_compact_on_the_wire():
    members = group(add.s(i, 1) for i in range(10_000))
    assert isinstance(members, Fanout)
    assert isinstance(add.chunks([(i,) for i in range(100)], 10), Chunks)
    start = StartWorkflow(id="w", canvas=chord(members, total.s()))
    # A few bytes per member (its arguments), not a signature each.
    assert encoded_size(start) < 10_000 * 16
    one = encoded_size(StartWorkflow(id="w", canvas=chord(group(add.s(0, 1)), total.s())))
    assert encoded_size(start) < 10_000 * one / 10


async def test_a_router_started_again_on_its_store_resumes_a_workflow(tmp_path):
    store_path = tmp_path / "workflows.sqlite3"
    gate = trio.Event()

    @app.task(name="test_canvas.held")
    async def held(value: int) -> int:
        await gate.wait()
        return value

    try:
        async with app.local(workflows=store_path) as client:
            result = await chord([source.si(1), held.si(2)], total.s()).delay()
            async with contextlib.aclosing(result.results(timeout=TIMEOUT)) as members:
                async for member in members:
                    assert member.value == 1  # the first member has ended and is recorded
                    break
            workflow_id = result.id
        gate.set()
        async with app.local(workflows=SQLiteWorkflowStore(store_path)) as client:
            resumed = client.workflow_result(workflow_id)
            assert await resumed.get(timeout=TIMEOUT) == 3
            status = await resumed.status()
            assert [m.state for m in status.members] == ["succeeded"] * 3
    finally:
        del app.tasks["test_canvas.held"]


async def test_a_large_workflow_s_members_and_results_come_in_pages():
    async with app.local(concurrency=50):
        result = await add.map(range(2_500)).apply_async(app=app)
        ended = [member async for member in result.results(timeout=TIMEOUT)]
        assert sorted(member.value for member in ended) == list(range(2_500))
        status = await result.status()
        assert status.total == len(status.members) == 2_500
        assert status.counts == {"succeeded": 2_500}
        assert [member.path for member in status.members[:3]] == ["w.0", "w.1", "w.2"]
        summary = await result.status(members=False)
        assert (summary.members, summary.counts) == ([], {"succeeded": 2_500})


async def test_a_second_router_on_the_same_workflow_store_is_refused(tmp_path):
    store = tmp_path / "workflows.sqlite3"
    async with app.local(workflows=store):
        with pytest.raises(ActorStartError, match="in use by another router") as refused:
            async with app.local(workflows=store):
                pass
    assert "jumpstart run --workflows PATH" in str(refused.value)
    async with app.local(workflows=store):  # free again once the first stopped
        assert await (await (source.si(1) | add.s(1)).delay()).get(timeout=TIMEOUT) == 2


async def test_a_workflow_id_with_a_slash_is_refused_and_the_router_keeps_serving():
    async with app.local() as client:
        with pytest.raises(ValueError, match="must not contain '/'"):
            await client.start_workflow(source.si(1), workflow_id="a/b")
        with pytest.raises(ValueError, match="at least 1"):
            add.chunks([(1,)], 0)
        assert await (await (source.si(1) | add.s(1)).delay()).get(timeout=TIMEOUT) == 2
