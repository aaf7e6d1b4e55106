"""Property tests: how bytes are cut up never matters, and garbage never crashes."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator

import attrs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jumpstarter._amqp import (
    Accepted,
    AMQPConnection,
    DeliveryUpdated,
    Event,
    LinkRequested,
    MessageReceived,
    Outcome,
    Rejected,
    Released,
    TransportClosed,
)

from .pair import Chunker, ConnectionPair, decode, encode, only, whole

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@attrs.define
class Cutter:
    """Cuts the byte stream into pieces whose sizes repeat ``pattern``, across writes."""

    pattern: list[int]
    _sizes: Iterator[int] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._sizes = itertools.cycle(self.pattern)

    def __call__(self, data: bytes) -> Iterable[bytes]:
        start = 0
        while start < len(data):
            size = next(self._sizes)
            yield data[start : start + size]
            start += size


cut_patterns = st.lists(st.one_of(st.integers(1, 3), st.integers(1, 700)), min_size=1, max_size=6)


@attrs.frozen
class Outcomes:
    """What one run of the scenario delivered, in a form that does not depend on timing."""

    received: list[object]
    settled_flags: list[bool]
    updates: dict[int, Outcome | None]
    last_client_event: Event
    last_server_event: Event


def run_scenario(bodies: list[bytes], presettle: list[bool], chunker: Chunker) -> Outcomes:
    """Open, link, send every body, settle each, close; small frames so messages split."""
    pair = ConnectionPair.opened(chunker=chunker, max_frame_size=512)
    sender = pair.client.open_sender("inbox")
    pair.pump()
    (requested,) = only(pair.take("server"), LinkRequested)
    pair.server.accept_link(requested.link, credit=len(bodies))
    pair.pump()
    for body, settled in zip(bodies, presettle, strict=True):
        pair.client.send(sender, body, settled=settled)
    pair.pump()
    received = only(pair.take("server"), MessageReceived)
    outcomes: list[Outcome] = [Accepted(), Released(), Rejected()]
    for index, event in enumerate(received):
        if not event.settled:
            pair.server.settle(event.delivery, outcomes[index % 3])
    pair.pump()
    updates = {
        event.delivery.number: event.outcome
        for event in only(pair.take("client"), DeliveryUpdated)
        if event.settled
    }
    assert pair.client.statistics().unsettled_deliveries == 0
    assert pair.server.statistics().unsettled_deliveries == 0
    pair.client.close()
    pair.pump()
    return Outcomes(
        received=[decode(event.body) for event in received],
        settled_flags=[event.settled for event in received],
        updates=updates,
        last_client_event=pair.take("client")[-1],
        last_server_event=pair.take("server")[-1],
    )


@FUZZ
@given(
    values=st.lists(
        st.one_of(st.binary(max_size=3000), st.text(max_size=50), st.integers(-(2**63), 2**63 - 1)),
        min_size=1,
        max_size=8,
    ),
    data=st.data(),
    pattern=cut_patterns,
)
def test_random_fragmentation_of_the_byte_stream_never_changes_what_arrives(
    values: list[object], data: st.DataObject, pattern: list[int]
) -> None:
    presettle = data.draw(st.lists(st.booleans(), min_size=len(values), max_size=len(values)))
    bodies = [encode(value) for value in values]
    expected = run_scenario(bodies, presettle, whole)
    assert expected.received == values
    assert expected.settled_flags == presettle
    assert len(expected.updates) == presettle.count(False)
    assert expected.last_client_event == TransportClosed(error=None)
    assert run_scenario(bodies, presettle, Cutter(pattern)) == expected


def drain(conn: AMQPConnection) -> list[Event]:
    events: list[Event] = []
    for _ in range(1000):
        event = conn.next_event()
        if event is None:
            return events
        events.append(event)
    raise AssertionError("events never end")


def feed_and_hang_up(conn: AMQPConnection, data: bytes, pattern: list[int]) -> list[Event]:
    """Feed ``data`` in pieces, answering as a driver would, then EOF; return the events."""
    events: list[Event] = []
    for chunk in Cutter(pattern)(data):
        conn.receive_data(chunk)
        events += drain(conn)
        conn.data_to_send()
        events += drain(conn)
    conn.receive_data(b"")
    events += drain(conn)
    conn.data_to_send()
    events += drain(conn)
    return events


def assert_ends_in_an_error(events: list[Event]) -> None:
    closed = only(events, TransportClosed)
    assert len(closed) == 1
    assert events[-1] is closed[0]
    assert closed[0].error is not None


AMQP_HEADER = b"AMQP\x00\x01\x00\x00"
SASL_HEADER = b"AMQP\x03\x01\x00\x00"


def a_client_hello() -> bytes:
    """What a real client says first: header and open frame (then link frames)."""
    client = AMQPConnection(container_id="c", role="client")
    client.open()
    client.open_sender("inbox")
    return client.data_to_send()


@FUZZ
@given(garbage=st.binary(min_size=1, max_size=300), pattern=cut_patterns)
def test_random_garbage_ends_in_transport_closed_with_an_error(
    garbage: bytes, pattern: list[int]
) -> None:
    server = AMQPConnection(container_id="s", role="server")
    server.open()
    assert_ends_in_an_error(feed_and_hang_up(server, garbage, pattern))


@FUZZ
@given(
    prefix=st.sampled_from(["amqp", "sasl", "hello", "half-hello"]),
    garbage=st.binary(min_size=1, max_size=300),
    pattern=cut_patterns,
    role=st.sampled_from(["client", "server"]),
)
def test_a_valid_start_then_garbage_ends_in_transport_closed_with_an_error(
    prefix: str, garbage: bytes, pattern: list[int], role: str
) -> None:
    hello = a_client_hello()
    start = {
        "amqp": AMQP_HEADER,
        "sasl": SASL_HEADER,
        "hello": hello,
        "half-hello": hello[: len(hello) // 2],
    }[prefix]
    conn = AMQPConnection(container_id="x", role="server" if role == "server" else "client")
    conn.open()
    conn.data_to_send()
    assert_ends_in_an_error(feed_and_hang_up(conn, start + garbage, pattern))


@FUZZ
@given(position=st.integers(0, 10_000), flip=st.integers(1, 255))
def test_a_corrupted_byte_in_a_real_conversation_never_raises(position: int, flip: int) -> None:
    pair = ConnectionPair.opened()
    sender = pair.client.open_sender("inbox")
    pair.pump()
    (requested,) = only(pair.take("server"), LinkRequested)
    pair.server.accept_link(requested.link, credit=10)
    pair.pump()
    for n in range(5):
        pair.client.send(sender, encode(n * 100), settled=n % 2 == 0)
    data = bytearray(pair.client.data_to_send())
    data[position % len(data)] ^= flip
    events = feed_and_hang_up(pair.server, bytes(data), [len(data)])
    closed = only(events, TransportClosed)
    assert len(closed) == 1
    assert events[-1] is closed[0]
