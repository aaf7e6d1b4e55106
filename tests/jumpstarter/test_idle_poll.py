"""Polling before a run sleeps: it sees every kind of work that ends a wait, its time
adapts to how long waits last, and the setting reaches it from a system's connections."""

from __future__ import annotations

import math
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import trio

from examples import bank
from jumpstarter import ActorSystem, BrokerSettings, RemoteSettings, open_broker
from jumpstarter._amqp_driver import _TurnWriter
from jumpstarter._idle_poll import IdlePoller

REPO = Path(__file__).resolve().parents[2]


class Clock:
    """A clock the test sets; the poller reads it."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def waits(
    poller: IdlePoller, clock: Clock, *seconds: float, deadline: float = math.inf
) -> list[float]:
    """Let ``poller`` see waits of these lengths, each before the run's next
    ``deadline`` (none polls: the budget is checked before); returns the budget after
    each."""
    budgets = []
    for length in seconds:
        budget, poller.budget = poller.budget, 0.0  # no polling with a clock that stands still
        poller.before_io_wait(deadline)
        poller.budget = budget
        clock.now += length
        poller.after_io_wait()
        budgets.append(poller.budget)
    return budgets


async def test_the_poll_time_grows_while_waits_end_within_the_limit_and_shrinks_after_longer_ones():
    clock = Clock()
    poller = IdlePoller(clock=clock)
    assert poller.available
    poller.hold("connection", 0.001)
    assert (poller.limit, poller.budget) == (0.001, 0.0)
    # short waits: from a quarter of the limit, doubling up to it
    assert waits(poller, clock, 0.0009, 0.0009, 0.0009, 0.0009) == [0.00025, 0.0005, 0.001, 0.001]
    # a wait the poll time covers changes nothing
    assert waits(poller, clock, 0.0002) == [0.001]
    # long waits halve it, and below half the starting time it stops
    assert waits(poller, clock, 1.0, 1.0, 1.0, 1.0) == [0.0005, 0.00025, 0.000125, 0.0]
    assert waits(poller, clock, 1.0) == [0.0]
    # and it grows again as soon as a wait is short
    assert waits(poller, clock, 0.0003) == [0.00025]


async def test_waits_that_the_runs_own_deadline_ends_do_not_grow_the_poll_time():
    clock = Clock()
    poller = IdlePoller(clock=clock)
    poller.hold("connection", 0.001)
    # a timer every 300 µs: the run would poll for nothing but its own timer
    assert waits(poller, clock, 0.0003, 0.0003, deadline=0.0003) == [0.0, 0.0]
    assert waits(poller, clock, 0.0002, deadline=0.0003) == [0.00025]  # a peer, before it


async def test_the_largest_limit_held_counts_and_none_once_every_owner_let_go():
    poller = IdlePoller()
    poller.hold("a", 0.001)
    poller.hold("b", 0.0002)
    poller.hold("c", 0.0)  # an owner that does not poll holds nothing
    assert poller.limit == 0.001
    poller.budget = 0.001
    poller.release("a")
    assert (poller.limit, poller.budget) == (0.0002, 0.0002)
    poller.release("b")
    poller.release("c")
    assert (poller.limit, poller.budget) == (0.0, 0.0)


async def test_polling_ends_when_a_thread_hands_the_run_its_result():
    # A poll time far longer than the thread takes: the wait for the thread's result
    # ends only if the poll sees the run's wake-up (else it polls to the deadline,
    # the wait is not caught, and the deadline fails the test).
    poller = _TurnWriter.for_this_run().idle
    poller.hold("test", 1.0)
    poller.budget = 1.0
    with trio.fail_after(0.9):
        await trio.to_thread.run_sync(time.sleep, 0.01)
    assert poller.polled == poller.caught >= 1
    poller.release("test")


async def test_polling_ends_when_a_socket_the_run_waits_for_is_readable():
    poller = _TurnWriter.for_this_run().idle
    poller.hold("test", 1.0)
    poller.budget = 1.0
    left, right = socket.socketpair()
    with trio.socket.from_stdlib_socket(left) as here, right:

        def answer_soon() -> None:
            time.sleep(0.01)
            right.send(b"x")  # from a thread: the run is polling meanwhile

        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.to_thread.run_sync, answer_soon)
            with trio.fail_after(0.9):
                assert await here.recv(1) == b"x"
    assert poller.polled == poller.caught >= 1
    poller.release("test")


@pytest.fixture
def teller() -> object:
    """The example bank in another process; yields its teller's address."""
    command = ["run", "examples.bank:serve", "--name", "bank", "--listen", "127.0.0.1:0"]
    process = subprocess.Popen(
        [sys.executable, "-m", "jumpstarter", *command],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("bank: teller at "), line
        yield line.removeprefix("bank: teller at ").strip()
    finally:
        process.kill()
        process.wait(30)
        assert process.stdout is not None
        process.stdout.close()


async def asks(teller: str, settings: RemoteSettings, n: int) -> IdlePoller:
    async with ActorSystem("client", registry=bank.registry, remote=settings) as system:
        ref = system.ref(teller)
        for _ in range(n):
            assert await ref.ask(bank.Balance(account="alice")) == 0
        poller = _TurnWriter.for_this_run().idle
        assert poller.limit == settings.busy_poll
    assert poller.limit == 0.0  # the connection closed
    return poller


async def test_a_system_polls_for_the_answers_of_a_node_in_another_process(teller):
    poller = await asks(teller, RemoteSettings(busy_poll=0.5), 30)
    assert poller.caught >= 1


async def test_a_system_that_does_not_poll_sleeps_at_once(teller):
    poller = await asks(teller, RemoteSettings(busy_poll=0), 10)
    assert poller.polled == 0


async def test_a_broker_connection_polls_up_to_its_own_setting():
    settings = BrokerSettings.from_url("amqp://guest:guest@127.0.0.1:5672", busy_poll=0.3)
    async with open_broker(settings):
        poller = _TurnWriter.for_this_run().idle
        assert poller.limit == 0.3
    assert poller.limit == 0.0


@pytest.mark.parametrize("value", [-0.001, 1.5, float("nan")])
def test_a_busy_poll_that_is_not_a_time_from_0_to_1_second_is_refused(value):
    with pytest.raises(ValueError, match="busy_poll must be from 0 to 1 second"):
        RemoteSettings(busy_poll=value)
    with pytest.raises(ValueError, match="busy_poll must be from 0 to 1 second"):
        BrokerSettings(busy_poll=value)
