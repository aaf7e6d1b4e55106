"""The workflow state machine alone, against the reference evaluator: random canvases,
results delivered in random order, delivered twice, and the router "killed" (the state
rebuilt from the recorded results) at random moments; and the chain steps it sends
ahead are the calls it makes once the step before them succeeds."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from celery_actors import TaskCall, TaskError, TaskResult, chain, group
from celery_actors._canvas import STARMAP_TASK
from celery_actors._workflow_state import STEPS_AHEAD, WorkflowState, member_paths
from celery_actors.testing import evaluate

from .canvas_app import MODELS, add, arithmetic_canvases, fail, recover, source, total


def run_call(call: TaskCall) -> TaskResult:
    """What a worker would answer, from the models."""
    try:
        if call.task == STARMAP_TASK:
            task, items, args, kwargs = call.args
            value: Any = [MODELS[task](*item, *args, **kwargs) for item in items]
        else:
            value = MODELS[call.task](*call.args, **call.kwargs)
    except Exception as exc:
        error = TaskError.from_exception(exc, with_traceback=False)
        return TaskResult.of(call, "failed", 0.0, error=error)
    return TaskResult.of(call, "succeeded", 0.0, value=value)


def rebuild(state: WorkflowState, recorded: list[TaskResult]) -> WorkflowState:
    again = WorkflowState(state.id, state.canvas, state.args, state.kwargs)
    again.start()
    for result in recorded:
        again.ended(result)
    return again


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(canvas=arithmetic_canvases(failures=True), data=st.data())
def test_any_order_of_results_duplicates_and_restarts_give_the_reference_outcome(canvas, data):
    expected = evaluate(canvas, MODELS)
    state = WorkflowState("wf", canvas)
    made: dict[str, TaskCall] = {call.id: call for call in state.start()}
    recorded: list[TaskResult] = []
    while not state.done:
        assert state.outstanding, "a workflow waits for nothing but has not ended"
        ids = sorted(state.outstanding)
        call = state.outstanding[data.draw(st.sampled_from(ids), label="ends")]
        ahead = state.next_steps(call.id)
        result = run_call(call)
        recorded.append(result)
        new_calls = state.ended(result)
        for new in new_calls:
            assert new.id not in made, f"{new.id} was made twice"
            made[new.id] = new
        if ahead and result.state == "succeeded":  # what a worker went on with
            assert ahead[0].after(result.value) in new_calls
        if data.draw(st.integers(0, 9), label="duplicate") == 0:
            assert state.ended(result) == []  # a result delivered again changes nothing
        if data.draw(st.integers(0, 9), label="restart") == 0:
            again = rebuild(state, recorded)
            assert set(again.outstanding) == set(state.outstanding)
            assert again.done == state.done
            state = again
    assert not state.outstanding
    assert state.state == expected.state
    if expected.state == "succeeded":
        assert state.value == expected.value
    else:
        assert state.failure is not None and expected.error is not None
        assert state.failure.error.type == expected.error.type
        assert state.failure.error.message.split(": ")[0] == expected.error.message.split(": ")[0]
    assert len(made) == expected.calls  # every call made once, none forgotten
    paths = {path for path, _ in member_paths(canvas)}
    assert {call.id.split("/", 1)[1] for call in made.values()} <= paths


def test_a_chain_passes_each_result_on_and_an_immutable_step_ignores_it():
    canvas = source.si(2) | add.s(3) | add.si(10) | add.s(1)
    state = WorkflowState("wf", canvas)
    calls = state.start()
    while calls:
        (call,) = calls
        calls = state.ended(run_call(call))
    assert (state.state, state.value) == ("succeeded", 11)


def test_a_failed_chord_member_is_named_and_its_body_never_runs():
    from celery_actors import chord

    canvas = chord([add.si(1, 1), fail.si(), add.si(2, 2)], total.s())
    state = WorkflowState("wf", canvas)
    for call in state.start():
        assert state.ended(run_call(call)) == []
    assert state.state == "failed"
    assert state.failure is not None
    assert state.failure.error.type == "celery_actors.MemberFailed"
    assert state.failure.error.message.startswith("member 1 of the chord failed: fail[wf/w.h.1]")
    assert "ValueError" in state.failure.error.message


def test_an_error_handler_s_result_stands_for_the_failed_step():
    canvas = source.si(1) | fail.s().on_error(recover.s()) | add.s(100)
    state = WorkflowState("wf", canvas)
    calls = state.start()
    tasks = []
    while calls:
        (call,) = calls
        tasks.append(call.task)
        calls = state.ended(run_call(call))
    assert tasks == ["source", "fail", "recover", "add"]
    assert (state.state, state.value) == ("succeeded", 107)


def test_a_chain_s_step_sends_ahead_the_single_calls_after_it():
    canvas = chain(
        source.si(2),
        add.s(3),
        add.si(10),
        add.s(1).set(priority=5),
        group(add.s(1), add.s(2)),
        add.s(4),
    )
    state = WorkflowState("wf", canvas)
    [first] = state.start()
    ahead = state.next_steps(first.id)
    assert [(step.call.id, step.call.args, step.immutable) for step in ahead] == [
        ("wf/w.1", [3], False),
        ("wf/w.2", [10], True),
        ("wf/w.3", [1], False),
    ]  # up to the group, which is not a single call
    assert ahead[2].call.priority == 5
    assert ahead[0].after(2).args == [2, 3] and ahead[1].after(5).args == [10]
    assert state.next_steps("wf/w.4.0") == []  # not made, and a group's member


def test_steps_ahead_stop_at_a_timed_step_and_at_the_limit():
    timed = WorkflowState("wf", chain(source.si(1), add.s(1), add.s(2).set(countdown=5), add.s(3)))
    [first] = timed.start()
    assert [step.call.id for step in timed.next_steps(first.id)] == ["wf/w.1"]
    long = WorkflowState("wf", chain(source.si(0), *[add.s(1) for _ in range(20)]))
    [first] = long.start()
    assert len(long.next_steps(first.id)) == STEPS_AHEAD
    assert long.next_steps(first.id, limit=2)[-1].call.id == "wf/w.2"
    [second] = long.ended(run_call(first))
    assert long.next_steps(first.id) == []  # ended: nothing is sent with it any more
    assert long.next_steps(second.id)[0].call.id == "wf/w.2"
