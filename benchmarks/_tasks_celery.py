"""The Celery 5 app of the ``tasks`` suite: one no-op task.

The benchmark process (the client) and the worker it starts (``celery -A
benchmarks._tasks_celery worker``) both import this module; the environment says
which queue and which Redis server a measurement uses, so that nothing collides
with other users of the shared RabbitMQ.
"""

from __future__ import annotations

import os

from celery import Celery
from kombu.entity import Exchange, Queue

QUEUE_ENV = "BENCH_CELERY_QUEUE"
REDIS_ENV = "BENCH_REDIS_URL"
BROKER_ENV = "BENCH_BROKER_URL"

QUEUE = os.environ.get(QUEUE_ENV, f"bench-celery-{os.getpid()}")
"""The one queue this measurement's calls go through (routed by the default exchange)."""

app = Celery(
    "bench-tasks",
    broker=os.environ.get(BROKER_ENV, "amqp://guest:guest@127.0.0.1:5672/%2F"),
    backend=os.environ.get(REDIS_ENV, "redis://127.0.0.1:6379/0"),
)
app.conf.update(
    task_queues=[Queue(QUEUE, Exchange(""), routing_key=QUEUE)],  # type: ignore[no-untyped-call]
    task_default_queue=QUEUE,
    task_default_exchange="",
    task_default_routing_key=QUEUE,
    # No broadcast or event exchanges and queues in the shared broker: the benchmark
    # uses neither remote control nor events.
    worker_enable_remote_control=False,
    worker_send_task_events=False,
    task_send_sent_event=False,
    broker_connection_retry_on_startup=False,
    worker_hijack_root_logger=False,
)


@app.task(name="bench.noop")  # type: ignore[untyped-decorator]
def noop() -> None:
    """Do nothing: what is measured is the way to the worker and back."""
