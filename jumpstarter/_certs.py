"""Development TLS certificates, made with ``trustme`` (``jumpstart certs DIR``).

:func:`write_dev_certificates` makes a throw-away certificate authority, issues a
node certificate (for the names the node is reached by) and a client certificate
(for mutual TLS) from it, and writes them as PEM files:

* ``ca.pem``: the CA certificate, which clients and servers trust;
* ``node.pem`` and ``node.key``: the node's certificate and private key;
* ``client.pem`` and ``client.key``: a client's certificate and private key.

The CA's private key is not written: no more certificates can be issued from
this CA, so re-run the command (with ``force``) to change the names. Keys are
written unencrypted, readable by their owner only (mode ``0600``). These files are
for development and tests: in production, use certificates from your own CA.

proton checks a server's name against the DNS names and the common name of its
certificate, not against IP-address entries; the node certificate's common name
is therefore its first IP address (if any), so that clients connecting to, say,
``127.0.0.1`` can check it.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Final, final

import attrs
import trustme

from ._amqp._tls import TLSConfig

__all__ = ["DEFAULT_NAMES", "CertificatesExist", "DevCertificates", "write_dev_certificates"]

DEFAULT_NAMES: Final = ("localhost", "127.0.0.1")
"""The names a development node certificate is valid for unless told otherwise."""

_CLIENT_NAME: Final = "jumpstarter-client"
_KEY_MODE: Final = 0o600
_CERT_MODE: Final = 0o644


class CertificatesExist(FileExistsError):
    """Some of the files to write exist already; nothing was written.

    Remove them, or overwrite them with ``force=True`` (``jumpstart certs --force``).

    Attributes:
        paths: the files that exist.
    """

    def __init__(self, message: str, paths: tuple[Path, ...]) -> None:
        super().__init__(message)
        self.paths = paths


@final
@attrs.frozen(kw_only=True)
class DevCertificates:
    """The files :func:`write_dev_certificates` wrote.

    Attributes:
        ca_file: the CA certificate (PEM).
        cert_file: the node certificate (PEM).
        key_file: the node's private key (PEM, unencrypted, mode 0600).
        client_cert_file: the client certificate, for mutual TLS (PEM).
        client_key_file: the client's private key (PEM, unencrypted, mode 0600).
        names: the host names and IP addresses the node certificate is valid for.
    """

    ca_file: Path
    cert_file: Path
    key_file: Path
    client_cert_file: Path
    client_key_file: Path
    names: tuple[str, ...]

    @property
    def files(self) -> tuple[Path, ...]:
        """Every file written, CA first."""
        return (
            self.ca_file,
            self.cert_file,
            self.key_file,
            self.client_cert_file,
            self.client_key_file,
        )

    def server_tls(self, *, require_client_certificate: bool = False) -> TLSConfig:
        """A :class:`TLSConfig` for a node that accepts connections with these files."""
        return TLSConfig(
            ca_file=self.ca_file,
            cert_file=self.cert_file,
            key_file=self.key_file,
            require_client_certificate=require_client_certificate,
        )

    def client_tls(self, *, with_certificate: bool = False) -> TLSConfig:
        """A :class:`TLSConfig` for a client that trusts the CA.

        Args:
            with_certificate: present the client certificate (for mutual TLS).
        """
        if not with_certificate:
            return TLSConfig(ca_file=self.ca_file)
        return TLSConfig(
            ca_file=self.ca_file,
            cert_file=self.client_cert_file,
            key_file=self.client_key_file,
        )


def _paths(directory: Path) -> DevCertificates:
    return DevCertificates(
        ca_file=directory / "ca.pem",
        cert_file=directory / "node.pem",
        key_file=directory / "node.key",
        client_cert_file=directory / "client.pem",
        client_key_file=directory / "client.key",
        names=(),
    )


def _common_name(names: tuple[str, ...]) -> str:
    for name in names:
        try:
            ipaddress.ip_address(name)
        except ValueError:
            continue
        return name
    return names[0]


def _write(path: Path, data: bytes, mode: int, *, force: bool) -> None:
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if force else os.O_EXCL)
    fd = os.open(path, flags, mode)
    try:
        os.fchmod(fd, mode)  # an overwritten file keeps its old mode otherwise
        with os.fdopen(fd, "wb", closefd=False) as file:
            file.write(data)
    finally:
        os.close(fd)


def write_dev_certificates(
    directory: str | os.PathLike[str],
    *,
    names: Iterable[str] = DEFAULT_NAMES,
    valid_days: int = 365,
    force: bool = False,
) -> DevCertificates:
    """Make a development CA and node and client certificates; write them to ``directory``.

    Args:
        directory: where to write (made if missing).
        names: the host names and IP addresses the node certificate is valid for.
        valid_days: how long the certificates are valid, from now.
        force: overwrite files that exist; otherwise refuse to.

    Returns:
        The paths written.

    Raises:
        CertificatesExist: some of the files exist and ``force`` is false (nothing
            was written).
        ValueError: no names, a name that is neither a host name nor an IP address,
            or ``valid_days`` below 1.
        OSError: the directory cannot be made or written to.
    """
    node_names = tuple(dict.fromkeys(names))
    if not node_names:
        raise ValueError("give at least one host name or IP address for the node certificate")
    if valid_days < 1:
        raise ValueError(f"valid_days must be at least 1, not {valid_days}")
    root = Path(directory)
    paths = _paths(root)
    if not force:
        existing = tuple(path for path in paths.files if path.exists())
        if existing:
            raise CertificatesExist(
                f"{', '.join(map(str, existing))} already exist{'s' if len(existing) == 1 else ''}"
                "; remove them, or overwrite them with force=True (jumpstart certs --force)",
                existing,
            )

    now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    not_before = now - datetime.timedelta(days=1)  # tolerate clocks a little behind
    not_after = now + datetime.timedelta(days=valid_days)
    ca = trustme.CA(organization_name="jumpstarter development CA")
    try:
        node = ca.issue_cert(
            *node_names,
            common_name=_common_name(node_names),
            not_before=not_before,
            not_after=not_after,
        )
    except (ValueError, UnicodeError) as exc:
        raise ValueError(
            f"cannot issue a certificate for {', '.join(map(repr, node_names))}: {exc}; "
            "give host names (example.com) or IP addresses (127.0.0.1)"
        ) from None
    client = ca.issue_cert(
        _CLIENT_NAME, common_name=_CLIENT_NAME, not_before=not_before, not_after=not_after
    )

    root.mkdir(parents=True, exist_ok=True)
    contents = [
        (paths.ca_file, ca.cert_pem.bytes(), _CERT_MODE),
        (paths.cert_file, b"".join(blob.bytes() for blob in node.cert_chain_pems), _CERT_MODE),
        (paths.key_file, node.private_key_pem.bytes(), _KEY_MODE),
        (
            paths.client_cert_file,
            b"".join(blob.bytes() for blob in client.cert_chain_pems),
            _CERT_MODE,
        ),
        (paths.client_key_file, client.private_key_pem.bytes(), _KEY_MODE),
    ]
    for path, data, mode in contents:
        _write(path, data, mode, force=force)
    return attrs.evolve(paths, names=node_names)
