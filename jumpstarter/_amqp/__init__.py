"""The sans-IO AMQP 1.0 layer: the protocol engine, the envelope codec, and signing.

It imports neither trio nor the actor runtime. :mod:`._protocol` drives proton's
engine behind an h11-style API; :mod:`._codec` turns envelopes into AMQP messages and
back; :mod:`._signing` signs and verifies them; :mod:`._tls` configures TLS.
"""

from ._codec import DEFAULT_MAX_MESSAGE_SIZE as DEFAULT_MAX_MESSAGE_SIZE
from ._codec import NATIVE_CONTENT_TYPE as NATIVE_CONTENT_TYPE
from ._codec import PICKLE_CONTENT_TYPE as PICKLE_CONTENT_TYPE
from ._codec import Codec as Codec
from ._codec import CodecError as CodecError
from ._codec import MalformedMessage as MalformedMessage
from ._codec import MessageTooLarge as MessageTooLarge
from ._codec import RawMessage as RawMessage
from ._codec import RemoteErrorInfo as RemoteErrorInfo
from ._codec import TypeRegistry as TypeRegistry
from ._codec import UnknownMessageType as UnknownMessageType
from ._codec import UntrustedPayload as UntrustedPayload
from ._codec import WireEnvelope as WireEnvelope
from ._events import Accepted as Accepted
from ._events import ConnectionClosed as ConnectionClosed
from ._events import ConnectionOpened as ConnectionOpened
from ._events import CreditAvailable as CreditAvailable
from ._events import DeliveryId as DeliveryId
from ._events import DeliveryUpdated as DeliveryUpdated
from ._events import ErrorCondition as ErrorCondition
from ._events import Event as Event
from ._events import LinkClosed as LinkClosed
from ._events import LinkId as LinkId
from ._events import LinkOpened as LinkOpened
from ._events import LinkRequested as LinkRequested
from ._events import LinkRole as LinkRole
from ._events import MessageReceived as MessageReceived
from ._events import Modified as Modified
from ._events import Outcome as Outcome
from ._events import Rejected as Rejected
from ._events import Released as Released
from ._events import TransportClosed as TransportClosed
from ._exceptions import LocalProtocolError as LocalProtocolError
from ._exceptions import ProtocolError as ProtocolError
from ._exceptions import RemoteProtocolError as RemoteProtocolError
from ._protocol import AMQPConnection as AMQPConnection
from ._protocol import ConnectionStatistics as ConnectionStatistics
from ._protocol import SASLConfig as SASLConfig
from ._signing import ExpiredMessage as ExpiredMessage
from ._signing import ForgedMessage as ForgedMessage
from ._signing import Keyring as Keyring
from ._signing import ReplayedMessage as ReplayedMessage
from ._signing import SignatureError as SignatureError
from ._signing import Signer as Signer
from ._signing import UnknownSigningKey as UnknownSigningKey
from ._signing import UnsignedMessage as UnsignedMessage
from ._tls import TLSConfig as TLSConfig

__all__ = [
    "DEFAULT_MAX_MESSAGE_SIZE",
    "NATIVE_CONTENT_TYPE",
    "PICKLE_CONTENT_TYPE",
    "AMQPConnection",
    "Accepted",
    "Codec",
    "CodecError",
    "ConnectionClosed",
    "ConnectionOpened",
    "ConnectionStatistics",
    "CreditAvailable",
    "DeliveryId",
    "DeliveryUpdated",
    "ErrorCondition",
    "Event",
    "ExpiredMessage",
    "ForgedMessage",
    "Keyring",
    "LinkClosed",
    "LinkId",
    "LinkOpened",
    "LinkRequested",
    "LinkRole",
    "LocalProtocolError",
    "MalformedMessage",
    "MessageReceived",
    "MessageTooLarge",
    "Modified",
    "Outcome",
    "ProtocolError",
    "RawMessage",
    "Rejected",
    "Released",
    "RemoteErrorInfo",
    "RemoteProtocolError",
    "ReplayedMessage",
    "SASLConfig",
    "SignatureError",
    "Signer",
    "TLSConfig",
    "TransportClosed",
    "TypeRegistry",
    "UnknownMessageType",
    "UnknownSigningKey",
    "UnsignedMessage",
    "UntrustedPayload",
    "WireEnvelope",
]
