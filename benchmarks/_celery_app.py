"""The Celery 5 app of a measurement, as the ``tasks`` and ``canvas`` suites make it.

The benchmark process (the client) and the worker it starts (``celery -A MODULE
worker``) both import the suite's module, which makes its app here; the environment
says which queue and which Redis server a measurement uses, so that nothing collides
with other users of the shared RabbitMQ.
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery
from kombu.entity import Exchange, Queue

__all__ = ["BROKER_ENV", "QUEUE_ENV", "REDIS_ENV", "make_celery"]

QUEUE_ENV = "BENCH_CELERY_QUEUE"
REDIS_ENV = "BENCH_REDIS_URL"
BROKER_ENV = "BENCH_BROKER_URL"


def make_celery(name: str, default_queue: str, **settings: Any) -> tuple[Celery, str]:
    """A Celery app whose calls go through one queue (``$BENCH_CELERY_QUEUE``, else
    ``default_queue``, routed by the default exchange), with Celery's defaults but
    these ``settings``; return it with the queue's name."""
    queue = os.environ.get(QUEUE_ENV, default_queue)
    app = Celery(
        name,
        broker=os.environ.get(BROKER_ENV, "amqp://guest:guest@127.0.0.1:5672/%2F"),
        backend=os.environ.get(REDIS_ENV, "redis://127.0.0.1:6379/0"),
    )
    app.conf.update(
        task_queues=[Queue(queue, Exchange(""), routing_key=queue)],  # type: ignore[no-untyped-call]
        task_default_queue=queue,
        task_default_exchange="",
        task_default_routing_key=queue,
        # No broadcast or event exchanges and queues in the shared broker: the
        # benchmarks use neither remote control nor events.
        worker_enable_remote_control=False,
        worker_send_task_events=False,
        task_send_sent_event=False,
        broker_connection_retry_on_startup=False,
        worker_hijack_root_logger=False,
        **settings,
    )
    return app, queue
