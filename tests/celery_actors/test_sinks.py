import json
import logging
import math
import sqlite3
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from celery_actors._errors import CeleryActorsError
from celery_actors._protocol import TaskError, TaskResult
from celery_actors._sinks import JsonLinesSink, MemorySink, Sink, SinkError, SQLiteSink

SinkFactory = Callable[[], Sink]


def result(id: str = "call-1", value: Any = 42, **fields: Any) -> TaskResult:
    fields.setdefault("state", "succeeded")
    return TaskResult(id=id, task="app.add", value=value, **fields)


def failed(id: str = "call-1") -> TaskResult:
    return TaskResult(
        id=id,
        task="app.add",
        state="failed",
        error=TaskError(
            type="builtins.ZeroDivisionError", message="division by zero", traceback="tb"
        ),
        attempt=3,
        retry_in=1.5,
        quarantined=True,
        worker="worker-1",
        finished=1700000000.25,
    )


@attrs.frozen
class Point:
    x: int
    y: Any


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def files(path: Path) -> list[Path]:
    return list(path.iterdir())


def rows(path: Path) -> list[tuple[Any, ...]]:
    connection = sqlite3.connect(path)
    try:
        return connection.execute("SELECT id, task, state, finished FROM results").fetchall()
    finally:
        connection.close()


@pytest.fixture(params=["memory", "jsonl", "sqlite"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_sink(kind: str, tmp_path: Path) -> SinkFactory:
    """Returns a function that opens a sink; file sinks all open the same file."""
    memory = MemorySink()
    factories: dict[str, SinkFactory] = {
        "memory": lambda: memory,
        "jsonl": lambda: JsonLinesSink(tmp_path / "results.jsonl"),
        "sqlite": lambda: SQLiteSink(tmp_path / "results.db"),
    }
    return factories[kind]


file_sinks = pytest.mark.parametrize("kind", ["jsonl", "sqlite"], indirect=True)


# -- storing and loading


async def test_each_sink_stores_and_loads_a_result(make_sink: SinkFactory) -> None:
    sink = make_sink()
    assert await sink.store(result("a", value="done"))
    assert await sink.store(failed("b"))
    assert await sink.load("a") == result("a", value="done")
    assert await sink.load("b") == failed("b")
    await sink.aclose()


async def test_a_call_without_a_result_loads_as_none(make_sink: SinkFactory) -> None:
    sink = make_sink()
    assert await sink.load("unknown") is None
    await sink.aclose()


async def test_every_sink_satisfies_the_sink_protocol(make_sink: SinkFactory) -> None:
    sink = make_sink()
    assert isinstance(sink, Sink)
    await sink.aclose()


async def test_storing_the_same_id_twice_keeps_the_first_result(make_sink: SinkFactory) -> None:
    sink = make_sink()
    assert await sink.store(result("a", value="first"))
    assert not await sink.store(result("a", value="second"))
    assert await sink.load("a") == result("a", value="first")
    await sink.aclose()


async def test_a_duplicate_adds_no_line_to_the_file(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    async with JsonLinesSink(path) as sink:
        await sink.store(result("a", value="first"))
        await sink.store(result("a", value="second"))
    assert len(lines(path)) == 1


async def test_a_duplicate_adds_no_row_to_the_table(tmp_path: Path) -> None:
    path = tmp_path / "results.db"
    async with SQLiteSink(path) as sink:
        await sink.store(result("a", value="first"))
        await sink.store(result("a", value="second"))
    assert rows(path) == [("a", "app.add", "succeeded", 0.0)]


async def test_concurrent_stores_of_one_id_store_it_once(make_sink: SinkFactory) -> None:
    sink = make_sink()
    outcomes: list[bool] = []

    async def store(n: int) -> None:
        outcomes.append(await sink.store(result("a", value=n)))

    async with trio.open_nursery() as nursery:
        for n in range(10):
            nursery.start_soon(store, n)
    assert sorted(outcomes) == [False] * 9 + [True]
    await sink.aclose()


@file_sinks
async def test_file_sinks_deduplicate_after_a_restart(make_sink: SinkFactory) -> None:
    before = make_sink()
    assert await before.store(result("a", value="first"))
    await before.aclose()

    after = make_sink()
    assert not await after.store(result("a", value="second"))
    assert await after.load("a") == result("a", value="first")
    assert await after.store(result("b"))
    await after.aclose()


async def test_two_sqlite_sinks_open_on_one_file_store_each_id_once(tmp_path: Path) -> None:
    path = tmp_path / "results.db"
    one, two = SQLiteSink(path), SQLiteSink(path)
    outcomes: list[bool] = []

    async def store_all(sink: SQLiteSink, value: str) -> None:
        for n in range(20):
            outcomes.append(await sink.store(result(f"call-{n}", value=value)))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(store_all, one, "one")
        nursery.start_soon(store_all, two, "two")

    assert outcomes.count(True) == 20
    assert len(rows(path)) == 20
    for n in range(20):
        assert await one.load(f"call-{n}") == await two.load(f"call-{n}")
    assert not await two.store(result("call-0", value="late"))
    await one.aclose()
    await two.aclose()


async def test_sinks_setting_up_one_new_file_at_once_all_open(tmp_path: Path) -> None:
    # Two connections creating a file's table at once can each hold the lock the other
    # needs next: SQLite then refuses one at once instead of waiting.
    for attempt in range(40):
        path = tmp_path / f"results-{attempt}.db"
        sinks = [SQLiteSink(path) for _ in range(3)]
        stored: list[bool] = []

        async def store(sink: SQLiteSink, stored: list[bool] = stored) -> None:
            stored.append(await sink.store(result("call-1")))

        async with trio.open_nursery() as nursery:
            for sink in sinks:
                nursery.start_soon(store, sink)
        assert sorted(stored) == [False, False, True]
        for sink in sinks:
            await sink.aclose()


# -- damaged files


async def test_a_truncated_last_line_is_skipped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "results.jsonl"
    async with JsonLinesSink(path) as sink:
        for id in ["a", "b", "c"]:
            await sink.store(result(id))
    text = path.read_text()
    path.write_text(text[: -len(lines(path)[-1]) // 2])  # cut the last line in half

    with caplog.at_level(logging.WARNING, logger="celery_actors.sinks"):
        async with JsonLinesSink(path) as sink:
            assert await sink.load("a") == result("a")
            assert await sink.load("b") == result("b")
            assert await sink.load("c") is None
            # the call never got its result stored, so its redelivery stores it
            assert await sink.store(result("c"))
    [record] = caplog.records
    assert record.name == "celery_actors.sinks"
    assert "line 3" in record.getMessage()
    assert "cut short" in record.getMessage()

    # the new line starts on a line of its own, after the damaged one
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="celery_actors.sinks"):
        async with JsonLinesSink(path) as sink:
            assert await sink.load("c") == result("c")
    assert ["line 3" in record.getMessage() for record in caplog.records] == [True]


async def test_a_last_line_without_newline_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    async with JsonLinesSink(path) as sink:
        await sink.store(result("a"))
    path.write_text(path.read_text().rstrip("\n"))

    async with JsonLinesSink(path) as sink:
        assert await sink.load("a") == result("a")
        assert await sink.store(result("b"))
    async with JsonLinesSink(path) as sink:
        assert await sink.load("a") == result("a")
        assert await sink.load("b") == result("b")
    assert len(lines(path)) == 2


async def test_damaged_lines_in_the_middle_are_skipped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "results.jsonl"
    good = json.dumps({"id": "a", "task": "app.add", "state": "succeeded", "value": 1})
    path.write_text(
        "\n".join(
            [
                "not json",
                good,
                '{"id": "b", "task": "app.add"}',
                "",
                '{"id": "c", "task": "app.add", "state": "exploded"}',
                '["a list"]',
            ]
        )
        + "\n"
    )
    with caplog.at_level(logging.WARNING, logger="celery_actors.sinks"):
        async with JsonLinesSink(path) as sink:
            assert await sink.load("a") == result("a", value=1)
            assert await sink.load("b") is None
            assert await sink.load("c") is None
    messages = [record.getMessage() for record in caplog.records]
    assert [m.split(",")[1].strip() for m in messages] == ["line 1", "line 3", "line 5", "line 6"]
    assert all("Fix or remove the line" in m for m in messages)


async def test_a_file_with_two_lines_for_one_call_keeps_the_first(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    async with JsonLinesSink(path) as sink:
        await sink.store(result("a", value="first"))
    first = path.read_text()
    async with JsonLinesSink(path) as sink:
        await sink.store(result("b"))
    # as if a second process had stored "a" again
    path.write_text(path.read_text() + first.replace('"first"', '"second"'))

    async with JsonLinesSink(path) as sink:
        assert await sink.load("a") == result("a", value="first")
        assert not await sink.store(result("a", value="third"))


async def test_a_damaged_sqlite_row_raises_a_sink_error_naming_the_call(tmp_path: Path) -> None:
    path = tmp_path / "results.db"
    async with SQLiteSink(path) as sink:
        await sink.store(result("a"))
    with sqlite3.connect(path) as connection:
        connection.execute("UPDATE results SET result = '{' WHERE id = 'a'")
    connection.close()
    async with SQLiteSink(path) as sink:
        with pytest.raises(SinkError, match=r"call 'a' .* is damaged.*delete its row"):
            await sink.load("a")


async def test_a_sink_that_cannot_open_its_file_says_what_to_check(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-directory"
    sinks: list[Sink] = [JsonLinesSink(missing / "r.jsonl"), SQLiteSink(missing / "r.db")]
    for sink in sinks:
        with pytest.raises(SinkError, match="Check that its directory exists"):
            await sink.store(result())
        await sink.aclose()


# -- values


NESTED = {
    "blob": b"\x00\xff binary",
    "items": [1, 2.5, None, True, "text", ("tuple", b"in a tuple")],
    "deep": {"deeper": [{"deepest": bytearray(b"mutable")}]},
    "$bytes": "not bytes, a string under a key that looks like bytes",
    "$$dollars": "two of them",
    "unicode": "caf\u00e9 \u2028 \U0001f600",
}
NESTED_LOADED = {
    "blob": b"\x00\xff binary",
    "items": [1, 2.5, None, True, "text", ["tuple", b"in a tuple"]],
    "deep": {"deeper": [{"deepest": b"mutable"}]},
    "$bytes": "not bytes, a string under a key that looks like bytes",
    "$$dollars": "two of them",
    "unicode": "caf\u00e9 \u2028 \U0001f600",
}


@file_sinks
async def test_bytes_and_nested_values_round_trip(make_sink: SinkFactory) -> None:
    sink = make_sink()
    await sink.store(result("a", value=NESTED))
    await sink.store(result("b", value=b"just bytes"))
    await sink.store(result("c", value={"$bytes": "aGk="}))
    await sink.aclose()

    sink = make_sink()
    assert await sink.load("a") == result("a", value=NESTED_LOADED)
    assert await sink.load("b") == result("b", value=b"just bytes")
    assert await sink.load("c") == result("c", value={"$bytes": "aGk="})
    await sink.aclose()


@file_sinks
async def test_attrs_values_load_as_plain_dicts_naming_their_class(
    make_sink: SinkFactory,
) -> None:
    sink = make_sink()
    await sink.store(result("a", value=[Point(1, Point(2, b"y"))]))
    loaded = await sink.load("a")
    await sink.aclose()

    name = f"{__name__}.Point"
    assert loaded is not None
    assert loaded.value == [{"$type": name, "x": 1, "y": {"$type": name, "x": 2, "y": b"y"}}]


async def test_a_json_line_follows_the_documented_format(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    async with JsonLinesSink(path) as sink:
        await sink.store(failed("a"))
        await sink.store(result("b", value={"data": b"hi", "$type": "mine", "pair": (1, 2)}))
    first, second = (json.loads(line) for line in lines(path))
    assert first == {
        "id": "a",
        "task": "app.add",
        "state": "failed",
        "value": None,
        "error": {
            "type": "builtins.ZeroDivisionError",
            "message": "division by zero",
            "traceback": "tb",
        },
        "attempt": 3,
        "retry_in": 1.5,
        "quarantined": True,
        "worker": "worker-1",
        "finished": 1700000000.25,
    }
    assert second["value"] == {"data": {"$bytes": "aGk="}, "$$type": "mine", "pair": [1, 2]}
    assert second["error"] is None


async def test_sqlite_rows_hold_the_same_json_and_queryable_columns(tmp_path: Path) -> None:
    path = tmp_path / "results.db"
    async with SQLiteSink(path) as sink:
        await sink.store(failed("a"))
    async with JsonLinesSink(tmp_path / "results.jsonl") as sink:
        await sink.store(failed("a"))
    with sqlite3.connect(path) as connection:
        row = connection.execute("SELECT id, task, state, finished, result FROM results").fetchone()
        mode = connection.execute("PRAGMA journal_mode").fetchone()
    connection.close()
    assert row == ("a", "app.add", "failed", 1700000000.25, lines(tmp_path / "results.jsonl")[0])
    assert mode == ("wal",)


UNSTORABLE = [
    pytest.param({1, 2}, "value is a set", id="set"),
    pytest.param({"k": {1: "one"}}, "value['k'] has the key 1, a int", id="int-key"),
    pytest.param([object()], "value[0] is a object", id="object"),
    pytest.param(Point(1, 1j), "value.y is a complex", id="attrs-field"),
    pytest.param({"x": math.nan}, "value['x'] is nan, and JSON has no NaN", id="nan"),
]


@file_sinks
@pytest.mark.parametrize(("value", "reason"), UNSTORABLE)
async def test_an_unstorable_value_raises_a_sink_error_and_writes_nothing(
    make_sink: SinkFactory, value: Any, reason: str
) -> None:
    sink = make_sink()
    with pytest.raises(SinkError) as caught:
        await sink.store(result("a", value=value))
    message = str(caught.value)
    assert "cannot store the result of call 'a' (task 'app.add') as JSON" in message
    assert reason in message
    assert "Return plain values from tasks" in message
    assert isinstance(caught.value, CeleryActorsError)
    assert await sink.load("a") is None
    # nothing was written, so the call can still store a plain result
    assert await sink.store(result("a", value="plain"))
    await sink.aclose()

    sink = make_sink()
    assert await sink.load("a") == result("a", value="plain")
    await sink.aclose()


async def test_a_value_that_contains_itself_raises_a_sink_error(tmp_path: Path) -> None:
    looped: list[Any] = [1]
    looped.append({"again": looped})
    async with JsonLinesSink(tmp_path / "results.jsonl") as sink:
        with pytest.raises(SinkError, match=r"value\[1\]\['again'\] contains itself"):
            await sink.store(result("a", value=looped))


async def test_a_memory_sink_keeps_values_as_they_are() -> None:
    value = (Point(1, {1: "not a string key"}), {1, 2})
    async with MemorySink() as sink:
        await sink.store(result("a", value=value))
        loaded = await sink.load("a")
    assert loaded is not None
    assert loaded.value is value


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
    | st.binary(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@file_sinks
@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(value=json_values)
async def test_json_native_and_bytes_values_round_trip_through_the_file(
    make_sink: SinkFactory, value: Any
) -> None:
    id = str(uuid.uuid4())
    sink = make_sink()
    await sink.store(result(id, value=value))
    await sink.aclose()

    sink = make_sink()
    loaded = await sink.load(id)
    await sink.aclose()
    assert loaded is not None
    assert loaded.value == value
    assert repr(loaded.value) == repr(value)  # same types too: 1 is not 1.0 nor True


# -- limits and lifecycle


async def test_a_memory_sink_limit_drops_the_oldest_results() -> None:
    sink = MemorySink(limit=2)
    for id in ["a", "b", "c"]:
        assert await sink.store(result(id))
    assert await sink.load("a") is None
    assert await sink.load("b") == result("b")
    assert await sink.load("c") == result("c")
    # a duplicate does not count as newer
    assert not await sink.store(result("b", value="again"))
    assert await sink.store(result("d"))
    assert await sink.load("b") is None
    # a dropped id is forgotten: it is stored again
    assert await sink.store(result("a", value="again"))
    assert await sink.load("a") == result("a", value="again")


@pytest.mark.parametrize("limit", [0, -1])
def test_a_memory_sink_limit_must_be_positive(limit: int) -> None:
    with pytest.raises(ValueError, match="limit must be at least 1"):
        MemorySink(limit=limit)


async def test_only_final_results_are_stored(make_sink: SinkFactory) -> None:
    sink = make_sink()
    for state in ["pending", "received", "running", "retrying"]:
        with pytest.raises(ValueError, match="final results only"):
            await sink.store(result("a", state=state))
    assert await sink.load("a") is None
    for state in ["succeeded", "failed", "revoked"]:
        assert await sink.store(result(state, state=state))
    await sink.aclose()


async def test_a_closed_sink_refuses_to_store_or_load(make_sink: SinkFactory) -> None:
    sink = make_sink()
    await sink.store(result("a"))
    await sink.aclose()
    await sink.aclose()  # closing twice is fine
    with pytest.raises(trio.ClosedResourceError):
        await sink.store(result("b"))
    with pytest.raises(trio.ClosedResourceError):
        await sink.load("a")


async def test_aclose_closes_even_when_cancelled(make_sink: SinkFactory) -> None:
    sink = make_sink()
    await sink.store(result("a"))
    with trio.CancelScope() as scope:
        scope.cancel()
        await sink.aclose()
    with pytest.raises(trio.ClosedResourceError):
        await sink.load("a")


async def test_file_sinks_do_not_touch_the_disk_until_first_used(tmp_path: Path) -> None:
    sinks: list[Callable[[], Awaitable[None]]] = [
        JsonLinesSink(tmp_path / "results.jsonl").aclose,
        SQLiteSink(tmp_path / "results.db").aclose,
    ]
    for aclose in sinks:
        await aclose()
    assert files(tmp_path) == []


async def test_a_task_naming_its_own_sinks_stores_its_results_there_only(tmp_path):
    from celery_actors import App

    own = JsonLinesSink(tmp_path / "reports.jsonl")
    app = App("test-task-sinks")

    @app.task(name="report", sinks=[own])
    async def report(n: int) -> int:
        return n

    @app.task(name="other")
    async def other(n: int) -> int:
        return n

    shared = MemorySink()
    async with app.local(sinks=[shared]) as client:
        mine = await report.delay(1)
        theirs = await other.delay(2)
        assert await mine.get(timeout=5) == 1
        assert await theirs.get(timeout=5) == 2
        assert await own.load(mine.id) is not None
        assert await own.load(theirs.id) is None
        assert await shared.load(mine.id) is None
        assert await shared.load(theirs.id) is not None
        # A result is found in the task's own sinks too.
        assert await client.result(mine.id).get(timeout=5) == 1
    await own.aclose()
