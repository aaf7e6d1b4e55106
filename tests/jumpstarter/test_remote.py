"""Actors of two systems talking over real AMQP 1.0 connections on 127.0.0.1."""

from __future__ import annotations

import contextlib
import socket
import sys
from collections.abc import AsyncIterator

import attrs
import pytest
import trio

from jumpstarter import (
    Actor,
    ActorNotFound,
    ActorSystem,
    InsecureNodeWarning,
    InspectRequest,
    Keyring,
    MailboxFull,
    MessageRefused,
    PeerUnreachable,
    RemoteError,
    RemoteSettings,
    TypeRegistry,
    UnknownMessageType,
    handler,
)
from jumpstarter._amqp import Accepted
from jumpstarter.testing import DeadLetterRecorder

registry = TypeRegistry()


@registry.message(name="test.Deposit")
@attrs.frozen(kw_only=True)
class Deposit:
    account: str
    cents: int


@registry.message(name="test.Balance")
@attrs.frozen(kw_only=True)
class Balance:
    account: str


@registry.message(name="test.Boom")
@attrs.frozen(kw_only=True)
class Boom:
    key: str


@registry.message(name="test.Slow")
@attrs.frozen(kw_only=True)
class Slow:
    n: int


@registry.message(name="test.Echo")
@attrs.frozen(kw_only=True)
class Echo:
    text: str


class Bank(Actor):
    def __init__(self) -> None:
        self.balances: dict[str, int] = {}
        self.seen: list[int] = []

    @handler
    def deposit(self, msg: Deposit) -> int:
        self.seen.append(msg.cents)
        self.balances[msg.account] = self.balances.get(msg.account, 0) + msg.cents
        return self.balances[msg.account]

    @handler
    def balance(self, msg: Balance) -> int:
        return self.balances.get(msg.account, 0)

    @handler
    def boom(self, msg: Boom) -> None:
        raise KeyError(msg.key)


class Parrot(Actor):
    """Tells its sender back what it was told."""

    @handler
    async def echo(self, msg: Echo) -> None:
        assert self.sender is not None
        await self.sender.tell(Echo(text=msg.text.upper()), sender=self.ref)


class Collector(Actor):
    def __init__(self, box: list[str], done: trio.Event) -> None:
        self.box = box
        self.done = done

    @handler
    def echo(self, msg: Echo) -> None:
        self.box.append(msg.text)
        self.done.set()


class Sleepy(Actor):
    def __init__(self, handled: list[int], expected: int = 0, done: trio.Event | None = None):
        self.handled = handled
        self.expected = expected
        self.done = done

    @handler
    async def slow(self, msg: Slow) -> int:
        await trio.sleep(0.001)
        self.handled.append(msg.n)
        if self.done is not None and len(self.handled) == self.expected:
            self.done.set()
        return msg.n


class Forever(Actor):
    @handler
    async def slow(self, msg: Slow) -> None:
        await trio.sleep_forever()


@contextlib.asynccontextmanager
async def node(name: str, **options: object) -> AsyncIterator[ActorSystem]:
    options.setdefault("registry", registry)
    async with ActorSystem(name, listen="127.0.0.1:0", **options) as system:  # type: ignore[arg-type]
        yield system


def address(system: ActorSystem, path: str) -> str:
    return system.address_of(path)


async def test_a_listening_system_has_amqp_addresses_and_resolves_its_own_to_local_refs():
    async with node("bank") as bank:
        host, port = bank.listen_address or ("", 0)
        assert host == "127.0.0.1" and port > 0
        teller = await bank.spawn(Bank, name="teller")
        assert teller.address == f"amqp://127.0.0.1:{port}/bank/user/teller"
        assert bank.ref(teller.address) is not None
        assert bank.ref(teller.address) == teller
        assert bank.ref(teller.address)._cell is teller._cell


async def test_tell_and_ask_reach_an_actor_on_another_node_in_order():
    async with node("bank") as bank, node("shop") as shop:
        teller = await bank.spawn(Bank, name="teller")
        remote = shop.ref(teller.address)
        assert remote == shop.ref(teller.address)
        assert remote.path == "/user/teller"
        for cents in range(200):
            await remote.tell(Deposit(account="a", cents=cents))
        assert await remote.ask(Balance(account="a")) == sum(range(200))
        assert await remote.ask(Deposit(account="b", cents=5)) == 5
        bank_actor = bank.statistics().actors["/user/teller"]
        assert bank_actor.handled == 202


async def test_many_concurrent_asks_each_get_their_own_answer():
    async with node("bank") as bank, node("shop") as shop:
        await bank.spawn(Bank, name="teller")
        remote = shop.ref(address(bank, "/user/teller"))
        results: dict[int, int] = {}

        async def one(i: int) -> None:
            results[i] = await remote.ask(Deposit(account=f"acc{i}", cents=i))

        async with trio.open_nursery() as nursery:
            for i in range(100):
                nursery.start_soon(one, i)
        assert results == {i: i for i in range(100)}


async def test_a_remote_handler_error_is_raised_at_the_asker_with_its_type_and_traceback():
    async with node("bank") as bank, node("shop") as shop:
        await bank.spawn(Bank, name="teller")
        remote = shop.ref(address(bank, "/user/teller"))
        with pytest.raises(KeyError) as caught:
            await remote.ask(Boom(key="missing"))
        error = caught.value
        assert isinstance(error, RemoteError)
        assert error.remote_type == "builtins.KeyError"
        assert "'missing'" in error.remote_message
        assert "def boom" in error.remote_traceback or "in boom" in error.remote_traceback
        # the actor was restarted by its supervisor and serves again
        assert await remote.ask(Deposit(account="x", cents=1)) == 1


async def test_a_missing_actor_answers_not_found_and_the_message_goes_to_its_dead_letters():
    async with node("bank") as bank, node("shop") as shop:
        recorder = await DeadLetterRecorder.start(bank)
        ghost = shop.ref(address(bank, "/user/ghost"))
        with pytest.raises(ActorNotFound, match="no actor at"):
            await ghost.ask(Balance(account="a"))
        await ghost.tell(Deposit(account="a", cents=3))
        letters = [await recorder.expect(timeout=10), await recorder.expect(timeout=10)]
        assert [letter.message for letter in letters] == [
            Balance(account="a"),
            Deposit(account="a", cents=3),
        ]
        assert all("no actor at /user/ghost" in letter.reason for letter in letters)


async def test_another_system_name_at_the_address_is_not_found():
    async with node("bank") as bank, node("shop") as shop:
        await bank.spawn(Bank, name="teller")
        port = (bank.listen_address or ("", 0))[1]
        wrong = shop.ref(f"amqp://127.0.0.1:{port}/elsewhere/user/teller")
        with pytest.raises(ActorNotFound, match="elsewhere"):
            await wrong.ask(Balance(account="a"))


async def test_the_sender_travels_so_a_remote_actor_can_answer_with_a_tell():
    async with node("bank") as bank, node("shop") as shop:
        await bank.spawn(Parrot, name="parrot")
        box: list[str] = []
        done = trio.Event()
        collector = await shop.spawn(Collector, box, done, name="collector")
        parrot = shop.ref(address(bank, "/user/parrot"))
        await parrot.tell(Echo(text="hello"), sender=collector)
        with trio.fail_after(10):
            await done.wait()
        assert box == ["HELLO"]


async def test_a_fast_remote_sender_is_slowed_down_by_a_slow_actor_and_memory_stays_bounded():
    async with node("bank") as bank, node("shop") as shop:
        handled: list[int] = []
        done = trio.Event()
        sleepy = await bank.spawn(Sleepy, handled, 300, done, name="sleepy", mailbox_size=8)
        remote = shop.ref(sleepy.address)
        cell = sleepy._cell
        high_water = 0
        lead = 0
        for n in range(300):
            await remote.tell(Slow(n=n))
            depth = len(cell.mailbox or ())
            high_water = max(high_water, depth)
            lead = max(lead, n + 1 - len(handled))
        with trio.fail_after(30):
            await done.wait()
        assert handled == list(range(300))
        assert high_water <= 8  # the mailbox never overflows its bound
        # what was sent but not handled is bounded by the mailbox and one credit window
        # (plus what the sockets hold), however many messages the sender had
        assert lead <= 8 + 8 + 2 * 8
        assert bank.recent_dead_letters() == ()


async def test_many_tasks_waiting_for_credit_on_one_link_all_get_their_turn():
    # Senders in separate tasks, all waiting on the same link for a small mailbox's
    # credit: each credit grant must wake every one of them, not only the last to wait.
    async with node("bank") as bank, node("shop") as shop:
        handled: list[int] = []
        done = trio.Event()
        count = 200
        sleepy = await bank.spawn(Sleepy, handled, count, done, name="sleepy", mailbox_size=2)
        remote = shop.ref(sleepy.address)
        await remote.tell(Slow(n=-1))  # connected
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                for n in range(count - 1):
                    nursery.start_soon(remote.tell, Slow(n=n))
            await done.wait()
        assert sorted(handled) == list(range(-1, count - 1))


async def test_tell_nowait_to_a_remote_actor_sends_when_credit_allows():
    async with node("bank") as bank, node("shop") as shop:
        await bank.spawn(Bank, name="teller", mailbox_size=4)
        remote = shop.ref(address(bank, "/user/teller"))
        with pytest.raises(MailboxFull, match="not connected yet"):
            remote.tell_nowait(Deposit(account="a", cents=1))
        await remote.tell(Deposit(account="a", cents=1))  # connects
        remote.tell_nowait(Deposit(account="a", cents=2))
        assert await remote.ask(Balance(account="a")) == 3


async def test_pending_asks_fail_when_the_peer_vanishes():
    async with node("shop") as shop:
        started = trio.Event()
        address_box: list[str] = []

        async def run_bank(task_status=trio.TASK_STATUS_IGNORED) -> None:
            async with node("bank") as bank:
                ref = await bank.spawn(Forever, name="stuck")
                address_box.append(ref.address)
                started.set()
                await trio.sleep_forever()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(run_bank)
            await started.wait()
            remote = shop.ref(address_box[0])

            async def kill_soon() -> None:
                await trio.sleep(0.2)
                nursery.cancel_scope.cancel()  # the bank's process ends abruptly

            nursery.start_soon(kill_soon)
            with (
                pytest.raises(PeerUnreachable, match="lost before it answered"),
                trio.fail_after(20),
            ):
                await remote.ask(Slow(n=1), timeout=60)


async def test_sending_to_a_node_that_is_not_there_raises_peer_unreachable():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = RemoteSettings(connect_timeout=0.3)
    async with node("shop", remote=settings) as shop:
        remote = shop.ref(f"amqp://127.0.0.1:{port}/bank/user/teller")
        with pytest.raises(PeerUnreachable, match="cannot reach"):
            await remote.tell(Deposit(account="a", cents=1))


async def test_an_unregistered_message_type_is_refused_at_the_sender():
    @attrs.frozen
    class Unlisted:
        x: int

    async with node("bank") as bank, node("shop") as shop:
        await bank.spawn(Bank, name="teller")
        remote = shop.ref(address(bank, "/user/teller"))
        with pytest.raises(UnknownMessageType):
            await remote.tell(Unlisted(1))


async def test_a_type_the_receiver_does_not_know_is_refused_and_the_node_keeps_serving():
    other = TypeRegistry()
    other.register(Deposit, name="test.Deposit")
    other.register(Balance, name="test.Balance")
    other.register(Slow, name="test.UnknownThere")
    async with node("bank") as bank, node("shop", registry=other) as shop:
        await bank.spawn(Bank, name="teller")
        remote = shop.ref(address(bank, "/user/teller"))
        with pytest.raises(MessageRefused, match="amqp:decode-error") as caught:
            await remote.ask(Slow(n=1))
        assert caught.value.condition == "amqp:decode-error"
        assert await remote.ask(Deposit(account="a", cents=2)) == 2


async def test_an_oversized_message_is_refused_with_a_clear_error():
    small = RemoteSettings(max_message_size=512)
    async with node("bank", remote=small) as bank, node("shop") as shop:
        await bank.spawn(Bank, name="teller")
        remote = shop.ref(address(bank, "/user/teller"))
        with pytest.raises(MessageRefused, match="max_message_size"):
            await remote.ask(Balance(account="x" * 2000))
        assert await remote.ask(Balance(account="y")) == 0


KEYS = Keyring({"k1": b"0" * 32}, active="k1")


async def test_signed_nodes_talk_and_an_unsigned_sender_is_refused():
    signed = RemoteSettings(signing=KEYS)
    async with (
        node("bank", remote=signed) as bank,
        node("shop", remote=signed) as shop,
        node("intruder") as intruder,
    ):
        await bank.spawn(Bank, name="teller")
        teller = address(bank, "/user/teller")
        assert await shop.ref(teller).ask(Deposit(account="a", cents=7)) == 7
        with pytest.raises(MessageRefused, match="amqp:unauthorized-access"):
            await intruder.ref(teller).ask(Deposit(account="a", cents=1000))
        assert await shop.ref(teller).ask(Balance(account="a")) == 7


async def test_a_message_signed_with_another_key_is_refused_as_forged():
    forger = RemoteSettings(signing=Keyring({"k1": b"1" * 32}, active="k1"))
    async with (
        node("bank", remote=RemoteSettings(signing=KEYS)) as bank,
        node("forger", remote=forger) as bad,
    ):
        await bank.spawn(Bank, name="teller")
        with pytest.raises(MessageRefused, match="unauthorized"):
            await bad.ref(address(bank, "/user/teller")).ask(Balance(account="a"))


async def test_settled_after_handled_messages_are_all_handled():
    async with node("bank") as bank, node("shop") as shop:
        handled: list[int] = []
        sleepy = await bank.spawn(Sleepy, handled, name="sleepy", mailbox_size=16)
        remote = shop.ref(sleepy.address, settle="after-handled")
        for n in range(50):
            await remote.tell(Slow(n=n))
        assert await remote.ask(Slow(n=50)) == 50
        assert handled == list(range(51))


async def test_inspect_lists_a_remote_nodes_actors():
    async with node("bank") as bank, node("shop") as shop:
        await bank.spawn(Bank, name="teller")
        inspector = shop.ref(address(bank, "/system/inspector"))
        report = await inspector.ask(InspectRequest())
        assert report["system"] == "bank"
        assert report["actors"]["/user/teller"]["state"].startswith("started")
        assert report["actors"]["/user/teller"]["mailbox"] == 0


async def test_control_operations_on_a_remote_ref_say_to_use_its_own_node():
    async with node("bank") as bank, node("shop") as shop:
        await bank.spawn(Bank, name="teller")
        remote = shop.ref(address(bank, "/user/teller"))
        with pytest.raises(ValueError, match="another node"):
            await shop.stop(remote)


async def test_listening_beyond_loopback_without_tls_or_signing_warns():
    with pytest.warns(InsecureNodeWarning, match="neither TLS nor message signing"):
        async with ActorSystem("open", listen="0.0.0.0:0"):
            pass


async def test_a_busy_port_is_a_clear_error():
    async with node("bank") as bank:
        port = (bank.listen_address or ("", 0))[1]
        with pytest.raises(OSError, match=r"cannot listen on 127\.0\.0\.1"):
            async with ActorSystem("again", listen=f"127.0.0.1:{port}"):
                pass


def test_a_malformed_listen_address_is_refused():
    with pytest.raises(ValueError, match="HOST:PORT"):
        ActorSystem("x", listen="nonsense")


async def test_nodes_talk_over_tls_and_refuse_a_peer_with_an_untrusted_certificate(tmp_path):
    from jumpstarter._certs import write_dev_certificates

    ours = write_dev_certificates(tmp_path / "ours")
    theirs = write_dev_certificates(tmp_path / "theirs")
    # one config per node: its certificate for the listener, the CA for connecting
    secure = RemoteSettings(tls=ours.server_tls(), connect_timeout=0.5)
    stranger = RemoteSettings(tls=theirs.server_tls(), connect_timeout=0.5)
    async with (
        node("bank", remote=secure) as bank,
        node("shop", remote=secure) as shop,
        node("other", remote=stranger) as other,
    ):
        await bank.spawn(Bank, name="teller")
        teller = address(bank, "/user/teller")
        assert await shop.ref(teller).ask(Deposit(account="a", cents=4)) == 4
        with pytest.raises(PeerUnreachable, match="cannot reach"):
            await other.ref(teller).ask(Balance(account="a"))
        assert await shop.ref(teller).ask(Balance(account="a")) == 4


class Opaque:
    """Not registered anywhere: only cloudpickle can carry it."""

    def __init__(self, value: int) -> None:
        self.value = value


class Keeper(Actor):
    @handler
    def keep(self, msg: Opaque) -> int:
        return msg.value * 2


async def test_trusted_nodes_carry_unregistered_values_and_an_untrusted_one_refuses_them():
    trusted = RemoteSettings(trusted=True)
    async with (
        node("vault", remote=trusted) as vault,
        node("friend", remote=trusted) as friend,
        node("careful") as careful,
    ):
        await vault.spawn(Keeper, name="keeper")
        keeper = address(vault, "/user/keeper")
        assert await friend.ref(keeper).ask(Opaque(21)) == 42
        with pytest.raises(UnknownMessageType):  # the untrusted sender will not pickle
            await careful.ref(keeper).ask(Opaque(1))
        await careful.spawn(Keeper, name="keeper")
        with pytest.raises(MessageRefused, match="cloudpickle"):
            await friend.ref(address(careful, "/user/keeper")).ask(Opaque(1))


async def test_a_body_that_does_not_fit_its_registered_class_is_refused():
    @attrs.frozen(kw_only=True)
    class WrongDeposit:
        account: str
        cents: str  # the receiver's test.Deposit has an int here

    other = TypeRegistry()
    other.register(WrongDeposit, name="test.Deposit")
    other.register(Balance, name="test.Balance")
    async with node("bank") as bank, node("shop", registry=other) as shop:
        await bank.spawn(Bank, name="teller")
        remote = shop.ref(address(bank, "/user/teller"))
        with pytest.raises(MessageRefused, match="does not fit"):
            await remote.ask(WrongDeposit(account="a", cents="lots"))
        remote.tell_nowait(WrongDeposit(account="a", cents="more"))  # refused and logged
        assert await remote.ask(Balance(account="a")) == 0  # handled after the tell
        assert bank.statistics().actors["/user/teller"].received == 1


async def test_a_batch_larger_than_agreed_is_refused_and_the_link_goes_on(nursery):
    from jumpstarter._amqp import Rejected
    from jumpstarter._amqp._codec import BATCH_TYPE, Codec, WireEnvelope
    from jumpstarter._amqp_driver import connect

    class Quiet:
        def link_requested(self, connection, event):
            connection.refuse_link(event.link, None)

        def message_received(self, connection, event):
            pass

        def connection_closed(self, connection, error):
            pass

        def delivery_updated(self, connection, event):
            pass

    async with node("bank") as bank:
        teller = await bank.spawn(Bank, name="teller")
        host, port = bank.listen_address or ("", 0)
        connection = await connect(host, port, Quiet(), nursery, container_id="raw")
        sender = await connection.open_sender(
            "/bank/user/teller", properties={"jumpstarter:batch": 1000}
        )
        assert sender.properties["jumpstarter:batch"] == 256
        codec = Codec(registry)
        entries = [codec.encode_entry(Deposit(account="a", cents=1)) for _ in range(300)]
        too_big = codec.encode(
            WireEnvelope(message_id="x-1", type_name=BATCH_TYPE, body=entries, created=1.0)
        )
        outcome = await sender.send_and_wait(too_big)
        assert isinstance(outcome, Rejected)
        assert outcome.error is not None and outcome.error.name == "amqp:decode-error"
        fine = codec.encode(
            WireEnvelope(message_id="x-2", type_name=BATCH_TYPE, body=entries[:3], created=1.0)
        )
        assert await sender.send_and_wait(fine) == Accepted()
        assert await teller.ask(Balance(account="a")) == 3
        await connection.aclose()


class Relay(Actor):
    """Counts what it gets, big and small."""

    def __init__(self, expected: int, done: trio.Event) -> None:
        self.count = 0
        self.expected = expected
        self.done = done

    @handler
    def any(self, msg: Slow | Echo) -> None:
        self.count += 1
        if self.count == self.expected:
            self.done.set()


async def test_two_nodes_flooding_each_other_both_ways_never_deadlock():
    n = 20_000
    big = "x" * 2000  # every tenth message is big: the socket buffers fill up
    async with node("left") as left, node("right") as right:
        left_done, right_done = trio.Event(), trio.Event()
        at_left = await left.spawn(Relay, n, left_done, name="relay", mailbox_size=64)
        at_right = await right.spawn(Relay, n, right_done, name="relay", mailbox_size=64)

        async def flood(target):
            for i in range(n):
                await target.tell(Echo(text=big) if i % 10 == 0 else Slow(n=i))

        with trio.fail_after(120):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(flood, left.ref(at_right.address))
                nursery.start_soon(flood, right.ref(at_left.address))
                await left_done.wait()
                await right_done.wait()
        assert left.recent_dead_letters() == right.recent_dead_letters() == ()


class Gate(Actor):
    """Handles nothing until its gate opens, then records what it gets."""

    def __init__(self, gate: trio.Event, seen: list[int]) -> None:
        self.gate = gate
        self.seen = seen

    @handler
    async def slow(self, msg: Slow) -> None:
        await self.gate.wait()
        self.seen.append(msg.n)

    @handler
    def count(self, msg: Balance) -> int:
        return len(self.seen)


async def test_messages_waiting_for_room_are_delivered_even_if_their_connection_closes():
    gate = trio.Event()
    seen: list[int] = []
    async with node("bank") as bank, node("one") as one, node("two") as two:
        target = await bank.spawn(Gate, gate, seen, name="gate", mailbox_size=4)
        # two senders, each with credit for the whole (small) mailbox: some of what
        # they send must wait for room at the bank
        with trio.fail_after(10):
            for n in range(4):
                await one.ref(target.address).tell(Slow(n=n))
                await two.ref(target.address).tell(Slow(n=100 + n))
        inbound = [link for links in bank._node._inbound.values() for link in links.values()]
        with trio.fail_after(10):
            while not any(link.overflow for link in inbound):  # noqa: ASYNC110 - no event
                await trio.sleep(0.01)
        waiting = {item.n for link in inbound for item, _ in link.overflow}
        for connection in list(bank._node._connections):
            await connection.stream.aclose()  # both senders are cut off
        gate.set()
        async with node("three") as three:  # its ask is handled after the earlier mail
            with trio.fail_after(10):
                await three.ref(target.address).ask(Balance(account="-"))
        assert waiting and waiting <= set(seen)
        assert bank.recent_dead_letters() == ()


FOREIGN_CLIENT = r"""
import sys, time, uuid
from proton import Message
from proton.utils import BlockingConnection

failed = 0
for n in range(int(sys.argv[2])):
    connection = BlockingConnection(f"amqp://{sys.argv[1]}", timeout=5)
    replies = connection.create_receiver(None, dynamic=True)
    sender = connection.create_sender("/bank/user/teller")
    message = Message(
        id=str(uuid.uuid4()),
        reply_to=replies.link.remote_source.address,
        creation_time=time.time(),
        properties={"js:type": "test.Balance"},
        body={"account": "acc-1"},
    )
    sender.send(message)
    replies.receive(timeout=5)
    try:
        connection.close()
    except Exception as exc:
        failed += 1
        print(f"close {n} failed: {exc!r}", file=sys.stderr)
print(failed)
"""


async def test_the_node_answers_every_close_of_a_foreign_client(tmp_path):
    """The close frame that answers a peer's close is sent, not dropped with the
    connection: a client that waits for it (proton's BlockingConnection) never hangs."""
    async with ActorSystem("bank", listen="127.0.0.1:0", registry=registry) as system:
        await system.spawn(Bank, name="teller")
        host, port = system.listen_address
        result = await trio.run_process(
            [sys.executable, "-c", FOREIGN_CLIENT, f"{host}:{port}", "30"],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode().strip() == "0", result.stderr.decode()
