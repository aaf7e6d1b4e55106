"""Helpers and pytest fixtures for testing actors.

With ``pytest-trio`` installed, this module is a pytest plugin (registered
through an entry point), so its fixtures are available in every test:

* ``actor_system`` — a running :class:`~jumpstarter.ActorSystem` for the test;
* ``probe`` — a :class:`Probe` spawned in that system.

Combine them with pytest-trio's ``autojump_clock`` fixture to run timers,
backoff and timeouts in virtual time, without real sleeps::

    async def test_reminder_fires_after_a_minute(actor_system, probe, autojump_clock):
        reminder = await actor_system.spawn(Reminder, probe.ref)
        await reminder.tell(RemindIn(seconds=60, text="tea"))
        assert await probe.expect(Reminded) == Reminded(text="tea")
        assert trio.current_time() >= 60
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator
from typing import Any, TypeVar

import pytest
import trio

from ._actor import Actor, handler
from ._messages import DeadLetter
from ._ref import ActorRef
from ._system import ActorSystem, SubscribeDeadLetters

__all__ = ["DeadLetterRecorder", "Probe", "actor_system", "probe"]

_M = TypeVar("_M")


class _ProbeActor(Actor):
    def __init__(self, inbox: deque[Any], arrived: list[trio.Event]) -> None:
        self.inbox = inbox
        self.arrived = arrived

    @handler(object)
    def record(self, message: object) -> None:
        self.inbox.append(message)
        self.arrived[0].set()


class Probe:
    """An actor whose received messages a test can await and inspect.

    Pass :attr:`ref` wherever an actor expects a ref to reply or report to.
    """

    def __init__(self, ref: ActorRef, inbox: deque[Any], arrived: list[trio.Event]) -> None:
        self.ref = ref
        self._inbox = inbox
        self._arrived = arrived
        self.received: list[Any] = []
        """Every message taken by :meth:`receive` or :meth:`expect`, in order."""

    @classmethod
    async def spawn(cls, system: ActorSystem, name: str | None = None) -> Probe:
        """Spawn a probe actor in ``system``."""
        inbox: deque[Any] = deque()
        arrived = [trio.Event()]
        ref = await system.spawn(_ProbeActor, inbox, arrived, name=name)
        return cls(ref, inbox, arrived)

    @property
    def pending(self) -> int:
        """How many messages have arrived and not been taken yet."""
        return len(self._inbox)

    async def receive(self, timeout: float = 5.0) -> Any:
        """The next message, waiting up to ``timeout`` seconds.

        Raises:
            AssertionError: nothing arrived in time.
        """
        with trio.move_on_after(timeout):
            while not self._inbox:
                self._arrived[0] = trio.Event()
                await self._arrived[0].wait()
            message = self._inbox.popleft()
            self.received.append(message)
            return message
        raise AssertionError(f"the probe received nothing within {timeout} s")

    async def expect(self, message_type: type[_M], timeout: float = 5.0) -> _M:
        """The next message, which must be a ``message_type``.

        Raises:
            AssertionError: nothing arrived in time, or something else arrived.
        """
        message = await self.receive(timeout)
        if not isinstance(message, message_type):
            raise AssertionError(
                f"the probe expected a {message_type.__qualname__}, got {message!r}"
            )
        return message

    async def expect_no_message(self, within: float) -> None:
        """Wait ``within`` seconds and check that nothing arrived.

        Raises:
            AssertionError: a message arrived.
        """
        await trio.sleep(within)
        if self._inbox:
            raise AssertionError(f"the probe received {self._inbox[0]!r}, expected nothing")


class DeadLetterRecorder:
    """Collects every dead letter of a system from the moment it is created."""

    def __init__(self, probe: Probe) -> None:
        self._probe = probe

    @classmethod
    async def start(cls, system: ActorSystem) -> DeadLetterRecorder:
        """Subscribe a new recorder to ``system``'s dead letters."""
        probe = await Probe.spawn(system)
        await system.dead_letters.ask(SubscribeDeadLetters(probe.ref))
        return cls(probe)

    @property
    def letters(self) -> list[DeadLetter]:
        """The dead letters recorded so far."""
        return [m for m in self._probe._inbox if isinstance(m, DeadLetter)]

    async def expect(self, timeout: float = 5.0) -> DeadLetter:
        """The next dead letter, waiting up to ``timeout`` seconds."""
        return await self._probe.expect(DeadLetter, timeout)


@pytest.fixture
async def actor_system() -> AsyncIterator[ActorSystem]:
    """A running actor system, shut down when the test ends."""
    async with ActorSystem("test", seed=0) as system:
        yield system


@pytest.fixture
async def probe(actor_system: ActorSystem) -> Probe:
    """A :class:`Probe` spawned in the test's ``actor_system``."""
    return await Probe.spawn(actor_system)
