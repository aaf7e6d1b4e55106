"""Messages the runtime itself sends to actors, and the envelope around user messages.

User messages are plain (preferably frozen ``attrs``) objects. In a mailbox, a
message told with no metadata is stored as is; a message that needs metadata
(a reply slot for an ask, a sender, a trace id) travels in an :class:`Envelope`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs
import outcome
import trio

from ._lifecycle import Health

if TYPE_CHECKING:
    from ._ref import ActorRef

__all__ = ["DeadLetter", "HealthChanged", "PendingReply", "Terminated"]


@attrs.frozen(kw_only=True)
class Terminated:
    """Sent to every watcher of an actor when that actor has stopped.

    Attributes:
        ref: the actor that stopped.
        reason: ``None`` for a normal stop, else the exception that ended it.
    """

    ref: ActorRef
    reason: BaseException | None = None


@attrs.frozen(kw_only=True)
class HealthChanged:
    """Sent to a parent that handles it when a child's health changes.

    Attributes:
        ref: the child.
        previous: its health before.
        health: its health now.
    """

    ref: ActorRef
    previous: Health
    health: Health


@attrs.frozen(kw_only=True)
class DeadLetter:
    """A message that could not be delivered or handled, and why.

    Attributes:
        message: the undelivered message.
        recipient: path or address it was sent to.
        sender: who sent it, when known.
        reason: a sentence saying why it was not delivered.
    """

    message: Any
    recipient: str
    sender: ActorRef | None = None
    reason: str


class Reply:
    """The slot an ``ask`` waits on; filled once by whoever handles the message."""

    __slots__ = ("done", "result", "task")

    def __init__(self) -> None:
        self.task: trio.lowlevel.Task | None = None
        self.result: outcome.Outcome[Any] | None = None
        self.done = False

    def resolve(self, result: outcome.Outcome[Any]) -> None:
        if self.done:
            return
        self.done = True
        self.result = result
        task = self.task
        if task is not None:
            self.task = None
            trio.lowlevel.reschedule(task, result)

    def succeed(self, value: Any) -> None:
        self.resolve(outcome.Value(value))

    def fail(self, error: BaseException) -> None:
        self.resolve(outcome.Error(error))

    async def wait(self) -> Any:
        """Park the calling task until resolved; the caller sets any deadline."""
        if self.done:
            assert self.result is not None
            await trio.lowlevel.cancel_shielded_checkpoint()
            return self.result.unwrap()
        self.task = trio.lowlevel.current_task()

        def abort(_: Any) -> trio.lowlevel.Abort:
            self.task = None
            return trio.lowlevel.Abort.SUCCEEDED

        return await trio.lowlevel.wait_task_rescheduled(abort)


class PendingReply:
    """The answer to a message, given after its handler has returned.

    A handler gets one from :meth:`Actor.reply_later` when the answer depends on
    something that has not happened yet (another actor's answer, a task that is still
    running) and the actor must go on handling other messages meanwhile. Call
    :meth:`succeed` or :meth:`fail` once, from any handler or task of the actor system;
    the first answer counts and later ones are ignored. If the message was a tell,
    answering does nothing. If it is never answered, the asker's timeout applies.
    """

    __slots__ = ("_early", "_slot", "done")

    def __init__(self, slot: Reply | None) -> None:
        self._slot = slot
        self._early: outcome.Outcome[Any] | None = None
        self.done = False
        """Whether an answer was given."""

    def __repr__(self) -> str:
        return f"<PendingReply {'answered' if self.done else 'waiting'}>"

    def succeed(self, value: Any) -> None:
        """Answer with ``value``: the asker's ``ask`` returns it."""
        self._resolve(outcome.Value(value))

    def fail(self, error: BaseException) -> None:
        """Answer with ``error``: the asker's ``ask`` raises it."""
        self._resolve(outcome.Error(error))

    def _resolve(self, result: outcome.Outcome[Any]) -> None:
        if self.done:
            return
        self.done = True
        if self._slot is not None:
            self._slot.resolve(result)
        else:
            self._early = result

    def _attach(self, slot: Reply) -> None:
        """Route the answer to ``slot`` (the runtime knows it only after the handler
        returned when the message was handled in the asker's own task)."""
        self._slot = slot
        if self._early is not None:
            slot.resolve(self._early)
            self._early = None


class Envelope:
    """A message with its metadata, as it sits in a mailbox."""

    __slots__ = ("message", "reply", "sender", "trace")

    def __init__(
        self,
        message: Any,
        sender: ActorRef | None = None,
        reply: Reply | None = None,
        trace: str | None = None,
    ) -> None:
        self.message = message
        self.sender = sender
        self.reply = reply
        self.trace = trace


# -- system messages: they jump the mailbox queue ------------------------------


class SystemMessage:
    __slots__ = ()


class StopRequest(SystemMessage):
    __slots__ = ("drain",)

    def __init__(self, drain: bool) -> None:
        self.drain = drain


class RestartRequest(SystemMessage):
    __slots__ = ("cause", "delay")

    def __init__(self, cause: BaseException | None, delay: float) -> None:
        self.cause = cause
        self.delay = delay


class PauseRequest(SystemMessage):
    __slots__ = ()


class ResumeRequest(SystemMessage):
    __slots__ = ()
