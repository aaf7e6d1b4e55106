"""A stand-in router for tests that drive a real worker by its protocol messages."""

from __future__ import annotations

from celery_actors._protocol import WatchWorker, WorkerUp
from jumpstarter import Actor, PendingReply, handler


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
