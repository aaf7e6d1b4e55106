"""Workflow: a canvas checked before it runs, drawn, and started many times."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any, TypeVar

import attrs
import pytest
import trio

from celery_actors import (
    App,
    Chain,
    Chunks,
    Fanout,
    Signature,
    TaskError,
    Workflow,
    WorkflowInvalid,
    chain,
    chord,
    group,
)

TIMEOUT = 30
ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")

app = App("workflow-tests")


@app.task(name="wf.numbers")
async def numbers(count: int) -> list[int]:
    return list(range(count))


@app.task(name="wf.double")
async def double(n: int) -> int:
    return 2 * n


@app.task(name="wf.add")
def add(n: int, m: int) -> int:
    return n + m


@app.task(name="wf.total")
def total(values: list[float]) -> float:
    return float(sum(values))


@app.task(name="wf.shout")
def shout(text: str) -> str:
    return text.upper()


@app.task(name="wf.recover")
def recover(error: TaskError) -> int:
    return 0


@app.task(name="wf.anything")
def anything(value: Any, *rest: Any) -> Any:
    return value


@app.task(name="wf.maybe")
def maybe(value: int | None) -> str | None:
    return None if value is None else str(value)


@app.task(name="wf.same")
def same(value: T) -> T:
    return value


@app.task(name="wf.plain")
def plain(value, *rest):  # type: ignore[no-untyped-def]
    return value


def problems_of(canvas: Any) -> list[str]:
    with pytest.raises(WorkflowInvalid) as caught:
        Workflow(canvas, app=app, name="checked")
    assert str(caught.value).splitlines()[1:] == [f"  {p}" for p in caught.value.problems]
    return caught.value.problems


# -- checks


def test_a_well_typed_workflow_passes_its_checks():
    canvas = chain(
        double.s(),
        chord(group(add.s(i) for i in range(3)), total.s()),  # list[int] for list[float]
        recover.si(TaskError(type="x", message="y")),
    ).on_error(recover.s())
    workflow = Workflow(canvas, app=app, name="sums")
    assert workflow.canvas == canvas
    assert workflow.name == "sums"
    assert app.workflow(canvas).canvas == canvas


def test_an_unknown_task_is_named_with_its_path_and_the_closest_known_name():
    canvas = chain(double.s(), chord([double.s(), Signature(task="wf.doubel")], total.s()))
    assert problems_of(canvas) == [
        "w.1.h.1 (wf.doubel): app 'workflow-tests' has no task of that name (did you "
        "mean 'wf.double'?): register it with @app.task, or fix the name"
    ]


def test_every_problem_is_listed_one_per_line():
    canvas = chain(
        Signature(task="wf.zz"),
        double.s(),
        shout.s(),
        shout.s(1, 2),
    )
    with pytest.raises(WorkflowInvalid) as caught:
        Workflow(canvas, app=app)
    assert caught.value.name is None
    assert str(caught.value) == (
        "this workflow cannot run (3 problems):\n"
        "  w.0 (wf.zz): app 'workflow-tests' has no task of that name: register it "
        "with @app.task, or fix the name\n"
        "  w.2 (wf.shout): gets int from the step before it (w.1) as its first argument, "
        "but its parameter 'text' is annotated str: fix the annotation or the canvas "
        "(.si(...) if it should ignore its input)\n"
        "  w.3 (wf.shout): its arguments do not fit wf.shout(text: str) -> str: too many "
        "positional arguments (positional: 1 from the step before it (w.2) + 2 of the "
        "signature's); change the signature's arguments (or .si(...) if it should ignore "
        "its input)"
    )


def test_a_canvas_that_contains_itself_is_reported_instead_of_walked_forever():
    steps = [double.s(), double.s()]
    looped = Chain(steps=steps)
    steps.append(group(looped, double.s()))  # the chain is now its own third step's member
    assert problems_of(looped) == [
        "w.2.0 (chain): this chain contains itself (it is also at w): a canvas is a "
        "tree; build the repeated part again (task.s(...)) instead of putting a canvas "
        "inside itself"
    ]
    handled = double.s()
    object.__setattr__(handled, "error_handler", handled)
    assert problems_of(chain(double.s(), handled)) == [
        "w.1.e (wf.double): this signature contains itself (it is also at w.1): a canvas "
        "is a tree; build the repeated part again (task.s(...)) instead of putting a "
        "canvas inside itself"
    ]


def test_a_step_given_what_its_annotation_refuses_is_reported():
    assert problems_of(double.s() | numbers.s() | double.s()) == [
        "w.2 (wf.double): gets list[int] from the step before it (w.1) as its first "
        "argument, but its parameter 'n' is annotated int: fix the annotation or the "
        "canvas (.si(...) if it should ignore its input)"
    ]
    assert problems_of(chord([double.s(), double.s(), shout.s()], shout.s())) == [
        "w.b (wf.shout): gets list from its header (w.h) as its first argument, but its "
        "parameter 'text' is annotated str: fix the annotation or the canvas (.si(...) "
        "if it should ignore its input)"
    ]
    assert problems_of(numbers.s(3) | total.s().on_error(shout.s())) == [
        "w.1.e (wf.shout): gets celery_actors.TaskError from the error it handles as its "
        "first argument, but its parameter 'text' is annotated str: fix the annotation or "
        "the canvas (.si(...) if it should ignore its input)"
    ]
    assert problems_of(chord(numbers.si(3), total.s()) | numbers.s()) == [
        "w.1 (wf.numbers): gets float from the step before it (w.0) as its first "
        "argument, but its parameter 'count' is annotated int: fix the annotation or the "
        "canvas (.si(...) if it should ignore its input)"
    ]


def test_values_of_unclear_types_are_not_reported():
    Workflow(double.s() | anything.s() | shout.s(), app=app)  # Any
    Workflow(double.s() | maybe.s() | shout.s(), app=app)  # unions
    Workflow(double.s() | same.s() | shout.s(), app=app)  # a type variable
    Workflow(double.s() | plain.s() | shout.s(), app=app)  # no annotations
    Workflow(numbers.s() | total.s() | recover.si(TaskError(type="x", message="y")), app=app)
    Workflow(group(double.s(), numbers.s()) | total.s(), app=app)  # list of mixed types
    Workflow(chain(double.s(), double.s().on_error(recover.s())) | double.s(), app=app)
    Workflow(chain(double.s(), add.s(1).on_error(shout.si("x"))) | double.s(), app=app)


def test_an_immutable_signature_is_checked_without_its_input():
    Workflow(double.s() | numbers.si(3) | total.s(), app=app)
    assert problems_of(double.s() | add.si(1)) == [
        "w.1 (wf.add): its arguments do not fit wf.add(n: int, m: int) -> int: missing a "
        "required argument: 'm' (positional: 1 of the signature's); change the "
        "signature's arguments"
    ]


def test_arguments_that_do_not_fit_a_function_are_reported():
    assert problems_of(chain(double.s(), double.s(count=2), add.s())) == [
        "w.1 (wf.double): its arguments do not fit wf.double(n: int) -> int: got an "
        "unexpected keyword argument 'count' (positional: 1 from the step before it "
        "(w.0)); change the signature's arguments (or .si(...) if it should ignore its "
        "input)",
        "w.2 (wf.add): its arguments do not fit wf.add(n: int, m: int) -> int: missing a "
        "required argument: 'm' (positional: 1 from the step before it (w.1)); change "
        "the signature's arguments (or .si(...) if it should ignore its input)",
    ]
    # the first tasks' input is not known yet: only what cannot fit any input counts
    assert problems_of(add.s(1, 2, 3)) == [
        "w (wf.add): its arguments do not fit wf.add(n: int, m: int) -> int: too many "
        "positional arguments (positional: 3 of the signature's); change the "
        "signature's arguments"
    ]


def test_each_member_of_a_fan_out_is_checked_once_per_count_of_arguments():
    fanout = add.starmap([(1, 2)] * 5_000 + [(1, 2, 3)] + [(1,)] * 5_000)
    assert problems_of(fanout) == [
        "w.5000 (wf.add): its arguments do not fit wf.add(n: int, m: int) -> int: too "
        "many positional arguments (positional: 3 of the member's own); change the "
        "signature's arguments"
    ]
    assert problems_of(numbers.s() | double.map([1, 2])) == [
        "w.1.0 (wf.double): its arguments do not fit wf.double(n: int) -> int: too many "
        "positional arguments (positional: 1 from the step before it (w.0) + 1 of the "
        "member's own); change the signature's arguments (or .si(...) if it should "
        "ignore its input)",
        "w.1.* (wf.double): gets list[int] from the step before it (w.0) as its first "
        "argument, but its parameter 'n' is annotated int: fix the annotation or the "
        "canvas (.si(...) if it should ignore its input)",
    ]
    assert problems_of(add.chunks([(1, 2)] * 7 + [(1, 2, 3)], 3)) == [
        "w.2 (wf.add): its arguments do not fit wf.add(n: int, m: int) -> int: too many "
        "positional arguments (positional: 3 of the member's own); change the "
        "signature's arguments"
    ]


def test_something_that_is_not_a_canvas_is_refused():
    with pytest.raises(TypeError, match=r"is not a canvas: make a workflow of task\.s"):
        Workflow("wf.double", app=app)  # type: ignore[arg-type]
    assert problems_of(Chain(steps=[double.s(), "wf.double"])) == [  # type: ignore[list-item]
        "w.1 (str): 'wf.double' is not a canvas: use task.s(...), chain(...), group(...) "
        "or chord(...)"
    ]
    assert problems_of(Fanout(template=double.s() | double.s(), arguments=[[1]])) == [  # type: ignore[arg-type]
        "w (group): its template is a chain, not a signature: make it with "
        "task.map(...), task.starmap(...), task.chunks(...) or group(task.s(...) for ...)"
    ]
    assert problems_of(Chunks(template=add.s(), items=[[1, 2]], size=0)) == [
        "w (wf.add): chunks of size 0: make them with task.chunks(items, size), a size "
        "of at least 1"
    ]


# -- immutability


def test_a_workflow_cannot_be_changed():
    steps = [double.s(), double.s()]
    workflow = Workflow(Chain(steps=steps), app=app, name="fixed")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        workflow.name = "other"  # type: ignore[misc]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        workflow.canvas = double.s()  # type: ignore[misc]
    steps.append(shout.s())  # the canvas it was made from changes; it does not
    assert workflow.canvas == chain(double.s(), double.s())


# -- drawing


def test_a_chain_into_a_chord_draws_as_mermaid_and_graphviz():
    canvas = double.si(2) | add.s(1) | chord(group(add.s(i) for i in range(3)), total.s())
    workflow = Workflow(canvas, app=app, name="sums")
    assert workflow.to_mermaid() == (
        "---\n"
        'title: "sums"\n'
        "---\n"
        "flowchart LR\n"
        '    n0["wf.double.si(2)"]\n'
        '    n1["wf.add.s(1)"]\n'
        '    n2[["wf.add ×3"]]\n'  # noqa: RUF001
        '    n3["wf.total.s()"]\n'
        "    n0 --> n1\n"
        "    n1 --> n2\n"
        "    n2 --> n3\n"
    )
    assert workflow.to_dot() == (
        'digraph "sums" {\n'
        "    rankdir=LR;\n"
        "    compound=true;\n"
        "    node [shape=box];\n"
        '    n0 [label="wf.double.si(2)"];\n'
        '    n1 [label="wf.add.s(1)"];\n'
        '    n2 [label="wf.add ×3", shape=box3d];\n'  # noqa: RUF001
        '    n3 [label="wf.total.s()"];\n'
        "    n0 -> n1;\n"
        "    n1 -> n2;\n"
        "    n2 -> n3;\n"
        "}\n"
    )


def test_error_handlers_draw_as_dashed_edges_labelled_on_error():
    guarded = chain(double.s(), double.s()).on_error(recover.s())
    canvas = chain(guarded, group(double.s(), shout.si('say "hi"').on_error(recover.s())))
    workflow = Workflow(canvas, app=app)
    assert workflow.to_mermaid() == (
        "flowchart LR\n"
        '    subgraph c0 ["chain"]\n'
        '        n1["wf.double.s()"]\n'
        '        n2["wf.double.s()"]\n'
        "    end\n"
        '    n3["wf.recover.s()"]\n'
        '    n4["wf.double.s()"]\n'
        "    n5[\"wf.shout.si('say #quot;hi#quot;')\"]\n"
        '    n6["wf.recover.s()"]\n'
        "    n1 --> n2\n"
        "    c0 -. on error .-> n3\n"
        "    n2 --> n4\n"
        "    n2 --> n5\n"
        "    n3 --> n4\n"
        "    n3 --> n5\n"
        "    n5 -. on error .-> n6\n"
    )
    dot = workflow.to_dot()
    assert '    n1 -> n3 [style=dashed, label="on error", ltail=cluster_c0];\n' in dot
    assert '    n5 -> n6 [style=dashed, label="on error"];\n' in dot
    assert '    n5 [label="wf.shout.si(\'say \\"hi\\"\')"];\n' in dot


def test_a_fan_out_of_ten_thousand_members_draws_as_one_node():
    canvas = chord(double.map(range(10_000)), total.s())
    workflow = Workflow(canvas, app=app)
    assert workflow.to_mermaid().splitlines() == [
        "flowchart LR",
        '    n0[["wf.double ×10000"]]',  # noqa: RUF001
        '    n1["wf.total.s()"]',
        "    n0 --> n1",
    ]
    assert len(workflow.to_dot().splitlines()) == 8
    chunks = Workflow(add.chunks([(i, i) for i in range(10_000)], 100), app=app)
    assert '    n0[["wf.add ×10000 in 100 chunks"]]' in chunks.to_mermaid().splitlines()  # noqa: RUF001


def test_long_arguments_are_shortened_in_labels():
    workflow = Workflow(anything.si("x" * 100, list(range(100))), app=app)
    assert workflow.to_mermaid().splitlines()[1] == (
        "    n0[\"wf.anything.si('xxxxx...xxxxxx', [0, 1, 2, ...])\"]"
    )


# -- running


async def test_one_workflow_started_many_times_gives_each_start_its_own_answer():
    sums = Workflow(
        chain(double.s(), chord(group(add.s(i) for i in range(3)), total.s())),
        app=app,
        name="sums",
    )
    answers: dict[int, float] = {}
    async with app.local(concurrency=8):

        async def run(n: int) -> None:
            result = await sums.delay(n)
            answers[n] = await result.get(timeout=TIMEOUT)

        async with trio.open_nursery() as nursery:
            for n in (1, 10, 100):
                nursery.start_soon(run, n)
        again = await sums.apply_async((5,), workflow_id="sums-5")
        assert again.id == "sums-5"
        assert await again.get(timeout=TIMEOUT) == 33.0
    assert answers == {n: float(3 * 2 * n + 0 + 1 + 2) for n in (1, 10, 100)}


async def test_arguments_that_do_not_fit_the_first_tasks_start_nothing():
    workflow = Workflow(double.s() | double.s(), app=app, name="doubles")
    with pytest.raises(WorkflowInvalid) as caught:
        await workflow.delay("two")  # no client is open: it is refused before that
    assert caught.value.problems == [
        "w.0 (wf.double): gets str from the workflow's arguments as its first argument, "
        "but its parameter 'n' is annotated int: fix the annotation or the canvas "
        "(.si(...) if it should ignore its input)"
    ]
    with pytest.raises(WorkflowInvalid, match=r"w\.0 \(wf\.double\): .*too many positional"):
        await workflow.delay(1, 2)
    with pytest.raises(WorkflowInvalid, match=r"w\.0 \(wf\.double\): .*missing a required"):
        await workflow.delay()


def test_the_guide_s_example_runs():
    example = ROOT / "docs" / "examples" / "workflows_local.py"
    output = subprocess.run(
        [sys.executable, str(example)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        cwd=ROOT,
    ).stdout
    assert output == GUIDE_OUTPUT


GUIDE_OUTPUT = """\
---
title: "quote"
---
flowchart LR
    n0["unit_price.s()"]
    n1[["for_quantity ×3"]]
    n2["price_list.s()"]
    n0 --> n1
    n1 --> n2

workflow 'broken' cannot run (1 problem):
  w.1 (price_list): gets float from the step before it (w.0) as its first argument, \
but its parameter 'prices' is annotated list[float]: fix the annotation or the canvas \
(.si(...) if it should ignore its input)

tea: 2.50 / 22.50 / 225.00
coffee: 4.00 / 36.00 / 360.00
cocoa: 3.20 / 28.80 / 288.00
"""  # noqa: RUF001
