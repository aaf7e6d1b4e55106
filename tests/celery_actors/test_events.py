"""Event messages: ``@app.event`` classes, their subscribers, and the router's fan-out
(one call per subscriber, with ids derived from the event's)."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
import trio

from celery_actors import (
    App,
    EventMessage,
    EventResult,
    MemorySink,
    RetryPolicy,
    TaskFailed,
)
from celery_actors._protocol import PublishEvent
from tests.celery_actors.events_app import OrderPlaced
from tests.celery_actors.events_app import app as events_app
from tests.celery_actors.roles import Role

TIMEOUT = 30.0  # seconds; only ever reached when something hangs
ONCE_MORE = RetryPolicy(max_retries=1, interval_start=0, interval_step=0, jitter=0)

app = App("test-events")
runs: list[tuple[str, int]] = []
failures_left: dict[int, int] = {}


@app.event
class UserRegistered:
    user_id: int
    email: str


@UserRegistered.subscribe
@app.task
async def send_welcome_email(user_id: int, email: str) -> str:
    runs.append(("welcome", user_id))
    return f"welcome {email}"


@app.task(retry=ONCE_MORE)
async def notify_account_manager(user_id: int, email: str) -> int:
    runs.append(("manager", user_id))
    if failures_left.get(user_id, 0) > 0:
        failures_left[user_id] -= 1
        raise ConnectionError("the mail server is away")
    return user_id


UserRegistered.subscribe(notify_account_manager)


@app.event(name="test.Nobody")
@attrs.frozen
class NobodyListens:
    what: str


@app.task
async def takes_other_arguments(order: int) -> None:
    """A task whose parameters are not the fields of UserRegistered."""


def ran(what: str, user_id: int) -> int:
    return runs.count((what, user_id))


@pytest.fixture(autouse=True)
def fresh_runs() -> None:
    runs.clear()
    failures_left.clear()


async def test_an_event_runs_every_subscriber_once_with_its_fields():
    async with app.local():
        handle = await UserRegistered.delay(user_id=1, email="ada@example.com")
        assert isinstance(handle, EventResult)
        assert handle.name == f"{__name__}.UserRegistered"
        assert sorted(handle.tasks) == sorted(
            [send_welcome_email.name, notify_account_manager.name]
        )
        values = await handle.get(timeout=TIMEOUT)
    assert values == {
        send_welcome_email.name: "welcome ada@example.com",
        notify_account_manager.name: 1,
    }
    assert ran("welcome", 1) == 1 and ran("manager", 1) == 1


async def test_a_failing_subscriber_retries_on_its_own_and_the_other_runs_once():
    failures_left[2] = 1
    async with app.local():
        handle = await app.publish(UserRegistered(user_id=2, email="bob@example.com"))
        documents = await handle.wait(timeout=TIMEOUT)
    manager = documents[notify_account_manager.name]
    assert manager.state == "succeeded" and manager.attempt == 1
    assert ran("manager", 2) == 2  # the failed run, then its retry
    assert ran("welcome", 2) == 1  # not run again for the other's retry


async def test_an_event_published_twice_with_the_same_id_runs_each_subscriber_once():
    async with app.local():
        first = await app.publish(UserRegistered(user_id=3, email="c@example.com"), event_id="e3")
        await first.get(timeout=TIMEOUT)
        again = await app.publish(UserRegistered(user_id=3, email="c@example.com"), event_id="e3")
        assert [r.id for r in again.results] == [r.id for r in first.results]
        assert await again.get(timeout=TIMEOUT) == await first.get(timeout=TIMEOUT)
    assert ran("welcome", 3) == 1 and ran("manager", 3) == 1
    assert sorted(r.id for r in first.results) == sorted(
        [f"e3.{send_welcome_email.name}", f"e3.{notify_account_manager.name}"]
    )


async def test_subscriber_results_are_stored_under_ids_derived_from_the_event():
    sink = MemorySink()
    async with app.local(sinks=[sink]):
        handle = await app.publish(UserRegistered(user_id=4, email="d@x"), event_id="e4")
        await handle.get(timeout=TIMEOUT)
        stored = await sink.load(f"e4.{send_welcome_email.name}")
    assert stored is not None and stored.value == "welcome d@x"


async def test_a_subscriber_that_fails_for_good_fails_the_get_but_not_the_others():
    failures_left[5] = 5  # more than its one retry
    async with app.local():
        handle = await UserRegistered.delay(user_id=5, email="e@x")
        with pytest.raises(TaskFailed, match="mail server is away"):
            await handle.get(timeout=TIMEOUT)
        documents = await handle.wait(timeout=TIMEOUT)
    assert documents[send_welcome_email.name].state == "succeeded"
    assert documents[notify_account_manager.name].state == "failed"


async def test_an_event_no_task_subscribes_to_is_accepted_and_runs_nothing():
    async with app.local() as client:
        handle = await NobodyListens.delay(what="hello")
        assert handle.results == [] and handle.name == "test.Nobody"
        assert await handle.get(timeout=TIMEOUT) == {}
        assert (await client.stats()).total == 0


async def test_an_event_the_router_does_not_know_runs_nothing():
    async with app.local() as client:
        event = EventMessage(id="x", name="nowhere.Unknown", fields={"a": 1})
        tasks = await client.router.ask(PublishEvent(event))
    assert tasks == []


def test_a_plain_annotated_class_becomes_an_attrs_frozen_class():
    assert attrs.has(UserRegistered)
    event = UserRegistered(user_id=1, email="a@b")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        event.user_id = 2  # type: ignore[misc]
    assert app.events[f"{__name__}.UserRegistered"] is UserRegistered


async def test_an_event_with_a_missing_or_unknown_field_is_refused_before_it_is_sent():
    async with app.local() as client:
        with pytest.raises(TypeError, match="has the fields user_id, email"):
            await UserRegistered.delay(user_id=1)
        with pytest.raises(TypeError, match="has the fields user_id, email"):
            await UserRegistered.delay(user_id=1, email="a", phone="1")
        assert (await client.stats()).total == 0


def test_a_task_that_cannot_take_the_event_s_fields_cannot_subscribe():
    with pytest.raises(ValueError, match=r"cannot subscribe to event .*user_id, email"):
        UserRegistered.subscribe(takes_other_arguments)
    assert takes_other_arguments.name not in app.subscriptions[f"{__name__}.UserRegistered"]


def test_a_task_subscribes_once():
    with pytest.raises(ValueError, match=r"subscribed to event .* already"):
        UserRegistered.subscribe(send_welcome_email)


def test_only_tasks_of_the_app_subscribe_and_only_its_events_are_published():
    other = App("other")

    @other.task
    async def elsewhere(user_id: int, email: str) -> None:
        pass

    with pytest.raises(ValueError, match="subscribe a task of app 'test-events'"):
        UserRegistered.subscribe(elsewhere)
    with pytest.raises(ValueError, match="not an event of app 'other'"):
        other.subscribe(UserRegistered, elsewhere)


async def test_publishing_something_that_is_not_a_declared_event_is_refused():
    @attrs.frozen
    class Undeclared:
        x: int

    async with app.local():
        with pytest.raises(ValueError, match="not an event of app 'test-events'"):
            await app.publish(Undeclared(1))
        with pytest.raises(ValueError, match="an instance of UserRegistered, not the class"):
            await app.publish(UserRegistered)


def test_two_events_with_one_name_are_refused():
    with pytest.raises(ValueError, match="already declared"):

        @app.event(name="test.Nobody")
        class Again:
            what: str


def test_fields_named_like_the_event_api_are_refused():
    with pytest.raises(ValueError, match="rename those fields"):

        @app.event
        class Clashing:
            delay: float


# -- a subscriber in another process


@pytest.fixture
def events_cluster() -> object:
    roles: list[Role] = []
    app_path = "tests.celery_actors.events_app:app"
    try:
        router = Role("--role", "router", "--router", "127.0.0.1:0", app=app_path)
        roles.append(router)
        address = f"127.0.0.1:{router.port}"
        roles.append(Role("--role", "worker", "--router", address, app=app_path))
        yield address, roles[1].process.pid
    finally:
        for role in reversed(roles):
            role.stop()


@pytest.mark.slow
async def test_subscribers_run_on_a_worker_in_another_process(events_cluster, tmp_path: Path):
    address, worker_pid = events_cluster
    order = uuid.uuid4().int % 1000
    async with events_app.connect(router=address):
        handle = await OrderPlaced.delay(order=order, marker_dir=str(tmp_path))
        values = await handle.get(timeout=TIMEOUT)
        again = await events_app.publish(
            OrderPlaced(order=order, marker_dir=str(tmp_path)), event_id=handle.id
        )
        await again.get(timeout=TIMEOUT)
    assert set(values.values()) == {worker_pid} and worker_pid != os.getpid()
    assert sorted(path.name for path in await trio.Path(tmp_path).iterdir()) == sorted(
        [f"receipt.{order}.{worker_pid}", f"reserve.{order}.{worker_pid}"]
    )


# -- over a broker


@pytest.fixture
def broker_app_name() -> Iterator[str]:
    """A fresh app name (so a fresh queue on RabbitMQ), deleted afterwards."""
    name = f"ca-events-{uuid.uuid4().hex[:10]}"
    yield name
    subprocess.run(
        ["rabbitmqctl", "-q", "delete_queue", f"{name}.default"], capture_output=True, check=False
    )


async def test_over_a_broker_one_event_message_runs_every_subscriber(broker_app_name):
    broker_app = App(broker_app_name, broker="amqp://guest:guest@127.0.0.1:5672")
    done: list[str] = []

    @broker_app.event(name="PaymentReceived")
    class PaymentReceived:
        amount: int

    @PaymentReceived.subscribe
    @broker_app.task(name="book")
    async def book(amount: int) -> int:
        done.append("book")
        return amount

    @PaymentReceived.subscribe
    @broker_app.task(name="thank")
    async def thank(amount: int) -> str:
        done.append("thank")
        return "thanks"

    with trio.fail_after(TIMEOUT):
        async with broker_app.local():
            handle = await PaymentReceived.delay(amount=12)
            assert await handle.get() == {"book": 12, "thank": "thanks"}
            async with broker_app.connect():  # another client: the results come to it too
                again = await broker_app.publish(PaymentReceived(amount=12), event_id=handle.id)
                assert await again.get() == {"book": 12, "thank": "thanks"}
    assert sorted(done) == ["book", "thank"]
