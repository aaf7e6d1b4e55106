"""Boxed tasks: calls that run in child processes of the worker, for isolation.

A task declared ``@app.task(boxed=True)`` runs in a process of its own, so that a crash
there (a segfault in an extension, ``os._exit``, the kernel's OOM killer, SIGKILL)
costs that process and fails that call, never the worker, which goes on running its
other calls.

Design: each worker keeps a small **pool of long-lived child processes** (``boxed=N`` on
:meth:`App.start_worker`, 2 by default), each running one call at a time, like the
prefork pool of Celery, which is what users of boxed work expect: the cost of starting
Python and importing the app is paid once per process, not once per call, while a
process that crashed or was killed is simply replaced by a fresh one at the next call.
Processes are started when the first boxed call needs them, so workers without boxed
tasks start none.

Protocol, over the child's stdin and stdout (the child moves its own ``sys.stdout`` to
stderr, so that prints in tasks cannot corrupt it): frames of a 4-byte big-endian
length and a cloudpickle payload. The worker first sends its ``sys.path``; then, per
call, a :class:`BoxedCall` naming the function by module and qualified name (the child
imports it: boxed tasks must be defined at module level) with the arguments. The child
answers ``("started",)`` when the body begins (time limits count from then), then
``("value", value)`` or ``("error", pickled exception, type, message, traceback)``.
End of file before an answer means the child died: :class:`BoxedTaskCrashed`, with its
exit status. The hard time limit and ``revoke(terminate=True)`` kill the child with
SIGKILL; the soft time limit sends it SIGUSR1, which the child turns into
:class:`SoftTimeLimitExceeded` (see :mod:`celery_actors._boxed_child`).

cloudpickle carries the arguments, results and exceptions, so the child must be trusted
like the worker itself: it is the worker's own child, running the worker's own code.
"""

from __future__ import annotations

import contextlib
import signal
import struct
import subprocess
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

import attrs
import cloudpickle  # type: ignore[import-untyped]
import outcome
import trio

from ._errors import BoxedTaskCrashed, CeleryActorsError

if TYPE_CHECKING:
    from ._app import Task
    from ._protocol import TaskCall

__all__ = ["BoxPool", "BoxedCall", "RemoteTraceback", "decode_length", "encode"]

_HEADER: Final = struct.Struct(">I")
HEADER_SIZE: Final = _HEADER.size
CHILD_MODULE: Final = "celery_actors._boxed_child"


def encode(message: Any) -> bytes:
    """One frame: the payload's length, then the payload."""
    payload: bytes = cloudpickle.dumps(message)
    return _HEADER.pack(len(payload)) + payload


def decode_length(header: bytes) -> int:
    """The payload length a frame header announces."""
    (length,) = _HEADER.unpack(header)
    return int(length)


@attrs.frozen(kw_only=True)
class BoxedCall:
    """Run ``module.qualname(*args, **kwargs)`` in the child (``main``: the path of the
    script when the task is defined in ``__main__``)."""

    task: str
    id: str
    module: str
    qualname: str
    main: str | None
    args: list[Any]
    kwargs: dict[str, Any]

    @classmethod
    def of(cls, task: Task[Any, Any], call: TaskCall) -> BoxedCall:
        module = task.fn.__module__
        main = None
        if module == "__main__":
            main = getattr(sys.modules["__main__"], "__file__", None)
            if main is None:
                raise CeleryActorsError(
                    f"boxed task {task.name} is defined in an interactive session; "
                    "define it in a module (or a script file) that its processes can import"
                )
        return cls(
            task=task.name,
            id=call.id,
            module=module,
            qualname=task.fn.__qualname__,
            main=main,
            args=list(call.args),
            kwargs=dict(call.kwargs),
        )


class RemoteTraceback(Exception):
    """The traceback of an exception raised in a boxed process, as text: the cause of
    the exception the worker re-raises, so that result documents show where it came
    from."""


class _Reader:
    """Reads frames from a trio stream."""

    def __init__(self, stream: trio.abc.ReceiveStream) -> None:
        self.stream = stream
        self.buffer = bytearray()

    async def _fill(self, size: int) -> bool:
        while len(self.buffer) < size:
            chunk = await self.stream.receive_some()
            if not chunk:
                return False
            self.buffer += chunk
        return True

    async def read(self) -> Any:
        """The next message, or ``None`` at the end of the stream."""
        if not await self._fill(HEADER_SIZE):
            return None
        size = HEADER_SIZE + decode_length(bytes(self.buffer[:HEADER_SIZE]))
        if not await self._fill(size):
            return None
        payload = bytes(self.buffer[HEADER_SIZE:size])
        del self.buffer[:size]
        return cloudpickle.loads(payload)


class _Box:
    """One child process."""

    def __init__(self, process: trio.Process) -> None:
        assert process.stdin is not None and process.stdout is not None
        self.process = process
        self.stdin = process.stdin
        self.reader = _Reader(process.stdout)

    @classmethod
    async def start(cls) -> _Box:
        process = await trio.lowlevel.open_process(
            [sys.executable, "-m", CHILD_MODULE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        box = cls(process)
        try:
            await box.stdin.send_all(encode({"sys_path": list(sys.path)}))
        except BaseException:
            await box.kill()
            raise
        return box

    @property
    def alive(self) -> bool:
        return self.process.returncode is None

    def interrupt(self) -> None:
        """Tell the running body its soft time limit has passed (SIGUSR1)."""
        if self.alive:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGUSR1)

    async def call(
        self, request: BoxedCall, on_started: Callable[[Callable[[], None]], None]
    ) -> outcome.Outcome[Any]:
        """Run ``request``; the outcome of the body, or :class:`BoxedTaskCrashed` if
        the process died before answering."""
        try:
            await self.stdin.send_all(encode(request))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # it died: its exit status says how, below
        else:
            reply = await self.reader.read()
            if reply == ("started",):
                on_started(self.interrupt)
                reply = await self.reader.read()
            if reply is not None:
                return _outcome_of(reply)
        returncode = await self.process.wait()
        raise BoxedTaskCrashed(request.task, request.id, returncode)

    async def kill(self) -> None:
        """Kill the process and reap it, even when cancelled."""
        with trio.CancelScope(shield=True):
            if self.alive:
                with contextlib.suppress(ProcessLookupError):
                    self.process.kill()
            await self.process.wait()
            await self.stdin.aclose()
            await self.reader.stream.aclose()


def _outcome_of(reply: tuple[Any, ...]) -> outcome.Outcome[Any]:
    if reply[0] == "value":
        return outcome.Value(reply[1])
    _, pickled, kind, message, traceback_text = reply
    error: BaseException | None = None
    if pickled is not None:
        with contextlib.suppress(Exception):
            error = cloudpickle.loads(pickled)
    if not isinstance(error, BaseException):
        error = RemoteTraceback(f"{kind}: {message}\n\n{traceback_text}")
    else:
        error.__cause__ = RemoteTraceback(traceback_text)
    return outcome.Error(error)


class BoxPool:
    """The worker's child processes for boxed calls: at most ``size`` at once, kept
    between calls, replaced when one dies or is killed."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"boxed={size}: a worker needs at least one process for boxed tasks")
        self.size = size
        self._limiter = trio.CapacityLimiter(size)
        self._idle: list[_Box] = []
        self._closed = False

    async def run(
        self,
        task: Task[Any, Any],
        call: TaskCall,
        *,
        on_started: Callable[[Callable[[], None]], None],
    ) -> Any:
        """Run ``call`` in a child process and return its value (or raise its error).

        ``on_started(interrupt)`` is called when the body starts; ``interrupt()`` then
        raises :class:`SoftTimeLimitExceeded` in the body. Cancelling this kills the
        child.

        Raises:
            BoxedTaskCrashed: the child died before answering.
        """
        request = BoxedCall.of(task, call)
        async with self._limiter:
            if self._closed:
                raise trio.ClosedResourceError("the worker is stopping")
            box = None
            while self._idle and box is None:
                box = self._idle.pop()
                if not box.alive:  # it died while idle
                    await box.kill()
                    box = None
            if box is None:
                box = await _Box.start()
            reusable = False
            try:
                result = await box.call(request, on_started)
                reusable = True
            finally:
                if reusable and not self._closed:
                    self._idle.append(box)
                else:
                    await box.kill()
        return result.unwrap()

    async def aclose(self) -> None:
        """Kill the idle processes; busy ones are killed as their calls are cancelled."""
        self._closed = True
        idle, self._idle = self._idle, []
        for box in idle:
            await box.kill()
