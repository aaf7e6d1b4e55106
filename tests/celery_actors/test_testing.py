"""celery_actors.testing and its pytest plugin: an app's router and workers in the test's
trio run, calls recorded and drained, virtual time for countdowns, retries and limits."""

from __future__ import annotations

import itertools
import pathlib
import re
import time

import pytest
import trio

from celery_actors import (
    NO_RETRY,
    App,
    MemorySink,
    ResultTimeout,
    RetryPolicy,
)
from celery_actors.testing import Harness, NotDrained, run_app

pytest_plugins = ["pytester"]

DOCS = pathlib.Path(__file__).resolve().parents[2] / "docs" / "testing.md"

app = App("test-testing")
runs: dict[str, list[float]] = {}
thread_runs: dict[str, int] = {}


@app.task
async def add(x: int, y: int) -> int:
    return x + y


@app.task(
    retry=RetryPolicy(max_retries=3, interval_start=10, interval_step=20, interval_max=60, jitter=0)
)
async def flaky(key: str, failures: int) -> int:
    runs.setdefault(key, []).append(trio.current_time())
    if len(runs[key]) <= failures:
        raise ConnectionError(f"failure {len(runs[key])}")
    return len(runs[key])


@app.task
async def clock() -> float:
    """The trio time at which the call ran."""
    return trio.current_time()


@app.task
async def sleeper(seconds: float, value: object) -> object:
    await trio.sleep(seconds)
    return value


@app.task(time_limit=5, retry=NO_RETRY)
async def hangs() -> None:
    await trio.sleep(3600)


@app.task(retry=NO_RETRY)
async def broken() -> None:
    raise ValueError("always broken")


@app.task(retry=RetryPolicy(max_retries=1, interval_start=10, interval_max=10, jitter=0))
def blocking(key: str) -> str:
    """A def task: blocking work in a worker thread, failing on its first run."""
    thread_runs[key] = thread_runs.get(key, 0) + 1
    time.sleep(0.05)
    if thread_runs[key] == 1:
        raise OSError("the disk was busy")
    return "written"


@app.task
async def fan_out(count: int) -> int:
    for i in range(count):
        await add.delay(i, i)
    return count


async def test_a_task_result_comes_back_through_the_harness():
    async with run_app(app) as harness:
        handle = await add.delay(2, 3)
        (result,) = await harness.drain()
    assert result.state == "succeeded"
    assert result.value == 5
    assert harness.result_of(handle) is result
    assert harness.result_of(handle.id) is result
    assert [(call.task, call.args) for call in harness.calls] == [(add.name, [2, 3])]


async def test_a_call_failing_twice_succeeds_after_backoff_in_virtual_time(autojump_clock):
    async with run_app(app) as harness:
        await flaky.delay("twice", 2)
        (result,) = await harness.drain()
    assert result.state == "succeeded"
    assert result.value == 3
    assert result.attempt == 2
    times = runs["twice"]
    assert [b - a for a, b in itertools.pairwise(times)] == pytest.approx([10, 30])


async def test_a_countdown_and_an_eta_hold_the_call_back_in_virtual_time(autojump_clock):
    async with run_app(app) as harness:
        sent = trio.current_time()
        counted = await clock.apply_async(countdown=60)
        timed = await clock.apply_async(eta=harness.now() + 90)
        await trio.sleep(59)
        assert await counted.refresh() == "pending"
        assert await timed.refresh() == "pending"
        first, second = await harness.drain()
    assert first.value - sent == pytest.approx(60)
    assert second.value - sent == pytest.approx(90)
    assert first.finished < second.finished


async def test_a_time_limit_fails_the_call_in_virtual_time(autojump_clock):
    async with run_app(app) as harness:
        start = trio.current_time()
        await hangs.delay()
        (result,) = await harness.drain()
        assert trio.current_time() - start == pytest.approx(5)
    assert result.state == "failed"
    assert result.error is not None
    assert result.error.type.endswith("TimeLimitExceeded")
    assert "time_limit=5" in result.error.message


async def test_a_def_task_thread_takes_no_virtual_time_while_backoff_does(autojump_clock):
    async with run_app(app) as harness:
        start = trio.current_time()
        await blocking.delay("disk")
        (result,) = await harness.drain(timeout=30)
        elapsed = trio.current_time() - start
    assert (result.state, result.value, result.attempt) == ("succeeded", "written", 1)
    assert elapsed == pytest.approx(10)  # the backoff; the threads' work took none


async def test_two_harnesses_in_one_test_each_run_their_app(autojump_clock):
    other = App("test-testing-other")

    @other.task
    def copy(text: str) -> str:
        time.sleep(0.05)
        return text * 2

    async with run_app(app) as first, run_app(other) as second:
        # task.delay() goes to the innermost client, whatever its app: name the clients
        await first.client.submit(blocking.make_call(["first"]))
        await second.client.submit(copy.make_call(["ab"]))
        assert [r.value for r in await second.drain(timeout=30)] == ["abab"]
        assert [r.value for r in await first.drain(timeout=30)] == ["written"]
        assert [call.task for call in first.calls] == [blocking.name]
    async with run_app(other) as third:
        start = trio.current_time()
        await copy.delay("c")
        (result,) = await third.drain(timeout=30)
        assert result.value == "cc"
        assert trio.current_time() == start  # the clock was held while the thread worked
    assert autojump_clock.autojump_threshold == 0  # and let go afterwards


async def test_drain_returns_every_result_in_the_order_the_calls_were_sent(autojump_clock):
    async with run_app(app, concurrency=20) as harness:
        for i in range(10):
            await sleeper.delay(10 - i, i)  # the last sent ends first
        failing = await broken.delay()
        expired = await sleeper.apply_async((0, "late"), expires=1, countdown=5)
        results = await harness.drain()
    assert [r.value for r in results[:10]] == list(range(10))
    assert [r.state for r in results] == ["succeeded"] * 10 + ["failed", "revoked"]
    assert [r.id for r in results] == [call.id for call in harness.calls]
    assert results[10] is harness.result_of(failing)
    assert results[11] is harness.result_of(expired)


async def test_drain_waits_for_calls_that_tasks_send_meanwhile():
    async with run_app(app) as harness:
        await fan_out.delay(5)
        results = await harness.drain()
    assert [r.task for r in results] == [fan_out.name] + [add.name] * 5
    assert [r.value for r in harness.results_of(add)] == [0, 2, 4, 6, 8]
    assert [call.args for call in harness.calls_of(add.name)] == [[i, i] for i in range(5)]


async def test_drain_times_out_naming_the_calls_that_are_not_final(autojump_clock):
    async with run_app(app, workers=0) as harness:
        handle = await add.delay(1, 1)
        with pytest.raises(ResultTimeout, match=rf"1 of the 1 calls.*{handle.id}\]: pending"):
            await harness.drain(timeout=30)


async def test_a_result_not_drained_yet_is_refused_with_what_to_do(autojump_clock):
    async with run_app(app) as harness:
        handle = await sleeper.delay(100, "done")
        with pytest.raises(NotDrained, match=r"\(sent\).*await harness\.drain\(\) first"):
            harness.result_of(handle)
        with pytest.raises(NotDrained, match="never sent through this harness"):
            harness.result_of("no-such-call")
        with pytest.raises(NotDrained):
            harness.results_of(sleeper)
        await harness.drain(timeout=200)
        assert harness.results_of(sleeper)[0].value == "done"


async def test_a_call_sent_twice_with_one_id_is_recorded_once():
    async with run_app(app) as harness:
        await add.apply_async((1, 2), task_id="same")
        await add.apply_async((1, 2), task_id="same")
        results = await harness.drain()
    assert [call.id for call in harness.calls] == ["same"]
    assert [r.value for r in results] == [3]


async def test_the_results_sink_holds_every_final_result():
    async with run_app(app) as harness:
        assert isinstance(harness.results, MemorySink)
        handle = await add.delay(4, 4)
        await harness.drain()
        assert await harness.results.load(handle.id) == harness.result_of(handle)


async def test_the_harness_stores_results_in_the_sinks_given():
    first, second = MemorySink(), MemorySink()
    async with run_app(app, sinks=[first, second]) as harness:
        assert harness.results is first
        handle = await add.delay(1, 0)
        (result,) = await harness.drain()
        assert await first.load(handle.id) == result
        assert await second.load(handle.id) == result


async def test_tasks_called_while_the_harness_runs_go_through_its_client():
    async with run_app(app) as harness:
        assert isinstance(harness, Harness)
        assert app.client() is harness.client
        handle = await add.delay(1, 1)
        assert handle.client is harness.client
        (result,) = await harness.drain()
    assert result.value == 2


async def test_run_app_refuses_what_is_not_an_app():
    with pytest.raises(TypeError, match=r"celery_actors\.App.*conftest\.py"):
        async with run_app(object()):
            pass


# -- the pytest plugin

INNER_INI = """
[pytest]
trio_mode = true
filterwarnings = error
"""

INNER_CONFTEST = """
import pytest
import trio

from celery_actors import App, RetryPolicy

app = App("plugin-app")
tries = []
running = []
both_running = trio.Event()


@app.task(retry=RetryPolicy(max_retries=2, interval_start=20, interval_max=20, jitter=0))
async def flaky() -> str:
    tries.append(trio.current_time())
    if len(tries) < 3:
        raise ConnectionError("not yet")
    return "done"


@app.task
async def meet(name: str) -> str:
    running.append(name)
    if len(running) == 2:
        both_running.set()
    await both_running.wait()
    return name


@pytest.fixture
def celery_app():
    return app
"""

INNER_TESTS = """
import pytest
import trio

from conftest import flaky, meet


async def test_retries_run_in_virtual_time(celery_harness, autojump_clock):
    await flaky.delay()
    (result,) = await celery_harness.drain()
    assert (result.value, result.attempt) == ("done", 2)
    assert trio.current_time() == pytest.approx(40)


@pytest.fixture
def celery_workers():
    return 2


@pytest.fixture
def celery_concurrency():
    return 1


async def test_the_workers_fixtures_configure_the_harness(celery_harness):
    await meet.delay("a")
    await meet.delay("b")
    results = await celery_harness.drain()
    assert [r.value for r in results] == ["a", "b"]
    assert len({r.worker for r in results}) == 2
"""


def test_the_celery_harness_fixture_runs_the_app_of_the_celery_app_fixture(pytester):
    pytester.makeini(INNER_INI)
    pytester.makeconftest(INNER_CONFTEST)
    pytester.makepyfile(test_inner=INNER_TESTS)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_the_celery_harness_without_a_celery_app_says_how_to_provide_one(pytester):
    pytester.makeini(INNER_INI)
    pytester.makepyfile(
        test_inner="""
        async def test_uses_the_harness(celery_harness):
            pass
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*no celery_app fixture is defined*conftest.py*"])


def test_the_example_of_the_testing_guide_passes(pytester):
    section = DOCS.read_text().split("\n## Testing tasks\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(# (\S+\.py)\n.*?)```", section, flags=re.DOTALL)
    files = {name: source for source, name in blocks}
    assert sorted(files) == ["conftest.py", "shop.py", "test_shop.py"]
    pytester.makeini(INNER_INI)
    for name, source in files.items():
        pytester.path.joinpath(name).write_text(source)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=files["test_shop.py"].count("\nasync def test_"))
