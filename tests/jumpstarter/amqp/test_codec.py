"""Tests of the wire codec: AMQP 1.0 messages <-> WireEnvelope."""

from __future__ import annotations

import contextlib
import datetime
import enum
import struct
import uuid
from typing import Any, Literal

import attrs
import proton
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from jumpstarter._amqp._codec import (
    BATCH_TYPE,
    NATIVE_CONTENT_TYPE,
    PICKLE_CONTENT_TYPE,
    Codec,
    CodecError,
    MalformedMessage,
    MessageTooLarge,
    RawMessage,
    RemoteErrorInfo,
    TypeRegistry,
    UnknownMessageType,
    UntrustedPayload,
    WireEnvelope,
)
from jumpstarter._exceptions import JumpstarterError

UTC = datetime.UTC
fuzz = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])

registry = TypeRegistry()


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


@registry.message
@attrs.frozen(kw_only=True)
class Point:
    x: int
    y: int


@registry.message(name="shapes.Circle")
@attrs.frozen(kw_only=True)
class Circle:
    center: Point
    radius: float


@registry.message(name="shapes.Square")
@attrs.frozen(kw_only=True)
class Square:
    corner: Point
    side: float


@registry.message
@attrs.frozen(kw_only=True)
class Everything:
    text: str
    number: int
    ratio: float
    flag: bool
    blob: bytes
    when: datetime.datetime
    ident: uuid.UUID
    maybe: str | None = None
    color: Color = Color.RED
    mode: Literal["fast", "slow"] = "fast"
    tags: tuple[str, ...] = ()
    pair: tuple[int, str] = (0, "")
    points: list[Point] = attrs.field(factory=list)
    scores: dict[str, float] = attrs.field(factory=dict)
    labels: frozenset[str] = frozenset()
    shape: Circle | Square | None = None
    anything: Any = None


@registry.message
@attrs.frozen(kw_only=True)
class Tree:
    label: str
    children: tuple[Tree, ...] = ()


@registry.message
@attrs.frozen(kw_only=True)
class Deposit:
    account: str
    cents: int


@registry.message
@attrs.frozen
class Ping:
    pass


class NotRegistered:
    def __init__(self, value: int) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NotRegistered) and other.value == self.value


codec = Codec(registry)


def envelope(body: Any, **overrides: Any) -> WireEnvelope:
    fields: dict[str, Any] = {
        "message_id": "m-1",
        "type_name": overrides.pop("type_name", None) or codec.type_name_of(body),
        "body": body,
        "created": 1_700_000_000.123,
        "to": "amqp://127.0.0.1:5672/bank/teller",
        "sender": "amqp://127.0.0.1:5673/shop/till",
    }
    fields.update(overrides)
    return WireEnvelope(**fields)


def round_trip(body: Any, using: Codec = codec) -> Any:
    return using.decode(using.encode(envelope(body))).body


# -- strategies -------------------------------------------------------------------------

texts = st.text(max_size=20)
ints = st.integers(min_value=-(2**63), max_value=2**64 - 1)
floats = st.floats(allow_nan=False)
offsets = st.integers(min_value=-14 * 60, max_value=14 * 60).map(
    lambda minutes: datetime.timezone(datetime.timedelta(minutes=minutes))
)
datetimes = st.builds(
    lambda moment, tz: moment.replace(microsecond=moment.microsecond // 1000 * 1000, tzinfo=tz),
    st.datetimes(min_value=datetime.datetime(2, 1, 1), max_value=datetime.datetime(9998, 12, 31)),
    offsets,
)
primitives = st.one_of(
    st.none(),
    st.booleans(),
    ints,
    floats,
    texts,
    st.binary(max_size=20),
    datetimes,
    st.uuids(),
)
points = st.builds(Point, x=ints, y=ints)
shapes = st.one_of(
    st.builds(Circle, center=points, radius=floats),
    st.builds(Square, corner=points, side=floats),
)
# what an untyped position (Any, list, dict) reads back as itself: no tuples or sets
loose_values = st.recursive(
    st.one_of(primitives, points, shapes),
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(texts.filter(lambda key: key != "$type"), children, max_size=4),
    ),
    max_leaves=12,
)
everything = st.builds(
    Everything,
    text=texts,
    number=ints,
    ratio=floats,
    flag=st.booleans(),
    blob=st.binary(max_size=40),
    when=datetimes,
    ident=st.uuids(),
    maybe=st.none() | texts,
    color=st.sampled_from(Color),
    mode=st.sampled_from(["fast", "slow"]),
    tags=st.lists(texts, max_size=4).map(tuple),
    pair=st.tuples(ints, texts),
    points=st.lists(points, max_size=3),
    scores=st.dictionaries(texts, floats, max_size=3),
    labels=st.frozensets(texts, max_size=3),
    shape=st.none() | shapes,
    anything=loose_values,
)
trees = st.recursive(
    st.builds(Tree, label=texts),
    lambda children: st.builds(
        Tree, label=texts, children=st.lists(children, max_size=3).map(tuple)
    ),
    max_leaves=10,
)
optional_texts = st.none() | st.text(max_size=40)
times = st.integers(min_value=0, max_value=2**45).map(lambda ms: ms / 1000)
errors = st.builds(RemoteErrorInfo, type_name=texts, message=texts, traceback=st.text(max_size=300))
envelopes = st.builds(
    WireEnvelope,
    message_id=st.text(max_size=40),
    type_name=st.just("shapes.Circle"),
    body=st.builds(Circle, center=points, radius=floats),
    to=optional_texts,
    reply_to=optional_texts,
    correlation_id=optional_texts,
    sender=optional_texts,
    trace=optional_texts,
    created=times,
    expires=st.none() | times,
    settle_after_handled=st.booleans(),
    error=st.none() | errors,
)


# -- round trips ------------------------------------------------------------------------


@given(everything)
@fuzz
def test_registered_classes_with_every_field_kind_survive_a_round_trip(value: Everything) -> None:
    assert round_trip(value) == value


@given(trees)
@fuzz
def test_recursive_registered_classes_survive_a_round_trip(tree: Tree) -> None:
    assert round_trip(tree) == tree


@given(loose_values)
@fuzz
def test_plain_values_survive_a_round_trip_as_builtin_bodies(value: Any) -> None:
    assert round_trip(value) == value


@given(st.lists(loose_values, max_size=4).map(tuple))
@fuzz
def test_a_tuple_body_comes_back_as_a_tuple(value: tuple[Any, ...]) -> None:
    decoded = round_trip(value)
    assert type(decoded) is tuple
    assert decoded == value


@given(envelopes)
@fuzz
def test_every_envelope_field_survives_a_round_trip(value: WireEnvelope) -> None:
    assert codec.decode(codec.encode(value)) == value


def test_a_class_without_fields_travels_as_an_empty_map() -> None:
    assert round_trip(Ping()) == Ping()
    assert codec.type_name_of(Ping()) == f"{__name__}.Ping"


@pytest.mark.parametrize(
    ("body", "name"),
    [
        ("text", "str"),
        (3, "int"),
        (2.5, "float"),
        (True, "bool"),
        (b"raw", "bytes"),
        (None, "None"),
        ([1], "list"),
        ((1,), "tuple"),
        ({"a": 1}, "dict"),
        (datetime.datetime(2024, 5, 1, tzinfo=UTC), "datetime.datetime"),
        (uuid.UUID(int=7), "uuid.UUID"),
        (Point(x=1, y=2), f"{__name__}.Point"),
        (Circle(center=Point(x=1, y=2), radius=1.0), "shapes.Circle"),
    ],
)
def test_builtin_and_registered_bodies_have_the_documented_type_names(body: Any, name: str) -> None:
    assert codec.type_name_of(body) == name
    assert codec.decode(codec.encode(envelope(body))).type_name == name


def test_datetimes_keep_their_instant_at_millisecond_precision() -> None:
    moment = datetime.datetime(
        2024, 5, 1, 12, 0, 0, 123456, tzinfo=datetime.timezone(datetime.timedelta(hours=2))
    )
    decoded = round_trip(moment)
    assert decoded == moment.replace(microsecond=123000)
    assert decoded.tzinfo == UTC


def test_a_failed_asks_answer_carries_the_remote_error() -> None:
    try:
        raise KeyError("no such account")
    except KeyError as error:
        info = RemoteErrorInfo.from_exception(error)
    answer = envelope(None, correlation_id="ask-7", error=info)
    decoded = codec.decode(codec.encode(answer))
    assert decoded.error == info
    assert decoded.error is not None
    assert decoded.error.type_name == "builtins.KeyError"
    assert "no such account" in decoded.error.traceback


def test_the_encoding_uses_the_documented_sections_and_properties() -> None:
    value = envelope(
        Deposit(account="acc-1", cents=250),
        reply_to="amqp://127.0.0.1:5673/shop/asker",
        correlation_id="c-9",
        trace="task-uuid",
        expires=1_700_000_030.5,
        settle_after_handled=True,
    )
    message = proton.Message()
    message.decode(codec.encode(value))
    assert message.id == "m-1"
    assert message.address == "amqp://127.0.0.1:5672/bank/teller"
    assert message.reply_to == "amqp://127.0.0.1:5673/shop/asker"
    assert message.correlation_id == "c-9"
    assert message.content_type == NATIVE_CONTENT_TYPE
    assert message.creation_time == pytest.approx(1_700_000_000.123)
    assert message.expiry_time == pytest.approx(1_700_000_030.5)
    assert message.properties == {
        "js:type": f"{__name__}.Deposit",
        "js:sender": "amqp://127.0.0.1:5673/shop/till",
        "js:trace": "task-uuid",
        "js:settle": True,
    }
    assert message.body == {"account": "acc-1", "cents": 250}


def test_nested_registered_instances_carry_their_type_name() -> None:
    message = proton.Message()
    message.decode(codec.encode(envelope(Circle(center=Point(x=1, y=2), radius=3.0))))
    assert message.body == {
        "center": {"$type": f"{__name__}.Point", "x": 1, "y": 2},
        "radius": 3.0,
    }


# -- interop with other AMQP encoders -------------------------------------------------


def test_a_message_built_by_hand_with_another_amqp_library_decodes() -> None:
    message = proton.Message(
        id="from-java-1",
        address="amqp://127.0.0.1:5672/bank/teller",
        reply_to="amqp://10.0.0.7:5672/clients/inbox",
        correlation_id="c-1",
        creation_time=1_700_000_000.5,
        content_type=proton.symbol(NATIVE_CONTENT_TYPE),
        properties={"js:type": "shapes.Circle", "js:sender": "amqp://10.0.0.7:5672/clients/me"},
        body={"center": {"$type": f"{__name__}.Point", "x": 3, "y": -4}, "radius": 2},
    )
    decoded = codec.decode(message.encode())
    assert decoded == WireEnvelope(
        message_id="from-java-1",
        type_name="shapes.Circle",
        body=Circle(center=Point(x=3, y=-4), radius=2.0),
        to="amqp://127.0.0.1:5672/bank/teller",
        reply_to="amqp://10.0.0.7:5672/clients/inbox",
        correlation_id="c-1",
        sender="amqp://10.0.0.7:5672/clients/me",
        created=1_700_000_000.5,
    )


def test_other_amqp_types_are_read_as_their_nearest_python_values() -> None:
    body = {
        proton.symbol("sym"): proton.char("c"),
        "ubyte": proton.ubyte(200),
        "short": proton.short(-300),
        "uint": proton.uint(70_000),
        "ulong": proton.ulong(2**64 - 1),
        "int": proton.int32(-5),
        "float32": proton.float32(0.5),
        "stamp": proton.timestamp(1_700_000_000_123),
        "array": proton.Array(proton.UNDESCRIBED, proton.Data.INT, 1, 2, 3),
        "long list": list(range(100)),
        "big": "x" * 300,
    }
    message = proton.Message(
        id="m", creation_time=1.0, properties={"js:type": "dict"}, body=body, inferred=False
    )
    assert codec.decode(message.encode()).body == {
        "sym": "c",
        "ubyte": 200,
        "short": -300,
        "uint": 70_000,
        "ulong": 2**64 - 1,
        "int": -5,
        "float32": 0.5,
        "stamp": datetime.datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=UTC),
        "array": [1, 2, 3],
        "long list": list(range(100)),
        "big": "x" * 300,
    }


proton_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**63), max_value=2**63 - 1),
        floats,
        texts,
        st.binary(max_size=300),
        st.uuids(),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=40),
        st.dictionaries(texts.filter(lambda key: key != "$type"), children, max_size=6),
    ),
    max_leaves=60,
)


@given(proton_values)
@fuzz
def test_whatever_protons_encoder_writes_we_read_back(value: Any) -> None:
    message = proton.Message(
        id="m", creation_time=1.0, properties={"js:type": "list"}, body=[value], inferred=False
    )
    assert codec.decode(message.encode()).body == [value]


@given(envelopes)
@fuzz
def test_protons_decoder_reads_what_we_write(value: WireEnvelope) -> None:
    # proton's C API reads message-id, to, reply-to and correlation-id as C strings
    fields = (value.message_id, value.to, value.reply_to, value.correlation_id)
    assume(not any("\x00" in (text or "") for text in fields))
    message = proton.Message()
    message.decode(codec.encode(value))
    assert message.id == value.message_id
    assert message.address == value.to
    assert message.reply_to == value.reply_to
    assert message.correlation_id == value.correlation_id
    assert round(message.creation_time * 1000) == round(value.created * 1000)
    assert message.properties["js:settle"] == value.settle_after_handled
    assert message.properties.get("js:trace") == value.trace
    assert message.body["center"]["x"] == value.body.center.x


def test_a_binary_body_in_data_sections_is_read_as_bytes() -> None:
    message = proton.Message(
        id="m", creation_time=1.0, properties={"js:type": "bytes"}, body=b"payload"
    )
    message.inferred = True  # a data section, as most clients send binary
    assert codec.decode(message.encode()).body == b"payload"


# -- clear errors -----------------------------------------------------------------------


def test_an_unregistered_type_name_asks_to_register_the_class_on_both_sides() -> None:
    data = codec.encode(envelope(Deposit(account="a", cents=1)))
    with pytest.raises(UnknownMessageType, match="register the class") as caught:
        Codec().decode(data)
    assert "Deposit" in str(caught.value)
    assert "both" in str(caught.value)


def test_an_unregistered_nested_type_is_an_unknown_type_too() -> None:
    other = TypeRegistry()
    other.register(Circle, "shapes.Circle")  # but not Point
    data = codec.encode(envelope(Circle(center=Point(x=1, y=1), radius=1.0)))
    with pytest.raises(UnknownMessageType, match="Point"):
        Codec(other).decode(data)


def test_encoding_an_unregistered_class_says_how_to_register_it() -> None:
    with pytest.raises(UnknownMessageType, match="register"):
        codec.type_name_of(NotRegistered(1))
    with pytest.raises(UnknownMessageType, match="register"):
        codec.encode(envelope(NotRegistered(1), type_name="nowhere.Thing"))
    with pytest.raises(UnknownMessageType, match="NotRegistered"):
        codec.encode(envelope([NotRegistered(1)]))


def test_a_type_name_that_does_not_name_the_body_is_refused_when_encoding() -> None:
    with pytest.raises(UnknownMessageType, match="type_name_of"):
        codec.encode(envelope(Point(x=1, y=2), type_name="shapes.Circle"))
    with pytest.raises(UnknownMessageType, match="type_name_of"):
        codec.encode(envelope(1, type_name="str"))


def encode_by_hand(body: Any, type_name: str = f"{__name__}.Deposit", **properties: Any) -> bytes:
    message = proton.Message(
        id="m",
        creation_time=1.0,
        properties={"js:type": type_name, **properties},
        body=body,
        inferred=False,
    )
    return message.encode()


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"account": "a"}, "no field 'cents'"),
        ({"account": "a", "cents": 1, "memo": "x"}, r"no field\(s\) 'memo'"),
        ({"account": "a", "cents": "1"}, r"\.cents: expected int, got str"),
        ({"account": 1, "cents": 1}, r"\.account: expected string, got int"),
        (["a", 1], "expected a map of the fields"),
        ({"$type": "shapes.Circle", "account": "a", "cents": 1}, "differs from js:type"),
    ],
)
def test_a_body_that_does_not_fit_its_class_is_malformed_and_says_where(
    body: Any, reason: str
) -> None:
    with pytest.raises(MalformedMessage, match=reason):
        codec.decode(encode_by_hand(body))


def test_a_nested_field_of_the_wrong_type_names_its_path() -> None:
    body = {"center": {"$type": f"{__name__}.Point", "x": 1, "y": "two"}, "radius": 1.0}
    with pytest.raises(MalformedMessage, match=r"\.center\.y: expected int, got str"):
        codec.decode(encode_by_hand(body, "shapes.Circle"))


def test_a_nested_instance_of_the_wrong_class_is_malformed() -> None:
    body = {"center": {"$type": "shapes.Square", "corner": {}, "side": 1.0}, "radius": 1.0}
    with pytest.raises(MalformedMessage, match="expected Point"):
        codec.decode(encode_by_hand(body, "shapes.Circle"))


def test_values_for_enums_and_literals_are_checked() -> None:
    good = Everything(
        text="t",
        number=1,
        ratio=1.0,
        flag=True,
        blob=b"",
        when=datetime.datetime(2024, 1, 1, tzinfo=UTC),
        ident=uuid.UUID(int=1),
    )
    message = proton.Message()
    message.decode(codec.encode(envelope(good)))
    for field, bad in [("color", "blue"), ("mode", "medium")]:
        body = {**message.body, field: bad}
        with pytest.raises(MalformedMessage, match=field):
            codec.decode(encode_by_hand(body, f"{__name__}.Everything"))


# the properties and application-properties of a valid "list" message, without a body
HEAD = codec.encode(envelope([]))
HEAD = HEAD[: HEAD.index(b"\x00\x53\x77")]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (b"GET / HTTP/1.1\r\n\r\n", "not an AMQP 1.0 message"),
        (b"\x00\x53\x99\x40", "unknown descriptor"),
        (b"\x00\x53\x73\xc0\x05\x01\xa1\x10ab", "truncated"),
        (HEAD + b"\x00\x53\x77\xc0\x05\x01\xa1\x02\xff\xfe", "not valid text"),
        (b"\x00\x53\x77\x40\x00\x53\x73\x45", "out of order"),
        (HEAD + b"\x00\x53\x77\x40\x00\x53\x77\x40", "two amqp-value sections"),
        (HEAD + b"\x00\x53\x77\xc0\x03\x01\x40\x40", "wrong size or count"),
        (HEAD + b"\x00\x53\x77\xc0\x06\x01\x74\x00\x00\x00\x00", "decimal32 values"),
        (HEAD + b"\x00\x53\x77\xc0\x03\x01\x00\x40", "described values"),
        (HEAD + b"\x00\x53\x77\xc0\x02\x01\xee", "not an AMQP type code"),
        (HEAD + b"\x00\x53\x77\xc0\x03\x09\x40\x40", "claims more items"),
        (HEAD + b"\x00\x53\x77\xc0\x06\x01\xc1\x03\x02\x45\x40", "key that is a list"),
        (HEAD + b"\x00\x53\x77\xc1\x05\x04\x40\x40\x40\x41", "duplicate key"),
        (HEAD + b"\x00\x53\x77\xc1\x02\x01\x40", "odd number"),
        (HEAD + b"\x00\x53\x77\x56\x07", "neither 0 nor 1"),
    ],
)
def test_bytes_that_are_not_a_well_formed_message_are_malformed(data: bytes, reason: str) -> None:
    with pytest.raises(MalformedMessage, match=reason):
        codec.decode(data)


@pytest.mark.parametrize(
    ("missing", "reason"),
    [("id", "message-id"), ("creation_time", "creation-time")],
)
def test_a_message_without_id_or_creation_time_is_malformed(missing: str, reason: str) -> None:
    fields: dict[str, Any] = {"id": "m", "creation_time": 1.0}
    del fields[missing]
    message = proton.Message(properties={"js:type": "str"}, body="x", **fields)
    with pytest.raises(MalformedMessage, match=reason):
        codec.decode(message.encode())


def test_a_message_without_a_type_name_is_malformed() -> None:
    message = proton.Message(id="m", creation_time=1.0, body="x")
    with pytest.raises(MalformedMessage, match="js:type"):
        codec.decode(message.encode())


def test_an_unknown_content_type_is_malformed() -> None:
    message = proton.Message(
        id="m",
        creation_time=1.0,
        content_type=proton.symbol("application/json"),
        properties={"js:type": "str"},
        body="x",
    )
    with pytest.raises(MalformedMessage, match="application/json"):
        codec.decode(message.encode())


def test_a_self_containing_list_cannot_be_encoded() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(MalformedMessage, match="nest"):
        codec.encode(envelope(loop))


def test_deeply_nested_input_is_refused_without_recursing_away() -> None:
    depth = 10_000
    # list32 inside list32 inside ...: each level is a 9-byte header holding one item
    nested = b"\xd0" + struct.pack(">II", 4, 0)  # the innermost, empty list
    for _ in range(depth):
        nested = b"\xd0" + struct.pack(">II", 4 + len(nested), 1) + nested
    with pytest.raises(MalformedMessage, match="nest deeper than 64"):
        codec.decode(HEAD + b"\x00\x53\x77" + nested)


def test_values_nested_64_deep_still_travel() -> None:
    value: list[Any] = []
    for _ in range(63):
        value = [value]
    assert round_trip(value) == value
    with pytest.raises(MalformedMessage, match="nest"):
        codec.encode(envelope([value]))


def test_naive_datetimes_and_huge_ints_cannot_be_encoded() -> None:
    with pytest.raises(MalformedMessage, match="naive"):
        codec.encode(envelope(datetime.datetime(2024, 1, 1)))
    with pytest.raises(MalformedMessage, match="64 bits"):
        codec.encode(envelope(2**64))


def test_registering_a_class_with_an_unsupported_field_fails_at_once() -> None:
    @attrs.frozen
    class Holder:
        value: complex

    with pytest.raises(TypeError, match="'value'"):
        TypeRegistry().register(Holder)


def test_registration_conflicts_are_refused() -> None:
    fresh = TypeRegistry()
    fresh.register(Point, "geo.Point")
    assert fresh.register(Point, "geo.Point") is Point  # idempotent
    with pytest.raises(ValueError, match="already registered"):
        fresh.register(Circle, "geo.Point")
    with pytest.raises(ValueError, match="already registered"):
        fresh.register(Point, "geo.Point2")
    with pytest.raises(ValueError, match="builtin"):
        fresh.register(Circle, "str")
    with pytest.raises(TypeError, match="not an attrs class"):
        fresh.register(NotRegistered)
    assert fresh.type_for("geo.Point") is Point
    assert fresh.name_of(Point) == "geo.Point"
    assert "geo.Point" in fresh
    assert Point in fresh


# -- cloudpickle ------------------------------------------------------------------------

side_effects: list[str] = []


def record(event: str) -> None:
    side_effects.append(event)


class Booby:
    """Loading one of these runs code: exactly what an untrusted codec must never do."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (record, ("unpickled!",))


def test_a_trusted_codec_pickles_unregistered_values() -> None:
    trusted = Codec(registry, trusted=True)
    value = NotRegistered(42)
    data = trusted.encode(envelope(value, type_name=trusted.type_name_of(value)))
    message = proton.Message()
    message.decode(data)
    assert message.content_type == PICKLE_CONTENT_TYPE
    assert trusted.decode(data).body == value


def test_a_trusted_codec_pickles_a_registered_class_holding_an_unencodable_value() -> None:
    trusted = Codec(registry, trusted=True)
    value = Everything(
        text="t",
        number=1,
        ratio=1.0,
        flag=True,
        blob=b"",
        when=datetime.datetime(2024, 1, 1, tzinfo=UTC),
        ident=uuid.UUID(int=1),
        anything=NotRegistered(3),
    )
    assert round_trip(value, trusted) == value


def test_an_untrusted_codec_refuses_a_pickle_without_loading_it() -> None:
    trusted = Codec(registry, trusted=True)
    data = trusted.encode(envelope(Booby(), type_name="evil.Booby"))
    side_effects.clear()
    with pytest.raises(UntrustedPayload, match="trusted=True"):
        codec.decode(data)
    assert side_effects == []
    trusted.decode(data)
    assert side_effects == ["unpickled!"]


# -- size limit -------------------------------------------------------------------------


def test_an_oversized_input_is_refused_before_it_is_read() -> None:
    small = Codec(registry, max_message_size=100)
    with pytest.raises(MessageTooLarge, match="max_message_size=100"):
        small.decode(b"\xff" * 101)  # garbage: never parsed
    with pytest.raises(MessageTooLarge):
        small.decode(memoryview(b"\xff" * 101))


def test_encoding_an_oversized_message_is_refused() -> None:
    small = Codec(registry, max_message_size=1000)
    small.encode(envelope("x" * 500))
    with pytest.raises(MessageTooLarge, match="smaller"):
        small.encode(envelope("x" * 1000))


def test_the_default_limit_is_one_mebibyte() -> None:
    assert Codec().max_message_size == 1 << 20
    codec.encode(envelope(b"x" * 1_000_000))
    with pytest.raises(MessageTooLarge):
        codec.encode(envelope(b"x" * (1 << 20)))


# -- fuzzing ----------------------------------------------------------------------------

decoding_errors = (UnknownMessageType, MalformedMessage)


@given(st.binary(max_size=300))
@fuzz
def test_random_bytes_only_ever_raise_the_codecs_own_errors(data: bytes) -> None:
    with contextlib.suppress(*decoding_errors):
        codec.decode(data)


@given(st.binary(max_size=200))
@fuzz
def test_random_bytes_after_a_section_header_only_raise_the_codecs_own_errors(
    data: bytes,
) -> None:
    for prefix in (b"\x00\x53\x77", b"\x00\x53\x73", b"\x00\x53\x74", b"\x00\x53\x73\x45\x00Sw"):
        with contextlib.suppress(*decoding_errors):
            codec.decode(prefix + data)


samples = [
    envelope(Circle(center=Point(x=1, y=2), radius=3.5), reply_to="r", trace="t", expires=2e9),
    envelope(Tree(label="a", children=(Tree(label="b"),))),
    envelope({"k": [1, 2.5, None, b"b", "s", uuid.UUID(int=3)], "d": {"n": True}}),
    envelope(
        Everything(
            text="t",
            number=1,
            ratio=1.0,
            flag=True,
            blob=b"b",
            when=datetime.datetime(2024, 1, 1, tzinfo=UTC),
            ident=uuid.UUID(int=1),
            tags=("a", "b"),
            points=[Point(x=1, y=2)],
            scores={"s": 1.0},
            shape=Square(corner=Point(x=0, y=0), side=1.0),
        ),
        error=RemoteErrorInfo(type_name="E", message="m", traceback="tb"),
    ),
]
encoded_samples = [codec.encode(sample) for sample in samples]

mutations = st.lists(
    st.tuples(
        st.sampled_from(["flip", "set", "insert", "delete", "truncate"]),
        st.integers(min_value=0, max_value=10_000),
        st.integers(min_value=0, max_value=255),
    ),
    min_size=1,
    max_size=4,
)


@given(st.sampled_from(encoded_samples), mutations)
@fuzz
def test_mutated_messages_decode_or_raise_only_the_codecs_own_errors(
    data: bytes, changes: list[tuple[str, int, int]]
) -> None:
    mutated = bytearray(data)
    for kind, where, byte in changes:
        if not mutated:
            break
        where %= len(mutated)
        if kind == "flip":
            mutated[where] ^= 1 << (byte % 8)
        elif kind == "set":
            mutated[where] = byte
        elif kind == "insert":
            mutated.insert(where, byte)
        elif kind == "delete":
            del mutated[where]
        else:
            del mutated[where:]
    with contextlib.suppress(*decoding_errors):
        codec.decode(bytes(mutated))


def test_every_truncation_of_a_valid_message_is_malformed() -> None:
    for data in encoded_samples:
        for end in range(len(data)):
            with pytest.raises(MalformedMessage):
                codec.decode(data[:end])


def test_every_codec_error_is_a_jumpstarter_error() -> None:
    for error in (UnknownMessageType, MalformedMessage, UntrustedPayload, MessageTooLarge):
        assert issubclass(error, CodecError)
        assert issubclass(error, JumpstarterError)


@given(envelopes)
@fuzz
def test_encode_raw_describes_its_bytes_exactly_as_parsing_them_would(value: WireEnvelope) -> None:
    made = codec.encode_raw(value)
    parsed = RawMessage.parse(made.data)
    assert made.data == codec.encode(value)
    for name in RawMessage.__slots__:
        assert getattr(made, name) == getattr(parsed, name), name


def test_parse_then_decode_equals_decode() -> None:
    data = encoded_samples[0]
    raw = codec.parse(data)
    assert isinstance(raw, RawMessage)
    assert codec.decode(raw) == codec.decode(data) == samples[0]


# -- batches -----------------------------------------------------------------------------


def batch_of(codec: Codec, entries: list[bytes]) -> bytes:
    return codec.encode(
        WireEnvelope(message_id="b-1", type_name=BATCH_TYPE, body=entries, created=1.0)
    )


int64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)


@given(st.lists(st.one_of(st.builds(Point, x=int64, y=int64), st.text())))
def test_a_batch_carries_its_messages_in_order(messages: list[Any]) -> None:
    codec = Codec(registry)
    entries = [codec.encode_entry(message) for message in messages]
    assert all(entry is not None for entry in entries)
    decoded = codec.decode(batch_of(codec, [e for e in entries if e is not None]))
    assert decoded.type_name == BATCH_TYPE
    assert decoded.body == tuple(messages)


def test_a_batch_is_plain_amqp_for_other_clients() -> None:
    codec = Codec(registry)
    data = batch_of(codec, [codec.encode_entry(Point(x=1, y=2)), codec.encode_entry("hi")])
    message = proton.Message()
    message.decode(data)
    assert message.properties["js:type"] == BATCH_TYPE
    assert message.body == [
        ["tests.jumpstarter.amqp.test_codec.Point", {"x": 1, "y": 2}],
        ["str", "hi"],
    ]


def test_only_cloudpickle_can_carry_a_value_that_is_not_registered_so_it_is_never_batched() -> None:
    assert Codec(registry, trusted=True).encode_entry(NotRegistered(1)) is None
    with pytest.raises(UnknownMessageType):
        Codec(registry).encode_entry(NotRegistered(1))


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("not a list", "list of \\[type name, value\\] entries"),
        ([["tests.jumpstarter.amqp.test_codec.Point"]], "list \\[type name, value\\]"),
        ([[1, {"x": 1}]], "list \\[type name, value\\]"),
        ([[BATCH_TYPE, []]], "cannot contain a batch"),
        ([["tests.jumpstarter.amqp.test_codec.Point", {"x": "one", "y": 2}]], "does not fit"),
    ],
)
def test_a_malformed_batch_is_refused(body: Any, reason: str) -> None:
    message = proton.Message(
        id="m-1",
        creation_time=1.0,
        properties={"js:type": BATCH_TYPE},
        body=body,
    )
    with pytest.raises(MalformedMessage, match=reason):
        Codec(registry).decode(message.encode())


def test_a_batch_with_an_unknown_type_is_refused() -> None:
    message = proton.Message(
        id="m-1", creation_time=1.0, properties={"js:type": BATCH_TYPE}, body=[["nope", {}]]
    )
    with pytest.raises(UnknownMessageType):
        Codec(registry).decode(message.encode())


def test_decode_answer_reads_the_body_or_the_error_of_an_answer() -> None:
    codec = Codec(registry)
    answer = codec.encode(
        WireEnvelope(
            message_id="a-1",
            type_name=codec.type_name_of(Point(x=1, y=2)),
            body=Point(x=1, y=2),
            correlation_id="q-1",
            created=1.0,
        )
    )
    assert codec.decode_answer(codec.parse(answer)) == (None, Point(x=1, y=2))
    info = RemoteErrorInfo(type_name="builtins.KeyError", message="'k'", traceback="tb")
    failed = codec.encode(
        WireEnvelope(
            message_id="a-2",
            type_name="None",
            body=None,
            correlation_id="q-2",
            created=1.0,
            error=info,
        )
    )
    assert codec.decode_answer(codec.parse(failed)) == (info, None)
    untyped = proton.Message(id="a-3", creation_time=1.0, body=1).encode()
    with pytest.raises(MalformedMessage, match="js:type"):
        codec.decode_answer(codec.parse(untyped))


@given(
    st.lists(
        st.builds(
            WireEnvelope,
            message_id=st.sampled_from(["m-1", "m-2"]),
            type_name=st.just("str"),
            body=st.sampled_from(["a", "b"]),
            to=st.sampled_from([None, "/a/user/x", "/a/user/y"]),
            reply_to=st.sampled_from([None, "/a/$reply/1"]),
            correlation_id=st.sampled_from([None, "q-1"]),
            sender=st.sampled_from([None, "amqp://h:1/a/user/s"]),
            trace=st.sampled_from([None, "trace-1"]),
            created=st.just(1.0),
            settle_after_handled=st.booleans(),
        ),
        max_size=20,
    )
)
def test_one_codec_encodes_a_stream_of_different_envelopes_each_as_itself(
    envelopes: list[WireEnvelope],
) -> None:
    codec = Codec(registry)  # what it keeps from one message must not leak into the next
    for envelope in envelopes:
        assert codec.decode(codec.encode(envelope)) == envelope


@given(st.builds(Point, x=int64, y=int64), st.sampled_from([b"", b"\x00\x53\x78\xc1\x01\x00"]))
def test_a_message_as_written_here_reads_the_same_by_the_short_and_the_general_way(
    point: Point, footer: bytes
) -> None:
    codec = Codec(registry)
    data = codec.encode(
        WireEnvelope(message_id="m-1", type_name=codec.type_name_of(point), body=point, created=1.0)
    )
    fast = RawMessage.parse(data + footer)  # a footer sends it the general way
    with_header = RawMessage.parse(b"\x00\x53\x70\x45" + data + footer)  # as from a broker
    general = RawMessage.parse(b"\x00\x53\x72\xc1\x01\x00" + data + footer)  # annotations
    assert with_header.properties == general.properties
    assert with_header.application_properties == general.application_properties
    assert with_header.body_value() == general.body_value()
    assert fast.properties == general.properties
    assert fast.application_properties == general.application_properties
    assert fast.body_value() == general.body_value() == {"x": point.x, "y": point.y}
    assert codec.decode(fast) == codec.decode(general)
    span = fast.application_span
    assert span is not None and data[span[0] : span[0] + 3] == b"\x00\x53\x74"
