"""A worker's control inbox, and the client's handle on it.

Every worker has a control actor, the built-in boot step ``control``, at
``<worker address>/control``. It takes the ``celery.control.*.v1`` commands of
:mod:`celery_actors._protocol`: ping, stats, revoke, shutdown, pause and resume.

What "signed" means here. A control command is carried out only if

- the worker's actor system signs its messages (``RemoteSettings(signing=Keyring(...))``):
  the node then refuses, before decoding it, every message from another process that is
  not signed with one of its keys, fresh and not replayed, so whatever reaches the
  control actor was sent by a holder of a key; or
- it comes from the worker's own process, through :class:`WorkerControl` on a ref of
  that process: the command then travels wrapped with a token that only exists in this
  process, and cannot be written by another one.

Any other command (from another process, to a worker whose system does not sign) is
answered with :class:`~celery_actors._protocol.ControlRefusal`, and
:class:`WorkerControl` raises :class:`ControlRefused`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

from jumpstarter import Actor, ActorRef, ActorSystem, handler

from ._bootsteps import WorkerContext
from ._errors import CeleryActorsError
from ._protocol import (
    ControlPause,
    ControlPing,
    ControlRefusal,
    ControlResume,
    ControlRevoke,
    ControlShutdown,
    ControlStats,
    WorkerPong,
    WorkerReport,
)

if TYPE_CHECKING:
    from ._shutdown import WorkerOps

__all__ = ["CONTROL_TIMEOUT", "Control", "ControlRefused", "WorkerControl", "control_address"]

CONTROL_TIMEOUT = 10.0
"""Seconds a control command waits for the worker's answer by default."""

Command = (
    ControlPing | ControlStats | ControlRevoke | ControlShutdown | ControlPause | ControlResume
)

# The token of each control actor of this process, by address: the proof that a
# command comes from this process (see the module docstring).
_TOKENS: dict[str, object] = {}


class ControlRefused(CeleryActorsError):
    """The worker refused the control command: it came from another process, and the
    worker's system does not sign messages. Give every process the same signing key
    (``RemoteSettings(signing=Keyring(...))``, or ``--signing-key-file`` on the command
    line), or send the command from the worker's own process."""


@attrs.frozen
class _InProcess:
    """A command from the control actor's own process (never sent over the network:
    the class is not in any registry)."""

    command: Any
    token: object


def control_address(worker: str) -> str:
    """The address of the control actor of the worker at ``worker`` (the worker
    actor's address; an address ending in ``/control`` is returned as is)."""
    worker = worker.rstrip("/")
    return worker if worker.endswith("/control") else f"{worker}/control"


class Control(Actor):
    """The built-in boot step ``control``: the worker's control inbox."""

    def __init__(self, context: WorkerContext) -> None:
        self.context = context
        self.ops: WorkerOps = context.ops
        self.token = object()

    def on_start(self) -> None:
        _TOKENS[self.ref.address] = self.token

    def on_stop(self) -> None:
        if _TOKENS.get(self.ref.address) is self.token:
            del _TOKENS[self.ref.address]

    @handler
    async def in_process(self, msg: _InProcess) -> Any:
        if msg.token is not self.token:
            return ControlRefusal("a command with a token that is not this worker's")
        return await self._carry_out(msg.command)

    @handler(ControlPing, ControlStats, ControlRevoke, ControlShutdown, ControlPause, ControlResume)
    async def command(self, msg: Command) -> Any:
        if self.system.remote.signing is None:
            return ControlRefusal(
                f"worker {self.context.worker.address} takes control commands from other "
                "processes only when its messages are signed: give every process the same "
                "signing key (RemoteSettings(signing=Keyring(...)), or --signing-key-file)"
            )
        return await self._carry_out(msg)

    async def _carry_out(self, msg: Any) -> Any:
        ops = self.ops
        if isinstance(msg, ControlPing):
            return WorkerPong(
                address=self.context.worker.address, uptime=ops.uptime, state=ops.state
            )
        if isinstance(msg, ControlStats):
            return self._report()
        if isinstance(msg, ControlRevoke):
            return await ops.terminate(msg.id)
        if isinstance(msg, ControlShutdown):
            if msg.timeout is not None and not msg.timeout >= 0:
                return ControlRefusal(f"timeout={msg.timeout}: give a number of seconds >= 0")
            ops.shutdown(cold=msg.cold, timeout=msg.timeout)
            return True
        if isinstance(msg, ControlPause):
            await ops.pause()
            return True
        if isinstance(msg, ControlResume):
            ops.resume()
            return True
        return ControlRefusal(f"{type(msg).__name__} is not a control command")

    def _report(self) -> WorkerReport:
        ops = self.ops
        worker = ops.worker
        ended = worker.ended
        return WorkerReport(
            address=worker.ref.address,
            state=ops.state,
            uptime=ops.uptime,
            concurrency=worker.concurrency,
            held=len(worker.runs),
            succeeded=ended["succeeded"],
            failed=ended["failed"],
            retried=ended["retrying"],
            revoked=ended["revoked"],
            boxed=worker.boxes.size,
            steps=dict(ops.boot.states),
        )


class WorkerControl:
    """Sends control commands to one worker (see :meth:`Client.control`).

    Args:
        system: the actor system the commands leave from.
        worker: the worker actor's address (or its control actor's).
        timeout: seconds to wait for each answer.

    Every method raises :class:`ControlRefused` if the worker refuses the command (see
    ``docs/workers.md``), and :class:`~jumpstarter.AskTimeout` or
    :class:`~jumpstarter.PeerUnreachable` if it does not answer.
    """

    def __init__(
        self, system: ActorSystem, worker: str, *, timeout: float = CONTROL_TIMEOUT
    ) -> None:
        self.system = system
        self.address = control_address(worker)
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"<WorkerControl {self.address}>"

    async def ping(self) -> WorkerPong:
        """The worker's address, uptime and state (``running``, ``paused``, ``stopping``)."""
        pong: WorkerPong = await self._send(ControlPing())
        return pong

    async def stats(self) -> WorkerReport:
        """What the worker holds and did since it started."""
        report: WorkerReport = await self._send(ControlStats())
        return report

    async def revoke(self, task_id: str) -> bool:
        """Cancel the call ``task_id`` if it runs on this worker (it ends ``revoked``);
        ``False`` if the worker does not hold it."""
        done: bool = await self._send(ControlRevoke(task_id))
        return done

    async def shutdown(self, *, cold: bool = False, timeout: float | None = None) -> bool:
        """Stop the worker: warm (running calls may finish for up to ``timeout``
        seconds, by default the worker's shutdown timeout) or ``cold`` (every call goes
        back to the router now). Returns once the shutdown has begun."""
        done: bool = await self._send(ControlShutdown(cold=cold, timeout=timeout))
        return done

    async def pause(self) -> bool:
        """Take no new calls; running calls go on."""
        done: bool = await self._send(ControlPause())
        return done

    async def resume(self) -> bool:
        """Take calls again."""
        done: bool = await self._send(ControlResume())
        return done

    async def _send(self, command: Any) -> Any:
        ref = self.system.ref(self.address)
        token = _TOKENS.get(self.address)
        message = command
        if token is not None and _is_local(self.system, ref):
            message = _InProcess(command, token)
        answer = await ref.ask(message, timeout=self.timeout)
        if isinstance(answer, ControlRefusal):
            raise ControlRefused(f"worker {self.address} refused {command!r}: {answer.reason}")
        return answer


def _is_local(system: ActorSystem, ref: ActorRef) -> bool:
    """Whether ``ref`` is an actor of ``system`` itself (not of another node)."""
    return system.actors.get(ref.path) == ref
