"""The sans-IO AMQP connection, driven through an in-memory pipe (no sockets, no trio)."""

from __future__ import annotations

import ast
import pathlib
import sys

import proton
import pytest

import jumpstarter._amqp as amqp
from jumpstarter._amqp import (
    Accepted,
    AMQPConnection,
    ConnectionClosed,
    ConnectionOpened,
    CreditAvailable,
    DeliveryId,
    DeliveryUpdated,
    ErrorCondition,
    LinkClosed,
    LinkId,
    LinkOpened,
    LinkRequested,
    LocalProtocolError,
    MessageReceived,
    Modified,
    Outcome,
    ProtocolError,
    Rejected,
    Released,
    RemoteProtocolError,
    TransportClosed,
)

from .pair import ConnectionPair, decode, encode, only

NOT_FOUND = ErrorCondition(name="amqp:not-found", description="no such node")


def link_pair(
    pair: ConnectionPair, *, credit: int = 0, presettled: bool = False
) -> tuple[LinkId, LinkId]:
    """A link from the client (sender) to the server (receiver), accepted; events taken."""
    sender = pair.client.open_sender("inbox", presettled=presettled)
    pair.pump()
    (requested,) = only(pair.take("server"), LinkRequested)
    pair.server.accept_link(requested.link, credit=credit)
    pair.pump()
    pair.take("client")
    return sender, requested.link


# ---------------------------------------------------------------------- connection


def test_both_ends_see_the_peer_open_the_connection() -> None:
    pair = ConnectionPair.new()
    pair.server.open()  # a server may open before the client has said anything
    pair.client.open()
    pair.pump()
    assert pair.take("client") == [ConnectionOpened(remote_container_id="server")]
    assert pair.take("server") == [ConnectionOpened(remote_container_id="client")]


def test_a_clean_close_ends_with_connection_and_transport_closed_on_both_ends() -> None:
    pair = ConnectionPair.opened()
    pair.client.close()
    pair.pump()
    expected = [ConnectionClosed(error=None), TransportClosed(error=None)]
    assert pair.take("client") == expected
    assert pair.take("server") == expected
    assert pair.client.data_to_send() == b""
    assert pair.client.tick(100.0) is None


def test_closing_with_an_error_tells_the_peer_why() -> None:
    pair = ConnectionPair.opened()
    pair.server.close(ErrorCondition(name="amqp:internal-error", description="shutting down"))
    pair.pump()
    client_events = pair.take("client")
    assert client_events[0] == ConnectionClosed(
        error=ErrorCondition(name="amqp:internal-error", description="shutting down")
    )
    assert client_events[-1] == TransportClosed(error=None)


def test_closing_twice_does_nothing_more() -> None:
    pair = ConnectionPair.opened()
    pair.client.close()
    pair.client.close()
    pair.pump()
    pair.client.close()
    assert only(pair.take("server"), ConnectionClosed) == [ConnectionClosed(error=None)]


def test_commands_after_the_peer_closed_raise_local_protocol_error() -> None:
    pair = ConnectionPair.opened()
    pair.server.close()
    pair.pump()
    with pytest.raises(LocalProtocolError, match="closed"):
        pair.client.open_sender("inbox")


def test_links_need_an_open_connection() -> None:
    conn = AMQPConnection(container_id="a", role="client")
    with pytest.raises(LocalProtocolError, match="open"):
        conn.open_sender("inbox")
    conn.open()
    with pytest.raises(LocalProtocolError, match="already open"):
        conn.open()


def test_bad_options_are_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="role"):
        AMQPConnection(container_id="a", role="peer")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="PLAIN"):
        AMQPConnection(container_id="a", role="server", sasl=("plain", "u", "p"))
    with pytest.raises(ValueError, match="sasl"):
        AMQPConnection(container_id="a", role="client", sasl="kerberos")  # type: ignore[arg-type]


def test_protocol_error_is_abstract() -> None:
    with pytest.raises(TypeError):
        ProtocolError("x")
    assert issubclass(LocalProtocolError, ProtocolError)
    assert issubclass(RemoteProtocolError, ProtocolError)


@pytest.mark.parametrize(
    ("client_sasl", "server_sasl"),
    [("anonymous", "anonymous"), ("anonymous", None), (None, "anonymous")],
)
def test_sasl_anonymous_opens_the_connection(
    client_sasl: amqp.SASLConfig, server_sasl: amqp.SASLConfig
) -> None:
    pair = ConnectionPair(
        client=AMQPConnection(container_id="client", role="client", sasl=client_sasl),
        server=AMQPConnection(container_id="server", role="server", sasl=server_sasl),
    )
    pair.client.open()
    pair.server.open()
    pair.pump()
    assert pair.take("client") == [ConnectionOpened(remote_container_id="server")]


def test_sasl_plain_refused_by_the_server_closes_the_transport_with_the_reason() -> None:
    pair = ConnectionPair(
        client=AMQPConnection(container_id="client", role="client", sasl=("plain", "u", "pw")),
        server=AMQPConnection(container_id="server", role="server", sasl="anonymous"),
    )
    pair.client.open()
    pair.server.open()
    pair.pump()
    (closed,) = only(pair.take("client"), TransportClosed)
    assert closed.error is not None
    assert "unauthorized-access" in closed.error


def test_data_to_send_respects_max_bytes() -> None:
    conn = AMQPConnection(container_id="a", role="client", hostname="example.org")
    conn.open()
    first = conn.data_to_send(max_bytes=5)
    rest = conn.data_to_send()
    assert len(first) == 5
    assert first.startswith(b"AMQP")
    assert len(rest) > 0
    assert conn.data_to_send(max_bytes=0) == b""


# ---------------------------------------------------------------------- links


def test_a_sender_opened_by_the_client_is_requested_then_opened_when_the_server_accepts() -> None:
    pair = ConnectionPair.opened()
    sender = pair.client.open_sender("inbox")
    pair.pump()
    assert pair.take("client") == []
    events = pair.take("server")
    (requested,) = only(events, LinkRequested)
    assert events == [
        LinkRequested(link=requested.link, role="receiver", address="inbox", name="client-0")
    ]
    pair.server.accept_link(requested.link, credit=3)
    pair.pump()
    assert pair.take("client") == [
        LinkOpened(link=sender, address="inbox"),
        CreditAvailable(link=sender, credit=3),
    ]
    assert pair.client.link_credit(sender) == 3


def test_a_receiver_opened_by_the_client_gets_messages_from_the_server() -> None:
    pair = ConnectionPair.opened()
    receiver = pair.client.open_receiver("events", name="my-feed", credit=2)
    pair.pump()
    events = pair.take("server")
    (requested,) = only(events, LinkRequested)
    assert events == [
        LinkRequested(link=requested.link, role="sender", address="events", name="my-feed")
    ]
    pair.server.accept_link(requested.link)
    pair.pump()
    # the client granted credit before the server accepted: it is reported on accept
    assert pair.take("server") == [CreditAvailable(link=requested.link, credit=2)]
    assert pair.take("client") == [LinkOpened(link=receiver, address="events")]
    pair.server.send(requested.link, encode("hello"))
    pair.pump()
    (received,) = pair.take("client")
    assert isinstance(received, MessageReceived)
    assert received.link == receiver
    assert decode(received.body) == "hello"


def test_granting_credit_reaches_the_sender_as_credit_available() -> None:
    pair = ConnectionPair.opened()
    sender, receiver = link_pair(pair)
    assert pair.client.link_credit(sender) == 0
    pair.server.grant_credit(receiver, 4)
    pair.pump()
    assert pair.take("client") == [CreditAvailable(link=sender, credit=4)]
    pair.server.grant_credit(receiver, 1)
    pair.pump()
    assert pair.take("client") == [CreditAvailable(link=sender, credit=5)]


def test_a_refused_link_closes_with_the_reason_and_never_opens() -> None:
    pair = ConnectionPair.opened()
    sender = pair.client.open_sender("nowhere")
    pair.pump()
    (requested,) = pair.take("server")
    assert isinstance(requested, LinkRequested)
    pair.server.refuse_link(requested.link, NOT_FOUND)
    pair.pump()
    assert pair.take("client") == [LinkClosed(link=sender, error=NOT_FOUND)]
    assert pair.take("server") == [LinkClosed(link=requested.link, error=None)]
    with pytest.raises(LocalProtocolError, match="closed"):
        pair.client.send(sender, encode("x"))


def test_a_refused_receiver_closes_with_the_reason() -> None:
    pair = ConnectionPair.opened()
    receiver = pair.client.open_receiver("nowhere", credit=10)
    pair.pump()
    (requested,) = only(pair.take("server"), LinkRequested)
    pair.server.refuse_link(requested.link, NOT_FOUND)
    pair.pump()
    assert pair.take("client") == [LinkClosed(link=receiver, error=NOT_FOUND)]


def test_closing_a_link_closes_it_on_both_ends() -> None:
    pair = ConnectionPair.opened()
    sender, receiver = link_pair(pair, credit=1)
    pair.server.close_link(receiver, ErrorCondition(name="amqp:link:detach-forced"))
    pair.pump()
    assert pair.take("client") == [
        LinkClosed(link=sender, error=ErrorCondition(name="amqp:link:detach-forced"))
    ]
    assert pair.take("server") == [LinkClosed(link=receiver, error=None)]
    assert pair.client.statistics().links == 0
    assert pair.server.statistics().links == 0
    with pytest.raises(LocalProtocolError, match="closed"):
        pair.server.close_link(receiver)


def test_a_peer_that_detaches_without_closing_ends_the_link_too() -> None:
    pair = ConnectionPair.opened()
    sender, receiver = link_pair(pair, credit=1)
    pair.client._links[sender].pn.detach()  # our API always closes; play a peer that detaches
    pair.pump()
    assert pair.take("server") == [LinkClosed(link=receiver, error=None)]
    assert pair.take("client") == [LinkClosed(link=sender, error=None)]


def test_a_peer_that_ends_the_session_closes_its_links() -> None:
    pair = ConnectionPair.opened()
    sender, receiver = link_pair(pair, credit=1)
    session = pair.client._session
    assert session is not None
    session.close()  # our API never ends sessions; play a peer that does
    pair.pump()
    assert pair.take("server") == [LinkClosed(link=receiver, error=None)]
    assert pair.take("client") == [LinkClosed(link=sender, error=None)]
    # a new link gets a new session
    again = pair.client.open_sender("inbox")
    pair.pump()
    (requested,) = only(pair.take("server"), LinkRequested)
    pair.server.accept_link(requested.link, credit=1)
    pair.pump()
    assert pair.take("client") == [
        LinkOpened(link=again, address="inbox"),
        CreditAvailable(link=again, credit=1),
    ]


def test_the_server_can_open_links_to_the_client_too() -> None:
    pair = ConnectionPair.opened()
    sender = pair.server.open_sender("client-inbox")
    pair.pump()
    (requested,) = pair.take("client")
    assert isinstance(requested, LinkRequested)
    assert requested.role == "receiver"
    pair.client.accept_link(requested.link, credit=1)
    pair.pump()
    assert pair.take("server") == [
        LinkOpened(link=sender, address="client-inbox"),
        CreditAvailable(link=sender, credit=1),
    ]


def test_link_commands_check_the_link() -> None:
    pair = ConnectionPair.opened()
    sender, receiver = link_pair(pair, credit=1)
    with pytest.raises(LocalProtocolError, match="unknown"):
        pair.client.send(LinkId(99), encode("x"))
    with pytest.raises(LocalProtocolError, match="receives"):
        pair.server.send(receiver, encode("x"))
    with pytest.raises(LocalProtocolError, match="only a receiving link"):
        pair.client.grant_credit(sender, 1)
    with pytest.raises(LocalProtocolError, match=">= 0"):
        pair.server.grant_credit(receiver, -1)
    with pytest.raises(LocalProtocolError, match="not requested"):
        pair.server.accept_link(receiver)
    with pytest.raises(LocalProtocolError, match="not requested"):
        pair.client.refuse_link(sender, NOT_FOUND)
    pair.client.close_link(sender)
    with pytest.raises(LocalProtocolError, match="already closing"):
        pair.client.close_link(sender)
    with pytest.raises(LocalProtocolError, match="closing, not open"):
        pair.client.send(sender, encode("x"))


def test_a_link_not_yet_attached_by_the_peer_cannot_send() -> None:
    pair = ConnectionPair.opened()
    sender = pair.client.open_sender("inbox")
    with pytest.raises(LocalProtocolError, match="opening, not open"):
        pair.client.send(sender, encode("x"))


# ---------------------------------------------------------------------- messages


def test_messages_sent_with_credit_arrive_in_order_with_their_bytes_intact() -> None:
    pair = ConnectionPair.opened()
    sender, receiver = link_pair(pair, credit=10)
    bodies = [encode(value) for value in ("a", b"\x00\xff" * 50, 42, {"k": [1, 2.5]}, "")]
    deliveries = [pair.client.send(sender, body) for body in bodies]
    assert deliveries == [DeliveryId(sender, n) for n in range(5)]
    pair.pump()
    received = only(pair.take("server"), MessageReceived)
    assert [event.body for event in received] == bodies
    assert [decode(event.body) for event in received] == [
        "a",
        b"\x00\xff" * 50,
        42,
        {"k": [1, 2.5]},
        "",
    ]
    assert all(type(event.body) is bytes for event in received)
    assert {event.link for event in received} == {receiver}


def test_sending_without_credit_raises_local_protocol_error() -> None:
    pair = ConnectionPair.opened()
    sender, _ = link_pair(pair, credit=2)
    pair.client.send(sender, encode(1))
    pair.client.send(sender, encode(2))
    assert pair.client.link_credit(sender) == 0
    with pytest.raises(LocalProtocolError, match="no credit"):
        pair.client.send(sender, encode(3))


def test_credit_is_used_up_by_received_messages_and_can_be_renewed() -> None:
    pair = ConnectionPair.opened()
    sender, receiver = link_pair(pair, credit=1)
    pair.client.send(sender, encode(1), settled=True)
    pair.pump()
    assert len(only(pair.take("server"), MessageReceived)) == 1
    pair.server.grant_credit(receiver, 1)
    pair.pump()
    assert pair.take("client") == [CreditAvailable(link=sender, credit=1)]
    pair.client.send(sender, encode(2), settled=True)
    pair.pump()
    assert len(only(pair.take("server"), MessageReceived)) == 1


def test_the_receiver_counts_the_credit_used_by_a_delivery_still_arriving() -> None:
    pair = ConnectionPair.opened()
    sender, receiver = link_pair(pair, credit=3)
    assert pair.server.link_credit(receiver) == 3
    # the public API sends whole messages; reach into proton for one cut short
    pn_sender = pair.client._links[sender].pn
    pn_sender.delivery(b"partial")  # type: ignore[arg-type]
    pn_sender.stream(b"\x00Sw\xa1\x05parti")
    pair.pump()
    assert pair.take("server") == []
    assert pair.server.link_credit(receiver) == 2
    pn_sender.stream(b"al")
    pn_sender.advance()
    pair.client.send(sender, encode("next"))
    pair.pump()
    assert len(only(pair.take("server"), MessageReceived)) == 2
    assert pair.server.link_credit(receiver) == 1


@pytest.mark.parametrize(
    "outcome",
    [
        Accepted(),
        Rejected(),
        Rejected(error=ErrorCondition(name="app:bad-message", description="no handler")),
        Released(),
        Modified(),
        Modified(delivery_failed=True, undeliverable_here=True),
    ],
)
def test_the_receivers_outcome_reaches_the_sender_and_settles_both_ends(outcome: Outcome) -> None:
    pair = ConnectionPair.opened()
    sender, _ = link_pair(pair, credit=1)
    delivery = pair.client.send(sender, encode("work"))
    pair.pump()
    (received,) = pair.take("server")
    assert isinstance(received, MessageReceived)
    assert received.settled is False
    assert pair.server.statistics().unsettled_deliveries == 1
    assert pair.client.statistics().unsettled_deliveries == 1
    pair.server.settle(received.delivery, outcome)
    pair.pump()
    assert pair.take("client") == [
        DeliveryUpdated(link=sender, delivery=delivery, outcome=outcome, settled=True)
    ]
    assert pair.server.statistics().unsettled_deliveries == 0
    assert pair.client.statistics().unsettled_deliveries == 0


def test_presettled_messages_are_settled_on_both_ends_at_once() -> None:
    pair = ConnectionPair.opened()
    sender, _ = link_pair(pair, credit=3, presettled=True)
    pair.client.send(sender, encode(1))  # the link makes it pre-settled
    pair.client.send(sender, encode(2), settled=True)
    pair.pump()
    received = only(pair.take("server"), MessageReceived)
    assert [event.settled for event in received] == [True, True]
    assert pair.take("client") == []
    assert pair.client.statistics().unsettled_deliveries == 0
    assert pair.server.statistics().unsettled_deliveries == 0
    with pytest.raises(LocalProtocolError, match="not unsettled"):
        pair.server.settle(received[0].delivery, Accepted())


def test_a_message_settled_by_the_sender_alone_is_reported_settled() -> None:
    pair = ConnectionPair.opened()
    sender, _ = link_pair(pair, credit=1)
    pair.client.send(sender, encode(1), settled=True)
    pair.pump()
    (received,) = pair.take("server")
    assert isinstance(received, MessageReceived)
    assert received.settled is True


def test_settling_twice_or_an_unknown_delivery_raises() -> None:
    pair = ConnectionPair.opened()
    sender, _ = link_pair(pair, credit=1)
    pair.client.send(sender, encode(1))
    pair.pump()
    (received,) = pair.take("server")
    assert isinstance(received, MessageReceived)
    pair.server.settle(received.delivery, Accepted())
    with pytest.raises(LocalProtocolError, match="not unsettled"):
        pair.server.settle(received.delivery, Accepted())
    with pytest.raises(LocalProtocolError, match="unknown"):
        pair.server.settle(DeliveryId(LinkId(42), 0), Accepted())


def test_settling_after_the_link_closed_does_nothing() -> None:
    pair = ConnectionPair.opened()
    sender, _ = link_pair(pair, credit=1)
    pair.client.send(sender, encode(1))
    pair.pump()
    (received,) = pair.take("server")
    assert isinstance(received, MessageReceived)
    pair.client.close_link(sender)
    pair.pump()
    assert pair.take("server") == [LinkClosed(link=received.link, error=None)]
    assert pair.server.statistics() == amqp.ConnectionStatistics(links=0, unsettled_deliveries=0)
    pair.server.settle(received.delivery, Accepted())  # no error, no effect


def test_a_sender_may_settle_its_own_delivery_to_give_up_on_it() -> None:
    pair = ConnectionPair.opened()
    sender, _ = link_pair(pair, credit=1)
    delivery = pair.client.send(sender, encode(1))
    pair.client.settle(delivery, Released())
    pair.pump()
    (received,) = pair.take("server")
    assert isinstance(received, MessageReceived)
    assert received.settled is True
    assert pair.client.statistics().unsettled_deliveries == 0
    assert pair.server.statistics().unsettled_deliveries == 0


def test_a_large_message_arriving_in_many_frames_is_reassembled() -> None:
    pair = ConnectionPair.opened(
        chunker=lambda data: [data[i : i + 4096] for i in range(0, len(data), 4096)]
    )
    sender, _ = link_pair(pair, credit=2)
    big = bytes(range(256)) * 4096  # 1 MiB
    pair.client.send(sender, encode(big))
    pair.client.send(sender, encode("after"))
    pair.pump()
    received = only(pair.take("server"), MessageReceived)
    assert [decode(event.body) for event in received] == [big, "after"]
    assert pair.bytes_moved > len(big)


def test_an_aborted_delivery_is_dropped_and_the_next_one_arrives() -> None:
    pair = ConnectionPair.opened()
    sender, receiver = link_pair(pair, credit=2)
    # the public API never aborts; reach into proton to play a sender that does
    pn_sender = pair.client._links[sender].pn
    delivery = pn_sender.delivery(b"aborted")  # type: ignore[arg-type]
    pn_sender.stream(b"\x00Sw\xa1\x05parti")
    pair.pump()
    assert pair.take("server") == []
    delivery.abort()
    pair.pump()
    assert pair.take("server") == []
    assert pair.server.statistics().unsettled_deliveries == 0
    pair.client.send(sender, encode("next"), settled=True)
    pair.pump()
    (received,) = pair.take("server")
    assert isinstance(received, MessageReceived)
    assert received.link == receiver
    assert decode(received.body) == "next"


# ---------------------------------------------------------------------- heartbeats and EOF


def test_tick_has_no_deadline_without_an_idle_timeout() -> None:
    pair = ConnectionPair.opened()
    assert pair.client.tick(10.0) is None
    assert pair.server.tick(10.0) is None


def test_peers_that_keep_ticking_stay_connected_through_idle_time() -> None:
    pair = ConnectionPair.opened(idle_timeout=1.0)
    now = 1000.0
    for _ in range(40):  # 10 idle seconds, far past the timeout
        for conn in (pair.client, pair.server):
            deadline = conn.tick(now)
            assert deadline is not None
            assert now < deadline <= now + 1.0
        pair.pump()
        now += 0.25
    assert pair.take("client") == []
    assert pair.take("server") == []


def test_an_idle_peer_that_stops_ticking_is_dropped_with_a_clear_error() -> None:
    pair = ConnectionPair.opened(idle_timeout=1.0)
    now = 1000.0
    deadline = pair.client.tick(now)
    pair.server.tick(now)
    while deadline is not None and now < 1010.0:  # the server never ticks again
        now = deadline
        deadline = pair.client.tick(now)
        pair.pump()
    (closed,) = pair.take("client")
    assert closed == TransportClosed(
        error="amqp:resource-limit-exceeded: local-idle-timeout expired"
    )
    assert now <= 1002.0
    assert deadline is None
    # our close frame told the silent peer why
    assert pair.take("server")[0] == ConnectionClosed(
        error=ErrorCondition(
            name="amqp:resource-limit-exceeded", description="local-idle-timeout expired"
        )
    )
    with pytest.raises(RemoteProtocolError, match="idle-timeout"):
        pair.client.open_sender("inbox")


def test_eof_in_the_middle_closes_the_transport_with_an_error() -> None:
    pair = ConnectionPair.opened()
    sender, _ = link_pair(pair, credit=5)
    pair.client.send(sender, encode("in flight"))
    half = pair.client.data_to_send()[:10]
    pair.server.receive_data(half)
    pair.server.receive_data(b"")
    events = []
    while (event := pair.server.next_event()) is not None:
        events.append(event)
    assert len(events) == 1
    assert isinstance(events[0], TransportClosed)
    assert events[0].error is not None
    assert "aborted" in events[0].error
    pair.server.receive_data(b"more bytes after the end are ignored")
    pair.server.receive_data(b"")
    assert pair.server.next_event() is None
    with pytest.raises(RemoteProtocolError):
        pair.server.grant_credit(LinkId(0), 1)
    assert pair.server.tick(5.0) is None


def test_eof_after_a_clean_close_is_not_an_error() -> None:
    pair = ConnectionPair.opened()
    pair.client.close()
    pair.pump()
    pair.server.receive_data(b"")
    assert pair.server.next_event() is None
    assert only(pair.take("server"), TransportClosed) == [TransportClosed(error=None)]


# ---------------------------------------------------------------------- the module itself


def test_the_package_exports_what_it_lists() -> None:
    assert sorted(amqp.__all__) == sorted(
        name for name in vars(amqp) if not name.startswith("_") and name[0].isupper()
    )
    for name in amqp.__all__:
        assert getattr(amqp, name) is not None


def test_the_amqp_layer_imports_neither_trio_nor_the_actor_layer() -> None:
    # sans-IO: the standard library, attrs, proton and its low-level binding (and
    # cloudpickle for trusted peers); from jumpstarter itself only its exception root.
    allowed = set(sys.stdlib_module_names) | {
        "attrs",
        "proton",
        "cproton",
        "cproton_ffi",
        "cloudpickle",
    }
    package = pathlib.Path(amqp.__file__).parent
    for path in package.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                roots = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                roots = {(node.module or "").split(".")[0]}
            elif isinstance(node, ast.ImportFrom) and node.level == 2:
                assert node.module == "_exceptions", f"{path.name} imports ..{node.module}"
                continue
            else:
                continue
            assert roots <= allowed, f"{path.name} imports {roots - allowed}"


def test_proton_wrapper_identity_is_never_needed() -> None:
    # The same proton link comes back as a new wrapper object for every event; ids match.
    pair = ConnectionPair.opened()
    sender, _ = link_pair(pair, credit=3)
    assert proton.Link is not None
    for n in range(3):
        assert pair.client.send(sender, encode(n)) == DeliveryId(sender, n)
    pair.pump()
    received = only(pair.take("server"), MessageReceived)
    assert [event.delivery.number for event in received] == [0, 1, 2]


def test_a_dynamic_receiver_gets_the_address_the_peer_made_for_it() -> None:
    pair = ConnectionPair.opened()
    receiver = pair.client.open_receiver(None, credit=5)
    pair.pump()
    (requested,) = pair.take("server")
    assert isinstance(requested, LinkRequested)
    assert requested.role == "sender"
    assert requested.dynamic
    assert requested.address is None
    pair.server.accept_link(requested.link, address="/replies/42")
    pair.pump()
    assert pair.take("server") == [CreditAvailable(link=requested.link, credit=5)]
    assert pair.take("client") == [LinkOpened(link=receiver, address="/replies/42")]
    pair.server.send(requested.link, encode("answer"))
    pair.pump()
    (received,) = pair.take("client")
    assert isinstance(received, MessageReceived)
    assert decode(received.body) == "answer"
