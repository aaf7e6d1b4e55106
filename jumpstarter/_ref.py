"""ActorRef: the only handle outside code holds on an actor."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, final

from trio.lowlevel import reschedule

from ._logging import SWITCH

if TYPE_CHECKING:
    from ._cell import ActorCell

__all__ = ["ActorRef"]


@final
class ActorRef:
    """A reference to an actor, by which messages reach it.

    Refs are made by the runtime (``spawn``, ``lookup``), compare and hash by
    address, and stay valid across restarts of the actor. Once the actor has
    stopped, messages sent through the ref go to the dead letters.
    """

    __slots__ = ("_cell",)

    _cell: ActorCell

    def __init__(self) -> None:
        raise TypeError("ActorRef has no public constructor; use spawn() or system.ref()")

    @classmethod
    def _from_cell(cls, cell: ActorCell) -> ActorRef:
        ref = object.__new__(cls)
        ref._cell = cell
        return ref

    @property
    def path(self) -> str:
        """The actor's path in its system, such as ``/user/parent/child``."""
        return self._cell.path

    @property
    def address(self) -> str:
        """The actor's full address: ``local://system/user/a`` in-process, or
        ``amqp://host:port/system/user/a`` when its system listens for peers."""
        return self._cell.address

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ActorRef):
            return self._cell.address == other._cell.address
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._cell.address)

    def __repr__(self) -> str:
        return f"<ActorRef {self.address}>"

    def tell_nowait(self, message: Any, *, sender: ActorRef | None = None) -> None:
        """Put ``message`` in the mailbox now, without waiting.

        Raises:
            MailboxFull: the mailbox is full; the message was not delivered.
        """
        self._cell.tell_nowait(message, sender)

    async def tell(self, message: Any, *, sender: ActorRef | None = None) -> None:
        """Put ``message`` in the mailbox, waiting while the mailbox is full.

        Returns once the message is in the mailbox (not once it is handled).
        This yields to the scheduler only when it has to wait, and every few
        hundred calls, so a loop of tells fills the recipient's batch quickly.
        """
        # The common case (room, no metadata) inlined from ActorCell._put: this
        # is the hottest path of the runtime.
        cell = self._cell
        queue = cell.mailbox
        if (
            sender is None
            and queue is not None
            and len(queue) < cell.capacity
            and cell.accepting
            and not cell.waiting_senders
            and not SWITCH.enabled
        ):
            system = cell.system
            system.budget -= 1
            if system.budget > 0:
                queue.append(message)
                cell.received += 1
                if cell.active:
                    parked = cell.parked
                    if parked is not None:
                        cell.parked = None
                        reschedule(parked)
                    elif not cell.has_runner:
                        cell._spawn_runner()
                return
        await cell.tell(message, sender)

    async def ask(
        self, message: Any, *, timeout: float | None = None, sender: ActorRef | None = None
    ) -> Any:
        """Send ``message`` and return the handler's return value.

        Args:
            timeout: seconds to wait for the reply; ``None`` uses the system's
                ``ask_timeout``.

        Raises:
            AskTimeout: no reply in time.
            ActorStopped: the actor is stopped or stopped before handling it.
            ActorCrashed: the actor crashed while the message waited in its mailbox.
            UnhandledMessage: the actor has no handler for the message type.
            Exception: whatever the handler raised, re-raised here.
        """
        return await self._cell.ask(message, timeout, sender)
