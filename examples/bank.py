"""Two processes, one bank: actors on one node, a client on another, over AMQP 1.0.

Host the bank; it prints its teller's address and runs until the teller is closed::

    jumpstart run examples.bank:serve --listen 127.0.0.1:5700

talk to it from a shell::

    jumpstart ask amqp://127.0.0.1:5700/bank/user/teller bank.Deposit \\
        '{"account": "alice", "cents": 250}'
    jumpstart inspect amqp://127.0.0.1:5700/bank
    jumpstart tell amqp://127.0.0.1:5700/bank/user/teller bank.Close

or run both sides at once::

    jumpstart run examples.bank:demo --name shop

``demo`` starts ``serve`` in a second process on a free port, reads the teller's
address from its output, and talks to the teller through a remote ref exactly as
it would to a local one: tells, asks, an error raised over there and caught here,
and finally a ``Close`` that stops the teller, and with it the other process.
"""

from __future__ import annotations

import subprocess
import sys

import attrs
import trio

from jumpstarter import (
    Actor,
    ActorSystem,
    Directive,
    OneForOne,
    RemoteError,
    TypeRegistry,
    handler,
)

# -- the messages that travel: registered, so they go as plain AMQP maps ------------------

registry = TypeRegistry()


@registry.message(name="bank.Deposit")
@attrs.frozen(kw_only=True)
class Deposit:
    account: str
    cents: int


@registry.message(name="bank.Withdraw")
@attrs.frozen(kw_only=True)
class Withdraw:
    account: str
    cents: int


@registry.message(name="bank.Balance")
@attrs.frozen(kw_only=True)
class Balance:
    account: str


@registry.message(name="bank.Close")
@attrs.frozen
class Close:
    pass


class InsufficientFunds(Exception):
    pass


class Teller(Actor):
    """Keeps balances in cents; one message at a time, so no locks."""

    def __init__(self) -> None:
        self.balances: dict[str, int] = {}

    @handler
    def deposit(self, msg: Deposit) -> int:
        self.balances[msg.account] = self.balances.get(msg.account, 0) + msg.cents
        return self.balances[msg.account]

    @handler
    def withdraw(self, msg: Withdraw) -> int:
        balance = self.balances.get(msg.account, 0)
        if msg.cents > balance:
            raise InsufficientFunds(f"{msg.account} has {balance} cents, not {msg.cents}")
        self.balances[msg.account] = balance - msg.cents
        return self.balances[msg.account]

    @handler
    def balance(self, msg: Balance) -> int:
        return self.balances.get(msg.account, 0)

    @handler
    def close(self, msg: Close) -> None:
        print(f"bank: closing; balances {self.balances}", flush=True)
        self.stop()


def _keep_going_on_refusals(error: BaseException) -> Directive:
    """A refused withdrawal is the asker's problem, not a reason to restart the teller
    (which would lose its balances); anything else is."""
    return Directive.RESUME if isinstance(error, InsufficientFunds) else Directive.RESTART


async def serve(system: ActorSystem) -> None:
    """The bank's node: one teller, reachable at the address it prints."""
    system.supervisor = OneForOne(decider=_keep_going_on_refusals)
    teller = await system.spawn(Teller, name="teller")
    print(f"bank: teller at {teller.address}", flush=True)


async def demo(system: ActorSystem) -> None:
    """Start the bank in another process, then bank with it from this one."""
    command = [sys.executable, "-m", "jumpstarter", "run", "examples.bank:serve"]
    command += ["--name", "bank", "--listen", "127.0.0.1:0"]
    async with trio.open_nursery() as nursery:
        bank = await nursery.start(_run_process, command)
        lines = _lines(bank.stdout)
        address = ""
        async for line in lines:
            print(f"  [bank process] {line}")
            if line.startswith("bank: teller at "):
                address = line.removeprefix("bank: teller at ")
                break
        teller = system.ref(address)
        print(f"shop: talking to {teller.address}")
        for cents in (250, 100, 50):
            await teller.tell(Deposit(account="alice", cents=cents))
        print(f"shop: alice's balance is {await teller.ask(Balance(account='alice'))} cents")
        print(
            f"shop: after withdrawing 120: {await teller.ask(Withdraw(account='alice', cents=120))}"
        )
        try:
            await teller.ask(Withdraw(account="bob", cents=10))
        except RemoteError as error:
            print(f"shop: the bank refused: {error.remote_type}: {error.remote_message}")
        await teller.tell(Close())
        async for line in lines:
            print(f"  [bank process] {line}")
        print(f"shop: the bank process exited with status {await bank.wait()}")


async def _run_process(
    command: list[str], task_status: trio.TaskStatus[trio.Process] = trio.TASK_STATUS_IGNORED
) -> None:
    await trio.run_process(command, stdout=subprocess.PIPE, task_status=task_status, check=False)


async def _lines(stream: trio.abc.ReceiveStream | None):  # type: ignore[no-untyped-def]
    assert stream is not None
    buffer = b""
    async for chunk in stream:
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            yield line.decode()
    if buffer:
        yield buffer.decode()
