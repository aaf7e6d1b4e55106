"""The errors the sans-IO AMQP layer raises."""

from __future__ import annotations

__all__ = ["LocalProtocolError", "ProtocolError", "RemoteProtocolError"]


class ProtocolError(Exception):
    """Base class of the AMQP layer's errors; never raised itself."""

    def __init__(self, msg: str) -> None:
        if type(self) is ProtocolError:
            raise TypeError("raise LocalProtocolError or RemoteProtocolError")
        super().__init__(msg)


class LocalProtocolError(ProtocolError):
    """We misused the connection: a command that is not allowed now.

    For example: sending on a link without credit, naming a link that does not exist
    or has closed, or opening links before :meth:`AMQPConnection.open`. The
    connection is unchanged; fix the calling code.
    """


class RemoteProtocolError(ProtocolError):
    """The peer broke the protocol (or went silent), and the connection is dead.

    It is first reported as a :class:`TransportClosed` event with an error; every
    command after that raises this exception.
    """
