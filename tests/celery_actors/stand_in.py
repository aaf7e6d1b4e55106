"""Stand-ins for tests that drive a real worker, or a real router, by their protocol
messages."""

from __future__ import annotations

from collections.abc import Iterable

from celery_actors._protocol import WatchWorker, WorkerUp
from jumpstarter import Actor, ActorRef, PendingReply, handler


class StandInRouter(Actor):
    """Takes a worker's offer and its watch; subclasses handle what the worker tells
    about its runs (``TaskStarted``, ``RunEnded``)."""

    def __init__(self) -> None:
        self.watches: list[PendingReply] = []

    @handler
    def worker_up(self, msg: WorkerUp) -> bool:
        return True

    @handler
    def watch_worker(self, msg: WatchWorker) -> None:
        self.watches.append(self.reply_later())


class StandInWorker(Actor):
    """Offers ``tasks`` to ``router`` when it starts, and holds the router's watch;
    subclasses handle ``Run`` (and what else the router sends)."""

    def __init__(self, router: ActorRef, tasks: Iterable[str], capacity: int = 4) -> None:
        self.router = router
        self.tasks = sorted(tasks)
        self.capacity = capacity
        self.watchers: list[PendingReply] = []

    async def on_start(self) -> None:
        offer = WorkerUp(address=self.ref.address, capacity=self.capacity, tasks=self.tasks)
        await self.router.ask(offer)

    @handler
    def watched(self, msg: WatchWorker) -> None:
        self.watchers.append(self.reply_later())
