"""The workflow state machine alone, against the reference evaluator: random canvases,
results delivered in random order, delivered twice, and the router "killed" (the state
rebuilt from the recorded results) at random moments."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from celery_actors import TaskCall, TaskError, TaskResult
from celery_actors._canvas import STARMAP_TASK
from celery_actors._workflow_state import WorkflowState, member_paths
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
        result = run_call(call)
        recorded.append(result)
        for new in state.ended(result):
            assert new.id not in made, f"{new.id} was made twice"
            made[new.id] = new
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
