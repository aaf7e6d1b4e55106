"""Polling before a trio run sleeps, so that a peer's quick answer finds it awake.

Why
===
When every task of a run waits, trio sleeps in ``epoll_wait`` and the process's
CPU goes idle. Whatever ends the wait then pays for a wake-up: the kernel must
notice the sleeping CPU, interrupt it, and on a virtual machine that interrupt
goes through the hypervisor. Between two processes on the same machine that can
cost more than the work itself: on a 2-CPU virtual machine, a loopback ping-pong
took 10 µs when both ends polled and 90 µs when both slept, and an ask between two
actor systems half as long when they polled.

So, after a turn, a run that holds network connections first *polls* for a while:
it asks, without waiting, whether the run has anything to do (its epoll's file
descriptor is readable when any I/O the run waits for is ready, a thread handed
it work, or a signal came), and only sleeps once the poll time is over. An answer
that comes meanwhile is handled without the wake-up, at the price of the CPU time
spent polling. Between two polls the process yields its CPU to any other that is
ready to run there (``sched_yield``), so polling never holds back the peer it waits
for when both share a CPU.

How long
========
As Linux's guest halt-polling does for a virtual CPU, the poll time adapts to how
long the run's waits last. A wait that ends within the limit but after the poll
time grows it (from a quarter of the limit, doubling up to the limit): polling
longer would have caught it. A wait longer than the limit halves it: polling
would have been wasted. A wait that the run's own deadline ends (a timer) changes
nothing, so that a process whose timers fire often does not poll for them. A
process whose peers answer quickly polls; a process that waits longer than the
limit, or whose traffic is sparse, stops polling after a few waits and costs nothing
more.

Polling needs the run's epoll, which trio does not make public: where it cannot be
found (not Linux, or a trio whose internals differ), runs sleep at once; a test
checks that it is found here.
"""

from __future__ import annotations

import os
import select
import sys
import time
from typing import Any, Final

import trio

__all__ = ["DEFAULT_BUSY_POLL", "IdlePoller", "check_busy_poll"]

DEFAULT_BUSY_POLL: Final = 0.0005
"""500 µs: longer than an ask's round trip between two processes on one machine."""


def check_busy_poll(instance: object, attribute: object, seconds: float) -> None:
    """Refuse a ``busy_poll`` setting that is not a time from 0 to 1 second (an attrs
    validator, for every settings class that has one)."""
    if not 0 <= seconds <= 1:
        raise ValueError(
            f"busy_poll must be from 0 to 1 second, not {seconds!r}: "
            "it is the most time a process polls before it sleeps (0 never polls)"
        )


def _run_io_fd() -> int | None:
    """The file descriptor of the current trio run's epoll, or ``None``.

    It is readable whenever the run has I/O to handle: every file descriptor a task
    waits for is registered in it, and so are the sockets by which other threads
    and signal handlers wake the run.
    """
    if sys.platform != "linux":
        return None
    context: Any = getattr(getattr(trio, "_core", None), "_run", None)
    runner = getattr(getattr(context, "GLOBAL_RUN_CONTEXT", None), "runner", None)
    epoll = getattr(getattr(runner, "io_manager", None), "_epoll", None)
    if not isinstance(epoll, select.epoll):
        return None
    return epoll.fileno()


class IdlePoller:
    """One trio run's polling before it sleeps (see the module's docstring).

    Owners (connections) :meth:`hold` a limit while they are open; the run polls
    up to the largest limit held, and not at all when none is. The owner of the run's
    instrument calls :meth:`before_io_wait` and :meth:`after_io_wait` from its
    hooks of the same names.
    """

    GROW = 2.0
    SHRINK = 2.0
    START = 0.25  # of the limit: the first poll time after a short wait

    def __init__(self, clock: Any = time.perf_counter) -> None:
        self._clock = clock
        self._limits: dict[object, float] = {}
        self.limit = 0.0
        """The largest limit held, in seconds."""
        self.budget = 0.0
        """How long the next wait polls before it sleeps, in seconds."""
        self.polled = 0
        """Waits that polled."""
        self.caught = 0
        """Waits that polling ended: the run had work before the poll time was over."""
        self._waiting_since: float | None = None
        self._timeout = 0.0  # of the current wait
        fd = _run_io_fd()
        self._poll: Any = None
        if fd is not None:
            self._poll = select.poll()
            self._poll.register(fd, select.POLLIN)

    @property
    def available(self) -> bool:
        """Whether this run can poll (it found the run's epoll)."""
        return self._poll is not None

    def hold(self, owner: object, limit: float) -> None:
        """Let the run poll up to ``limit`` seconds while ``owner`` is open."""
        if limit > 0 and self._poll is not None:
            self._limits[owner] = limit
            self._set_limit()

    def release(self, owner: object) -> None:
        if self._limits.pop(owner, None) is not None:
            self._set_limit()

    def _set_limit(self) -> None:
        self.limit = max(self._limits.values(), default=0.0)
        self.budget = min(self.budget, self.limit)

    def before_io_wait(self, timeout: float) -> None:
        """Poll for up to the poll time (never past ``timeout``, the run's next deadline)."""
        if timeout <= 0 or not self.limit:
            return
        clock = self._clock
        now = self._waiting_since = clock()
        self._timeout = timeout
        budget = min(self.budget, timeout)
        if budget <= 0:
            return
        self.polled += 1
        end = now + budget
        poll = self._poll.poll
        yield_cpu = os.sched_yield
        while not poll(0):
            if clock() >= end:
                return
            yield_cpu()  # to any process this CPU could run instead: polling must not delay it
        self.caught += 1

    def after_io_wait(self) -> None:
        """Adapt the poll time to how long the wait that just ended took."""
        since = self._waiting_since
        if since is None:
            return
        self._waiting_since = None
        waited = self._clock() - since
        limit = self.limit
        if waited <= self.budget or waited >= self._timeout:
            return  # caught, or ended by the run's deadline: a timer, not a peer
        if waited <= limit:
            self.budget = min(limit, max(self.budget * self.GROW, limit * self.START))
        else:
            budget = self.budget / self.SHRINK
            self.budget = budget if budget >= limit * self.START / self.GROW else 0.0
