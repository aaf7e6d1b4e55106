"""A state machine test: random link, credit, send, settle and close commands over a pair.

The model keeps, for each link (known by its name on both ends), what was sent, what
arrived, how much credit was granted, and which deliveries await settlement. After
every pump of the (randomly fragmented) pipe:

* every message that arrived on a link was sent on it, exactly once and in order;
  on a link open at both ends, everything sent has arrived;
* the sender's credit is what the receiver granted minus what was sent, never negative,
  and the receiver counts the same;
* every settlement reached the sender once, with the receiver's outcome;
* after settling what is left and pumping, nothing is unsettled on either end.
"""

from __future__ import annotations

import itertools

import attrs
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from jumpstarter._amqp import (
    Accepted,
    AMQPConnection,
    ConnectionClosed,
    CreditAvailable,
    DeliveryId,
    DeliveryUpdated,
    ErrorCondition,
    Event,
    LinkClosed,
    LinkId,
    LinkOpened,
    LinkRequested,
    LocalProtocolError,
    MessageReceived,
    Modified,
    Outcome,
    Rejected,
    Released,
    TransportClosed,
)

from .pair import ConnectionPair, encode
from .test_protocol_fuzz import Cutter, cut_patterns

SIDES = ("client", "server")
NOT_FOUND = ErrorCondition(name="amqp:not-found", description="refused by the model")

outcomes = st.one_of(
    st.just(Accepted()),
    st.just(Released()),
    st.builds(Rejected, error=st.none() | st.just(ErrorCondition(name="app:error"))),
    st.builds(Modified, delivery_failed=st.booleans(), undeliverable_here=st.booleans()),
)


@attrs.define
class LinkModel:
    name: str
    sender_side: str
    receiver_side: str
    initiator: str
    refuse: bool
    presettled: bool
    ids: dict[str, LinkId] = attrs.Factory(dict)  # side -> that side's id
    attached: set[str] = attrs.Factory(set)  # sides that may use it
    closing: bool = False  # someone closed it (or refused it)
    closed: set[str] = attrs.Factory(set)  # sides that saw LinkClosed
    sent: list[bytes] = attrs.Factory(list)
    sent_settled: list[bool] = attrs.Factory(list)
    received: list[bytes] = attrs.Factory(list)
    granted: int = 0
    to_settle: list[DeliveryId] = attrs.Factory(list)  # receiver side
    awaiting: dict[int, Outcome | None] = attrs.Factory(dict)  # sender: number -> expected

    @property
    def usable(self) -> bool:
        return not self.closing and self.attached == set(SIDES)


class PairMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.pair = ConnectionPair.opened(max_frame_size=512)
        self.links: dict[str, LinkModel] = {}
        self.names = (f"L{n}" for n in itertools.count())
        self.stale: list[tuple[str, DeliveryId]] = []  # deliveries whose link closed

    def conn(self, side: str) -> AMQPConnection:
        return self.pair.client if side == "client" else self.pair.server

    def usable_links(self) -> list[LinkModel]:
        return [link for link in self.links.values() if link.usable]

    # -------------------------------------------------------------- rules

    @initialize(pattern=cut_patterns, credit=st.integers(0, 5))
    def start_with_a_link_each_way(self, pattern: list[int], credit: int) -> None:
        self.pair.chunker = Cutter(pattern)
        self.open_link("client", True, False, False, 0)
        self.open_link("server", False, False, False, credit)
        self.pump_until_quiet()

    @rule(
        initiator=st.sampled_from(SIDES),
        initiator_sends=st.booleans(),
        refuse=st.sampled_from([False, False, False, True]),
        presettled=st.booleans(),
        credit=st.integers(0, 5),
    )
    def open_link(
        self, initiator: str, initiator_sends: bool, refuse: bool, presettled: bool, credit: int
    ) -> None:
        other = "server" if initiator == "client" else "client"
        sender_side, receiver_side = (initiator, other) if initiator_sends else (other, initiator)
        name = next(self.names)
        link = LinkModel(
            name=name,
            sender_side=sender_side,
            receiver_side=receiver_side,
            initiator=initiator,
            refuse=refuse,
            presettled=presettled and initiator_sends,
        )
        conn = self.conn(initiator)
        if initiator_sends:
            link.ids[initiator] = conn.open_sender("inbox", name=name, presettled=link.presettled)
        else:
            link.ids[initiator] = conn.open_receiver("outbox", name=name, credit=credit)
            link.granted = credit
        self.links[name] = link

    @precondition(lambda self: self.usable_links())
    @rule(data=st.data(), n=st.integers(0, 8))
    def grant_credit(self, data: st.DataObject, n: int) -> None:
        link = data.draw(st.sampled_from(self.usable_links()))
        self.conn(link.receiver_side).grant_credit(link.ids[link.receiver_side], n)
        link.granted += n

    @precondition(lambda self: self.usable_links())
    @rule(
        data=st.data(),
        sizes=st.lists(st.integers(0, 1500), min_size=1, max_size=6),
        settled=st.booleans(),
    )
    def send(self, data: st.DataObject, sizes: list[int], settled: bool) -> None:
        """Send until the sizes or the credit run out; without credit, send must refuse."""
        link = data.draw(st.sampled_from(self.usable_links()))
        conn = self.conn(link.sender_side)
        link_id = link.ids[link.sender_side]
        for size in sizes:
            credit = conn.link_credit(link_id)
            assert 0 <= credit <= link.granted - len(link.sent)
            body = encode(f"{link.name}#{len(link.sent)}:" + "x" * size)
            if credit == 0:
                try:
                    conn.send(link_id, body, settled=settled)
                except LocalProtocolError:
                    return
                raise AssertionError("sent without credit")
            delivery = conn.send(link_id, body, settled=settled)
            assert delivery == DeliveryId(link_id, len(link.sent))
            link.sent.append(body)
            link.sent_settled.append(settled or link.presettled)
            if not (settled or link.presettled):
                link.awaiting[delivery.number] = None

    @precondition(lambda self: any(link.to_settle for link in self.links.values()))
    @rule(data=st.data(), outcome=outcomes)
    def settle(self, data: st.DataObject, outcome: Outcome) -> None:
        link = data.draw(st.sampled_from([link for link in self.links.values() if link.to_settle]))
        delivery = link.to_settle.pop(data.draw(st.integers(0, len(link.to_settle) - 1)))
        self.conn(link.receiver_side).settle(delivery, outcome)
        # the sender numbers deliveries the same way: the n-th message sent is number n
        sender_number = delivery.number
        if sender_number in link.awaiting:
            link.awaiting[sender_number] = outcome

    @precondition(lambda self: self.stale)
    @rule(data=st.data())
    def settle_after_the_link_closed(self, data: st.DataObject) -> None:
        side, delivery = self.stale.pop(data.draw(st.integers(0, len(self.stale) - 1)))
        self.conn(side).settle(delivery, Accepted())  # does nothing, raises nothing

    @precondition(lambda self: self.usable_links())
    @rule(data=st.data(), side=st.sampled_from(SIDES), with_error=st.booleans())
    def close_link(self, data: st.DataObject, side: str, with_error: bool) -> None:
        link = data.draw(st.sampled_from(self.usable_links()))
        error = ErrorCondition(name="app:done") if with_error else None
        self.conn(side).close_link(link.ids[side], error)
        link.closing = True

    @rule(pattern=cut_patterns)
    def pump(self, pattern: list[int]) -> None:
        self.pair.chunker = Cutter(pattern)
        self.pump_until_quiet()

    # -------------------------------------------------------------- event handling

    def pump_until_quiet(self) -> None:
        for _ in range(100):
            self.pair.pump()
            events = [(side, event) for side in SIDES for event in self.pair.take(side)]
            if not events:
                self.check_quiet_state()
                return
            for side, event in events:
                self.handle(side, event)
        raise AssertionError("the model never settled down")

    def handle(self, side: str, event: Event) -> None:
        conn = self.conn(side)
        match event:
            case LinkRequested(link=link_id, role=role, name=name):
                link = self.links[name]
                assert side != link.initiator
                assert role == ("sender" if side == link.sender_side else "receiver")
                link.ids[side] = link_id
                if link.refuse:
                    conn.refuse_link(link_id, NOT_FOUND)
                    link.closing = True
                else:
                    conn.accept_link(link_id)
                    link.attached.add(side)
            case LinkOpened(link=link_id):
                link = self.link_of(side, link_id)
                assert side == link.initiator
                assert not link.refuse
                link.attached.add(side)
            case CreditAvailable(link=link_id, credit=credit):
                link = self.link_of(side, link_id)
                assert side == link.sender_side
                assert 0 < credit <= link.granted - len(link.sent)
            case MessageReceived(link=link_id, delivery=delivery, body=body, settled=settled):
                link = self.link_of(side, link_id)
                assert side == link.receiver_side
                index = len(link.received)
                assert index < len(link.sent), "a message arrived that was never sent"
                assert body == link.sent[index], "a message arrived out of order or changed"
                assert settled == link.sent_settled[index]
                assert delivery.number == index
                link.received.append(body)
                if not settled:
                    link.to_settle.append(delivery)
            case DeliveryUpdated(link=link_id, delivery=delivery, outcome=outcome, settled=settled):
                link = self.link_of(side, link_id)
                assert side == link.sender_side
                assert settled, "the receiver always settles with its outcome"
                assert delivery.number in link.awaiting, "settled twice, or never sent unsettled"
                expected = link.awaiting.pop(delivery.number)
                if expected is None:
                    # the link closed first: the receiver released what arrived after
                    # its close, and settled what it held without a verdict
                    assert link.closing
                    assert outcome in (Released(), None)
                else:
                    assert outcome == expected
            case LinkClosed(link=link_id, error=error):
                link = self.link_of(side, link_id)
                assert side not in link.closed
                link.closed.add(side)
                link.closing = True
                if link.refuse and side == link.initiator:
                    assert error == NOT_FOUND
                if side == link.sender_side:
                    link.awaiting.clear()  # outcomes of a closed link are unknown
                else:
                    self.stale += [(side, delivery) for delivery in link.to_settle]
                    link.to_settle.clear()
            case ConnectionClosed() | TransportClosed():
                raise AssertionError(f"unexpected {event}")

    def link_of(self, side: str, link_id: LinkId) -> LinkModel:
        (link,) = [link for link in self.links.values() if link.ids.get(side) == link_id]
        return link

    def check_quiet_state(self) -> None:
        for link in self.links.values():
            if link.closing:
                # a closed link answers on both ends once the pipe is quiet
                assert link.closed == {side for side in SIDES if side in link.ids}
            if link.usable:
                assert link.received == link.sent, "a message sent with credit did not arrive"
                sender = self.conn(link.sender_side)
                credit = sender.link_credit(link.ids[link.sender_side])
                assert credit == link.granted - len(link.sent)
                receiver = self.conn(link.receiver_side)
                assert receiver.link_credit(link.ids[link.receiver_side]) == credit
                # settlements have all reached the sender
                assert all(outcome is None for outcome in link.awaiting.values())

    # -------------------------------------------------------------- invariants

    @invariant()
    def arrivals_are_a_prefix_of_what_was_sent(self) -> None:
        for link in self.links.values():
            assert link.received == link.sent[: len(link.received)]

    @invariant()
    def credit_never_goes_negative(self) -> None:
        for link in self.links.values():
            if link.sender_side in link.ids and link.sender_side not in link.closed:
                conn = self.conn(link.sender_side)
                assert conn.link_credit(link.ids[link.sender_side]) >= 0

    @rule()
    def settle_everything(self) -> None:
        """Settle all that arrived unsettled, pump: nothing stays unsettled on either end."""
        self.pump_until_quiet()
        for link in self.links.values():
            for delivery in link.to_settle:
                self.conn(link.receiver_side).settle(delivery, Accepted())
                if delivery.number in link.awaiting:
                    link.awaiting[delivery.number] = Accepted()
            link.to_settle.clear()
        self.pump_until_quiet()
        for link in self.links.values():
            assert link.awaiting == {}, "an unsettled delivery never settled on the sender"
        for side in SIDES:
            assert self.conn(side).statistics().unsettled_deliveries == 0

    def teardown(self) -> None:
        # Runs after failures too, so it checks nothing the rules do not check.
        self.pair.client.close()
        self.pair.pump()


PairMachine.TestCase.settings = settings(
    max_examples=100,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
test_random_commands_over_a_fragmented_pipe_keep_the_protocol_promises = PairMachine.TestCase
