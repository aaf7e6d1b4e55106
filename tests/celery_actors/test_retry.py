"""Tests of retry policies, the retry/poisonous/optional blocks, and decide()."""

from __future__ import annotations

import logging
import math
import random
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager

import attrs
import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from celery_actors._retry import (
    DEFAULT_RETRY_POLICY,
    NO_RETRY,
    Decision,
    RetryPolicy,
    decide,
    optional,
    poisonous,
    retry,
)

EXACT = RetryPolicy(
    max_retries=3, interval_start=1.0, interval_step=2.0, interval_max=4.0, jitter=0
)
PATIENT = RetryPolicy(max_retries=10, interval_start=0, interval_step=5, interval_max=120, jitter=0)


def raised(block: AbstractContextManager[None], error: BaseException) -> BaseException:
    """Raise ``error`` inside ``with block:`` and return what escaped it."""
    with pytest.raises(BaseException) as info, block:
        raise error
    return info.value


def fail_in(
    *blocks: AbstractContextManager[None], error: BaseException | None = None
) -> BaseException:
    """Raise ``error`` inside the nested ``blocks`` (outermost first); return what escaped."""
    error = error if error is not None else ValueError("bad")

    def run(remaining: tuple[AbstractContextManager[None], ...]) -> None:
        if not remaining:
            raise error
        with remaining[0]:
            run(remaining[1:])

    with pytest.raises(BaseException) as info:
        run(blocks)
    return info.value


@pytest.fixture(autouse=True)
def _capture_task_warnings(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="celery_actors.task")


# -- policies


def test_default_policy_retries_three_times_then_quarantines() -> None:
    error = ValueError("bad")
    decisions = [decide(error, done, DEFAULT_RETRY_POLICY) for done in range(5)]

    assert [d.retry_in is not None for d in decisions] == [True, True, True, False, False]
    assert not any(d.quarantine for d in decisions[:3])
    assert decisions[3] == Decision(None, True, "no retries left after 3 (max_retries=3)")


def test_default_policy_waits_at_most_a_second() -> None:
    assert RetryPolicy() == DEFAULT_RETRY_POLICY
    assert DEFAULT_RETRY_POLICY.max_retries == 3
    assert all(0 <= DEFAULT_RETRY_POLICY.delay(n) <= 1.0 for n in range(20))


def test_no_retry_quarantines_the_first_failure() -> None:
    assert NO_RETRY.max_retries == 0
    assert not NO_RETRY.allows(0)
    assert decide(ValueError("bad"), 0, NO_RETRY) == Decision(
        None, True, "no retries left after 0 (max_retries=0)"
    )


def test_allows_counts_retries_after_the_first_run() -> None:
    policy = RetryPolicy(max_retries=2)
    assert [policy.allows(n) for n in range(4)] == [True, True, False, False]


policies = st.builds(
    RetryPolicy,
    max_retries=st.integers(0, 100),
    interval_start=st.floats(0, 1e4),
    interval_step=st.floats(0, 1e4),
    interval_max=st.floats(0, 1e4),
    jitter=st.floats(0, 3),
)


@given(policy=policies, retries_done=st.integers(0, 10_000), seed=st.integers(0, 2**32))
def test_delays_follow_the_formula_and_stay_within_zero_and_interval_max(
    policy: RetryPolicy, retries_done: int, seed: int
) -> None:
    delay = policy.delay(retries_done, random.Random(seed))

    base = min(policy.interval_max, policy.interval_start + policy.interval_step * retries_done)
    expected = base
    if policy.jitter:
        spread = random.Random(seed).uniform(-policy.jitter, policy.jitter)
        expected = min(policy.interval_max, max(0.0, base * (1 + spread)))
    assert delay == expected
    assert 0 <= delay <= policy.interval_max
    low = max(0.0, base * (1 - policy.jitter))
    assert low - 1e-9 * base <= delay <= base * (1 + policy.jitter) + 1e-9 * base


def test_jitter_zero_gives_exact_delays_and_draws_nothing() -> None:
    rng = random.Random(7)
    state = rng.getstate()

    assert [EXACT.delay(n, rng) for n in range(5)] == [1.0, 3.0, 4.0, 4.0, 4.0]
    assert rng.getstate() == state
    assert [PATIENT.delay(n) for n in (0, 1, 2, 23, 24, 25, 100)] == [0, 5, 10, 115, 120, 120, 120]


def test_jitter_spreads_delays_both_ways_around_the_base() -> None:
    policy = RetryPolicy(interval_start=10, interval_step=0, interval_max=20, jitter=0.5)
    rng = random.Random(1)
    delays = [policy.delay(0, rng) for _ in range(200)]

    assert all(5 <= d <= 15 for d in delays)
    assert min(delays) < 10 < max(delays)


def test_same_seed_gives_same_delays() -> None:
    first = [DEFAULT_RETRY_POLICY.delay(n, random.Random(3)) for n in range(5)]
    second = [DEFAULT_RETRY_POLICY.delay(n, random.Random(3)) for n in range(5)]
    assert first == second


@pytest.mark.parametrize(
    "field", ["max_retries", "interval_start", "interval_step", "interval_max", "jitter"]
)
def test_negative_policy_fields_raise_value_error(field: str) -> None:
    with pytest.raises(ValueError, match=f"RetryPolicy.{field} must be"):
        RetryPolicy(**{field: -1})


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, -0.5])
@pytest.mark.parametrize("field", ["interval_start", "interval_step", "interval_max", "jitter"])
def test_non_finite_or_negative_intervals_raise_value_error(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=f"RetryPolicy.{field} must be a finite number >= 0"):
        RetryPolicy(**{field: value})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("field", "value"),
    [("max_retries", 1.5), ("max_retries", "3"), ("max_retries", True), ("jitter", "0.1")],
)
def test_policy_fields_of_the_wrong_type_raise_type_error(field: str, value: object) -> None:
    with pytest.raises(TypeError, match=f"RetryPolicy.{field} must be"):
        RetryPolicy(**{field: value})  # type: ignore[arg-type]


def test_policies_are_frozen_and_compare_by_value() -> None:
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        DEFAULT_RETRY_POLICY.max_retries = 5  # type: ignore[misc]
    assert RetryPolicy(max_retries=0) == NO_RETRY
    assert hash(RetryPolicy(max_retries=0)) == hash(NO_RETRY)


def test_negative_retries_done_is_refused() -> None:
    with pytest.raises(ValueError, match="retries_done must be >= 0"):
        DEFAULT_RETRY_POLICY.delay(-1)
    with pytest.raises(ValueError, match="retries_done must be >= 0"):
        DEFAULT_RETRY_POLICY.allows(-1)
    with pytest.raises(ValueError, match="retries_done must be >= 0"):
        decide(ValueError(), -1, DEFAULT_RETRY_POLICY)


# -- retry()


def test_retry_block_reraises_the_same_exception_unchanged() -> None:
    error = ValueError("bad")
    escaped = raised(retry(max_retries=10), error)

    assert escaped is error
    assert escaped.args == ("bad",)
    assert escaped.__traceback__ is not None


def test_retry_mark_replaces_the_default_policy() -> None:
    error = fail_in(retry(PATIENT))

    assert decide(error, 0, NO_RETRY) == Decision(
        0, False, "retry 1 of 10 in 0 s after ValueError: bad"
    )
    assert decide(error, 9, NO_RETRY).retry_in == 45
    assert decide(error, 10, NO_RETRY) == Decision(
        None, True, "no retries left after 10 (max_retries=10)"
    )


def test_retry_mark_can_also_retry_less_than_the_default() -> None:
    error = fail_in(retry(NO_RETRY))
    assert decide(error, 0, PATIENT).quarantine


def test_retry_takes_fields_as_keywords() -> None:
    error = fail_in(
        retry(max_retries=10, interval_start=0, interval_step=5, interval_max=120, jitter=0)
    )
    assert decide(error, 3, NO_RETRY).retry_in == 15


def test_retry_without_arguments_uses_the_library_defaults() -> None:
    error = fail_in(retry())
    assert decide(error, 2, NO_RETRY).retry_in is not None
    assert decide(error, 3, NO_RETRY).quarantine


def test_retry_refuses_a_policy_and_fields_together() -> None:
    with pytest.raises(TypeError, match="not both"):
        retry(PATIENT, max_retries=1)


def test_retry_refuses_unknown_fields_and_invalid_values() -> None:
    with pytest.raises(TypeError):
        retry(retries=3)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="max_retries"):
        retry(max_retries=-1)
    with pytest.raises(TypeError, match="RetryPolicy"):
        retry({"max_retries": 1})  # type: ignore[arg-type]


def test_innermost_retry_block_wins() -> None:
    error = fail_in(retry(NO_RETRY), retry(PATIENT), retry(max_retries=1))
    assert decide(error, 1, DEFAULT_RETRY_POLICY).quarantine
    assert "max_retries=1" in decide(error, 1, DEFAULT_RETRY_POLICY).reason

    error = fail_in(retry(NO_RETRY), retry(PATIENT))
    assert decide(error, 5, DEFAULT_RETRY_POLICY).retry_in == 25


def test_exception_without_a_mark_uses_the_default_policy() -> None:
    assert decide(KeyError("k"), 0, PATIENT).retry_in == 0
    assert decide(KeyError("k"), 0, NO_RETRY).quarantine


def test_blocks_that_do_not_fail_do_nothing(caplog: pytest.LogCaptureFixture) -> None:
    ran = []
    with retry(PATIENT), poisonous(), optional():
        ran.append(True)
    assert ran == [True]
    assert caplog.records == []


def test_blocks_can_be_kept_and_reused() -> None:
    patient = retry(PATIENT)
    first = fail_in(patient, error=ValueError("one"))
    second = fail_in(patient, error=KeyError("two"))
    assert decide(first, 10, NO_RETRY).quarantine
    assert decide(second, 9, NO_RETRY).retry_in == 45


# -- poisonous()


def test_poisonous_block_reraises_the_same_exception_unchanged() -> None:
    error = ValueError("bad")
    assert raised(poisonous(), error) is error


def test_poisonous_quarantines_at_once_even_with_retries_left() -> None:
    error = fail_in(poisonous())
    assert decide(error, 0, PATIENT) == Decision(
        None, True, "poisonous step failed: ValueError: bad"
    )


@pytest.mark.parametrize(
    "blocks",
    [
        pytest.param((retry(PATIENT), poisonous()), id="poisonous-inside-retry"),
        pytest.param((poisonous(), retry(PATIENT)), id="poisonous-outside-retry"),
        pytest.param((retry(PATIENT), poisonous(), retry(PATIENT)), id="between-retries"),
    ],
)
def test_poisonous_wins_wherever_it_is_on_the_way_out(
    blocks: tuple[AbstractContextManager[None], ...],
) -> None:
    error = fail_in(*blocks)
    decision = decide(error, 0, PATIENT)
    assert decision.retry_in is None
    assert decision.quarantine
    assert decision.reason.startswith("poisonous step failed")


def test_failure_outside_the_poisonous_block_is_retried() -> None:
    def task() -> None:
        with poisonous():
            pass  # validation passed
        raise ValueError("temporarily wrong data")

    with pytest.raises(ValueError) as info:
        task()
    assert decide(info.value, 0, DEFAULT_RETRY_POLICY).retry_in is not None


# -- optional()


def test_optional_swallows_the_failure_and_logs_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    steps = []
    with optional():
        steps.append("raw data")
        raise ConnectionError("data store is down")
    steps.append("time spans")

    assert steps == ["raw data", "time spans"]
    [record] = caplog.records
    assert record.name == "celery_actors.task"
    assert record.levelno == logging.WARNING
    assert "ConnectionError: data store is down" in record.getMessage()
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], ConnectionError)


def test_optional_swallows_only_the_types_it_is_given(caplog: pytest.LogCaptureFixture) -> None:
    with optional(ConnectionError, TimeoutError):
        raise TimeoutError("slow")
    with optional(ConnectionError, TimeoutError):
        raise ConnectionRefusedError("refused")  # a subclass counts

    error = ValueError("bad")
    assert raised(optional(ConnectionError, TimeoutError), error) is error

    assert len(caplog.records) == 2
    assert "TimeoutError: slow" in caplog.records[0].getMessage()
    assert "ConnectionRefusedError: refused" in caplog.records[1].getMessage()


def test_optional_swallows_poisonous_and_retry_marked_failures(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with optional(), poisonous():
        raise ValueError("bad")
    with optional(), retry(PATIENT):
        raise ValueError("bad")
    assert len(caplog.records) == 2


@pytest.mark.parametrize(
    "exception_type",
    [BaseException, KeyboardInterrupt, SystemExit, trio.Cancelled, BaseExceptionGroup, 42, "x"],
)
def test_optional_refuses_types_that_are_not_exceptions(exception_type: object) -> None:
    with pytest.raises(TypeError, match="subclasses of Exception"):
        optional(ConnectionError, exception_type)  # type: ignore[arg-type]


def test_optional_lets_keyboard_interrupt_through() -> None:
    error = KeyboardInterrupt()
    assert raised(optional(), error) is error


def test_optional_swallows_matching_leaves_of_an_exception_group(
    caplog: pytest.LogCaptureFixture,
) -> None:
    refused = ConnectionRefusedError("refused")
    bad = ValueError("bad")
    group = ExceptionGroup("children", [refused, bad])

    with pytest.raises(ExceptionGroup) as info, optional(ConnectionError), poisonous():
        raise group

    assert info.value.exceptions == (bad,)
    assert decide(info.value, 0, PATIENT).quarantine  # the group's mark is kept
    [record] = caplog.records
    assert "ConnectionRefusedError: refused" in record.getMessage()


def test_optional_swallows_a_group_of_only_matching_leaves(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with optional(ConnectionError):
        raise ExceptionGroup("children", [ConnectionError("a"), ConnectionResetError("b")])
    assert len(caplog.records) == 1


def test_optional_lets_a_group_without_matching_leaves_through_unchanged() -> None:
    group = ExceptionGroup("children", [ValueError("bad")])
    assert raised(optional(ConnectionError), group) is group


def test_optional_never_swallows_interrupts_in_a_group(caplog: pytest.LogCaptureFixture) -> None:
    interrupt = KeyboardInterrupt()
    group = BaseExceptionGroup("children", [interrupt, ValueError("bad")])

    escaped = raised(optional(), group)

    assert isinstance(escaped, BaseExceptionGroup)
    assert escaped.exceptions == (interrupt,)
    assert len(caplog.records) == 1


# -- marks


@pytest.mark.parametrize(
    "make_error",
    [
        pytest.param(lambda: ValueError("bad"), id="ValueError"),
        pytest.param(lambda: KeyError("k"), id="KeyError"),
        pytest.param(lambda: OSError(2, "missing"), id="OSError"),
        pytest.param(lambda: ExceptionGroup("g", [ValueError("bad")]), id="ExceptionGroup"),
        pytest.param(lambda: FrozenError(code=3), id="frozen-attrs-exception"),
    ],
)
def test_marks_are_kept_on_builtin_group_and_frozen_exceptions(
    make_error: Callable[[], BaseException],
) -> None:
    assert decide(fail_in(retry(PATIENT), error=make_error()), 9, NO_RETRY).retry_in == 45
    assert decide(fail_in(poisonous(), error=make_error()), 0, PATIENT).quarantine


@attrs.frozen(auto_exc=True)
class FrozenError(Exception):
    code: int


def test_marks_survive_reraising_through_other_code() -> None:
    def step() -> None:
        with poisonous():
            raise ValueError("bad")

    def task() -> None:
        try:
            step()
        except ValueError:
            raise  # e.g. after cleaning up

    with pytest.raises(ValueError) as info:
        try:
            task()
        except Exception as error:
            stored = error
            raise stored from None
    assert decide(info.value, 0, PATIENT).quarantine


def test_exception_raised_from_a_marked_one_is_a_new_unmarked_failure() -> None:
    class TaskFailed(Exception):
        pass

    def task() -> None:
        try:
            with poisonous():
                raise ValueError("bad")
        except ValueError as error:
            raise TaskFailed("could not validate") from error

    with pytest.raises(TaskFailed) as info:
        task()

    assert decide(info.value.__cause__, 0, PATIENT).quarantine  # type: ignore[arg-type]
    assert decide(info.value, 0, PATIENT).retry_in == 0


def test_exception_raised_from_another_inside_the_block_is_marked() -> None:
    class TaskFailed(Exception):
        pass

    with pytest.raises(TaskFailed) as info, poisonous():
        try:
            raise ValueError("bad")
        except ValueError as error:
            raise TaskFailed("could not validate") from error
    assert decide(info.value, 0, PATIENT).quarantine


# -- decide() on exception groups


def test_one_poisonous_leaf_quarantines_a_group() -> None:
    poisoned = fail_in(poisonous(), error=KeyError("k"))
    group = BaseExceptionGroup(
        "children", [ValueError("a"), BaseExceptionGroup("inner", [poisoned])]
    )
    assert decide(group, 0, PATIENT) == Decision(None, True, "poisonous step failed: KeyError: 'k'")


def test_each_leaf_of_a_group_keeps_the_policy_of_its_innermost_block() -> None:
    one_retry = RetryPolicy(max_retries=1, interval_start=7, interval_max=10, jitter=0)
    marked = fail_in(retry(one_retry), error=KeyError("k"))
    group = fail_in(retry(PATIENT), error=BaseExceptionGroup("children", [marked, ValueError("a")]))

    # KeyError: one retry, 7 s; ValueError: the group's PATIENT policy, 0 s. The longest wins.
    assert decide(group, 0, NO_RETRY) == Decision(
        7,
        False,
        "retry 1 of 1 in 7 s after ExceptionGroup: children [KeyError: 'k', ValueError: a]",
    )
    # The KeyError is out of retries, so the call is.
    assert decide(group, 1, NO_RETRY) == Decision(
        None, True, "no retries left after 1 (max_retries=1)"
    )


def test_unmarked_leaves_of_a_group_use_the_default_policy() -> None:
    marked = fail_in(retry(PATIENT))
    group = BaseExceptionGroup("children", [marked, KeyError("k")])
    assert decide(group, 0, DEFAULT_RETRY_POLICY).retry_in is not None
    assert decide(group, 3, DEFAULT_RETRY_POLICY).quarantine


# -- where blocks run


async def test_blocks_work_in_an_async_task_body(caplog: pytest.LogCaptureFixture) -> None:
    steps: list[str] = []

    async def task() -> None:
        with optional(ConnectionError):
            await trio.lowlevel.checkpoint()
            raise ConnectionError("down")
        steps.append("after optional")
        with retry(PATIENT):
            await trio.lowlevel.checkpoint()
            raise KeyError("later")

    async def child() -> None:
        await trio.lowlevel.checkpoint()
        with poisonous():
            raise ValueError("bad input")

    with pytest.raises(KeyError) as info:
        await task()
    assert steps == ["after optional"]
    assert len(caplog.records) == 1
    assert decide(info.value, 9, NO_RETRY).retry_in == 45

    with pytest.raises(ExceptionGroup) as group_info:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(child)
    assert decide(group_info.value, 0, PATIENT).quarantine


async def test_blocks_work_in_a_thread(caplog: pytest.LogCaptureFixture) -> None:
    def task() -> None:
        assert threading.current_thread() is not threading.main_thread()
        with optional():
            raise ConnectionError("down")
        with poisonous():
            raise ValueError("bad input")

    with pytest.raises(ValueError) as info:
        await trio.to_thread.run_sync(task)
    assert len(caplog.records) == 1
    assert decide(info.value, 0, PATIENT).quarantine


def test_decision_reasons_name_the_failure() -> None:
    assert decide(fail_in(poisonous(), error=RuntimeError()), 0, PATIENT).reason == (
        "poisonous step failed: RuntimeError"
    )
    assert decide(ValueError("bad"), 1, EXACT).reason == (
        "retry 2 of 3 in 3 s after ValueError: bad"
    )
