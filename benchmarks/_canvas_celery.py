"""The Celery 5 app of the ``canvas`` suite: the same three tasks as
:mod:`benchmarks._canvas_app`.

The benchmark process (the client) and the worker it starts (``celery -A
benchmarks._canvas_celery worker``) both import this module; the environment says
which queue and which Redis server a measurement uses, so that nothing collides with
other users of the shared RabbitMQ.
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery
from kombu.entity import Exchange, Queue

QUEUE_ENV = "BENCH_CELERY_QUEUE"
REDIS_ENV = "BENCH_REDIS_URL"
BROKER_ENV = "BENCH_BROKER_URL"

QUEUE = os.environ.get(QUEUE_ENV, f"bench-canvas-celery-{os.getpid()}")
"""The one queue this measurement's calls go through (routed by the default exchange)."""

app = Celery(
    "bench-canvas",
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
    # A chord's body may wait this long for its header's results to be joined.
    result_chord_join_timeout=600.0,
)


@app.task(name="bench.canvas.noop")  # type: ignore[untyped-decorator]
def noop() -> None:
    """Do nothing: a chord's header member."""


@app.task(name="bench.canvas.count")  # type: ignore[untyped-decorator]
def count(results: list[Any]) -> int:
    """A chord's body: how many header results it got."""
    return len(results)


@app.task(name="bench.canvas.inc")  # type: ignore[untyped-decorator]
def inc(n: int) -> int:
    """A chain's step: the result of the step before, plus one."""
    return n + 1
