"""Structured logs with eliot: one switch, off by default.

When logging is on, every handled message is an eliot action
(``jumpstarter:handle``) carrying the actor path, the message type, the outcome
and the handling time; the eliot task id of the sender travels in the message
envelope, so a chain of tells and asks forms one tree of actions.

Turn it on with ``JUMPSTARTER_LOG=stdout`` (or ``stderr``, or a file path) in the
environment, or with :func:`enable_logging`. When it is off, the runtime does no
logging work per message.
"""

from __future__ import annotations

import os
import sys
from typing import IO, Any

import eliot

__all__ = ["disable_logging", "enable_logging", "logging_enabled"]

ENV_VAR = "JUMPSTARTER_LOG"


class _Switch:
    __slots__ = ("destination", "enabled", "file")

    def __init__(self) -> None:
        self.enabled = False
        self.destination: Any = None
        self.file: IO[str] | None = None


SWITCH = _Switch()


def enable_logging(destination: str | IO[str] = "stdout") -> None:
    """Write JSON log lines of every handled message to ``destination``.

    Args:
        destination: ``"stdout"``, ``"stderr"``, a file path (appended to), or an
            open text file.
    """
    disable_logging()
    if isinstance(destination, str):
        if destination == "stdout":
            stream: IO[str] = sys.stdout
        elif destination == "stderr":
            stream = sys.stderr
        else:
            stream = SWITCH.file = open(destination, "a", encoding="utf-8")  # noqa: SIM115
    else:
        stream = destination
    SWITCH.destination = eliot.FileDestination(file=stream)
    eliot.add_destinations(SWITCH.destination)
    SWITCH.enabled = True


def disable_logging() -> None:
    """Stop writing logs (the default)."""
    if SWITCH.destination is not None:
        eliot.remove_destination(SWITCH.destination)
        SWITCH.destination = None
    if SWITCH.file is not None:
        SWITCH.file.close()
        SWITCH.file = None
    SWITCH.enabled = False


def logging_enabled() -> bool:
    """Whether message logging is on."""
    return SWITCH.enabled


def configure_from_environment() -> None:
    """Apply ``JUMPSTARTER_LOG`` if it is set and logging is not already on."""
    value = os.environ.get(ENV_VAR, "").strip()
    if value and value.lower() not in ("0", "off", "false", "no") and not SWITCH.enabled:
        enable_logging("stdout" if value.lower() in ("1", "on", "true", "yes") else value)


def current_trace() -> str | None:
    """The serialized eliot task id of the current action, to put in an envelope."""
    action = eliot.current_action()
    if action is None:
        return None
    task_id = action.serialize_task_id()
    return task_id.decode("ascii") if isinstance(task_id, bytes) else str(task_id)
