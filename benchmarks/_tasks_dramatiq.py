"""The Dramatiq app of the ``tasks`` suite: a RabbitMQ broker, Redis results, one no-op actor.

The benchmark process (the client) and the worker it starts (``dramatiq
benchmarks._tasks_dramatiq``) both import this module; the environment says which
queue and which Redis server a measurement uses.
"""

from __future__ import annotations

import os

import dramatiq
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.results import Results
from dramatiq.results.backends.redis import RedisBackend

QUEUE_ENV = "BENCH_DRAMATIQ_QUEUE"
REDIS_ENV = "BENCH_REDIS_URL"
BROKER_ENV = "BENCH_BROKER_URL"

QUEUE = os.environ.get(QUEUE_ENV, f"bench-dramatiq-{os.getpid()}")
"""The actor's queue; Dramatiq adds ``QUEUE.DQ`` (delays) and ``QUEUE.XQ`` (dead letters)."""

broker = RabbitmqBroker(url=os.environ.get(BROKER_ENV, "amqp://guest:guest@127.0.0.1:5672/%2F"))
backend = RedisBackend(url=os.environ.get(REDIS_ENV, "redis://127.0.0.1:6379/0"))  # type: ignore[no-untyped-call]
broker.add_middleware(Results(backend=backend))  # type: ignore[no-untyped-call]
dramatiq.set_broker(broker)


@dramatiq.actor(actor_name="bench_noop", queue_name=QUEUE, store_results=True, max_retries=0)
def noop() -> None:
    """Do nothing: what is measured is the way to the worker and back."""
