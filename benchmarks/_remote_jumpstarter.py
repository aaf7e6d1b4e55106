"""jumpstarter across two processes: the client measurements and the server.

The server (:func:`serve`) is an :class:`~jumpstarter.ActorSystem` listening on
127.0.0.1 with one actor, ``/user/sink``, that counts pings and answers asks with
its count. Each client function (:data:`SCENARIOS`) starts that server in its own
process, sends to the actor through ``system.ref("amqp://127.0.0.1:PORT/...")``
and returns its figures. :mod:`benchmarks._remote_reactor` does the same traffic
with proton's reactor.
"""

from __future__ import annotations

import functools
import signal
from collections.abc import Callable
from typing import Any

import trio

from jumpstarter import Actor, ActorRef, ActorSystem, RemoteSettings, handler

from ._common import WARMUP_TELLS, clock, latency_summary
from ._remote_common import (
    BROKER_URL,
    PREFETCH,
    SERVER_SYSTEM,
    SINK_PATH,
    Count,
    Ping,
    broker_reachable,
    delete_queue,
    new_queue,
    not_measured,
    rate,
    registry,
    server,
)

__all__ = ["PEER", "SCENARIOS", "serve"]

PEER = "jumpstarter-remote"
CLIENT_SYSTEM = "bench-client"

PUBLISHERS = 500
"""Tasks publishing to the broker at once: each ``publish`` waits for the broker's
outcome, so this is the number of messages in flight."""


class Sink(Actor):
    """Counts pings; answers a ping or a :class:`Count` with the count so far."""

    def __init__(self, target: int = 0, done: trio.Event | None = None) -> None:
        self.count = 0
        self.target = target
        self.done = done

    @handler
    def ping(self, msg: Ping) -> int:
        self.count += 1
        if self.count == self.target and self.done is not None:
            self.done.set()
        return self.count

    @handler
    def total(self, msg: Count) -> int:
        return self.count


# -- the server process --------------------------------------------------------------------


def settings(scenario: str) -> RemoteSettings:
    """The defaults, except in ``ask_sleeping``: no polling before sleeping
    (``busy_poll=0``), so that each process sleeps as soon as it waits, as the reactor's do."""
    return RemoteSettings(busy_poll=0) if scenario == "ask_sleeping" else RemoteSettings()


def serve(mode: str) -> None:
    """Listen on 127.0.0.1 (any port), print the port, serve until SIGTERM.

    How each message is settled is the sender's choice; ``mode`` only says whether
    the server polls before it sleeps (all but ``ask_sleeping``, see :func:`settings`).
    """

    async def main() -> None:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async with ActorSystem(
                SERVER_SYSTEM, listen="127.0.0.1:0", registry=registry, remote=settings(mode)
            ) as system:
                await system.spawn(Sink, name=SINK_PATH.rsplit("/", 1)[1])
                assert system.listen_address is not None
                print(system.listen_address[1], flush=True)
                async for _ in signals:
                    break

    trio.run(main)


# -- the client measurements ---------------------------------------------------------------


def _sink_address(port: int) -> str:
    return f"amqp://127.0.0.1:{port}/{SERVER_SYSTEM}{SINK_PATH}"


def _message_bytes(system: ActorSystem, address: str, after_handled: bool) -> int:
    """The size of one ping encoded on its own, in its envelope (for the record)."""
    return len(system._node.encode(Ping(0), address, None, after_handled))


def _batched(remote: ActorRef) -> bool | None:
    """Whether the link carried several tells per AMQP transfer (``None``: unknown).

    For the record only; it reads the runtime's internals, which may change.
    """
    try:
        cell: Any = remote._cell
        link = cell.peer.links.get(cell.target)
    except AttributeError:
        return None
    return bool(getattr(link, "batch_limit", 0)) if link is not None else None


def _tell(n: int, settle: Any) -> dict[str, Any]:
    async def main(port: int) -> dict[str, Any]:
        async with ActorSystem(CLIENT_SYSTEM, registry=registry) as system:
            address = _sink_address(port)
            remote = system.ref(address, settle=settle)
            for i in range(WARMUP_TELLS):
                await remote.tell(Ping(i))
            before = await remote.ask(Count())
            start = clock()
            for i in range(n):
                await remote.tell(Ping(i))
            sent = clock() - start
            count = await remote.ask(Count())
            elapsed = clock() - start
            if count != before + n:
                raise RuntimeError(f"the server counted {count - before} pings, expected {n}")
            figures = {
                "n": n,
                "seconds": elapsed / 1e9,
                "msgs_per_s": rate(n, elapsed),
                "sent_seconds": sent / 1e9,
                "wire_bytes": _message_bytes(system, address, settle == "after-handled"),
            }
            batched = _batched(remote)
            if batched is not None:
                figures["batched"] = batched
            return figures

    with server(PEER, "tell") as port:
        return trio.run(main, port)


def tell(n: int, warmup: int) -> dict[str, Any]:
    """``n`` tells to the server's actor, settled on arrival; timed until it counted them."""
    return _tell(n, "on-arrival")


def tell_handled(n: int, warmup: int) -> dict[str, Any]:
    """The same with ``settle="after-handled"``: each is settled once its handler returned."""
    return _tell(n, "after-handled")


def ask(n: int, warmup: int) -> dict[str, Any]:
    """``n`` sequential asks to the server's actor, each timed, after ``warmup`` asks."""
    return _ask(n, warmup, "ask")


def ask_sleeping(n: int, warmup: int) -> dict[str, Any]:
    """The same with neither process polling before it sleeps."""
    return _ask(n, warmup, "ask_sleeping")


def _ask(n: int, warmup: int, scenario: str) -> dict[str, Any]:
    async def main(port: int) -> dict[str, Any]:
        async with ActorSystem(
            CLIENT_SYSTEM, registry=registry, remote=settings(scenario)
        ) as system:
            remote = system.ref(_sink_address(port))
            for i in range(warmup):
                await remote.ask(Ping(i))
            samples = [0] * n
            for i in range(n):
                msg = Ping(i)
                start = clock()
                await remote.ask(msg)
                samples[i] = clock() - start
            count = await remote.ask(Count())
            if count != warmup + n:
                raise RuntimeError(f"the server counted {count} asks, expected {warmup + n}")
            return latency_summary(samples)

    with server(PEER, scenario) as port:
        return trio.run(main, port)


def broker(n: int, warmup: int) -> dict[str, Any]:
    """Publish ``n`` pings to a fresh RabbitMQ queue, then consume them, each timed."""
    try:
        from jumpstarter import open_broker
        from jumpstarter._amqp import Codec
    except ImportError:
        return not_measured(n, "no broker client (jumpstarter has no open_broker)")
    if not broker_reachable():
        return not_measured(n, f"no broker at {BROKER_URL.rsplit('@', 1)[1]}")

    async def main(address: str) -> dict[str, Any]:
        async with (
            ActorSystem(CLIENT_SYSTEM, registry=registry) as system,
            open_broker(BROKER_URL, codec=Codec(registry)) as connection,
        ):
            numbers = iter(range(n))

            async def publisher() -> None:
                for i in numbers:  # shared: each number is taken by one task
                    await connection.publish(address, Ping(i))

            start = clock()
            async with trio.open_nursery() as nursery:
                for _ in range(min(PUBLISHERS, n)):
                    nursery.start_soon(publisher)
            published = clock() - start

            done = trio.Event()
            sink: ActorRef = await system.spawn(Sink, n, done, name="sink")
            start = clock()
            async with trio.open_nursery() as nursery:
                consume = functools.partial(connection.consume, prefetch=PREFETCH)
                await nursery.start(consume, address, sink)
                await done.wait()
                consumed = clock() - start
                nursery.cancel_scope.cancel()
            count = await sink.ask(Count())
            if count != n:
                raise RuntimeError(f"the consumer handled {count} messages, expected {n}")
            return {
                "n": n,
                "publish_seconds": published / 1e9,
                "publish_msgs_per_s": rate(n, published),
                "consume_seconds": consumed / 1e9,
                "consume_msgs_per_s": rate(n, consumed),
                "publishers": PUBLISHERS,
                "prefetch": PREFETCH,
            }

    name, address = new_queue()
    try:
        return trio.run(main, address)
    finally:
        delete_queue(name)


SCENARIOS: dict[str, Callable[[int, int], dict[str, Any]]] = {
    "tell": tell,
    "tell_handled": tell_handled,
    "ask": ask,
    "ask_sleeping": ask_sleeping,
    "broker": broker,
}
