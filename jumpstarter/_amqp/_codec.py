"""Encode and decode jumpstarter envelopes as AMQP 1.0 messages.

Theory of operation
===================

One :class:`WireEnvelope` (a message and its metadata) becomes the bytes of one AMQP
1.0 message: the *bare message* of the AMQP specification, part 3.2, made of
sections. :meth:`Codec.encode` writes these bytes and :meth:`Codec.decode` reads
them; the sans-IO protocol layer carries them in transfers unchanged.

Sections
--------
The encoder writes three sections, in this order:

``properties`` (descriptor ``0x73``), a list:

=====  ======================  ==========================================
index  AMQP field              envelope field
=====  ======================  ==========================================
0      message-id (string)     ``message_id`` (required)
2      to (string)             ``to``: the target actor's address
4      reply-to (string)       ``reply_to``: where the answer of an ask goes
5      correlation-id (string) ``correlation_id``: the ask an answer is for
6      content-type (symbol)   :data:`NATIVE_CONTENT_TYPE` or
                               :data:`PICKLE_CONTENT_TYPE`
8      absolute-expiry-time    ``expires`` (timestamp, optional)
9      creation-time           ``created`` (timestamp, required)
=====  ======================  ==========================================

Other fields are null. Timestamps are whole milliseconds since the Unix epoch, so
``created`` and ``expires`` keep millisecond precision.

``application-properties`` (``0x74``), a map with string keys:
``js:type`` (string, required: the message's type name), ``js:sender``
(string: the sender's address), ``js:trace`` (string: the eliot task id),
``js:settle`` (boolean: settle the delivery only after the message is handled),
and for the answer to an ask that failed: ``js:error-type``, ``js:error-message``,
``js:error-traceback`` (strings). A signed message also carries ``js:key`` and
``js:sig`` (see :mod:`._signing`). The decoder ignores keys it does not know.

``amqp-value`` (``0x77``): the message itself.

Bodies
------
The message's *type name* (``js:type``) says how to read the body:

* a class registered in a :class:`TypeRegistry` (default name ``module.QualName``) is
  an AMQP map from field names to field values. A registered instance nested inside
  a field is a map too, with an extra ``"$type"`` key holding its type name;
* ``"str"``, ``"int"``, ``"float"``, ``"bool"``, ``"bytes"``, ``"None"``,
  ``"list"``, ``"tuple"``, ``"dict"``, ``"datetime.datetime"`` and ``"uuid.UUID"``
  are plain values.

Python values map to AMQP types as: ``None`` → null, ``bool`` → boolean, ``int`` →
long (ulong from 2**63 to 2**64 - 1), ``float`` → double, ``str`` → string,
``bytes`` → binary, ``list``/``tuple``/``set`` → list, ``dict`` → map, an aware
``datetime`` → timestamp, ``UUID`` → uuid, an ``Enum`` member → its value. Every
AMQP type except decimals and described values is read back (symbols and chars as
``str``, arrays as lists, all integer widths as ``int``), and the field annotations
of the registered class convert and check them: a list becomes a tuple for a
``tuple[int, ...]`` field, an ``int`` is refused for a ``str`` field.

So a client in any language can read and write these messages with its own AMQP
library. Trusted peers may instead send any picklable value as one binary value
with content-type :data:`PICKLE_CONTENT_TYPE`; a :class:`Codec` only reads those
when it was made with ``trusted=True``.

Reading
-------
The reader is lenient where AMQP allows choices and strict where it matters: it
skips a header, annotations and a footer, accepts symbolic section descriptors,
``data`` sections (read as one binary) and ``amqp-sequence`` sections (one list),
and a message without content-type; it refuses sections out of order, a message-id or
address that is not a string, a missing creation-time or ``js:type``, duplicate map
keys, and nesting deeper than 64 levels. :meth:`Codec.decode` raises only
:class:`MessageTooLarge` (checked before reading anything),
:class:`UntrustedPayload`, :class:`UnknownMessageType` and
:class:`MalformedMessage`, whatever the input.

Why not ``proton.Message``
--------------------------
Encoding and reading are written in Python over ``struct``, not with proton's
``Message``: its Python wrappers make several objects per value, and ``encode()``
re-encodes as its buffer doubles, so a round trip of a small message costs ~100 µs
there against ~35 µs here; and signing needs the exact byte spans of the sections,
which proton does not expose. AMQP's encoding is small and stable (part 1 of the
specification); the tests check this code against proton's encoder and decoder
both ways.
"""

from __future__ import annotations

import contextlib
import datetime
import enum
import functools
import struct
import types
import typing
import uuid
from collections.abc import Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import Any, Final, TypeVar, final, overload

import attrs

from .._exceptions import JumpstarterError

__all__ = [
    "BATCH_TYPE",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "NATIVE_CONTENT_TYPE",
    "PICKLE_CONTENT_TYPE",
    "Codec",
    "CodecError",
    "MalformedMessage",
    "MessageTooLarge",
    "RawMessage",
    "RemoteErrorInfo",
    "TypeRegistry",
    "UnknownMessageType",
    "UntrustedPayload",
    "WireEnvelope",
]

NATIVE_CONTENT_TYPE: Final = "application/vnd.jumpstarter.v1+amqp"
"""Content-type of a message whose body is plain AMQP values (the default)."""

PICKLE_CONTENT_TYPE: Final = "application/x-python-cloudpickle"
"""Content-type of a message whose body is one binary value made by cloudpickle."""

DEFAULT_MAX_MESSAGE_SIZE: Final = 1 << 20
"""The default ``max_message_size`` of a :class:`Codec`: 1 MiB."""

BATCH_TYPE: Final = "jumpstarter.batch"
"""The ``js:type`` of a message that carries several messages (see :meth:`Codec.encode_entry`)."""

_T = TypeVar("_T")


# -- errors ----------------------------------------------------------------------------


class CodecError(JumpstarterError):
    """Base class of the errors of :class:`Codec`."""


class UnknownMessageType(CodecError, TypeError):
    """The message's type is not registered on this side.

    Register the class with ``TypeRegistry.register`` (or ``@registry.message``) under
    the same name on both the sending and the receiving node.
    """


class MalformedMessage(CodecError, ValueError):
    """The bytes are not a jumpstarter message, or the body does not fit its type.

    Raised by :meth:`Codec.decode` (the sender wrote something this node cannot
    read), and by :meth:`Codec.encode` for values the wire format cannot carry.
    The message says which part is wrong.
    """


class UntrustedPayload(CodecError):
    """A cloudpickle payload arrived at a codec that does not trust its peers.

    Unpickling runs arbitrary code, so it is refused. Register the message class on
    both sides so it travels as plain AMQP values, or use ``Codec(trusted=True)``,
    only between authenticated peers that trust each other.
    """


class MessageTooLarge(CodecError, ValueError):
    """A message is larger than the codec's ``max_message_size``.

    Send smaller messages (a reference to the data instead of the data), or raise
    ``max_message_size`` on both nodes.
    """


# -- the envelope ----------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class RemoteErrorInfo:
    """Why an ask failed on the remote side, as it travels in the answer.

    Attributes:
        type_name: the exception's type, as ``module.QualName``.
        message: ``str()`` of the exception.
        traceback: the remote traceback, formatted as text.
    """

    type_name: str
    message: str
    traceback: str = ""

    @classmethod
    def from_exception(cls, error: BaseException) -> RemoteErrorInfo:
        """Describe ``error``, with the traceback it carries."""
        import traceback

        kind = type(error)
        return cls(
            type_name=f"{kind.__module__}.{kind.__qualname__}",
            message=str(error),
            traceback="".join(traceback.format_exception(error)),
        )


@attrs.frozen(kw_only=True)
class WireEnvelope:
    """A message with the metadata it carries between nodes.

    Attributes:
        message_id: unique id of this message (a UUID string is a good choice).
        type_name: the body's type name: its registered name, a builtin name such as
            ``"str"`` or ``"dict"`` (see :meth:`Codec.type_name_of`).
        body: the message itself.
        to: address of the target actor.
        reply_to: address the answer of an ask goes to.
        correlation_id: in an answer, the ``message_id`` of the ask.
        sender: address of the sending actor.
        trace: eliot task id, so one request can be followed across nodes.
        created: when the message was made, in Unix seconds (millisecond precision).
        expires: when the message stops being worth delivering, in Unix seconds.
        settle_after_handled: settle the delivery only once the message is handled
            (at least once) rather than once it is in the mailbox.
        error: for the answer to an ask that failed, why it failed.
    """

    message_id: str
    type_name: str
    body: Any
    to: str | None = None
    reply_to: str | None = None
    correlation_id: str | None = None
    sender: str | None = None
    trace: str | None = None
    created: float
    expires: float | None = None
    settle_after_handled: bool = False
    error: RemoteErrorInfo | None = None


# -- low-level AMQP encoding -----------------------------------------------------------

_U8 = struct.Struct(">B")
_U16 = struct.Struct(">H")
_I16 = struct.Struct(">h")
_U32 = struct.Struct(">I")
_I32 = struct.Struct(">i")
_U64 = struct.Struct(">Q")
_I64 = struct.Struct(">q")
_F32 = struct.Struct(">f")
_F64 = struct.Struct(">d")
_HEAD8 = struct.Struct(">BBB")  # list8/map8: code, size, count
_HEAD32 = struct.Struct(">BII")  # list32/map32: code, size, count

_MAX_DEPTH: Final = 64
"""Nesting limit of lists, maps and registered instances, on both sides."""

_EPOCH: Final = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
_ONE_MS: Final = datetime.timedelta(milliseconds=1)
_INT64_MIN: Final = -(1 << 63)
_INT64_END: Final = 1 << 63
_UINT64_END: Final = 1 << 64

_NULL: Final = b"\x40"
_TRUE: Final = b"\x41"
_FALSE: Final = b"\x42"
_SMALL_INTS: Final = tuple(b"\x55" + _U8.pack(i & 0xFF) for i in range(-128, 128))

# section descriptors (AMQP part 3.2)
_HEADER: Final = 0x70
_DELIVERY_ANNOTATIONS: Final = 0x71
_MESSAGE_ANNOTATIONS: Final = 0x72
_PROPERTIES: Final = 0x73
_APPLICATION_PROPERTIES: Final = 0x74
_DATA: Final = 0x75
_SEQUENCE: Final = 0x76
_VALUE: Final = 0x77
_FOOTER: Final = 0x78
_SECTION_NAMES: Final = {
    "amqp:header:list": _HEADER,
    "amqp:delivery-annotations:map": _DELIVERY_ANNOTATIONS,
    "amqp:message-annotations:map": _MESSAGE_ANNOTATIONS,
    "amqp:properties:list": _PROPERTIES,
    "amqp:application-properties:map": _APPLICATION_PROPERTIES,
    "amqp:data:binary": _DATA,
    "amqp:amqp-sequence:list": _SEQUENCE,
    "amqp:amqp-value:*": _VALUE,
    "amqp:footer:map": _FOOTER,
}
_BODY_RANK: Final = 5
_SECTION_RANK: Final = {
    _HEADER: 0,
    _DELIVERY_ANNOTATIONS: 1,
    _MESSAGE_ANNOTATIONS: 2,
    _PROPERTIES: 3,
    _APPLICATION_PROPERTIES: 4,
    _DATA: _BODY_RANK,
    _SEQUENCE: _BODY_RANK,
    _VALUE: _BODY_RANK,
    _FOOTER: 6,
}
_PROPERTIES_PREFIX: Final = b"\x00\x53\x73"
_APPLICATION_PROPERTIES_PREFIX: Final = b"\x00\x53\x74"
_VALUE_PREFIX: Final = b"\x00\x53\x77"
_OUR_LAYOUT: Final = b"\x00\x53\x73\xc0"  # the properties section, as a list8
_HEADER_PREFIX: Final = b"\x00\x53\x70"
_APPLICATION_MAP8: Final = b"\x00\x53\x74\xc1"


def _malformed(reason: str) -> MalformedMessage:
    return MalformedMessage(f"malformed message: {reason}")


def _encode_str(value: str) -> bytes:
    data = value.encode("utf-8")
    n = len(data)
    if n < 256:
        return b"\xa1" + _U8.pack(n) + data
    return b"\xb1" + _U32.pack(n) + data


def _encode_symbol(value: str) -> bytes:
    data = value.encode("ascii")
    n = len(data)
    if n < 256:
        return b"\xa3" + _U8.pack(n) + data
    return b"\xb3" + _U32.pack(n) + data


def _encode_binary(value: bytes | bytearray | memoryview) -> bytes:
    n = len(value)
    if n < 256:
        return b"\xa0" + _U8.pack(n) + value
    return b"\xb0" + _U32.pack(n) + value


def _encode_int(value: int) -> bytes:
    if -128 <= value < 128:
        return _SMALL_INTS[value + 128]
    if _INT64_MIN <= value < _INT64_END:
        return b"\x81" + _I64.pack(value)
    if 0 <= value < _UINT64_END:
        return b"\x80" + _U64.pack(value)
    raise _malformed(f"the int {value} does not fit in 64 bits, so AMQP cannot carry it")


def _encode_timestamp_ms(ms: int) -> bytes:
    if not _INT64_MIN <= ms < _INT64_END:
        raise _malformed(f"the timestamp {ms} ms does not fit in 64 bits")
    return b"\x83" + _I64.pack(ms)


def _encode_datetime(value: datetime.datetime) -> bytes:
    if value.tzinfo is None or value.utcoffset() is None:
        raise _malformed(
            f"the datetime {value.isoformat()} is naive: give it a timezone "
            "(e.g. datetime.now(timezone.utc)) so both sides read the same instant"
        )
    return _encode_timestamp_ms((value - _EPOCH) // _ONE_MS)


def _compound(code8: int, code32: int, count: int, payload: bytes) -> bytes:
    n = len(payload)
    if n < 255 and count < 256:
        return _HEAD8.pack(code8, n + 1, count) + payload
    return _HEAD32.pack(code32, n + 4, count) + payload


class _Encoder:
    """Turns Python values into AMQP-encoded bytes, registered instances as maps."""

    __slots__ = ("_plans",)

    def __init__(self, plans: dict[type, _ClassPlan]) -> None:
        self._plans = plans

    def value(self, value: Any, depth: int = 0) -> bytes:
        kind = type(value)
        if kind is str:
            return _encode_str(value)
        if kind is int:
            return _encode_int(value)
        if kind is bool:
            return _TRUE if value else _FALSE
        if value is None:
            return _NULL
        if kind is float:
            return b"\x82" + _F64.pack(value)
        if depth >= _MAX_DEPTH:
            raise _malformed(f"values nest deeper than {_MAX_DEPTH} levels")
        if kind is list or kind is tuple:
            return self.sequence(value, depth)
        if kind is dict:
            return self.mapping(value, depth)
        plan = self._plans.get(kind)
        if plan is not None:
            return self.instance(value, plan, depth, tagged=True)
        if kind is bytes:
            return _encode_binary(value)
        if kind is datetime.datetime:
            return _encode_datetime(value)
        if kind is uuid.UUID:
            return b"\x98" + bytes(value.bytes)
        return self._by_base(value, depth)

    def _by_base(self, value: Any, depth: int) -> bytes:
        # Subclasses of the builtins, enums, sets: the rare cases, kept off the hot path.
        if isinstance(value, enum.Enum):
            return self.value(value.value, depth + 1)
        if isinstance(value, bool):
            return _TRUE if value else _FALSE
        if isinstance(value, int):
            return _encode_int(int(value))
        if isinstance(value, float):
            return b"\x82" + _F64.pack(value)
        if isinstance(value, str):
            return _encode_str(str(value))
        if isinstance(value, bytes | bytearray | memoryview):
            return _encode_binary(bytes(value))
        if isinstance(value, datetime.datetime):
            return _encode_datetime(value)
        if isinstance(value, uuid.UUID):
            return b"\x98" + value.bytes
        if isinstance(value, list | tuple | AbstractSet):
            return self.sequence(value, depth)
        if isinstance(value, Mapping):
            return self.mapping(value, depth)
        kind = type(value)
        raise UnknownMessageType(
            f"cannot encode a {kind.__module__}.{kind.__qualname__}: it is neither a "
            "plain value (str, int, float, bool, None, bytes, list, tuple, dict, "
            "datetime, UUID, Enum) nor a registered class; register it with "
            "TypeRegistry.register (or @registry.message) on both nodes"
        )

    def sequence(self, items: Any, depth: int) -> bytes:
        if not items:
            return b"\x45"
        encode = self.value
        depth += 1
        parts = [encode(item, depth) for item in items]
        return _compound(0xC0, 0xD0, len(parts), b"".join(parts))

    def mapping(self, mapping: Mapping[Any, Any], depth: int) -> bytes:
        encode = self.value
        depth += 1
        parts = []
        for key, item in mapping.items():
            parts.append(encode(key, depth))
            parts.append(encode(item, depth))
        return _compound(0xC1, 0xD1, len(parts), b"".join(parts))

    def instance(self, value: Any, plan: _ClassPlan, depth: int, *, tagged: bool) -> bytes:
        encode = self.value
        depth += 1
        parts = [plan.type_entry] if tagged else []
        for key, name in plan.encode_fields:
            parts.append(key)
            parts.append(encode(getattr(value, name), depth))
        return _compound(0xC1, 0xD1, 2 * len(plan.encode_fields) + 2 * tagged, b"".join(parts))


# -- low-level AMQP decoding -----------------------------------------------------------


class _Timestamp:
    """An AMQP timestamp as read, in milliseconds; converted where its use is known."""

    __slots__ = ("ms",)

    def __init__(self, ms: int) -> None:
        self.ms = ms

    def __repr__(self) -> str:
        return f"_Timestamp({self.ms})"

    def __eq__(self, other: object) -> bool:
        return type(other) is _Timestamp and other.ms == self.ms

    def __hash__(self) -> int:
        return hash((_Timestamp, self.ms))

    def to_datetime(self) -> datetime.datetime:
        return _EPOCH + datetime.timedelta(milliseconds=self.ms)


_Reader = Callable[[bytes, int, int], tuple[Any, int]]


def _fixed(unpack: Callable[[bytes, int], tuple[Any, ...]], size: int) -> _Reader:
    def read(buf: bytes, pos: int, depth: int) -> tuple[Any, int]:
        return unpack(buf, pos)[0], pos + size

    return read


def _constant(value: Any) -> _Reader:
    def read(buf: bytes, pos: int, depth: int) -> tuple[Any, int]:
        return value, pos

    return read


def _read_list0(buf: bytes, pos: int, depth: int) -> tuple[Any, int]:
    return [], pos


def _read_ubyte(buf: bytes, pos: int, depth: int) -> tuple[Any, int]:
    return buf[pos], pos + 1


def _read_byte(buf: bytes, pos: int, depth: int) -> tuple[Any, int]:
    value = buf[pos]
    return (value - 256 if value > 127 else value), pos + 1


def _read_boolean(buf: bytes, pos: int, depth: int) -> tuple[Any, int]:
    value = buf[pos]
    if value > 1:
        raise _malformed(f"boolean byte 0x{value:02x} at byte {pos} is neither 0 nor 1")
    return value == 1, pos + 1


def _read_char(buf: bytes, pos: int, depth: int) -> tuple[Any, int]:
    code = _U32.unpack_from(buf, pos)[0]
    if code > 0x10FFFF:
        raise _malformed(f"char U+{code:X} at byte {pos} is not a Unicode code point")
    return chr(code), pos + 4


def _read_timestamp(buf: bytes, pos: int, depth: int) -> tuple[Any, int]:
    return _Timestamp(_I64.unpack_from(buf, pos)[0]), pos + 8


def _read_uuid(buf: bytes, pos: int, depth: int) -> tuple[Any, int]:
    end = pos + 16
    if end > len(buf):
        raise _truncated(pos)
    return uuid.UUID(bytes=buf[pos:end]), end


def _truncated(pos: int) -> MalformedMessage:
    return _malformed(f"a value at byte {pos} runs past the end of the input (truncated?)")


def _variable(width: int, kind: str) -> _Reader:
    unpack = _U32.unpack_from
    encoding = "utf-8" if kind == "string" else "ascii"

    def size(buf: bytes, pos: int) -> int:
        return buf[pos] if width == 1 else int(unpack(buf, pos)[0])

    if kind == "binary":

        def read_binary(buf: bytes, pos: int, depth: int) -> tuple[Any, int]:
            start = pos + width
            end = start + size(buf, pos)
            if end > len(buf):
                raise _truncated(pos)
            return buf[start:end], end

        return read_binary

    def read_text(buf: bytes, pos: int, depth: int) -> tuple[Any, int]:
        start = pos + width
        end = start + size(buf, pos)
        if end > len(buf):
            raise _truncated(pos)
        return buf[start:end].decode(encoding), end

    return read_text


def _read_str8(buf: bytes, pos: int, depth: int) -> tuple[Any, int]:
    start = pos + 1
    end = start + buf[pos]
    if end > len(buf):
        raise _truncated(pos)
    return buf[start:end].decode(), end


def _unsupported(kind: str) -> _Reader:
    def read(buf: bytes, pos: int, depth: int) -> tuple[Any, int]:
        raise _malformed(f"{kind} values (at byte {pos - 1}) are not supported")

    return read


def _read_items(buf: bytes, pos: int, end: int, count: int, depth: int) -> list[Any]:
    if end > len(buf):
        raise _truncated(pos)
    if count > end - pos:
        raise _malformed(f"a list or map at byte {pos} claims more items than it has bytes")
    if depth >= _MAX_DEPTH:
        raise _malformed(f"values nest deeper than {_MAX_DEPTH} levels")
    depth += 1
    readers = _READERS
    items: list[Any] = []
    append = items.append
    for _ in range(count):
        code = buf[pos]
        if code == 0xA1:  # str8, by far the most common: inlined
            start = pos + 2
            pos = start + buf[pos + 1]
            if pos > end:
                raise _truncated(start - 2)
            append(buf[start:pos].decode())
            continue
        if code == 0x40:  # null: the unset properties
            append(None)
            pos += 1
            continue
        if code == 0xA3:  # sym8: the content-type
            start = pos + 2
            pos = start + buf[pos + 1]
            if pos > end:
                raise _truncated(start - 2)
            append(buf[start:pos].decode("ascii"))
            continue
        if code == 0x83:  # timestamp: the creation-time
            append(_Timestamp(_I64.unpack_from(buf, pos + 1)[0]))
            pos += 9
            continue
        if code == 0x41 or code == 0x42:  # true, false
            append(code == 0x41)
            pos += 1
            continue
        reader = readers.get(code)
        if reader is None:
            raise _bad_code(buf, pos)
        item, pos = reader(buf, pos + 1, depth)
        append(item)
    if pos != end:
        raise _malformed(f"a list or map ending at byte {end} has a wrong size or count")
    return items


def _read_list8(buf: bytes, pos: int, depth: int) -> tuple[Any, int]:
    end = pos + 1 + buf[pos]
    return _read_items(buf, pos + 2, end, buf[pos + 1], depth), end


def _read_list32(buf: bytes, pos: int, depth: int) -> tuple[Any, int]:
    size, count = _HEAD32.unpack_from(buf, pos - 1)[1:]
    end = pos + 4 + size
    return _read_items(buf, pos + 8, end, count, depth), end


def _to_map(items: list[Any], pos: int) -> dict[Any, Any]:
    if len(items) % 2:
        raise _malformed(f"the map at byte {pos} has an odd number of elements")
    pairs = iter(items)
    try:
        result = dict(zip(pairs, pairs, strict=False))
    except TypeError:
        raise _malformed(f"the map at byte {pos} has a key that is a list or map") from None
    if 2 * len(result) != len(items):
        raise _malformed(f"the map at byte {pos} has a duplicate key")
    return result


def _read_map8(buf: bytes, pos: int, depth: int) -> tuple[Any, int]:
    end = pos + 1 + buf[pos]
    return _to_map(_read_items(buf, pos + 2, end, buf[pos + 1], depth), pos - 1), end


def _read_map32(buf: bytes, pos: int, depth: int) -> tuple[Any, int]:
    size, count = _HEAD32.unpack_from(buf, pos - 1)[1:]
    end = pos + 4 + size
    return _to_map(_read_items(buf, pos + 8, end, count, depth), pos - 1), end


def _read_array_items(buf: bytes, pos: int, end: int, count: int, depth: int) -> list[Any]:
    if end > len(buf):
        raise _truncated(pos)
    if count > end - pos:
        raise _malformed(f"an array at byte {pos} claims more items than it has bytes")
    if depth >= _MAX_DEPTH:
        raise _malformed(f"values nest deeper than {_MAX_DEPTH} levels")
    code = buf[pos]
    if code == 0x00:
        raise _malformed(f"arrays of described values (at byte {pos}) are not supported")
    reader = _READERS.get(code)
    if reader is None:
        raise _bad_code(buf, pos)
    pos += 1
    depth += 1
    items = []
    for _ in range(count):
        item, pos = reader(buf, pos, depth)
        items.append(item)
    if pos != end:
        raise _malformed(f"an array ending at byte {end} has a wrong size or count")
    return items


def _read_array8(buf: bytes, pos: int, depth: int) -> tuple[Any, int]:
    end = pos + 1 + buf[pos]
    return _read_array_items(buf, pos + 2, end, buf[pos + 1], depth), end


def _read_array32(buf: bytes, pos: int, depth: int) -> tuple[Any, int]:
    size, count = _HEAD32.unpack_from(buf, pos - 1)[1:]
    end = pos + 4 + size
    return _read_array_items(buf, pos + 8, end, count, depth), end


_READERS: Final[dict[int, _Reader]] = {
    0x40: _constant(None),
    0x41: _constant(True),
    0x42: _constant(False),
    0x43: _constant(0),
    0x44: _constant(0),
    0x45: _read_list0,
    0x50: _read_ubyte,
    0x51: _read_byte,
    0x52: _read_ubyte,
    0x53: _read_ubyte,
    0x54: _read_byte,
    0x55: _read_byte,
    0x56: _read_boolean,
    0x60: _fixed(_U16.unpack_from, 2),
    0x61: _fixed(_I16.unpack_from, 2),
    0x70: _fixed(_U32.unpack_from, 4),
    0x71: _fixed(_I32.unpack_from, 4),
    0x72: _fixed(_F32.unpack_from, 4),
    0x73: _read_char,
    0x74: _unsupported("decimal32"),
    0x80: _fixed(_U64.unpack_from, 8),
    0x81: _fixed(_I64.unpack_from, 8),
    0x82: _fixed(_F64.unpack_from, 8),
    0x83: _read_timestamp,
    0x84: _unsupported("decimal64"),
    0x94: _unsupported("decimal128"),
    0x98: _read_uuid,
    0xA0: _variable(1, "binary"),
    0xA1: _read_str8,
    0xA3: _variable(1, "symbol"),
    0xB0: _variable(4, "binary"),
    0xB1: _variable(4, "string"),
    0xB3: _variable(4, "symbol"),
    0xC0: _read_list8,
    0xC1: _read_map8,
    0xD0: _read_list32,
    0xD1: _read_map32,
    0xE0: _read_array8,
    0xF0: _read_array32,
    0x00: _unsupported("described"),
}
_LIST_CODES: Final = frozenset({0x45, 0xC0, 0xD0})
_MAP_CODES: Final = frozenset({0xC1, 0xD1})
_BINARY_CODES: Final = frozenset({0xA0, 0xB0})

# For skipping a value without reading it: the width of the constructor's payload,
# or -1 / -4 for a one- / four-byte size prefix (AMQP part 1.6: the high nibble of a
# constructor gives its width category).
_WIDTHS: Final = {
    **dict.fromkeys((0x40, 0x41, 0x42, 0x43, 0x44, 0x45), 0),
    **dict.fromkeys((0x50, 0x51, 0x52, 0x53, 0x54, 0x55, 0x56), 1),
    **dict.fromkeys((0x60, 0x61), 2),
    **dict.fromkeys((0x70, 0x71, 0x72, 0x73, 0x74), 4),
    **dict.fromkeys((0x80, 0x81, 0x82, 0x83, 0x84), 8),
    **dict.fromkeys((0x94, 0x98), 16),
    **dict.fromkeys((0xA0, 0xA1, 0xA3, 0xC0, 0xC1, 0xE0), -1),
    **dict.fromkeys((0xB0, 0xB1, 0xB3, 0xD0, 0xD1, 0xF0), -4),
}


def _bad_code(buf: bytes, pos: int) -> MalformedMessage:
    return _malformed(f"byte 0x{buf[pos]:02x} at byte {pos} is not an AMQP type code")


def _read_value(buf: bytes, pos: int) -> tuple[Any, int]:
    reader = _READERS.get(buf[pos])
    if reader is None:
        raise _bad_code(buf, pos)
    return reader(buf, pos + 1, 0)


def _skip_value(buf: bytes, pos: int, depth: int = 0) -> int:
    """Return where the value at ``pos`` ends, without reading it."""
    code = buf[pos]
    if code == 0x00:
        if depth >= _MAX_DEPTH:
            raise _malformed(f"descriptors nest deeper than {_MAX_DEPTH} levels")
        return _skip_value(buf, _skip_value(buf, pos + 1, depth + 1), depth + 1)
    width = _WIDTHS.get(code)
    if width is None:
        raise _bad_code(buf, pos)
    if width >= 0:
        end = pos + 1 + width
    elif width == -1:
        end = pos + 2 + buf[pos + 1]
    else:
        end = pos + 5 + _U32.unpack_from(buf, pos + 1)[0]
    if end > len(buf):
        raise _truncated(pos)
    return end


# -- sections --------------------------------------------------------------------------


@final
class RawMessage:
    """An encoded message split into its sections, its body left unread.

    The properties and application properties are read; the body sections are
    only located. :mod:`._signing` uses this to check a signature before any body
    is read, and :class:`Codec` to read the rest.

    Attributes:
        data: the whole encoded message.
        properties: the properties list as read (possibly shorter than 13 fields).
        application_properties: the application-properties map.
        application_span: ``(start, map_start, end)`` of the application-properties
            section: where it starts, where its map starts, where it ends; or
            ``None`` if the message has none.
        insert_at: where an application-properties section would go if absent.
        body_kind: the descriptor of the body sections (``0x75`` data, ``0x76``
            amqp-sequence, ``0x77`` amqp-value), ``0`` if there is no body.
        body_start: where the first body section starts.
        body_end: where the last body section ends.
        body_values: ``(start, end)`` of the value inside each body section.
    """

    __slots__ = (
        "application_properties",
        "application_span",
        "body_end",
        "body_kind",
        "body_start",
        "body_values",
        "data",
        "insert_at",
        "properties",
    )

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.properties: list[Any] = []
        self.application_properties: dict[Any, Any] = {}
        self.application_span: tuple[int, int, int] | None = None
        self.insert_at = -1
        self.body_kind = 0
        self.body_start = self.body_end = len(data)
        self.body_values: list[tuple[int, int]] = []

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview) -> RawMessage:
        """Split ``data`` into sections; raise :class:`MalformedMessage` if it is not
        one well-formed AMQP message."""
        raw = cls(data if type(data) is bytes else bytes(data))
        try:
            raw._parse()
        except (IndexError, struct.error):
            raise _malformed(
                f"the input ends inside a value (truncated?) after {len(data)} bytes"
            ) from None
        except UnicodeDecodeError as error:
            raise _malformed(f"a string or symbol is not valid text: {error}") from None
        return raw

    def _parse(self) -> None:
        data = self.data
        if data.startswith(_OUR_LAYOUT):
            if self._parse_our_layout(0):
                return
        elif data.startswith(_HEADER_PREFIX):  # a broker's copy of one: a header first
            start = _skip_value(data, 3)
            if data.startswith(_OUR_LAYOUT, start) and self._parse_our_layout(start):
                return
        if not data:
            raise _malformed("the input is empty, not an AMQP message")
        size = len(data)
        pos = 0
        last_rank = -1
        while pos < size:
            start = pos
            if data[pos] != 0x00:
                raise _malformed(
                    f"expected an AMQP section at byte {pos}, found 0x{data[pos]:02x}: "
                    "the input is not an AMQP 1.0 message"
                )
            if data[pos + 1] == 0x53:  # the usual small-ulong descriptor
                section = data[pos + 2]
                pos += 3
                rank = _SECTION_RANK.get(section, -1)
                if rank < 0:
                    raise _malformed(f"the section at byte {start} has an unknown descriptor")
            else:
                section, pos = self._descriptor(pos + 1)
                rank = _SECTION_RANK[section]
            if rank < last_rank or (
                rank == last_rank and (rank != _BODY_RANK or section != self.body_kind)
            ):
                raise _malformed(f"section 0x{section:02x} at byte {start} is out of order")
            if rank > 4 and self.insert_at < 0:
                self.insert_at = start
            if rank == _BODY_RANK:
                if section == _VALUE and self.body_kind == _VALUE:
                    raise _malformed("the message has two amqp-value sections")
                if last_rank != _BODY_RANK:
                    self.body_kind = section
                    self.body_start = start
            last_rank = rank
            code = data[pos]
            if section == _PROPERTIES:
                if code not in _LIST_CODES:
                    raise _malformed("the properties section is not a list")
                self.properties, pos = _read_value(data, pos)
            elif section == _APPLICATION_PROPERTIES:
                if code not in _MAP_CODES:
                    raise _malformed("the application-properties section is not a map")
                value_start = pos
                self.application_properties, pos = _read_value(data, pos)
                self.application_span = (start, value_start, pos)
            else:
                if section == _DATA and code not in _BINARY_CODES:
                    raise _malformed("a data section does not hold binary")
                if section == _SEQUENCE and code not in _LIST_CODES:
                    raise _malformed("an amqp-sequence section does not hold a list")
                value_start = pos
                pos = _skip_value(data, pos)
                if rank == _BODY_RANK:
                    self.body_values.append((value_start, pos))
                    self.body_end = pos
        if self.insert_at < 0:
            self.insert_at = size

    def _parse_our_layout(self, start: int) -> bool:
        """Split a message laid out as :class:`Codec` writes it (properties as a list8,
        application properties as a map8, one amqp-value) from ``start``, where the
        properties begin; False, having changed nothing, for anything else, which the
        general reader then takes."""
        data = self.data
        end = start + 5 + data[start + 4]
        if data[end : end + 4] != _APPLICATION_MAP8:
            return False
        map_end = end + 5 + data[end + 4]
        if data[map_end : map_end + 3] != _VALUE_PREFIX:
            return False
        value_end = _skip_value(data, map_end + 3)
        if value_end != len(data):
            return False
        self.properties = _read_items(data, start + 6, end, data[start + 5], 0)
        self.application_properties = _to_map(
            _read_items(data, end + 6, map_end, data[end + 5], 0), end + 3
        )
        self.application_span = (end, end + 3, map_end)
        self.insert_at = self.body_start = map_end
        self.body_kind = _VALUE
        self.body_values.append((map_end + 3, value_end))
        self.body_end = value_end
        return True

    def _descriptor(self, pos: int) -> tuple[int, int]:
        data = self.data
        code = data[pos]
        number: Any
        if code == 0x53:
            number, pos = data[pos + 1], pos + 2
        elif code == 0x80:
            number, pos = _U64.unpack_from(data, pos + 1)[0], pos + 9
        elif code in (0xA3, 0xB3):
            name, pos = _read_value(data, pos)
            number = _SECTION_NAMES.get(name)
        else:
            number = None
        if number not in _SECTION_RANK:
            raise _malformed(f"the section at byte {pos} has an unknown descriptor")
        return number, pos

    def property(self, index: int) -> Any:
        """The properties field at ``index`` (0 = message-id), ``None`` if absent."""
        properties = self.properties
        return properties[index] if index < len(properties) else None

    def body_value(self) -> Any:
        """Read the body: one value, the concatenated binaries of data sections, or
        the concatenated lists of amqp-sequence sections (``None`` if no body)."""
        data = self.data
        try:
            if self.body_kind == _VALUE:
                start = self.body_values[0][0]
                return _read_value(data, start)[0]
            if self.body_kind == _DATA:
                return b"".join(_read_value(data, start)[0] for start, _ in self.body_values)
            if self.body_kind == _SEQUENCE:
                items: list[Any] = []
                for start, _ in self.body_values:
                    items.extend(_read_value(data, start)[0])
                return items
            return None
        except (IndexError, struct.error):
            raise _malformed("the body ends inside a value (truncated?)") from None
        except UnicodeDecodeError as error:
            raise _malformed(f"a string or symbol in the body is not valid text: {error}") from None

    def with_application_properties(
        self, add: Mapping[str, str | bytes], drop: AbstractSet[str] = frozenset()
    ) -> bytes:
        """The message with the application properties in ``drop`` removed and
        ``add`` appended; every other section is kept byte for byte."""
        data = self.data
        entries: list[bytes] = []
        count = 0
        span = self.application_span
        if span is None:
            before, after = data[: self.insert_at], data[self.insert_at :]
        else:
            start, pos, end = span
            before, after = data[:start], data[end:]
            small = data[pos] == 0xC1
            pos += 3 if small else 9  # past the map8 / map32 header
            if drop.isdisjoint(self.application_properties):  # keep the entries as they are
                entries.append(data[pos:end])
                count = data[pos - 1] if small else _U32.unpack_from(data, pos - 4)[0]
                pos = end
            while pos < end:
                key, key_end = _read_value(data, pos)
                value_end = _skip_value(data, key_end)
                if key not in drop:
                    entries.append(data[pos:value_end])
                    count += 2
                pos = value_end
        for key, value in add.items():
            entries.append(_encode_str(key))
            entries.append(_encode_str(value) if isinstance(value, str) else _encode_binary(value))
            count += 2
        return b"".join(
            (
                before,
                _APPLICATION_PROPERTIES_PREFIX,
                _compound(0xC1, 0xD1, count, b"".join(entries)),
                after,
            )
        )


# -- reading values into their types ---------------------------------------------------


class _Mismatch(Exception):
    """A value does not fit the type it is read as; ``path`` says where."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.path: list[str] = []

    def where(self) -> str:
        return "".join(reversed(self.path)) or "the body"


_Convert = Callable[[Any], Any]


def _type_label(value: Any) -> str:
    if isinstance(value, _Timestamp):
        return "timestamp"
    if isinstance(value, dict) and isinstance(value.get("$type"), str):
        return f"map of type {value['$type']!r}"
    kind = type(value)
    return {dict: "map", list: "list", type(None): "null"}.get(kind, kind.__name__)


def _expected(what: str, value: Any) -> _Mismatch:
    return _Mismatch(f"expected {what}, got {_type_label(value)}")


@final
class _ClassPlan:
    """How one registered class travels: its fields, in order, and their readers."""

    __slots__ = ("cls", "decode_fields", "encode_fields", "field_names", "name", "type_entry")

    def __init__(self, cls: type, name: str) -> None:
        self.cls = cls
        self.name = name
        self.type_entry = _encode_str("$type") + _encode_str(name)
        fields = [field for field in attrs.fields(cls) if field.init]
        self.encode_fields = tuple((_encode_str(field.alias), field.name) for field in fields)
        self.field_names = frozenset(field.alias for field in fields)
        # (wire key, init argument, reader, required), compiled from the annotations
        # on first use, so that classes may refer to classes registered later.
        self.decode_fields: tuple[tuple[str, str, _Convert, bool], ...] | None = None


class _ClassDecorator(typing.Protocol):
    def __call__(self, cls: type[_T], /) -> type[_T]: ...


@final
class TypeRegistry:
    """The message classes a node can send and receive as plain AMQP values.

    Register the same classes under the same names on every node that exchanges
    them. A registered class must be an ``attrs`` class whose fields are plain
    values (see :mod:`._codec`), other registered classes, or lists, tuples, sets
    and dicts of those::

        registry = TypeRegistry()

        @registry.message
        @attrs.frozen(kw_only=True)
        class Deposit:
            account: str
            cents: int

        registry.register(Withdrawal, name="bank.Withdrawal")
    """

    __slots__ = ("_builtins", "_by_class", "_by_name")

    def __init__(self) -> None:
        self._by_class: dict[type, _ClassPlan] = {}
        self._by_name: dict[str, _ClassPlan] = {}
        self._builtins = {name: self._converter(tp) for name, tp in _BUILTIN_TYPES.items()}

    def register(self, cls: type[_T], name: str | None = None) -> type[_T]:
        """Register ``cls`` under ``name`` (default ``module.QualName``); return ``cls``.

        Raises:
            TypeError: ``cls`` is not an ``attrs`` class, or a field's annotation is
                not something the wire format can carry.
            ValueError: the name or the class is already registered differently.
        """
        checked: Any = cls
        if not (isinstance(checked, type) and attrs.has(checked)):
            raise TypeError(f"{cls!r} is not an attrs class; only attrs classes can be registered")
        if name is None:
            name = f"{cls.__module__}.{cls.__qualname__}"
        if not name or name == "$type":
            raise ValueError(f"{name!r} cannot be a type name")
        if name in _BUILTIN_TYPES:
            raise ValueError(f"{name!r} is the name of a builtin body type; choose another")
        old = self._by_name.get(name)
        if old is not None:
            if old.cls is cls:
                return cls
            raise ValueError(f"the type name {name!r} is already registered for {old.cls!r}")
        if cls in self._by_class:
            raise ValueError(f"{cls!r} is already registered as {self._by_class[cls].name!r}")
        plan = _ClassPlan(cls, name)
        # A class that refers to one not defined yet is compiled on first use instead.
        with contextlib.suppress(NameError):
            self._compile(plan)
        self._by_class[cls] = plan
        self._by_name[name] = plan
        return cls

    @overload
    def message(self, cls: type[_T], /) -> type[_T]: ...

    @overload
    def message(self, *, name: str | None = None) -> _ClassDecorator: ...

    def message(self, cls: type[Any] | None = None, *, name: str | None = None) -> Any:
        """Class decorator form of :meth:`register`: ``@registry.message`` or
        ``@registry.message(name="bank.Deposit")`` (put it above ``@attrs.frozen``)."""
        if cls is not None:
            return self.register(cls)

        def decorate(cls: type[_T]) -> type[_T]:
            return self.register(cls, name)

        return decorate

    def name_of(self, cls: type) -> str:
        """The name ``cls`` is registered under.

        Raises:
            UnknownMessageType: ``cls`` is not registered.
        """
        plan = self._by_class.get(cls)
        if plan is None:
            raise UnknownMessageType(
                f"{cls.__module__}.{cls.__qualname__} is not registered: register it with "
                "TypeRegistry.register (or @registry.message) under the same name on both "
                "nodes"
            )
        return plan.name

    def type_for(self, name: str) -> type:
        """The class registered under ``name``.

        Raises:
            UnknownMessageType: nothing is registered under ``name``.
        """
        return self._plan_named(name).cls

    def __contains__(self, item: object) -> bool:
        return item in self._by_name or item in self._by_class

    def __len__(self) -> int:
        return len(self._by_name)

    def _plan_named(self, name: str) -> _ClassPlan:
        plan = self._by_name.get(name)
        if plan is None:
            raise self._unknown(name)
        return plan

    @staticmethod
    def _unknown(name: str) -> UnknownMessageType:
        return UnknownMessageType(
            f"no message type named {name!r} is registered on this node: register the "
            "class with TypeRegistry.register (or @registry.message) under the same "
            "name on both the sending and the receiving node"
        )

    def _compile(self, plan: _ClassPlan) -> tuple[tuple[str, str, _Convert, bool], ...]:
        if plan.decode_fields is not None:
            return plan.decode_fields
        hints = typing.get_type_hints(plan.cls)
        compiled = []
        for field in attrs.fields(plan.cls):
            if not field.init:
                continue
            annotation = hints.get(field.name, field.type)
            try:
                convert = self._converter(annotation)
            except TypeError as error:
                raise TypeError(
                    f"field {field.name!r} of {plan.cls.__qualname__} cannot travel: {error}"
                ) from None
            required = field.default is attrs.NOTHING
            compiled.append((field.alias, field.alias, convert, required))
        plan.decode_fields = tuple(compiled)
        return plan.decode_fields

    def _converter(self, annotation: Any) -> _Convert:
        if annotation is Any or annotation is object:
            return self._revive
        if annotation is None or annotation is type(None):
            return _check_none
        simple = _SIMPLE_CONVERTERS.get(annotation)
        if simple is not None:
            return simple
        origin = typing.get_origin(annotation)
        args = typing.get_args(annotation)
        if origin is typing.Union or origin is types.UnionType:
            return self._union([self._converter(arg) for arg in args], annotation)
        if origin is typing.Literal:
            return _literal(args)
        if origin is typing.Annotated:
            return self._converter(args[0])
        if annotation in (list, tuple, set, frozenset, dict) or origin in (
            list,
            tuple,
            set,
            frozenset,
            dict,
            Sequence,
            Mapping,
            AbstractSet,
        ):
            return self._container(origin or annotation, args)
        if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
            return _enum(annotation)
        if isinstance(annotation, type) and attrs.has(annotation):
            return self._nested(annotation)
        raise TypeError(
            f"{annotation!r} is not a type the wire format carries (use plain values, "
            "registered attrs classes, Enums, Literals, or lists, tuples, sets and dicts "
            "of those)"
        )

    def _container(self, origin: Any, args: tuple[Any, ...]) -> _Convert:
        if origin in (dict, Mapping):
            key = self._converter(args[0]) if args else self._revive
            item = self._converter(args[1]) if len(args) > 1 else self._revive
            return _dict_of(key, item)
        if origin is tuple and args and (len(args) != 2 or args[1] is not Ellipsis):
            return _tuple_of([self._converter(arg) for arg in args])
        item = self._converter(args[0]) if args else self._revive
        maker: Callable[[list[Any]], Any] = {
            tuple: tuple,
            set: set,
            frozenset: frozenset,
            AbstractSet: frozenset,
        }.get(origin, list)
        return _sequence_of(item, maker)

    def _union(self, options: list[_Convert], annotation: Any) -> _Convert:
        if len(options) == 2 and _check_none in options:
            other = options[1 - options.index(_check_none)]

            def optional(value: Any) -> Any:
                return None if value is None else other(value)

            return optional

        def union(value: Any) -> Any:
            for option in options:
                try:
                    return option(value)
                except _Mismatch:
                    continue
            raise _expected(_annotation_label(annotation), value)

        return union

    def _nested(self, base: type) -> _Convert:
        def nested(value: Any) -> Any:
            if type(value) is not dict or type(value.get("$type")) is not str:
                raise _expected(f"a map with a '$type' key for {base.__qualname__}", value)
            plan = self._plan_named(value["$type"])
            if not issubclass(plan.cls, base):
                raise _Mismatch(f"expected {base.__qualname__}, got {plan.name!r}")
            return self._build(plan, value)

        return nested

    def _revive(self, value: Any) -> Any:
        """Read a value whose type is not declared: registered maps become instances."""
        kind = type(value)
        if kind is list:
            return [self._revive(item) for item in value]
        if kind is dict:
            name = value.get("$type")
            if type(name) is str:
                return self._build(self._plan_named(name), value)
            return {self._revive(key): self._revive(item) for key, item in value.items()}
        if kind is _Timestamp:
            return _to_datetime(value)
        return value

    def _build(self, plan: _ClassPlan, value: dict[Any, Any]) -> Any:
        fields = plan.decode_fields
        if fields is None:
            try:
                fields = self._compile(plan)
            except (NameError, TypeError) as error:
                raise UnknownMessageType(
                    f"{plan.name!r} is registered, but its annotations cannot be read "
                    f"({error}); register it after the classes its fields refer to exist"
                ) from None
        kwargs = {}
        for key, argument, convert, required in fields:
            if key in value:
                try:
                    kwargs[argument] = convert(value[key])
                except _Mismatch as mismatch:
                    mismatch.path.append(f".{key}")
                    raise
            elif required:
                raise _Mismatch(f"{plan.name} has no field {key!r}")
        if len(kwargs) + ("$type" in value) != len(value):
            unknown = sorted(repr(key) for key in value if key not in plan.field_names)
            unknown = [name for name in unknown if name != "'$type'"]
            raise _Mismatch(f"{plan.name} has no field(s) {', '.join(unknown)}")
        try:
            return plan.cls(**kwargs)
        except Exception as error:
            raise _Mismatch(f"{plan.name}(...) refused the fields: {error!r}") from None


def _annotation_label(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or repr(annotation).replace("typing.", "")


def _check_none(value: Any) -> Any:
    if value is not None:
        raise _expected("null", value)
    return None


def _check(kind: type, label: str) -> _Convert:
    def check(value: Any) -> Any:
        if not isinstance(value, kind):
            raise _expected(label, value)
        return value

    return check


def _check_float(value: Any) -> Any:
    if type(value) is float:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    raise _expected("float", value)


def _check_int(value: Any) -> Any:
    if type(value) is int:
        return value
    raise _expected("int", value)


def _to_datetime(value: _Timestamp) -> datetime.datetime:
    try:
        return value.to_datetime()
    except OverflowError:
        raise _Mismatch(f"the timestamp {value.ms} ms is out of datetime's range") from None


def _check_datetime(value: Any) -> Any:
    if type(value) is not _Timestamp:
        raise _expected("timestamp", value)
    return _to_datetime(value)


_SIMPLE_CONVERTERS: Final[dict[Any, _Convert]] = {
    str: _check(str, "string"),
    int: _check_int,
    float: _check_float,
    bool: _check(bool, "boolean"),
    bytes: _check(bytes, "binary"),
    datetime.datetime: _check_datetime,
    uuid.UUID: _check(uuid.UUID, "uuid"),
}


def _literal(choices: tuple[Any, ...]) -> _Convert:
    allowed = {(type(choice), choice) for choice in choices}

    def literal(value: Any) -> Any:
        if (type(value), value) not in allowed:
            raise _Mismatch(f"expected one of {list(choices)!r}, got {value!r}")
        return value

    return literal


def _enum(kind: type[enum.Enum]) -> _Convert:
    def convert(value: Any) -> Any:
        try:
            return kind(value)
        except (ValueError, TypeError):
            raise _Mismatch(f"{value!r} is not a value of {kind.__qualname__}") from None

    return convert


def _sequence_of(item: _Convert, maker: Callable[[list[Any]], Any]) -> _Convert:
    def sequence(value: Any) -> Any:
        if type(value) is not list:
            raise _expected("list", value)
        items = []
        for index, element in enumerate(value):
            try:
                items.append(item(element))
            except _Mismatch as mismatch:
                mismatch.path.append(f"[{index}]")
                raise
        try:
            return maker(items)
        except TypeError:
            raise _Mismatch("the items cannot go into a set") from None

    return sequence


def _tuple_of(items: list[_Convert]) -> _Convert:
    def fixed(value: Any) -> Any:
        if type(value) is not list:
            raise _expected("list", value)
        if len(value) != len(items):
            raise _Mismatch(f"expected {len(items)} items, got {len(value)}")
        result = []
        for index, (convert, element) in enumerate(zip(items, value, strict=True)):
            try:
                result.append(convert(element))
            except _Mismatch as mismatch:
                mismatch.path.append(f"[{index}]")
                raise
        return tuple(result)

    return fixed


def _dict_of(key: _Convert, item: _Convert) -> _Convert:
    def mapping(value: Any) -> Any:
        if type(value) is not dict:
            raise _expected("map", value)
        result = {}
        for raw_key, element in value.items():
            try:
                result[key(raw_key)] = item(element)
            except _Mismatch as mismatch:
                mismatch.path.append(f"[{raw_key!r}]")
                raise
            except TypeError:
                raise _Mismatch(f"the key {raw_key!r} cannot be a dict key") from None
        return result

    return mapping


_BUILTIN_TYPES: Final[dict[str, Any]] = {
    "str": str,
    "int": int,
    "float": float,
    "bool": bool,
    "bytes": bytes,
    "None": None,
    "list": list[Any],
    "tuple": tuple[Any, ...],
    "dict": dict[Any, Any],
    "datetime.datetime": datetime.datetime,
    "uuid.UUID": uuid.UUID,
}
_BUILTIN_NAMES: Final[dict[type, str]] = {
    str: "str",
    int: "int",
    float: "float",
    bool: "bool",
    bytes: "bytes",
    bytearray: "bytes",
    type(None): "None",
    list: "list",
    tuple: "tuple",
    dict: "dict",
    datetime.datetime: "datetime.datetime",
    uuid.UUID: "uuid.UUID",
}


# -- the codec -------------------------------------------------------------------------


_KEY_TYPE: Final = _encode_str("js:type")
_KEY_SENDER: Final = _encode_str("js:sender")
_KEY_TRACE: Final = _encode_str("js:trace")
_KEY_SETTLE: Final = _encode_str("js:settle")
_KEY_ERROR_TYPE: Final = _encode_str("js:error-type")
_KEY_ERROR_MESSAGE: Final = _encode_str("js:error-message")
_KEY_ERROR_TRACEBACK: Final = _encode_str("js:error-traceback")
_NATIVE: Final = _encode_symbol(NATIVE_CONTENT_TYPE)
_PICKLE: Final = _encode_symbol(PICKLE_CONTENT_TYPE)


_CACHE_SIZE: Final = 1024
"""How many encoded address pairs and application-property maps a codec keeps."""


def _optional_str(value: str | None) -> bytes:
    return _NULL if value is None else _encode_str(value)


def _to_ms(seconds: float) -> int:
    try:
        ms = round(seconds * 1000)
    except (OverflowError, ValueError, TypeError):
        raise _malformed(f"{seconds!r} is not a time in Unix seconds") from None
    if not _INT64_MIN <= ms < _INT64_END:
        raise _malformed(f"{seconds!r} is not a time in Unix seconds")
    return ms


def _application_values(envelope: WireEnvelope) -> dict[str, Any]:
    values: dict[str, Any] = {"js:type": envelope.type_name}
    if envelope.sender is not None:
        values["js:sender"] = envelope.sender
    if envelope.trace is not None:
        values["js:trace"] = envelope.trace
    values["js:settle"] = envelope.settle_after_handled
    if envelope.error is not None:
        values["js:error-type"] = envelope.error.type_name
        values["js:error-message"] = envelope.error.message
        values["js:error-traceback"] = envelope.error.traceback
    return values


@final
class Codec:
    """Turns :class:`WireEnvelope` values into encoded AMQP 1.0 messages and back.

    Args:
        registry: the message classes this node sends and receives as plain AMQP
            values; an empty registry by default (only builtin values then).
        trusted: encode values that are not registered with cloudpickle, and accept
            such messages. Only between authenticated peers that trust each other:
            unpickling runs arbitrary code.
        max_message_size: largest encoded message, in bytes, either way.

    Example::

        codec = Codec(registry)
        data = codec.encode(WireEnvelope(
            message_id=str(uuid.uuid4()), type_name=codec.type_name_of(msg),
            body=msg, created=time.time(), to="amqp://host:5672/bank/teller",
        ))
        assert codec.decode(data).body == msg
    """

    __slots__ = ("_cache", "_encoder", "lenient", "max_message_size", "registry", "trusted")

    def __init__(
        self,
        registry: TypeRegistry | None = None,
        *,
        trusted: bool = False,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    ) -> None:
        self.registry = registry if registry is not None else TypeRegistry()
        self.trusted = trusted
        self.max_message_size = max_message_size
        self._cache: dict[tuple[Any, ...], bytes] = {}
        self.lenient = False
        """Decode the body of an unregistered type as its plain AMQP value (a map,
        usually) instead of refusing it: for tools that only show messages."""
        self._encoder = _Encoder(self.registry._by_class)

    def type_name_of(self, body: Any) -> str:
        """The type name a body travels under.

        Raises:
            UnknownMessageType: its type is neither registered nor a builtin body
                type, and the codec is not trusted (a trusted codec pickles it and
                names it ``module.QualName``).
        """
        kind = type(body)
        plan = self.registry._by_class.get(kind)
        if plan is not None:
            return plan.name
        name = _BUILTIN_NAMES.get(kind)
        if name is not None:
            return name
        if self.trusted:
            return f"{kind.__module__}.{kind.__qualname__}"
        return self.registry.name_of(kind)

    # -- encoding

    def encode(self, envelope: WireEnvelope) -> bytes:
        """Encode ``envelope`` as one AMQP message.

        Raises:
            UnknownMessageType: the body's type is not registered (see
                :meth:`type_name_of`), or ``type_name`` does not name it.
            MalformedMessage: a value the wire format cannot carry (a naive
                datetime, an int beyond 64 bits, nesting deeper than 64 levels).
            MessageTooLarge: the encoded message exceeds ``max_message_size``.
        """
        return self._encode(envelope, None)

    def encode_raw(self, envelope: WireEnvelope) -> RawMessage:
        """Like :meth:`encode`, but return the message already split into sections
        (its bytes are in ``.data``), so that :meth:`Signer.sign` need not parse it."""
        raw = RawMessage(b"")
        self._encode(envelope, raw)
        return raw

    def _encode(self, envelope: WireEnvelope, raw: RawMessage | None) -> bytes:
        content_type, body = self._encode_body(envelope.type_name, envelope.body)
        created = _to_ms(envelope.created)
        expires = None if envelope.expires is None else _to_ms(envelope.expires)
        cache = self._cache
        try:
            # The fields that repeat from message to message (the addresses of a link,
            # the application properties of a type) are encoded once and kept.
            key: tuple[Any, ...] = ("to", envelope.to, envelope.reply_to)
            addresses = cache.get(key)
            if addresses is None:
                addresses = self._remember(
                    key,
                    b"".join(
                        (
                            _NULL,
                            _optional_str(envelope.to),
                            _NULL,
                            _optional_str(envelope.reply_to),
                        )
                    ),
                )
            properties = _compound(
                0xC0,
                0xD0,
                10,
                b"".join(
                    (
                        _encode_str(envelope.message_id),
                        addresses,
                        _optional_str(envelope.correlation_id),
                        content_type,
                        _NULL,
                        _NULL if expires is None else _encode_timestamp_ms(expires),
                        _encode_timestamp_ms(created),
                    )
                ),
            )
            error = envelope.error
            if error is None and envelope.trace is None:
                key = ("app", envelope.type_name, envelope.sender, envelope.settle_after_handled)
                application_map = cache.get(key)
                if application_map is None:
                    application_map = self._remember(key, self._application_map(envelope))
            else:
                application_map = self._application_map(envelope)
        except UnicodeEncodeError as problem:
            raise _malformed(f"a string cannot be encoded as UTF-8: {problem}") from None
        data = b"".join(
            (
                _PROPERTIES_PREFIX,
                properties,
                _APPLICATION_PROPERTIES_PREFIX,
                application_map,
                _VALUE_PREFIX,
                body,
            )
        )
        if len(data) > self.max_message_size:
            raise MessageTooLarge(
                f"the encoded {envelope.type_name} message is {len(data)} bytes, more than "
                f"max_message_size={self.max_message_size}: send a smaller message, or raise "
                "the limit on both nodes"
            )
        if raw is not None:
            raw.data = data
            raw.properties = [
                envelope.message_id,
                None,
                envelope.to,
                None,
                envelope.reply_to,
                envelope.correlation_id,
                PICKLE_CONTENT_TYPE if content_type is _PICKLE else NATIVE_CONTENT_TYPE,
                None,
                None if expires is None else _Timestamp(expires),
                _Timestamp(created),
            ]
            raw.application_properties = _application_values(envelope)
            start = 3 + len(properties)
            end = start + 3 + len(application_map)
            raw.application_span = (start, start + 3, end)
            raw.insert_at = end
            raw.body_kind = _VALUE
            raw.body_start = end
            raw.body_end = len(data)
            raw.body_values = [(end + 3, len(data))]
        return data

    def encode_entry(self, body: Any) -> bytes | None:
        """Encode ``body`` as one entry of a batch: the AMQP list ``[type name, value]``.

        A batch is one message whose ``js:type`` is :data:`BATCH_TYPE` and whose body
        is the list of its entries (``WireEnvelope(type_name=BATCH_TYPE,
        body=[entry, ...])``): many small messages to one actor then share one
        transfer, one header and one signature. Returns ``None`` for a body that only
        cloudpickle can carry (send it alone).

        Raises:
            UnknownMessageType, MalformedMessage: as :meth:`encode`.
        """
        name = self.type_name_of(body)
        content_type, value = self._encode_body(name, body)
        if content_type is _PICKLE:
            return None
        return _compound(0xC0, 0xD0, 2, _encode_str(name) + value)

    def _remember(self, key: tuple[Any, ...], value: bytes) -> bytes:
        cache = self._cache
        if len(cache) >= _CACHE_SIZE:
            cache.clear()
        cache[key] = value
        return value

    @staticmethod
    def _application_map(envelope: WireEnvelope) -> bytes:
        application = [_KEY_TYPE, _encode_str(envelope.type_name)]
        count = 4
        if envelope.sender is not None:
            application += (_KEY_SENDER, _encode_str(envelope.sender))
            count += 2
        if envelope.trace is not None:
            application += (_KEY_TRACE, _encode_str(envelope.trace))
            count += 2
        application += (_KEY_SETTLE, _TRUE if envelope.settle_after_handled else _FALSE)
        error = envelope.error
        if error is not None:
            application += (
                _KEY_ERROR_TYPE,
                _encode_str(error.type_name),
                _KEY_ERROR_MESSAGE,
                _encode_str(error.message),
                _KEY_ERROR_TRACEBACK,
                _encode_str(error.traceback),
            )
            count += 6
        return _compound(0xC1, 0xD1, count, b"".join(application))

    def _encode_body(self, name: str, body: Any) -> tuple[bytes, bytes]:
        if name == BATCH_TYPE:
            entries: list[bytes] = body
            return _NATIVE, _compound(0xC0, 0xD0, len(entries), b"".join(entries))
        registry = self.registry
        plan = registry._by_name.get(name)
        if plan is not None:
            if type(body) is not plan.cls:
                raise _misnamed(name, body)
        elif name in _BUILTIN_TYPES:
            if _BUILTIN_NAMES.get(type(body)) != name:
                raise _misnamed(name, body)
        elif not self.trusted:
            raise registry._unknown(name)
        else:
            return _PICKLE, _encode_binary(_pickle(body))
        try:
            if plan is not None:
                return _NATIVE, self._encoder.instance(body, plan, 0, tagged=False)
            return _NATIVE, self._encoder.value(body)
        except UnknownMessageType:
            if not self.trusted:
                raise
        except RecursionError:
            raise _malformed("the body nests too deeply (or contains itself)") from None
        except UnicodeEncodeError as error:
            raise _malformed(f"a string cannot be encoded as UTF-8: {error}") from None
        # a trusted peer: what AMQP cannot carry, cloudpickle can
        return _PICKLE, _encode_binary(_pickle(body))

    # -- decoding

    def parse(self, data: bytes | bytearray | memoryview) -> RawMessage:
        """Check the size of ``data`` and split it into sections, leaving the body
        unread: the first half of :meth:`decode`, for checking a signature
        (:meth:`Signer.verify`) before any body is read.

        Raises:
            MessageTooLarge: ``data`` exceeds ``max_message_size`` (nothing is read).
            MalformedMessage: ``data`` is not one well-formed AMQP message.
        """
        size = len(data) if type(data) is bytes else memoryview(data).nbytes
        if size > self.max_message_size:
            raise MessageTooLarge(
                f"a {size}-byte message arrived, more than max_message_size="
                f"{self.max_message_size}: the sender must send smaller messages, or both "
                "nodes must raise the limit"
            )
        return RawMessage.parse(data)

    def decode(self, data: bytes | bytearray | memoryview | RawMessage) -> WireEnvelope:
        """Decode one AMQP message (or one :meth:`parse` split) into a :class:`WireEnvelope`.

        Raises:
            MessageTooLarge: ``data`` exceeds ``max_message_size`` (nothing is read).
            UntrustedPayload: a cloudpickle body, and this codec is not trusted.
            UnknownMessageType: the type name (or a nested ``"$type"``) is not
                registered here.
            MalformedMessage: anything else wrong with the bytes or the body.
        """
        raw = data if isinstance(data, RawMessage) else self.parse(data)
        fields = raw.properties[:10]
        if len(fields) < 10:
            fields += [None] * (10 - len(fields))
        message_id, _, to, _, reply_to, correlation_id, _, encoding, expires, created = fields
        if type(message_id) is not str:
            raise _malformed(f"the message-id must be a string, not {_type_label(message_id)}")
        for name, value in (("to", to), ("reply-to", reply_to), ("correlation-id", correlation_id)):
            if value is not None and type(value) is not str:
                raise _malformed(f"the {name} property must be a string, not {_type_label(value)}")
        if encoding is not None:
            raise _malformed(f"content-encoding {encoding!r} is not supported")
        if type(created) is not _Timestamp:
            raise _malformed("the creation-time property is missing or not a timestamp")
        if expires is not None and type(expires) is not _Timestamp:
            raise _malformed("the absolute-expiry-time property is not a timestamp")
        app = raw.application_properties
        type_name = app.get("js:type")
        if type(type_name) is not str:
            raise _malformed("the application property 'js:type' is missing or not a string")
        settle = app.get("js:settle", False)
        if type(settle) is not bool:
            raise _malformed("the application property 'js:settle' is not a boolean")
        error = None
        if "js:error-type" in app:
            error = RemoteErrorInfo(
                type_name=_app_str(app, "js:error-type") or "",
                message=_app_str(app, "js:error-message") or "",
                traceback=_app_str(app, "js:error-traceback") or "",
            )
        return WireEnvelope(
            message_id=message_id,
            type_name=type_name,
            body=self._decode_body(raw, type_name),
            to=to,
            reply_to=reply_to,
            correlation_id=correlation_id,
            sender=_app_str(app, "js:sender"),
            trace=_app_str(app, "js:trace"),
            created=created.ms / 1000,
            expires=None if expires is None else expires.ms / 1000,
            settle_after_handled=settle,
            error=error,
        )

    def decode_answer(self, raw: RawMessage) -> tuple[RemoteErrorInfo | None, Any]:
        """Read only what an asker needs of an answer (a :meth:`parse` split): the
        error it carries, or else its body; cheaper than :meth:`decode`.

        Raises:
            UntrustedPayload, UnknownMessageType, MalformedMessage: as :meth:`decode`.
        """
        app = raw.application_properties
        if "js:error-type" in app:
            return (
                RemoteErrorInfo(
                    type_name=_app_str(app, "js:error-type") or "",
                    message=_app_str(app, "js:error-message") or "",
                    traceback=_app_str(app, "js:error-traceback") or "",
                ),
                None,
            )
        type_name = app.get("js:type")
        if type(type_name) is not str:
            raise _malformed("the application property 'js:type' is missing or not a string")
        return None, self._decode_body(raw, type_name)

    def _decode_body(self, raw: RawMessage, type_name: str) -> Any:
        content_type = raw.property(6)
        if content_type == PICKLE_CONTENT_TYPE:
            return self._unpickle(raw)
        if content_type is not None and content_type != NATIVE_CONTENT_TYPE:
            raise _malformed(
                f"content-type {content_type!r} is not supported (expected "
                f"{NATIVE_CONTENT_TYPE!r} or none)"
            )
        if type_name == BATCH_TYPE:
            return self._decode_batch(raw.body_value())
        return self._decode_value(type_name, raw.body_value)

    def _decode_batch(self, entries: Any) -> tuple[Any, ...]:
        if type(entries) is not list:
            raise _malformed("a batch's body must be a list of [type name, value] entries")
        messages = []
        for entry in entries:
            if type(entry) is not list or len(entry) != 2 or type(entry[0]) is not str:
                raise _malformed("each entry of a batch must be a list [type name, value]")
            name, value = entry
            if name == BATCH_TYPE:
                raise _malformed("a batch cannot contain a batch")
            messages.append(self._decode_value(name, functools.partial(_identity, value)))
        return tuple(messages)

    def _decode_value(self, type_name: str, read: Callable[[], Any]) -> Any:
        registry = self.registry
        plan = registry._by_name.get(type_name)
        builtin = registry._builtins.get(type_name)
        if plan is None and builtin is None:
            if self.lenient:
                return read()
            raise registry._unknown(type_name)
        value = read()
        try:
            if plan is not None:
                if type(value) is not dict:
                    raise _expected(f"a map of the fields of {type_name}", value)
                tag = value.get("$type", type_name)
                if tag != type_name:
                    raise _Mismatch(f"its '$type' {tag!r} differs from js:type {type_name!r}")
                return registry._build(plan, value)
            assert builtin is not None
            return builtin(value)
        except _Mismatch as mismatch:
            raise _malformed(
                f"the {type_name} body does not fit its type at {mismatch.where()}: "
                f"{mismatch.reason}"
            ) from None
        except RecursionError:
            raise _malformed("the body nests too deeply") from None

    def _unpickle(self, raw: RawMessage) -> Any:
        if not self.trusted:
            raise UntrustedPayload(
                "refusing a cloudpickle payload: unpickling runs arbitrary code and this "
                "codec does not trust its peers. Register the message class on both nodes "
                "so it travels as AMQP values, or use Codec(trusted=True) only between "
                "authenticated peers that trust each other"
            )
        payload = raw.body_value()
        if type(payload) is not bytes:
            raise _malformed("a cloudpickle message's body must be binary")
        try:
            return _cloudpickle().loads(payload)
        except Exception as error:
            raise _malformed(f"the cloudpickle payload cannot be loaded: {error!r}") from None


def _identity(value: Any) -> Any:
    return value


def _misnamed(name: str, body: Any) -> UnknownMessageType:
    return UnknownMessageType(
        f"the type name {name!r} does not name the body's type "
        f"{type(body).__qualname__}; use Codec.type_name_of(body)"
    )


def _cloudpickle() -> Any:
    import cloudpickle  # type: ignore[import-untyped]

    return cloudpickle


def _pickle(body: Any) -> bytes:
    try:
        return bytes(_cloudpickle().dumps(body))
    except Exception as error:
        raise UnknownMessageType(
            f"cannot pickle the {type(body).__qualname__} body: {error!r}"
        ) from error


def _app_str(app: dict[Any, Any], key: str) -> str | None:
    value = app.get(key)
    if value is not None and type(value) is not str:
        raise _malformed(f"the application property {key!r} must be a string")
    return value
