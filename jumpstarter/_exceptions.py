"""The exceptions that :mod:`jumpstarter` raises.

Every exception derives from :class:`JumpstarterError`; where a builtin fits, the
exception derives from it too, so ``except TimeoutError`` catches an ask timeout.
"""

from __future__ import annotations

import trio

__all__ = [
    "ActorCrashed",
    "ActorNotFound",
    "ActorStartError",
    "ActorStopped",
    "AskTimeout",
    "DependencyCycle",
    "DependencyError",
    "IllegalTransition",
    "InvalidActorPath",
    "JumpstarterError",
    "MailboxFull",
    "MessageRefused",
    "PeerUnreachable",
    "RemoteError",
    "SystemNotRunning",
    "UnhandledMessage",
]


class JumpstarterError(Exception):
    """Base class of every error raised by jumpstarter."""


class MailboxFull(JumpstarterError, trio.WouldBlock):
    """``tell_nowait`` found the recipient's mailbox full.

    The message was not delivered and is still yours: retry later, or use
    ``await ref.tell(msg)``, which waits for room.
    """


class AskTimeout(JumpstarterError, TimeoutError):
    """An ``ask`` got no reply within its timeout.

    The message may still be handled later; its reply will then be dropped.
    """


class ActorStopped(JumpstarterError):
    """The recipient is stopped (or stopped before handling the message).

    The message went to the dead letters.
    """


class ActorCrashed(JumpstarterError):
    """The recipient crashed while this ask was waiting in its mailbox.

    ``__cause__`` holds the exception that crashed the actor.
    """


class ActorNotFound(JumpstarterError, LookupError):
    """No actor lives at the given path or address."""


class InvalidActorPath(JumpstarterError, ValueError):
    """An actor name or path is malformed, or already taken."""


class ActorStartError(JumpstarterError):
    """An actor failed while starting (a resource, a dependency or ``on_start``).

    ``__cause__`` holds the original exception.
    """


class UnhandledMessage(JumpstarterError, TypeError):
    """The recipient has no handler for this message type.

    Add a handler with ``@handler`` for the type, or send a type the actor knows.
    """


class IllegalTransition(JumpstarterError):
    """A state machine was asked for a transition its table does not allow."""

    def __init__(self, machine: str, state: str, trigger: str) -> None:
        super().__init__(
            f"state machine {machine!r} cannot {trigger!r} from state {state!r}: "
            f"no transition for that trigger leaves this state"
        )
        self.machine = machine
        self.state = state
        self.trigger = trigger


class DependencyError(JumpstarterError):
    """A declared dependency between actors cannot be satisfied."""


class DependencyCycle(DependencyError):
    """Declared dependencies form a cycle, so no start order exists."""


class SystemNotRunning(JumpstarterError, RuntimeError):
    """The actor system is not running (not entered yet, or shut down)."""


class PeerUnreachable(JumpstarterError, ConnectionError):
    """The node that hosts a remote actor cannot be reached, or the connection to it
    was lost before an ask was answered.

    An ask that fails this way may or may not have been handled: make handlers that
    matter idempotent, or ask again once the peer is back.
    """


class MessageRefused(JumpstarterError):
    """The remote node refused the message: it could not read it, or it failed the
    signature check. The message was not delivered; the remote node logged why.

    Attributes:
        condition: the AMQP error condition the remote node gave
            (``amqp:decode-error``, ``amqp:unauthorized-access``...).
    """

    def __init__(self, message: str, condition: str = "") -> None:
        super().__init__(message)
        self.condition = condition


class RemoteError(JumpstarterError):
    """A handler on another node raised; this is its exception, as far as it travels.

    When the remote exception's type is known here (a builtin, or a class of an
    imported module), the exception raised at the asker is an instance of a subclass
    of both that type and :class:`RemoteError`, so ``except KeyError`` works as it
    would locally.

    Attributes:
        remote_type: the exception's type on the remote node, as ``module.QualName``.
        remote_message: its message.
        remote_traceback: the traceback on the remote node, as text.
    """

    remote_type: str = ""
    remote_message: str = ""
    remote_traceback: str = ""

    def __str__(self) -> str:
        text = self.remote_message
        if self.remote_traceback:
            text += "\n\nRemote traceback:\n" + self.remote_traceback.rstrip()
        return text
