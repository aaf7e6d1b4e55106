"""A client's collector: fetches the results of its calls from the router, many at once.

Waiting for each result with its own ask would cost two messages per call, sent one by
one. Instead, a client tells the router which calls it waits for (:class:`Expect`,
tells that travel in batches) and keeps one ask open (:class:`Collect`), which the
router answers with every result that has become final since: under load, one answer
carries many results.
"""

from __future__ import annotations

import logging
import uuid

import trio

from jumpstarter import Actor, ActorRef, JumpstarterError, MailboxFull, PendingReply, handler

from ._clock import FOREVER, RECONNECT
from ._protocol import AwaitResult, Collect, Expect, TaskResult

__all__ = ["ResultCollector"]

_logger = logging.getLogger("celery_actors.client")


class ResultCollector(Actor):
    """Answers a client's :class:`AwaitResult` asks with results collected from
    ``router`` (see the module docstring)."""

    def __init__(self, router: ActorRef) -> None:
        self.router = router
        self.client = uuid.uuid4().hex
        self.waiting: dict[str, list[PendingReply]] = {}
        self.wanted = trio.Event()  # set while someone waits

    def on_start(self) -> None:
        self.start_task(self._collect)

    @handler
    def await_result(self, msg: AwaitResult) -> None:
        waiters = self.waiting.get(msg.id)
        if waiters is None:
            waiters = self.waiting[msg.id] = []
            self._tell(Expect(self.client, [msg.id]))
        waiters.append(self.reply_later())
        self.wanted.set()

    def _tell(self, message: Expect) -> None:
        try:
            self.router.tell_nowait(message)
        except MailboxFull:
            self.start_task(self.router.tell, message)

    async def _collect(self) -> None:
        failures = 0
        while True:
            await self.wanted.wait()
            try:
                results: list[TaskResult] = await self.router.ask(
                    Collect(self.client), timeout=FOREVER
                )
            except (JumpstarterError, OSError) as exc:
                # The router is gone: those waiting learn it now; a later wait tells
                # the router (maybe restarted) again what it expects.
                waiting, self.waiting = self.waiting, {}
                for waiters in waiting.values():
                    for pending in waiters:
                        pending.fail(exc)
                self.wanted = trio.Event()
                await trio.sleep(RECONNECT.delay(failures))
                failures += 1
                continue
            failures = 0
            for result in results:
                for pending in self.waiting.pop(result.id, ()):
                    pending.succeed(result)
            if not self.waiting:
                self.wanted = trio.Event()
