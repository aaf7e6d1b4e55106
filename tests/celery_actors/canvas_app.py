"""Arithmetic tasks for canvas tests, their plain functions for the reference
evaluator, and hypothesis strategies of canvases over them.

Every task takes its inputs first and its own argument last, and folds lists, so
that any canvas built by :func:`arithmetic_canvases` is well typed. Values stay
small (modulo :data:`MODULUS`) so that they travel as plain AMQP integers.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import trio
from hypothesis import strategies as st

from celery_actors import NO_RETRY, App, RetryPolicy, Signature, TaskError
from celery_actors.testing import canvases

MODULUS = 1_000_003

app = App("canvas-tests")


def number(value: Any) -> int:
    if isinstance(value, list):
        return sum(number(item) for item in value) % MODULUS
    return value if isinstance(value, int) else 0


def add_fn(*args: Any) -> int:
    *inputs, n = args
    return (sum(number(i) for i in inputs) + n) % MODULUS


def mul_fn(*args: Any) -> int:
    *inputs, n = args
    return (sum(number(i) for i in inputs) * n) % MODULUS


def total_fn(*args: Any) -> int:
    """Folds its inputs; with a token last (``total.s(token)``, a chord body), notes
    each run in ``CANVAS_RUNS_DIR/<token>`` when that is set, so that a test can count
    how many times each body ran."""
    *inputs, token = args if len(args) > 1 and isinstance(args[-1], str) else (*args, None)
    runs = os.environ.get("CANVAS_RUNS_DIR")
    if token is not None and runs:
        with (Path(runs) / token).open("a") as log:
            log.write("ran\n")
    return sum(number(a) for a in inputs) % MODULUS


BODIES_RUN: list[str] = []
"""Tokens of the chord bodies the reference evaluator ran (see :func:`total_model`)."""


def total_model(*args: Any) -> int:
    *inputs, token = args if len(args) > 1 and isinstance(args[-1], str) else (*args, None)
    if token is not None:
        BODIES_RUN.append(token)
    return sum(number(a) for a in inputs) % MODULUS


def source_fn(n: int) -> int:
    return n


def fail_fn(*args: Any) -> int:
    raise ValueError(f"failing on purpose with {len(args)} arguments")


def recover_fn(error: TaskError, *args: Any) -> int:
    assert isinstance(error, TaskError)
    return 7


FLAKY_DIR = os.environ.get("CANVAS_FLAKY_DIR", "")
"""Where :func:`flaky` marks the tokens it has failed once for (shared by processes)."""


def flaky_fn(*args: Any) -> int:
    """Fails the first time it runs for a token (its last argument), then adds."""
    *inputs, token = args
    marker = Path(FLAKY_DIR or os.environ["CANVAS_FLAKY_DIR"]) / str(token)
    try:
        marker.touch(exist_ok=False)
    except FileExistsError:
        return sum(number(i) for i in inputs) % MODULUS
    raise RuntimeError(f"flaky: first run for token {token}")


def flaky_model(*args: Any) -> int:
    *inputs, _token = args
    return sum(number(i) for i in inputs) % MODULUS


async def slow_add_fn(*args: Any) -> int:
    """:func:`add_fn`, taking a hundredth of a second: a chain of them runs long enough
    to be interrupted."""
    await trio.sleep(0.01)
    return add_fn(*args)


QUICK_RETRY = RetryPolicy(max_retries=3, interval_start=0.01, interval_step=0.01, interval_max=0.05)

add = app.task(name="add")(add_fn)
mul = app.task(name="mul")(mul_fn)
total = app.task(name="total")(total_fn)
source = app.task(name="source")(source_fn)
fail = app.task(name="fail", retry=NO_RETRY)(fail_fn)
recover = app.task(name="recover", retry=NO_RETRY)(recover_fn)
flaky = app.task(name="flaky", retry=QUICK_RETRY)(flaky_fn)
slow_add = app.task(name="slow_add")(slow_add_fn)

MODELS = {
    "add": add_fn,
    "mul": mul_fn,
    "total": total_model,
    "source": source_fn,
    "fail": fail_fn,
    "recover": recover_fn,
    "flaky": flaky_model,
}
"""Plain functions standing for the tasks, for the reference evaluator."""

_small = st.integers(-20, 20)
_tokens = st.uuids().map(lambda u: u.hex)


def arithmetic_canvases(
    *,
    failures: bool = False,
    flaky_calls: bool = False,
    max_depth: int = 4,
    max_members: int = 4,
    min_fanout: int = 0,
    max_fanout: int = 30,
) -> st.SearchStrategy[Any]:
    """Canvases of these tasks; with ``failures``, some calls fail for good (and
    some have error handlers); with ``flaky_calls``, some fail once and retry."""
    steps: list[st.SearchStrategy[Signature]] = [
        st.builds(lambda n: add.s(n), _small),
        st.builds(lambda n: mul.s(n), st.integers(-3, 3)),
    ]
    sources: list[st.SearchStrategy[Signature]] = [st.builds(lambda n: source.si(n), _small)]
    if failures:
        steps.append(st.just(fail.s()))
        sources.append(st.just(fail.si()))
    if flaky_calls:
        steps.append(st.builds(lambda t: flaky.s(t), _tokens))
        sources.append(st.builds(lambda n, t: flaky.si(n, t), _small, _tokens))
    return canvases(
        st.one_of(sources),
        st.one_of(steps),
        joins=st.builds(lambda t: total.s(t), _tokens),
        handlers=st.just(recover.s()) if failures else None,
        max_depth=max_depth,
        max_members=max_members,
        min_fanout=min_fanout,
        max_fanout=max_fanout,
    )
