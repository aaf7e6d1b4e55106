"""The program a boxed-task process runs: ``python -m celery_actors._boxed_child``.

It reads calls from stdin and writes answers to stdout, one at a time, as described in
:mod:`celery_actors._boxed`. It imports each task's module (or runs the worker's
script, for tasks defined in ``__main__``) and runs the plain function: a ``def``
directly, an ``async def`` in ``trio.run``.

The soft time limit arrives as SIGUSR1. In a ``def`` body the signal handler raises
:class:`SoftTimeLimitExceeded` in the main thread, between two bytecodes (a blocking
system call such as ``time.sleep`` is interrupted for it; a long computation in C is
not). In an ``async def`` body it cancels the soft scope that
:func:`celery_actors._worker.run_soft_limited` turns into the exception at the body's
next checkpoint, as on the worker. Between calls the signal is ignored.
"""

from __future__ import annotations

import importlib
import inspect
import os
import runpy
import signal
import sys
from types import FrameType
from typing import Any, BinaryIO

import cloudpickle  # type: ignore[import-untyped]
import outcome
import trio

from ._boxed import HEADER_SIZE, BoxedCall, decode_length, encode
from ._errors import SoftTimeLimitExceeded
from ._protocol import TaskError

__all__ = ["main"]


class _Channel:
    """Frames over the two file descriptors the worker reads and writes."""

    def __init__(self, reader: BinaryIO, writer: BinaryIO) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    def take_stdio(cls) -> _Channel:
        """Keep stdin and stdout for the protocol; point fd 1 at stderr and fd 0 at
        /dev/null, so that what tasks print or read cannot reach it."""
        reader = os.fdopen(os.dup(0), "rb", buffering=0)
        writer = os.fdopen(os.dup(1), "wb")
        os.dup2(2, 1)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        return cls(reader, writer)

    def _read_exactly(self, size: int) -> bytes | None:
        data = bytearray()
        while len(data) < size:
            chunk = self.reader.read(size - len(data))
            if not chunk:
                return None
            data += chunk
        return bytes(data)

    def read(self) -> Any:
        """The next message, or ``None`` once the worker has closed the pipe."""
        header = self._read_exactly(HEADER_SIZE)
        if header is None:
            return None
        payload = self._read_exactly(decode_length(header))
        return None if payload is None else cloudpickle.loads(payload)

    def write(self, message: Any) -> None:
        self.write_frame(encode(message))

    def write_frame(self, frame: bytes) -> None:
        self.writer.write(frame)
        self.writer.flush()


class _SoftLimit:
    """What SIGUSR1 does: it depends on what runs now."""

    def __init__(self) -> None:
        self.mode: str | None = None  # "sync", "async" or None (between calls)
        self.fired = False
        self.scope: trio.CancelScope | None = None
        self.token: trio.lowlevel.TrioToken | None = None

    def reset(self) -> None:
        self.mode, self.fired, self.scope, self.token = None, False, None, None

    def on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.fired or self.mode is None:
            return
        self.fired = True
        if self.mode == "sync":
            raise SoftTimeLimitExceeded()
        if self.scope is not None and self.token is not None:
            self.token.run_sync_soon(self.scope.cancel)


_soft = _SoftLimit()
_scripts: dict[str, dict[str, Any]] = {}


def _resolve(request: BoxedCall) -> Any:
    if request.module == "__main__" and request.main is not None:
        if request.main not in _scripts:
            _scripts[request.main] = runpy.run_path(request.main, run_name="__boxed_main__")
        first, *rest = request.qualname.split(".")
        target: Any = _scripts[request.main][first]
    else:
        target = importlib.import_module(request.module)
        rest = request.qualname.split(".")
    for name in rest:
        target = getattr(target, name)
    return getattr(target, "fn", target)  # the module holds the Task; run its function


def _run_sync(channel: _Channel, request: BoxedCall, fn: Any) -> outcome.Outcome[Any]:
    result: outcome.Outcome[Any] | None = None
    try:
        _soft.mode = "sync"
        channel.write(("started",))
        result = outcome.capture(fn, *request.args, **request.kwargs)
    except SoftTimeLimitExceeded as exc:  # it arrived around the body, not in it
        if result is None:
            result = outcome.Error(exc)
    finally:
        while True:  # the signal may land here too (once at most): then again
            try:
                _soft.mode = None
                break
            except SoftTimeLimitExceeded:
                continue
    assert result is not None
    return result


def _run_async(channel: _Channel, request: BoxedCall, fn: Any) -> outcome.Outcome[Any]:
    from ._worker import run_soft_limited

    message = f"{request.task} ran past its soft_time_limit"

    async def body() -> Any:
        soft, guard = trio.CancelScope(), trio.CancelScope()
        _soft.scope, _soft.token = soft, trio.lowlevel.current_trio_token()
        if _soft.fired:  # the signal came before the scope existed
            soft.cancel()
        with soft, guard:
            return await run_soft_limited(
                fn(*request.args, **request.kwargs), soft, guard, message=message
            )
        raise SoftTimeLimitExceeded(message)  # the soft scope cancelled the body's children

    _soft.mode = "async"
    channel.write(("started",))
    try:
        return outcome.capture(trio.run, body)
    finally:
        _soft.mode = None


def _answer(result: outcome.Outcome[Any]) -> tuple[Any, ...]:
    if isinstance(result, outcome.Value):
        return ("value", result.value)
    assert isinstance(result, outcome.Error)
    error = result.error
    try:
        pickled: bytes | None = cloudpickle.dumps(error)
    except Exception:
        pickled = None
    info = TaskError.from_exception(error)
    return ("error", pickled, info.type, info.message, info.traceback)


def main() -> None:
    """Serve calls until the worker closes the pipe."""
    channel = _Channel.take_stdio()
    signal.signal(signal.SIGUSR1, _soft.on_signal)
    hello = channel.read()
    if hello is None:
        return
    sys.path[:] = hello["sys_path"]
    while (request := channel.read()) is not None:
        try:
            fn = _resolve(request)
        except Exception as exc:
            channel.write(_answer(outcome.Error(exc)))
            continue
        _soft.reset()
        if inspect.iscoroutinefunction(fn):
            result = _run_async(channel, request, fn)
        else:
            result = _run_sync(channel, request, fn)
        answer = _answer(result)
        try:
            frame = encode(answer)
        except Exception as exc:
            why = TypeError(f"the result of {request.task} cannot be sent to the worker: {exc}")
            frame = encode(_answer(outcome.Error(why)))
        channel.write_frame(frame)


if __name__ == "__main__":
    main()
