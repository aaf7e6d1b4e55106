"""Tests of HMAC-SHA256 message signing: signatures, key rotation, freshness, replays."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from typing import Any

import attrs
import proton
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jumpstarter._amqp._codec import (
    NATIVE_CONTENT_TYPE,
    Codec,
    MalformedMessage,
    RemoteErrorInfo,
    TypeRegistry,
    WireEnvelope,
)
from jumpstarter._amqp._signing import (
    ExpiredMessage,
    ForgedMessage,
    Keyring,
    ReplayedMessage,
    SignatureError,
    Signer,
    UnknownSigningKey,
    UnsignedMessage,
)
from jumpstarter._exceptions import JumpstarterError

fuzz = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])

KEY_A = b"a" * 32
KEY_B = b"b" * 32
NOW = 1_700_000_000.0

registry = TypeRegistry()


@registry.message(name="bank.Deposit")
@attrs.frozen(kw_only=True)
class Deposit:
    account: str
    cents: int


@registry.message(name="bank.Withdrawal")
@attrs.frozen(kw_only=True)
class Withdrawal:
    account: str
    cents: int


codec = Codec(registry)


def envelope(**overrides: Any) -> WireEnvelope:
    fields: dict[str, Any] = {
        "message_id": "m-1",
        "type_name": "bank.Deposit",
        "body": Deposit(account="acc-1", cents=100),
        "to": "amqp://127.0.0.1:5672/bank/teller",
        "reply_to": "amqp://127.0.0.1:5673/shop/asker",
        "correlation_id": None,
        "sender": "amqp://127.0.0.1:5673/shop/till",
        "trace": "task-1",
        "created": NOW,
        "expires": NOW + 60,
    }
    fields.update(overrides)
    return WireEnvelope(**fields)


def signer(keys: dict[str, bytes] | None = None, active: str = "k1", **options: Any) -> Signer:
    return Signer(Keyring(keys or {"k1": KEY_A}, active), **options)


def signed(value: WireEnvelope | None = None, by: Signer | None = None) -> bytes:
    return (by or signer()).sign(codec.encode(value or envelope()))


# -- signatures -------------------------------------------------------------------------


def test_a_signed_message_verifies_and_still_decodes() -> None:
    data = signed()
    signer().verify(data, now=NOW)
    assert codec.decode(data) == envelope()


def test_signing_what_encode_raw_made_spares_a_second_parse() -> None:
    assert signer().sign(codec.encode_raw(envelope())) == signed()


def test_verifying_a_parsed_message_spares_a_second_parse() -> None:
    raw = codec.parse(signed())
    signer().verify(raw, now=NOW)
    assert codec.decode(raw) == envelope()


def test_the_signature_travels_as_two_application_properties() -> None:
    message = proton.Message()
    message.decode(signed())
    assert message.properties["js:key"] == "k1"
    assert len(bytes(message.properties["js:sig"])) == 32  # binary, SHA-256 sized


def test_signing_twice_replaces_the_signature() -> None:
    once = signed()
    twice = signer({"k2": KEY_B}, "k2").sign(once)
    message = proton.Message()
    message.decode(twice)
    assert message.properties["js:key"] == "k2"
    assert list(message.properties).count("js:sig") == 1
    signer({"k2": KEY_B}, "k2").verify(twice, now=NOW)


def test_an_unsigned_message_is_refused() -> None:
    with pytest.raises(UnsignedMessage, match="turn signing on"):
        signer().verify(codec.encode(envelope()), now=NOW)


def test_a_message_signed_with_an_unknown_key_is_refused() -> None:
    data = signed(by=signer({"other": KEY_B}, "other"))
    with pytest.raises(UnknownSigningKey, match="configure the same signing key on both nodes"):
        signer().verify(data, now=NOW)


def test_a_message_signed_with_a_different_secret_under_the_same_id_is_forged() -> None:
    data = signed(by=signer({"k1": KEY_B}))
    with pytest.raises(ForgedMessage, match="configure the same signing key"):
        signer().verify(data, now=NOW)


def with_signature_of(original: bytes, tampered: WireEnvelope) -> bytes:
    """The tampered envelope, carrying the original message's signature."""
    message = proton.Message()
    message.decode(original)
    return codec.parse(codec.encode(tampered)).with_application_properties(
        {"js:key": message.properties["js:key"], "js:sig": message.properties["js:sig"]}
    )


tampering = {
    "message_id": "m-2",
    "body": Deposit(account="acc-1", cents=1_000_000),
    "to": "amqp://127.0.0.1:5672/bank/vault",
    "reply_to": "amqp://evil:5672/x/y",
    "correlation_id": "c-1",
    "sender": "amqp://127.0.0.1:5672/bank/manager",
    "trace": "task-2",
    "created": NOW + 1,
    "expires": NOW + 3600,
    "settle_after_handled": True,
    "error": RemoteErrorInfo(type_name="E", message="m", traceback="t"),
}


@given(st.sampled_from(sorted(tampering)), st.sampled_from(["set", "unset"]))
@fuzz
def test_changing_any_signed_field_is_detected(field: str, how: str) -> None:
    original = signed()
    value = tampering[field]
    if how == "unset" and attrs.fields_dict(WireEnvelope)[field].default is None:
        value = None
    tampered = attrs.evolve(envelope(), **{field: value})
    if tampered == envelope():
        return
    with pytest.raises(ForgedMessage):
        signer().verify(with_signature_of(original, tampered), now=NOW)


def test_changing_the_type_name_alone_is_detected() -> None:
    original = signed()
    tampered = envelope(type_name="bank.Withdrawal", body=Withdrawal(account="acc-1", cents=100))
    forged = with_signature_of(original, tampered)
    # same body bytes: only js:type differs
    assert forged.endswith(codec.encode(envelope()).rpartition(b"\x00\x53\x77")[2])
    with pytest.raises(ForgedMessage):
        signer().verify(forged, now=NOW)


def test_changing_the_content_type_is_detected() -> None:
    data = signed()
    native = NATIVE_CONTENT_TYPE.encode()
    forged = data.replace(native, native.replace(b"v1", b"v2"))
    with pytest.raises(ForgedMessage):
        signer().verify(forged, now=NOW)


@given(st.data())
@fuzz
def test_any_single_byte_change_is_refused_or_changes_nothing(data: st.DataObject) -> None:
    original = signed()
    where = data.draw(st.integers(min_value=0, max_value=len(original) - 1))
    byte = data.draw(st.integers(min_value=0, max_value=255).filter(lambda b: b != original[where]))
    changed = original[:where] + bytes([byte]) + original[where + 1 :]
    try:
        signer().verify(changed, now=NOW)
    except (SignatureError, MalformedMessage):
        return
    # accepted: then it must mean exactly what was signed (e.g. an unused property changed)
    try:
        decoded = codec.decode(changed)
    except MalformedMessage:
        return
    assert decoded == envelope()


@given(st.binary(max_size=200))
@fuzz
def test_random_bytes_are_refused_with_our_own_errors(data: bytes) -> None:
    with pytest.raises((SignatureError, MalformedMessage)):
        signer().verify(data, now=NOW)


# -- key rotation -----------------------------------------------------------------------


def test_keys_rotate_without_refusing_messages_in_flight() -> None:
    sender = signer({"old": KEY_A}, "old")
    receiver = signer({"old": KEY_A}, "old")
    in_flight = sender.sign(codec.encode(envelope(message_id="1")))

    # 1. every node learns the new key; senders still sign with the old one
    receiver.keyring = receiver.keyring.with_key("new", KEY_B)
    sender.keyring = sender.keyring.with_key("new", KEY_B)
    receiver.verify(in_flight, now=NOW)

    # 2. senders switch to the new key; old signatures still verify
    sender.keyring = sender.keyring.activated("new")
    late = signer({"old": KEY_A}, "old").sign(codec.encode(envelope(message_id="2")))
    fresh = sender.sign(codec.encode(envelope(message_id="3")))
    receiver.verify(late, now=NOW)
    receiver.verify(fresh, now=NOW)

    # 3. the old key is removed: what it signed is now refused
    receiver.keyring = receiver.keyring.activated("new").without_key("old")
    straggler = signer({"old": KEY_A}, "old").sign(codec.encode(envelope(message_id="4")))
    with pytest.raises(UnknownSigningKey, match="'old'"):
        receiver.verify(straggler, now=NOW)
    receiver.verify(sender.sign(codec.encode(envelope(message_id="5"))), now=NOW)


def test_a_keyring_refuses_short_keys_and_a_missing_active_key() -> None:
    with pytest.raises(ValueError, match="at least 16 bytes"):
        Keyring({"k": b"short"}, "k")
    with pytest.raises(ValueError, match="not one of"):
        Keyring({"k": KEY_A}, "other")
    with pytest.raises(ValueError, match="active"):
        Keyring({"k": KEY_A}, "k").without_key("k")


def test_a_keyring_never_shows_its_secrets() -> None:
    keyring = Keyring({"k1": KEY_A, "k2": KEY_B}, "k1")
    assert "aaaa" not in repr(keyring)
    assert repr(keyring) == "Keyring(ids=['k1', 'k2'], active='k1')"
    assert keyring == Keyring({"k2": KEY_B, "k1": KEY_A}, "k1")


# -- freshness --------------------------------------------------------------------------


def test_a_message_older_than_max_age_is_expired() -> None:
    data = signed(envelope(expires=None))
    with pytest.raises(ExpiredMessage, match=r"max_age=30\.0"):
        signer().verify(data, now=NOW + 30.001)
    signer().verify(data, now=NOW + 30)


def test_a_message_past_its_expiry_time_is_expired() -> None:
    data = signed(envelope(expires=NOW + 5))
    with pytest.raises(ExpiredMessage, match="expired"):
        signer().verify(data, now=NOW + 5.5)
    signer().verify(data, now=NOW + 5)


def test_a_message_from_the_future_is_refused() -> None:
    data = signed(envelope(created=NOW + 60, expires=None))
    with pytest.raises(ExpiredMessage, match="in the future"):
        signer().verify(data, now=NOW)
    signer(max_clock_skew=60).verify(data, now=NOW)


def test_an_expired_forgery_is_reported_as_forged() -> None:
    data = signed(by=signer({"k1": KEY_B}))
    with pytest.raises(ForgedMessage):
        signer().verify(data, now=NOW + 3600)


def test_a_message_without_id_or_creation_time_cannot_be_signed() -> None:
    message = proton.Message(properties={"js:type": "str"}, body="x")
    with pytest.raises(MalformedMessage, match="message-id"):
        signer().sign(message.encode())


def test_a_signed_field_of_an_unexpected_type_is_malformed() -> None:
    message = proton.Message(
        id=uuid.UUID(int=1),
        creation_time=NOW,
        properties={"js:type": "str", "js:key": "k1", "js:sig": b"x" * 32},
        body="x",
    )
    with pytest.raises(MalformedMessage, match="message-id must be a string"):
        signer().verify(message.encode(), now=NOW)


# -- replays ----------------------------------------------------------------------------


def test_a_replayed_message_is_refused() -> None:
    data = signed()
    receiver = signer()
    receiver.verify(data, now=NOW)
    with pytest.raises(ReplayedMessage, match="fresh id"):
        receiver.verify(data, now=NOW + 1)


def test_a_refused_message_is_not_remembered() -> None:
    receiver = signer()
    with pytest.raises(ForgedMessage):
        receiver.verify(signed(by=signer({"k1": KEY_B})), now=NOW)
    receiver.verify(signed(), now=NOW)


def test_a_replay_after_the_window_is_refused_as_expired_and_forgotten() -> None:
    receiver = signer()
    receiver.verify(signed(envelope(expires=None)), now=NOW)
    assert receiver.remembered == 1
    with pytest.raises(ExpiredMessage):
        receiver.verify(signed(envelope(expires=None)), now=NOW + 31)
    receiver.verify(signed(envelope(message_id="m-2", created=NOW + 40)), now=NOW + 41)
    assert receiver.remembered == 1


def test_a_full_replay_memory_refuses_what_it_may_have_forgotten() -> None:
    receiver = signer(replay_capacity=3)
    for number in range(5):
        receiver.verify(signed(envelope(message_id=str(number), created=NOW + number)), now=NOW)
    assert receiver.remembered == 3
    # "0" and "1" were forgotten: replaying them is refused, never accepted
    for number in (0, 1):
        with pytest.raises(ExpiredMessage, match="replay_capacity"):
            receiver.verify(signed(envelope(message_id=str(number), created=NOW + number)), now=NOW)
    with pytest.raises(ReplayedMessage):
        receiver.verify(signed(envelope(message_id="4", created=NOW + 4)), now=NOW)
    receiver.verify(signed(envelope(message_id="5", created=NOW + 5)), now=NOW)


@given(
    st.lists(
        st.tuples(st.integers(min_value=0, max_value=9), st.integers(min_value=0, max_value=40)),
        max_size=40,
    )
)
@fuzz
def test_no_message_id_is_ever_accepted_twice_within_its_window(
    arrivals: list[tuple[int, int]],
) -> None:
    # message "n" is always created at NOW + n; arrivals come at increasing times
    receiver = signer(replay_capacity=4, max_age=10.0, max_clock_skew=0.0)
    messages = {
        n: signed(envelope(message_id=str(n), created=NOW + n, expires=None)) for n in range(10)
    }
    accepted: set[int] = set()
    now = NOW
    for number, delay in arrivals:
        now += delay / 10
        try:
            receiver.verify(messages[number], now=now)
        except (ExpiredMessage, ReplayedMessage):
            continue
        assert number not in accepted
        accepted.add(number)
        assert receiver.remembered <= 4


# -- the documented canonical form ------------------------------------------------------


def field(value: str | None) -> bytes:
    if value is None:
        return b"\x00"
    text = value.encode()
    return b"\x01" + len(text).to_bytes(4, "big") + text


def documented_signature(message: proton.Message, body: bytes, key_id: str, key: bytes) -> bytes:
    """The signature docs/wire-format.md tells a client in another language to compute."""
    app = message.properties
    settle = app.get("js:settle")
    canonical = b"".join(
        [
            b"jumpstarter-hmac-sha256-v1\x00",
            field(key_id),
            field(message.id),
            field(message.address),
            field(message.reply_to),
            field(message.correlation_id),
            field(message.content_type),
            field(str(round(message.creation_time * 1000))),
            field(str(round(message.expiry_time * 1000)) if message.expiry_time else None),
            field(app.get("js:type")),
            field(app.get("js:sender")),
            field(app.get("js:trace")),
            field(None if settle is None else ("true" if settle else "false")),
            field(app.get("js:error-type")),
            field(app.get("js:error-message")),
            field(app.get("js:error-traceback")),
            body,
        ]
    )
    return hmac.new(key, canonical, hashlib.sha256).digest()


def body_of(data: bytes) -> bytes:
    return data[data.index(b"\x00\x53\x77") :]  # both encoders write the body last


def sign_by_the_documentation(message: proton.Message, key_id: str, key: bytes) -> bytes:
    signature = documented_signature(message, body_of(message.encode()), key_id, key)
    message.properties = {**message.properties, "js:key": key_id, "js:sig": signature}
    return message.encode()


def test_a_client_in_another_language_can_sign_by_following_the_documentation() -> None:
    message = proton.Message(
        id="from-go-1",
        address="amqp://127.0.0.1:5672/bank/teller",
        reply_to="amqp://10.0.0.7:5672/clients/inbox",
        creation_time=NOW,
        expiry_time=NOW + 10,
        content_type=proton.symbol(NATIVE_CONTENT_TYPE),
        properties={"js:type": "bank.Deposit", "js:settle": True},
        body={"account": "acc-9", "cents": 5},
        inferred=False,
    )
    data = sign_by_the_documentation(message, "k1", KEY_A)
    signer().verify(data, now=NOW)
    assert codec.decode(data).body == Deposit(account="acc-9", cents=5)


def test_our_signature_is_the_documented_one() -> None:
    unsigned = codec.encode(envelope())
    message = proton.Message()
    message.decode(unsigned)
    ours = proton.Message()
    ours.decode(signer().sign(unsigned))
    assert bytes(ours.properties["js:sig"]) == documented_signature(
        message, body_of(unsigned), "k1", KEY_A
    )


def test_every_signing_error_is_a_jumpstarter_error() -> None:
    for error in (
        UnsignedMessage,
        UnknownSigningKey,
        ForgedMessage,
        ExpiredMessage,
        ReplayedMessage,
    ):
        assert issubclass(error, SignatureError)
        assert issubclass(error, JumpstarterError)
