"""Property-based tests of workflows: random canvases of an app's tasks, run by a real
router and worker, always end as the reference evaluator says."""

import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from celery_actors import NO_RETRY, App, TaskError
from celery_actors.testing import canvases, evaluate

app = App("pricing")


def add_fn(*args: int) -> int:
    *inputs, n = args  # the input (the result before) comes first
    return sum(_number(i) for i in inputs) + n


def total_fn(values: list) -> int:
    return sum(_number(v) for v in values)


def refuse_fn(*args: int) -> int:
    raise ValueError("refused")


def fallback_fn(error: TaskError) -> int:
    return -1


def _number(value) -> int:
    return total_fn(value) if isinstance(value, list) else value


add = app.task(name="add")(add_fn)
total = app.task(name="total")(total_fn)
refuse = app.task(name="refuse", retry=NO_RETRY)(refuse_fn)
fallback = app.task(name="fallback")(fallback_fn)

MODELS = {"add": add_fn, "total": total_fn, "refuse": refuse_fn, "fallback": fallback_fn}

workflows = canvases(
    sources=st.builds(lambda n: add.si(n), st.integers(-9, 9)),  # no input
    steps=st.one_of(st.builds(lambda n: add.s(n), st.integers(-9, 9)), st.just(refuse.s())),
    joins=st.just(total.s()),  # chord bodies: take a list
    handlers=st.just(fallback.s()),  # error handlers: take the TaskError
    max_depth=3,
)


async def run(canvas):
    async with app.local(concurrency=8):
        result = await canvas.apply_async(app=app)
        return await result.wait(timeout=30), await result.status()


@settings(max_examples=25, deadline=None)
@given(workflows)
def test_a_workflow_ends_as_the_reference_evaluator_says(canvas):
    expected = evaluate(canvas, MODELS)
    final, status = trio.run(run, canvas)
    assert expected.matches(final), (expected, final)
    # Nothing is left hanging: every member ended, or was not needed.
    assert all(m.state in ("succeeded", "failed", "skipped") for m in status.members)
