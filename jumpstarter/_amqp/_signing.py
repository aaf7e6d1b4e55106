"""Sign encoded messages with HMAC-SHA256, and refuse unsigned, forged, stale or replayed ones.

Theory of operation
===================

Nodes that talk over the network share one or more secret keys, each with a key
id. The sender's :class:`Signer` adds two application properties to an *encoded*
message: ``js:key``, the id of the key it used (a string), and ``js:sig``, the
HMAC-SHA256 of the message's canonical form under that key (32 bytes of binary).
The receiver's :class:`Signer` recomputes the HMAC with the key named by
``js:key`` and compares the two with :func:`hmac.compare_digest`.

Why sign the encoded message
----------------------------
:meth:`Signer.sign` takes the bytes :meth:`Codec.encode` made and returns new bytes;
:meth:`Signer.verify` checks bytes (or a :meth:`Codec.parse` split of them) *before*
:meth:`Codec.decode` reads the body. So nothing from an unauthenticated peer is
turned into objects (and no cloudpickle payload is ever loaded) before its
signature is checked; the signature covers the body exactly as it travels, with no
second, "canonical" encoding of Python values, which AMQP libraries would not
reproduce byte for byte (str8 or str32, list8 or list32); and the signer needs no
type registry while the codec needs no keys. The node composes them::

    data = signer.sign(codec.encode_raw(envelope))  # sending
    raw = codec.parse(data)                         # receiving
    signer.verify(raw, now=time.time())
    envelope = codec.decode(raw)

(``encode_raw`` and ``parse`` hand over the message split into sections, so that
neither side parses a message twice; plain bytes work too.)

The canonical form
------------------
The HMAC input is the ASCII text ``jumpstarter-hmac-sha256-v1`` and a zero byte,
then one *field* for each of, in this order: the key id (``js:key``); the
properties message-id, to, reply-to, correlation-id, content-type, creation-time
and absolute-expiry-time; the application properties ``js:type``, ``js:sender``,
``js:trace``, ``js:settle``, ``js:error-type``, ``js:error-message`` and
``js:error-traceback``; then the body sections' bytes exactly as they are in the
message (from the first body section's leading ``0x00`` to the end of the last).

An absent (or null) field is the single byte ``0x00``; a present one is ``0x01``,
the length of its text as a 4-byte big-endian unsigned integer, and the text in
UTF-8. Strings and symbols are their own text, timestamps the decimal number of
milliseconds (``1700000000123``), booleans ``true`` or ``false``.

Properties are covered by value, so a broker that re-encodes them keeps the
signature valid; the header, annotations and footer are not covered, as brokers
may change them; other application properties are not covered, so do not act on
them without checking them some other way.

Freshness and replays
---------------------
A signed message must carry a message-id and a creation-time. It is refused once
``created + max_age`` or its absolute-expiry-time has passed, and if it claims to
be created more than ``max_clock_skew`` in the future. Within that window the
signer remembers every message id it accepted and refuses a second message with
the same id. The memory is bounded (``replay_capacity``): when it is full, the
entry whose window ends first is forgotten, and from then on every message whose
window ends no later than that is refused as too old, so an evicted id can never be
replayed; size the memory above ``max_age`` times the message rate.
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import struct
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final, final

from .._exceptions import JumpstarterError
from ._codec import MalformedMessage, RawMessage, _Timestamp

__all__ = [
    "ExpiredMessage",
    "ForgedMessage",
    "Keyring",
    "ReplayedMessage",
    "SignatureError",
    "Signer",
    "UnknownSigningKey",
    "UnsignedMessage",
]

KEY_PROPERTY: Final = "js:key"
SIGNATURE_PROPERTY: Final = "js:sig"
MIN_KEY_SIZE: Final = 16
_DOMAIN: Final = b"jumpstarter-hmac-sha256-v1\x00"
_PRESENT: Final = struct.Struct(">BI").pack
_SIGNATURE_PROPERTIES: Final = frozenset({KEY_PROPERTY, SIGNATURE_PROPERTY})
_APPLICATION_FIELDS: Final = (
    "js:type",
    "js:sender",
    "js:trace",
    "js:settle",
    "js:error-type",
    "js:error-message",
    "js:error-traceback",
)
_FIELD_NAMES: Final = (
    KEY_PROPERTY,
    "message-id",
    "to",
    "reply-to",
    "correlation-id",
    "content-type",
    "creation-time",
    "absolute-expiry-time",
    *_APPLICATION_FIELDS,
)


class SignatureError(JumpstarterError):
    """Base class of the reasons a :class:`Signer` refuses a message."""


class UnsignedMessage(SignatureError):
    """The message carries no signature, and this node only accepts signed ones.

    Turn signing on at the sender, with a key this node also has.
    """


class UnknownSigningKey(SignatureError, LookupError):
    """The message is signed with a key id this node does not have.

    Configure the same signing key, under the same id, on both nodes. While
    rotating, keep the old key in the receiver's keyring until no sender uses it.
    """


class ForgedMessage(SignatureError):
    """The signature does not match the message: it was altered, or signed with a
    different key under the same id.

    If no one is tampering, configure the same key bytes under that id on both nodes.
    """


class ExpiredMessage(SignatureError):
    """The message is too old (or dated too far in the future) to be accepted.

    Check that the nodes' clocks agree (use NTP), that messages are not held up on
    the way, and raise ``max_age`` if they legitimately take longer.
    """


class ReplayedMessage(SignatureError):
    """A message with this message id was already accepted: a replay, or a sender
    that reuses ids. Give every message a fresh id (e.g. a random UUID)."""


@final
class Keyring:
    """The signing keys a node knows, by id, and the one it signs with.

    Rotate keys in three steps, on every node: add the new key; once every node
    has it, make it the active one; once no sender uses the old key, remove it.

    Args:
        keys: key id → secret key (at least 16 bytes; 32 random bytes, e.g.
            ``secrets.token_bytes(32)``, is the right size for HMAC-SHA256).
        active: the id of the key new messages are signed with.

    Raises:
        ValueError: a key is too short, an id is empty, or ``active`` is not in
            ``keys``.
    """

    __slots__ = ("_active", "_keys", "_macs")

    def __init__(self, keys: Mapping[str, bytes], active: str) -> None:
        copied = {}
        for key_id, key in keys.items():
            if not isinstance(key_id, str) or not key_id:
                raise ValueError(f"a key id must be a non-empty string, not {key_id!r}")
            if not isinstance(key, bytes) or len(key) < MIN_KEY_SIZE:
                raise ValueError(
                    f"the signing key {key_id!r} must be at least {MIN_KEY_SIZE} bytes; use "
                    "32 random bytes, e.g. secrets.token_bytes(32)"
                )
            copied[key_id] = key
        if active not in copied:
            raise ValueError(f"the active key id {active!r} is not one of the keyring's keys")
        self._keys: Mapping[str, bytes] = MappingProxyType(copied)
        self._active = active
        # keyed HMAC states to copy for each message: cheaper than hmac.new every time
        self._macs = {
            key_id: hmac.new(key, digestmod=hashlib.sha256) for key_id, key in copied.items()
        }

    @property
    def keys(self) -> Mapping[str, bytes]:
        """Key id → secret key (read-only)."""
        return self._keys

    @property
    def active(self) -> str:
        """The id of the key new messages are signed with."""
        return self._active

    def with_key(self, key_id: str, key: bytes, *, activate: bool = False) -> Keyring:
        """A copy with ``key`` added (or replaced) under ``key_id``, active if asked."""
        return Keyring({**self._keys, key_id: key}, key_id if activate else self._active)

    def activated(self, key_id: str) -> Keyring:
        """A copy that signs with ``key_id``, which must already be in the keyring."""
        return Keyring(self._keys, key_id)

    def without_key(self, key_id: str) -> Keyring:
        """A copy without ``key_id``; raises ``ValueError`` if it is the active key."""
        if key_id == self._active:
            raise ValueError(f"cannot remove the active key {key_id!r}: activate another first")
        return Keyring({k: v for k, v in self._keys.items() if k != key_id}, self._active)

    def __repr__(self) -> str:  # never show the secrets
        return f"Keyring(ids={sorted(self._keys)!r}, active={self._active!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Keyring):
            return NotImplemented
        return dict(self._keys) == dict(other._keys) and self._active == other._active

    def __hash__(self) -> int:
        return hash((frozenset(self._keys.items()), self._active))


def _canonical_form(raw: RawMessage, key_id: str) -> bytes:
    """The bytes the HMAC covers, for ``raw`` signed with ``key_id`` (see the module
    docstring)."""
    properties = raw.properties
    if len(properties) < 10:
        properties = properties + [None] * (10 - len(properties))
    application = raw.application_properties
    values = (
        key_id,
        properties[0],  # message-id
        properties[2],  # to
        properties[4],  # reply-to
        properties[5],  # correlation-id
        properties[6],  # content-type
        properties[9],  # creation-time
        properties[8],  # absolute-expiry-time
        *[application.get(name) for name in _APPLICATION_FIELDS],
    )
    parts = [_DOMAIN]
    append = parts.append
    for index, value in enumerate(values):
        if value is None:
            append(b"\x00")
            continue
        kind = type(value)
        if kind is str:
            text = value.encode("utf-8")
        elif kind is _Timestamp:
            text = str(value.ms).encode("ascii")
        elif kind is bool:
            text = b"true" if value else b"false"
        else:
            raise MalformedMessage(
                f"malformed message: the signed field {_FIELD_NAMES[index]} must be a "
                f"string, timestamp or boolean, not {kind.__name__}"
            )
        append(_PRESENT(1, len(text)))
        append(text)
    append(raw.data[raw.body_start : raw.body_end])
    return b"".join(parts)


def _mac(keyring: Keyring, key_id: str, raw: RawMessage) -> bytes | None:
    """The HMAC of ``raw`` under ``key_id``, or ``None`` if the keyring lacks that key."""
    template = keyring._macs.get(key_id)
    if template is None:
        return None
    mac = template.copy()
    mac.update(_canonical_form(raw, key_id))
    return mac.digest()


@final
class _ReplayMemory:
    """The message ids accepted recently, each until its validity window ends."""

    __slots__ = ("_by_end", "_ends", "capacity", "horizon")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._ends: dict[str, float] = {}
        self._by_end: list[tuple[float, str]] = []
        # every forgotten id's window ended by then: refuse windows that end no later
        self.horizon = float("-inf")

    def __len__(self) -> int:
        return len(self._ends)

    def forget_before(self, now: float) -> None:
        by_end = self._by_end
        while by_end and by_end[0][0] < now:
            _, message_id = heapq.heappop(by_end)
            del self._ends[message_id]

    def seen(self, message_id: str) -> bool:
        return message_id in self._ends

    def remember(self, message_id: str, until: float) -> None:
        while len(self._ends) >= self.capacity:
            end, evicted = heapq.heappop(self._by_end)
            del self._ends[evicted]
            self.horizon = max(self.horizon, end)
        self._ends[message_id] = until
        heapq.heappush(self._by_end, (until, message_id))


@final
class Signer:
    """Signs outgoing messages and checks incoming ones.

    Args:
        keyring: the keys; assign :attr:`keyring` a new one to rotate keys (the
            replay memory is kept).
        max_age: seconds after its creation-time a message is still accepted.
        max_clock_skew: how far in the future a creation-time may lie.
        replay_capacity: how many message ids the replay memory holds.

    Example::

        signer = Signer(Keyring({"2025-01": key}, active="2025-01"))
        data = signer.sign(codec.encode(envelope))
        signer.verify(data, now=time.time())  # raises if refused
    """

    __slots__ = ("_memory", "keyring", "max_age", "max_clock_skew")

    def __init__(
        self,
        keyring: Keyring,
        max_age: float = 30.0,
        *,
        max_clock_skew: float = 5.0,
        replay_capacity: int = 100_000,
    ) -> None:
        if max_age <= 0 or max_clock_skew < 0 or replay_capacity < 1:
            raise ValueError("max_age and replay_capacity must be positive, max_clock_skew >= 0")
        self.keyring = keyring
        self.max_age = max_age
        self.max_clock_skew = max_clock_skew
        self._memory = _ReplayMemory(replay_capacity)

    @property
    def remembered(self) -> int:
        """How many message ids the replay memory holds now."""
        return len(self._memory)

    def sign(self, data: bytes | RawMessage) -> bytes:
        """Return ``data`` (one encoded message) signed with the active key.

        Pass :meth:`Codec.encode_raw`'s result rather than bytes to spare parsing
        the message again. A signature already present is replaced.

        Raises:
            MalformedMessage: ``data`` is not an AMQP message, or lacks the
                message-id or creation-time that verifying needs.
        """
        raw = data if isinstance(data, RawMessage) else RawMessage.parse(data)
        _check_identity(raw)
        key_id = self.keyring.active
        signature = _mac(self.keyring, key_id, raw)
        assert signature is not None  # a Keyring always holds its active key
        return raw.with_application_properties(
            {KEY_PROPERTY: key_id, SIGNATURE_PROPERTY: signature}, drop=_SIGNATURE_PROPERTIES
        )

    def verify(self, data: bytes | RawMessage, *, now: float) -> None:
        """Accept ``data`` (an encoded message, or :meth:`Codec.parse` of one) or raise.

        The checks run in this order: signature present, key known, signature
        right, fresh, not seen before. Only a message that passes them all is
        remembered against replays.

        Args:
            data: the message.
            now: the current time in Unix seconds (``time.time()``).

        Raises:
            UnsignedMessage, UnknownSigningKey, ForgedMessage, ExpiredMessage,
            ReplayedMessage: see each; MalformedMessage: not an AMQP message.
        """
        raw = data if isinstance(data, RawMessage) else RawMessage.parse(data)
        application = raw.application_properties
        key_id = application.get(KEY_PROPERTY)
        signature = application.get(SIGNATURE_PROPERTY)
        if signature is None:
            raise UnsignedMessage(
                "refused an unsigned message: this node only accepts messages signed with a "
                "shared key; turn signing on at the sender"
            )
        if type(key_id) is not str or type(signature) is not bytes:
            raise ForgedMessage(
                f"refused a message whose {KEY_PROPERTY!r} is not a string or whose "
                f"{SIGNATURE_PROPERTY!r} is not binary"
            )
        expected = _mac(self.keyring, key_id, raw)
        if expected is None:
            raise UnknownSigningKey(
                f"refused a message signed with key {key_id!r}, which this node does not "
                f"have (it has {sorted(self.keyring.keys)}): configure the same signing key "
                "on both nodes"
            )
        if not hmac.compare_digest(expected, signature):
            raise ForgedMessage(
                f"refused a message whose signature does not match its contents under key "
                f"{key_id!r}: it was altered on the way, or the nodes hold different secrets "
                "under that id; configure the same signing key on both nodes"
            )
        message_id, created = _check_identity(raw)
        expiry = raw.property(8)
        until = created + self.max_age
        if type(expiry) is _Timestamp:
            until = min(until, expiry.ms / 1000)
            if expiry.ms / 1000 < now:
                raise ExpiredMessage(
                    f"refused message {message_id!r}: it expired {now - expiry.ms / 1000:.3f} s "
                    "ago; check that the nodes' clocks agree"
                )
        if created + self.max_age < now:
            raise ExpiredMessage(
                f"refused message {message_id!r}: created {now - created:.3f} s ago, more than "
                f"max_age={self.max_age} s; check that the nodes' clocks agree, or raise max_age"
            )
        if created > now + self.max_clock_skew:
            raise ExpiredMessage(
                f"refused message {message_id!r}: created {created - now:.3f} s in the future, "
                f"more than max_clock_skew={self.max_clock_skew} s; synchronise the nodes' "
                "clocks (NTP)"
            )
        memory = self._memory
        memory.forget_before(now)
        if memory.seen(message_id):
            raise ReplayedMessage(
                f"refused message {message_id!r}: a message with this id was already "
                "accepted (a replay, or a sender reusing ids: give every message a fresh id)"
            )
        if until <= memory.horizon:
            raise ExpiredMessage(
                f"refused message {message_id!r}: the replay memory is full "
                f"(replay_capacity={memory.capacity}) and forgot ids this old; raise "
                "replay_capacity or lower max_age"
            )
        memory.remember(message_id, until)


def _check_identity(raw: RawMessage) -> tuple[str, float]:
    message_id = raw.property(0)
    created = raw.property(9)
    if type(message_id) is not str or type(created) is not _Timestamp:
        raise MalformedMessage(
            "malformed message: a signed message needs a string message-id and a "
            "creation-time, so that its age and uniqueness can be checked"
        )
    return message_id, created.ms / 1000
