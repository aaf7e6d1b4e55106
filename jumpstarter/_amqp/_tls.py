"""TLS settings for AMQP connections, applied through proton's SSL layer.

Theory of operation
===================

TLS runs inside proton's transport: :class:`~jumpstarter._amqp.AMQPConnection`
puts proton's SSL layer (OpenSSL) under the AMQP frames, so the bytes that
``data_to_send`` returns are TLS records and ``receive_data`` takes TLS records.
The I/O code is the same with and without TLS: it moves bytes over a plain TCP
stream, and the handshake happens while it does.

A :class:`TLSConfig` says which certificates to trust and which to present, like
an :class:`ssl.SSLContext` does. One config can serve both roles of a node (a
node accepts connections and makes them): the settings for the other role are
ignored. :meth:`TLSConfig.ssl_domain` turns it into the ``proton.SSLDomain`` for
one role; the files are read again for each connection, so replaced certificate
files apply to new connections.

What is verified
----------------
As a client (the default, like :func:`ssl.create_default_context`):

* the server's certificate chain must lead to a CA in ``ca_file`` (or, without
  ``ca_file``, to one in the system's trust store);
* the server's certificate must name the host: ``server_hostname``, by default the
  host connected to. proton compares it with the certificate's DNS names and its
  common name, **not** with its IP-address entries; to connect to an IP address,
  use a certificate whose common name is that address (``jumpstart certs`` makes
  such certificates) or set ``server_hostname`` to a DNS name on the certificate.

As a server, the client is not asked for a certificate unless
``require_client_certificate`` is set (mutual TLS): then a client without a
certificate signed by a CA in ``ca_file`` is turned away during the handshake.
A TLS server never accepts a plain-text client.

A failed handshake (an unknown CA, a wrong name, a peer that does not speak TLS)
ends the connection with :class:`~jumpstarter._amqp.TransportClosed`, whose
``error`` carries OpenSSL's reason.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Literal, final

import attrs
import proton

__all__ = ["TLSConfig"]

TLSRole = Literal["client", "server"]


class _PasswordNeeded(Exception):
    """Raised by the password callback while checking a key without ``key_password``."""


def _to_path(value: str | os.PathLike[str] | None) -> Path | None:
    return None if value is None else Path(value)


def _check_file(
    instance: TLSConfig, attribute: attrs.Attribute[Path | None], value: Path | None
) -> None:
    if value is None:
        return
    what = attribute.name
    if not value.exists():
        raise FileNotFoundError(
            f"TLS {what} {str(value)!r} does not exist; give the path of a PEM file "
            "(`jumpstart certs DIR` writes development certificates)"
        )
    if not value.is_file():
        raise IsADirectoryError(f"TLS {what} {str(value)!r} is not a file; give a PEM file")


@final
@attrs.frozen(kw_only=True)
class TLSConfig:
    """Certificates and checks for TLS on AMQP connections.

    Example (development certificates from ``jumpstart certs certs/``)::

        server = TLSConfig(ca_file="certs/ca.pem", cert_file="certs/node.pem",
                           key_file="certs/node.key")
        client = TLSConfig(ca_file="certs/ca.pem")

    The files are checked when the config is made: a missing file raises
    :class:`FileNotFoundError`, one that OpenSSL cannot load :class:`ValueError`.

    Attributes:
        ca_file: PEM file of the CA certificate(s) to trust. A client checks the
            server's certificate against it (without it: against the system's trust
            store); a server that requires client certificates checks those.
        cert_file: PEM file of this node's certificate, followed by any intermediate
            CA certificates. Required on a server; on a client it is presented when
            the server asks for a certificate (mutual TLS).
        key_file: PEM file of the private key of ``cert_file``; by default the key
            is read from ``cert_file`` itself (as :meth:`ssl.SSLContext.load_cert_chain`
            does).
        key_password: the password of an encrypted key.
        verify_server: client: check that the server's certificate chain leads to a
            trusted CA, and (with ``check_hostname``) that it names the server.
            ``False`` turns off every check of the server (encryption without
            authentication: only for tests).
        check_hostname: client: check the name on the server's certificate (with
            ``verify_server``). ``False`` accepts any certificate from a trusted CA.
        server_hostname: client: the name to check on the server's certificate, and
            to send as SNI; by default the host connected to.
        require_client_certificate: server: require every client to present a
            certificate signed by a CA in ``ca_file`` (mutual TLS).
    """

    ca_file: Path | None = attrs.field(default=None, converter=_to_path, validator=_check_file)
    cert_file: Path | None = attrs.field(default=None, converter=_to_path, validator=_check_file)
    key_file: Path | None = attrs.field(default=None, converter=_to_path, validator=_check_file)
    key_password: str | None = attrs.field(default=None, repr=False)
    verify_server: bool = True
    check_hostname: bool = True
    server_hostname: str | None = None
    require_client_certificate: bool = False

    def __attrs_post_init__(self) -> None:
        if self.cert_file is None:
            if self.key_file is not None:
                raise ValueError(
                    "TLS key_file was given without cert_file; give the certificate "
                    "chain that goes with the key as cert_file"
                )
            if self.key_password is not None:
                raise ValueError("TLS key_password was given without cert_file and key_file")
            if self.require_client_certificate:
                raise ValueError(
                    "require_client_certificate is for a server, which needs cert_file "
                    "and key_file (its own certificate chain and key)"
                )
        if self.require_client_certificate and self.ca_file is None:
            raise ValueError(
                "require_client_certificate needs ca_file: the CA(s) whose client "
                "certificates the server accepts"
            )
        if self.server_hostname is not None and not self.server_hostname:
            raise ValueError(
                "server_hostname must not be empty; use None for the host connected to"
            )
        self._check_contents()

    def _check_contents(self) -> None:
        """Load the files with the standard library's OpenSSL for precise errors now."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if self.ca_file is not None:
            try:
                context.load_verify_locations(cafile=self.ca_file)
            except ssl.SSLError as exc:
                raise ValueError(
                    f"TLS ca_file {str(self.ca_file)!r} holds no usable CA certificate "
                    f"({exc.reason or exc}); give a PEM file of CA certificates"
                ) from None
        if self.cert_file is not None:
            key_file = self.key_file or self.cert_file

            def password() -> str:
                if self.key_password is None:
                    raise _PasswordNeeded
                return self.key_password

            try:
                context.load_cert_chain(self.cert_file, key_file, password)
            except _PasswordNeeded:
                raise ValueError(
                    f"TLS key_file {str(key_file)!r} is encrypted; give its key_password"
                ) from None
            except ssl.SSLError as exc:
                raise ValueError(
                    f"cannot use TLS cert_file {str(self.cert_file)!r} with key_file "
                    f"{str(key_file)!r} ({exc.reason or exc}): both must be PEM, the key "
                    "must belong to the first certificate, and key_password must be right"
                ) from None

    def peer_hostname(self, host: str | None) -> str | None:
        """The name a client checks on the server's certificate (and sends as SNI).

        Args:
            host: the host connected to.
        """
        return self.server_hostname if self.server_hostname is not None else host

    def ssl_domain(self, role: TLSRole) -> proton.SSLDomain:
        """Build proton's SSL configuration for one end of a connection.

        Args:
            role: ``"client"`` for the end that connects, ``"server"`` for the end that
                accepts.

        Raises:
            ValueError: a server without ``cert_file``, or a file OpenSSL cannot load.
        """
        if role == "server":
            if self.cert_file is None:
                raise ValueError(
                    "a TLS server needs cert_file and key_file (its certificate chain and "
                    "private key, PEM); `jumpstart certs DIR` writes development ones"
                )
            domain = proton.SSLDomain(proton.SSLDomain.MODE_SERVER)
            # credentials first: proton refuses client verification before them
            self._set_credentials(domain)
            if self.require_client_certificate:
                assert self.ca_file is not None  # checked at construction
                ca_file = str(self.ca_file)
                self._call(domain.set_trusted_ca_db, ca_file, what=f"ca_file {ca_file!r}")
                self._call(
                    domain.set_peer_authentication,
                    proton.SSLDomain.VERIFY_PEER,
                    ca_file,
                    what=f"ca_file {ca_file!r}",
                )
            # otherwise proton's server default: no client certificate asked for
            return domain
        if role != "client":
            raise ValueError(f"role must be 'client' or 'server', not {role!r}")
        domain = proton.SSLDomain(proton.SSLDomain.MODE_CLIENT)
        if self.ca_file is not None:
            ca_file = str(self.ca_file)
            self._call(domain.set_trusted_ca_db, ca_file, what=f"ca_file {ca_file!r}")
        if self.cert_file is not None:
            self._set_credentials(domain)
        if not self.verify_server:
            mode = proton.SSLDomain.ANONYMOUS_PEER
        elif self.check_hostname:
            mode = proton.SSLDomain.VERIFY_PEER_NAME
        else:
            mode = proton.SSLDomain.VERIFY_PEER
        self._call(domain.set_peer_authentication, mode, what="the peer authentication mode")
        return domain

    def _set_credentials(self, domain: proton.SSLDomain) -> None:
        assert self.cert_file is not None
        cert_file = str(self.cert_file)
        key_file = str(self.key_file or self.cert_file)
        self._call(
            domain.set_credentials,
            cert_file,
            key_file,
            self.key_password,
            what=f"cert_file {cert_file!r} with key_file {key_file!r}",
        )

    @staticmethod
    def _call(method: Callable[..., object], *args: object, what: str) -> None:
        try:
            method(*args)
        except proton.SSLException:
            raise ValueError(f"proton's SSL layer could not load TLS {what}") from None
