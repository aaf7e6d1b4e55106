"""Two AMQPConnection objects joined by an in-memory pipe, for tests."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import attrs
import proton

from jumpstarter._amqp import AMQPConnection, Event

E = TypeVar("E")

Chunker = Callable[[bytes], Iterable[bytes]]
"""Splits what one side wrote into the pieces the other side reads."""


def whole(data: bytes) -> Iterable[bytes]:
    """The pipe delivers each write in one piece."""
    return (data,)


def encode(body: Any) -> bytes:
    """An encoded AMQP message with ``body`` as its value section."""
    return proton.Message(body=body).encode()


def decode(data: bytes) -> Any:
    """The body of an encoded AMQP message, copied out of proton's memory."""
    message = proton.Message()
    message.decode(data)
    body = message.body
    return bytes(body) if isinstance(body, memoryview) else body


@attrs.define
class ConnectionPair:
    """A client and a server, with the bytes each writes fed to the other by :meth:`pump`.

    Events are drained into ``client_events`` / ``server_events`` while pumping (the
    connections only answer the peer's handshakes while their events are drained);
    :meth:`take` empties one of those lists.
    """

    client: AMQPConnection
    server: AMQPConnection
    chunker: Chunker = whole
    client_events: list[Event] = attrs.Factory(list)
    server_events: list[Event] = attrs.Factory(list)
    bytes_moved: int = 0

    @classmethod
    def new(cls, *, chunker: Chunker = whole, **options: Any) -> ConnectionPair:
        """A pair that has not exchanged anything yet; ``options`` go to both ends."""
        client_options = {"container_id": "client", "role": "client"} | options
        server_options = {"container_id": "server", "role": "server"} | options
        return cls(
            client=AMQPConnection(**client_options),
            server=AMQPConnection(**server_options),
            chunker=chunker,
        )

    @classmethod
    def opened(cls, *, chunker: Chunker = whole, **options: Any) -> ConnectionPair:
        """A pair whose connection is open on both ends, events already taken."""
        pair = cls.new(chunker=chunker, **options)
        pair.client.open()
        pair.server.open()
        pair.pump()
        pair.client_events.clear()
        pair.server_events.clear()
        return pair

    def pump(self, *, max_rounds: int = 10_000) -> None:
        """Move bytes both ways until neither side has anything to say."""
        for _ in range(max_rounds):
            moved = self._move(self.client, self.server, self.server_events)
            moved |= self._move(self.server, self.client, self.client_events)
            if not moved:  # both drained their events and had nothing to write
                return
        raise AssertionError("the pair never went quiet")

    def _move(self, writer: AMQPConnection, reader: AMQPConnection, events: list[Event]) -> bool:
        writer_events = self.client_events if writer is self.client else self.server_events
        seen = len(writer_events)
        self._drain(writer, writer_events)
        data = writer.data_to_send()
        self._drain(writer, writer_events)  # proton finds some errors only while writing
        if not data:
            return len(writer_events) != seen
        self.bytes_moved += len(data)
        for chunk in self.chunker(data):
            if chunk:
                reader.receive_data(chunk)
                self._drain(reader, events)
        return True

    @staticmethod
    def _drain(conn: AMQPConnection, events: list[Event]) -> None:
        while (event := conn.next_event()) is not None:
            events.append(event)

    def take(self, side: str) -> list[Event]:
        """Remove and return the events ``side`` (``"client"`` or ``"server"``) has seen."""
        events = self.client_events if side == "client" else self.server_events
        taken = list(events)
        events.clear()
        return taken


def only(events: list[Any], kind: type[E]) -> list[E]:
    """The events of one type, in order."""
    return [event for event in events if isinstance(event, kind)]
