"""TLS through proton's SSL layer, between two sans-IO connections joined in memory."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import attrs
import pytest
from cryptography.hazmat.primitives import serialization

from jumpstarter import TLSConfig
from jumpstarter._amqp import (
    Accepted,
    AMQPConnection,
    ConnectionOpened,
    DeliveryUpdated,
    Event,
    LinkRequested,
    MessageReceived,
    TransportClosed,
)
from jumpstarter._certs import DevCertificates, write_dev_certificates

from .pair import ConnectionPair, decode, encode, only


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> DevCertificates:
    return write_dev_certificates(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def other_certs(tmp_path_factory: pytest.TempPathFactory) -> DevCertificates:
    """Certificates from a second, unrelated CA."""
    return write_dev_certificates(tmp_path_factory.mktemp("other"))


@attrs.define
class Wire:
    """A chunker that records every byte the two ends write."""

    seen: bytearray = attrs.Factory(bytearray)

    def __call__(self, data: bytes) -> Iterable[bytes]:
        self.seen += data
        return (data,)


def tls_pair(
    client_tls: TLSConfig | None,
    server_tls: TLSConfig | None,
    *,
    hostname: str = "localhost",
    wire: Wire | None = None,
    **options: Any,
) -> ConnectionPair:
    """A client and a server with these TLS settings, after their handshakes ran."""
    pair = ConnectionPair(
        client=AMQPConnection(
            container_id="client", role="client", hostname=hostname, tls=client_tls, **options
        ),
        server=AMQPConnection(container_id="server", role="server", tls=server_tls, **options),
        chunker=wire or Wire(),
    )
    pair.client.open()
    pair.server.open()
    pair.pump()
    return pair


def hang_up(pair: ConnectionPair) -> None:
    """Both sockets reach EOF, as when the end that failed closes its socket."""
    for conn, events in ((pair.client, pair.client_events), (pair.server, pair.server_events)):
        conn.receive_data(b"")
        conn.data_to_send()
        while (event := conn.next_event()) is not None:
            events.append(event)


def failure(events: list[Event]) -> str:
    """The error of the one TransportClosed, which must be the last event."""
    assert events, "no events at all"
    last = events[-1]
    assert isinstance(last, TransportClosed), events
    assert only(events, TransportClosed) == [last]
    assert last.error, "closed without an error"
    return last.error


def assert_opened(pair: ConnectionPair) -> None:
    assert only(pair.take("client"), ConnectionOpened) == [
        ConnectionOpened(remote_container_id="server")
    ]
    assert only(pair.take("server"), ConnectionOpened) == [
        ConnectionOpened(remote_container_id="client")
    ]


# ---------------------------------------------------------------------- handshakes that work


def test_messages_flow_over_tls_and_the_wire_carries_no_plain_text(
    certs: DevCertificates,
) -> None:
    wire = Wire()
    pair = tls_pair(certs.client_tls(), certs.server_tls(), wire=wire)
    assert_opened(pair)
    sender = pair.client.open_sender("inbox")
    pair.pump()
    (requested,) = only(pair.take("server"), LinkRequested)
    pair.server.accept_link(requested.link, credit=10)
    pair.pump()
    pair.take("client")
    body = "a secret that must not travel in clear text"
    delivery = pair.client.send(sender, encode(body))
    pair.pump()
    (received,) = only(pair.take("server"), MessageReceived)
    assert decode(received.body) == body
    pair.server.settle(received.delivery, Accepted())
    pair.pump()
    assert only(pair.take("client"), DeliveryUpdated) == [
        DeliveryUpdated(link=sender, delivery=delivery, outcome=Accepted(), settled=True)
    ]
    assert b"secret" not in wire.seen
    assert b"AMQP" not in wire.seen  # even the protocol header is inside TLS
    pair.client.close()
    pair.pump()
    assert pair.take("client")[-1] == TransportClosed(error=None)
    assert pair.take("server")[-1] == TransportClosed(error=None)


def test_a_client_connecting_by_ip_address_checks_it_against_the_dev_certificate(
    certs: DevCertificates,
) -> None:
    pair = tls_pair(certs.client_tls(), certs.server_tls(), hostname="127.0.0.1")
    assert_opened(pair)


def test_server_hostname_overrides_the_host_connected_to(certs: DevCertificates) -> None:
    client = TLSConfig(ca_file=certs.ca_file, server_hostname="localhost")
    pair = tls_pair(client, certs.server_tls(), hostname="10.1.2.3")
    assert_opened(pair)


def test_mutual_tls_opens_when_the_client_presents_a_certificate_from_the_ca(
    certs: DevCertificates,
) -> None:
    pair = tls_pair(
        certs.client_tls(with_certificate=True),
        certs.server_tls(require_client_certificate=True),
    )
    assert_opened(pair)


def test_tls_and_sasl_anonymous_work_together(certs: DevCertificates) -> None:
    pair = tls_pair(certs.client_tls(), certs.server_tls(), sasl="anonymous")
    assert_opened(pair)


def test_an_encrypted_key_is_read_with_its_password(certs: DevCertificates, tmp_path: Path) -> None:
    key = serialization.load_pem_private_key(certs.key_file.read_bytes(), password=None)
    encrypted = tmp_path / "node.key"
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"s3cret"),
        )
    )
    server = TLSConfig(cert_file=certs.cert_file, key_file=encrypted, key_password="s3cret")
    assert "s3cret" not in repr(server)
    pair = tls_pair(certs.client_tls(), server)
    assert_opened(pair)
    with pytest.raises(ValueError, match="encrypted; give its key_password"):
        TLSConfig(cert_file=certs.cert_file, key_file=encrypted)
    with pytest.raises(ValueError, match="key_password must be right"):
        TLSConfig(cert_file=certs.cert_file, key_file=encrypted, key_password="wrong")


def test_a_certificate_file_holding_its_key_needs_no_key_file(
    certs: DevCertificates, tmp_path: Path
) -> None:
    combined = tmp_path / "node-and-key.pem"
    combined.write_bytes(certs.cert_file.read_bytes() + certs.key_file.read_bytes())
    pair = tls_pair(certs.client_tls(), TLSConfig(cert_file=combined))
    assert_opened(pair)


def test_relaxed_checks_accept_what_the_strict_ones_refuse(
    certs: DevCertificates, other_certs: DevCertificates
) -> None:
    any_name = TLSConfig(ca_file=certs.ca_file, check_hostname=False)
    assert_opened(tls_pair(any_name, certs.server_tls(), hostname="example.com"))
    anything = TLSConfig(verify_server=False)
    assert_opened(tls_pair(anything, other_certs.server_tls(), hostname="example.com"))


# ---------------------------------------------------------------------- handshakes that fail


def test_a_server_certificate_from_an_unknown_ca_fails_the_handshake_on_both_ends(
    certs: DevCertificates, other_certs: DevCertificates
) -> None:
    pair = tls_pair(certs.client_tls(), other_certs.server_tls())
    assert "certificate verify failed" in failure(pair.take("client"))
    assert "unknown ca" in failure(pair.take("server"))


def test_without_ca_file_a_client_trusts_only_the_system_store(certs: DevCertificates) -> None:
    pair = tls_pair(TLSConfig(), certs.server_tls())
    assert "certificate verify failed" in failure(pair.take("client"))


def test_a_server_certificate_for_another_name_fails_the_handshake(
    certs: DevCertificates,
) -> None:
    pair = tls_pair(certs.client_tls(), certs.server_tls(), hostname="example.com")
    assert "certificate verify failed" in failure(pair.take("client"))
    assert "SSL" in failure(pair.take("server"))


def test_mutual_tls_turns_away_a_client_without_a_certificate(certs: DevCertificates) -> None:
    pair = tls_pair(certs.client_tls(), certs.server_tls(require_client_certificate=True))
    assert "did not return a certificate" in failure(pair.take("server"))
    assert "certificate required" in failure(pair.take("client"))


def test_mutual_tls_turns_away_a_client_certificate_from_another_ca(
    certs: DevCertificates, other_certs: DevCertificates
) -> None:
    client = TLSConfig(
        ca_file=certs.ca_file,
        cert_file=other_certs.client_cert_file,
        key_file=other_certs.client_key_file,
    )
    pair = tls_pair(client, certs.server_tls(require_client_certificate=True))
    assert "certificate verify failed" in failure(pair.take("server"))
    assert "unknown ca" in failure(pair.take("client"))


def test_a_plain_text_client_is_refused_by_a_tls_server(certs: DevCertificates) -> None:
    pair = tls_pair(None, certs.server_tls())
    assert "unencrypted" in failure(pair.take("server"))
    hang_up(pair)
    assert failure(pair.take("client"))


def test_a_tls_client_fails_cleanly_against_a_plain_text_server(certs: DevCertificates) -> None:
    pair = tls_pair(certs.client_tls(), None)
    hang_up(pair)
    assert "SSL Failure" in failure(pair.take("client"))
    assert failure(pair.take("server"))


def test_garbage_instead_of_a_tls_handshake_closes_the_transport(certs: DevCertificates) -> None:
    server = AMQPConnection(container_id="server", role="server", tls=certs.server_tls())
    server.open()
    server.receive_data(b"\x16\x03\x01\x00\x05hello, this is not TLS" * 20)
    server.data_to_send()
    events = []
    while (event := server.next_event()) is not None:
        events.append(event)
    assert "SSL" in failure(events)
    server.receive_data(b"more")  # nothing more happens, and nothing raises
    assert server.next_event() is None


# ---------------------------------------------------------------------- configuration


def test_missing_files_are_reported_when_the_config_is_made(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"ca_file .*missing\.pem.* does not exist"):
        TLSConfig(ca_file=tmp_path / "missing.pem")
    with pytest.raises(IsADirectoryError, match="cert_file"):
        TLSConfig(cert_file=tmp_path)


def test_files_that_are_not_what_they_claim_are_refused(certs: DevCertificates) -> None:
    with pytest.raises(ValueError, match=r"ca_file .* no usable CA certificate"):
        TLSConfig(ca_file=certs.key_file)
    with pytest.raises(ValueError, match="the key must belong to the first certificate"):
        TLSConfig(cert_file=certs.cert_file, key_file=certs.client_key_file)


def test_inconsistent_settings_are_refused(certs: DevCertificates) -> None:
    with pytest.raises(ValueError, match="key_file was given without cert_file"):
        TLSConfig(key_file=certs.key_file)
    with pytest.raises(ValueError, match="key_password was given without cert_file"):
        TLSConfig(key_password="x")
    with pytest.raises(ValueError, match="require_client_certificate needs ca_file"):
        TLSConfig(
            cert_file=certs.cert_file, key_file=certs.key_file, require_client_certificate=True
        )
    with pytest.raises(ValueError, match="require_client_certificate is for a server"):
        TLSConfig(ca_file=certs.ca_file, require_client_certificate=True)


def test_a_server_needs_a_certificate(certs: DevCertificates) -> None:
    with pytest.raises(ValueError, match="a TLS server needs cert_file and key_file"):
        AMQPConnection(container_id="s", role="server", tls=certs.client_tls())


def test_a_client_checking_names_needs_a_name(certs: DevCertificates) -> None:
    with pytest.raises(ValueError, match="server_hostname"):
        AMQPConnection(container_id="c", role="client", tls=certs.client_tls())
    unchecked = TLSConfig(ca_file=certs.ca_file, check_hostname=False)
    AMQPConnection(container_id="c", role="client", tls=unchecked)
