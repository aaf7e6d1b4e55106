"""Calls through the real RabbitMQ on 127.0.0.1:5672: clients publish, routers consume,
results come back over the broker; settled only once stored; two brokers at once."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator

import attrs
import pytest
import trio

from celery_actors import (
    App,
    Client,
    MemorySink,
    NotConnected,
    TaskCall,
    TaskFailed,
    TaskResult,
    chain,
    chord,
    group,
)
from jumpstarter import Actor, ActorSystem, BrokerSettings, handler, open_broker

URL = "amqp://guest:guest@127.0.0.1:5672"
DURABLE = BrokerSettings.from_url(URL, durable_queues=True)  # as the app's queues are
TIMEOUT = 30.0  # seconds; only ever reached when something hangs


def rabbitmqctl(*args: str) -> str:
    return subprocess.run(
        ["rabbitmqctl", "-q", *args], capture_output=True, text=True, check=True
    ).stdout


def queue_counts(name: str, vhost: str = "/") -> tuple[int, int]:
    """(ready, unacknowledged) messages of a queue, as RabbitMQ counts them."""
    out = rabbitmqctl(
        "list_queues", "-p", vhost, "name", "messages_ready", "messages_unacknowledged"
    )
    for line in out.splitlines():
        fields = line.split("\t")
        if fields[0] == name:
            return int(fields[1]), int(fields[2])
    raise AssertionError(f"no queue {name!r} in vhost {vhost!r}")


@pytest.fixture
def app_name() -> Iterator[str]:
    """A fresh app name (so fresh queues); its queues are deleted afterwards."""
    name = f"ca-test-{uuid.uuid4().hex[:10]}"
    yield name
    subprocess.run(
        ["rabbitmqctl", "-q", "delete_queue", f"{name}.default"], capture_output=True, check=False
    )


VHOSTS = ("ca-test-a", "ca-test-b")


@pytest.fixture(scope="module")
def vhosts() -> Iterator[tuple[str, str]]:
    for vhost in VHOSTS:
        subprocess.run(["rabbitmqctl", "-q", "add_vhost", vhost], capture_output=True, check=False)
        rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    yield VHOSTS
    for vhost in VHOSTS:
        subprocess.run(
            ["rabbitmqctl", "-q", "delete_vhost", vhost], capture_output=True, check=False
        )


def make_app(name: str, **options: object) -> App:
    app = App(name, broker=options.pop("broker", URL), **options)  # type: ignore[arg-type]

    @app.task(name="add")
    async def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="fail", retry=None)
    async def fail() -> None:
        raise ValueError("no")

    return app


async def test_calls_travel_through_the_broker_and_results_come_back(app_name):
    app = make_app(app_name)
    with trio.fail_after(TIMEOUT):
        async with app.local() as client:
            results = [await app.tasks["add"].delay(n, n) for n in range(20)]
            assert [await result.get() for result in results] == [2 * n for n in range(20)]
            assert results[0].state == "succeeded"
            assert await results[0].refresh() == "succeeded"
            failing = await app.tasks["fail"].apply_async()
            with pytest.raises(TaskFailed, match="ValueError: no"):
                await failing.get()
            status = await client.publisher_status()
            assert status is not None and status.backlog == 0 and status.connected
    assert queue_counts(f"{app_name}.default") == (0, 0)
    assert (
        "\ttrue"
        in rabbitmqctl("list_queues", "name", "durable").split(f"{app_name}.default", 1)[1][:6]
    )


class CountingSink(MemorySink):
    """Keeps the ids of what it stored, each time it stored something new."""

    def __init__(self) -> None:
        super().__init__()
        self.stored: list[str] = []

    async def store(self, result: TaskResult) -> bool:
        new = await super().store(result)
        if new:
            self.stored.append(result.id)
        return new


class GatedSink(CountingSink):
    """Stores only when let go: shows when the broker's delivery is settled."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = trio.Event()
        self.gate = trio.Event()

    async def store(self, result: TaskResult) -> bool:
        self.entered.set()
        await self.gate.wait()
        return await super().store(result)


async def test_a_call_is_settled_on_the_broker_only_once_its_result_is_stored(app_name):
    app = make_app(app_name)
    sink = GatedSink()
    with trio.fail_after(TIMEOUT):
        async with app.local(sinks=[sink]):
            result = await app.tasks["add"].delay(1, 2)
            await sink.entered.wait()
            # Run and done, but not stored yet: the broker still holds it, unsettled.
            assert queue_counts(f"{app_name}.default") == (0, 1)
            sink.gate.set()
            assert await result.get() == 3
            assert queue_counts(f"{app_name}.default") == (0, 0)
    assert sink.stored == [result.id]


async def test_a_call_delivered_twice_runs_and_is_stored_once(app_name):
    app = make_app(app_name)
    sink = CountingSink()
    registry = app.registry
    with trio.fail_after(TIMEOUT):
        async with app.local(sinks=[sink]) as client:
            call = attrs_evolve_reply(app.tasks["add"].make_call((20, 22)), client)
            async with open_broker(DURABLE, registry=registry) as broker:
                for _ in range(2):  # published twice, as a publisher that lost its connection
                    await broker.publish(f"/queue/{app_name}.default", call, message_id=call.id)
            assert await client.result(call.id).get() == 42
            while queue_counts(f"{app_name}.default") != (0, 0):  # noqa: ASYNC110
                await trio.sleep(0.05)
    assert len(sink.stored) == 1


def attrs_evolve_reply(call: TaskCall, client: Client) -> TaskCall:
    """``call``, with its result to go to ``client``, as the client's own calls do."""
    assert client.route is not None
    return attrs.evolve(call, reply_to=client.route.reply_to)


async def test_a_router_consumes_from_two_brokers_at_once(app_name, vhosts):
    first, second = (f"{URL}/{vhost}" for vhost in vhosts)
    app = make_app(app_name, broker=[first, second])
    sink = CountingSink()
    with trio.fail_after(TIMEOUT):
        async with app.local(sinks=[sink]) as client:
            through_first = await app.tasks["add"].delay(1, 1)  # the client's first broker
            call = attrs_evolve_reply(app.tasks["add"].make_call((2, 2)), client)
            settings = BrokerSettings.from_url(second, durable_queues=True)
            async with open_broker(settings, registry=app.registry) as broker:
                await broker.publish(f"/queue/{app_name}.default", call)
            # The router publishes results on its first broker, where the client listens.
            assert await through_first.get() == 2
            assert await client.result(call.id).get() == 4
    assert len(sink.stored) == 2
    assert queue_counts(f"{app_name}.default", vhosts[1]) == (0, 0)


async def test_a_revocation_reaches_the_router_through_the_broker(app_name):
    app = make_app(app_name)
    with trio.fail_after(TIMEOUT):
        async with app.local():
            later = await app.tasks["add"].apply_async((1, 1), countdown=3600)
            assert await later.refresh() == "pending"
            assert await later.revoke()
            result = await later.wait()
    assert result.state == "revoked"


class Recorder(Actor):
    def __init__(self, box: list[object], done: trio.Event) -> None:
        self.box = box
        self.done = done

    @handler
    def result(self, msg: TaskResult) -> None:
        self.box.append(msg)
        self.done.set()


async def test_any_amqp_client_can_publish_a_call_and_get_its_result(app_name):
    """A call published by hand, with a reply address of the publisher's choosing."""
    app = make_app(app_name)
    reply_to = f"/topic/{app_name}.reply.by-hand"
    box: list[object] = []
    done = trio.Event()
    with trio.fail_after(TIMEOUT):
        async with app.local(), ActorSystem("by-hand", registry=app.registry) as system:
            recorder = await system.spawn(Recorder, box, done)
            async with (
                open_broker(DURABLE, registry=app.registry) as broker,
                trio.open_nursery() as n,
            ):
                await n.start(
                    lambda task_status: broker.consume(reply_to, recorder, task_status=task_status)
                )
                call = TaskCall(id="by-hand-1", task="add", args=[3, 4], reply_to=reply_to)
                await broker.publish(f"/queue/{app_name}.default", call)
                await done.wait()
                n.cancel_scope.cancel()
    (result,) = box
    assert isinstance(result, TaskResult) and result.value == 7 and result.id == "by-hand-1"


async def test_a_task_with_acks_late_off_is_settled_as_soon_as_the_router_holds_it(app_name):
    app = make_app(app_name)
    sink = GatedSink()

    @app.task(name="early", acks_late=False)
    async def early() -> str:
        return "done"

    with trio.fail_after(TIMEOUT):
        async with app.local(sinks=[sink]):
            result = await early.delay()
            await sink.entered.wait()
            # Ran, not stored yet, and already settled on the broker.
            assert queue_counts(f"{app_name}.default") == (0, 0)
            sink.gate.set()
            assert await result.get() == "done"


async def test_a_workflow_travels_through_the_broker_and_its_result_comes_back(app_name):
    app = make_app(app_name)
    add = app.tasks["add"]

    @app.task(name="total")
    async def total(values: list[int]) -> int:
        return sum(values)

    with trio.fail_after(TIMEOUT):
        async with app.local() as client:
            assert client.route is not None  # calls and workflows go through RabbitMQ
            result = await chain(add.si(1, 2), group(add.s(10), add.s(20)), total.s()).delay()
            assert await result.get() == 3 + 10 + 3 + 20
            failed = await chord([add.si(1, 1), app.tasks["fail"].si()], total.s()).delay()
            with pytest.raises(TaskFailed, match="member 1 of the chord failed"):
                await failed.get()
            with pytest.raises(NotConnected, match="peer-to-peer"):
                await result.status()
    assert queue_counts(f"{app_name}.default") == (0, 0)  # every start settled


async def test_a_result_reaches_a_client_whose_broker_is_not_the_one_the_router_publishes_on(
    app_name, vhosts
):
    first, second = (f"{URL}/{vhost}" for vhost in vhosts)
    router_side = make_app(app_name, broker=[second, first])  # publishes results on `second`
    client_side = make_app(app_name, broker=[first, second])  # publishes calls on `first`
    with trio.fail_after(TIMEOUT):
        async with router_side.local(), client_side.connect() as client:
            result = await client_side.tasks["add"].delay(20, 22)
            assert await result.get() == 42  # came back on the other broker
            status = await client.publisher_status()
            assert status is not None and status.connected is not None
            assert status.connected.endswith(VHOSTS[0])  # the call went on the first
    for vhost in vhosts:
        assert queue_counts(f"{app_name}.default", vhost) == (0, 0)


async def test_a_workflow_calling_an_unknown_task_fails_once_and_leaves_the_queue(app_name):
    app = make_app(app_name)
    other = App("elsewhere")

    @other.task(name="nowhere")
    async def nowhere() -> None: ...

    with trio.fail_after(TIMEOUT):
        async with app.local() as client:
            result = await client.start_workflow(chain(app.tasks["add"].si(1, 1), nowhere.s()))
            with pytest.raises(TaskFailed, match="does not know: nowhere"):
                await result.get()
    assert queue_counts(f"{app_name}.default") == (0, 0)  # refused for good, not redelivered
