"""``jumpstart certs DIR``: development TLS certificates that work with TLSConfig."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from jumpstarter import TLSConfig
from jumpstarter._amqp import AMQPConnection, ConnectionOpened, TransportClosed
from jumpstarter._certs import CertificatesExist, write_dev_certificates
from jumpstarter._cli import main

from .amqp.pair import ConnectionPair, only

FILES = ("ca.pem", "node.pem", "node.key", "client.pem", "client.key")


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def handshake(directory: Path, hostname: str, *, mutual: bool = False) -> ConnectionPair:
    """A sans-IO client and server using the files in ``directory``, after the handshake."""
    client = TLSConfig(
        ca_file=directory / "ca.pem",
        cert_file=directory / "client.pem" if mutual else None,
        key_file=directory / "client.key" if mutual else None,
    )
    server = TLSConfig(
        ca_file=directory / "ca.pem",
        cert_file=directory / "node.pem",
        key_file=directory / "node.key",
        require_client_certificate=mutual,
    )
    pair = ConnectionPair(
        client=AMQPConnection(container_id="client", role="client", hostname=hostname, tls=client),
        server=AMQPConnection(container_id="server", role="server", tls=server),
    )
    pair.client.open()
    pair.server.open()
    pair.pump()
    return pair


def opened(pair: ConnectionPair) -> bool:
    return bool(only(pair.client_events, ConnectionOpened)) and bool(
        only(pair.server_events, ConnectionOpened)
    )


def test_certs_writes_a_ca_a_node_and_a_client_certificate_that_work(tmp_path: Path) -> None:
    directory = tmp_path / "certs"
    result = invoke("certs", str(directory))
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in directory.iterdir()) == sorted(FILES)
    for key in ("node.key", "client.key"):
        assert stat.S_IMODE((directory / key).stat().st_mode) == 0o600
    for name in ("localhost", "127.0.0.1"):
        assert opened(handshake(directory, name))
    assert opened(handshake(directory, "localhost", mutual=True))
    assert only(handshake(directory, "example.com").client_events, TransportClosed)


def test_certs_tells_how_to_use_the_files(tmp_path: Path) -> None:
    result = invoke("certs", str(tmp_path))
    assert result.exit_code == 0, result.output
    for name in FILES:
        assert str(tmp_path / name) in result.output
    assert f"TLSConfig(ca_file={str(tmp_path / 'ca.pem')!r}" in result.output
    assert "require_client_certificate=True" in result.output
    assert (
        f"--tls-ca {tmp_path / 'ca.pem'} --tls-cert {tmp_path / 'node.pem'} "
        f"--tls-key {tmp_path / 'node.key'}"
    ) in result.output


def test_names_choose_what_the_node_certificate_is_valid_for(tmp_path: Path) -> None:
    result = invoke("certs", str(tmp_path), "--name", "node-a.lan", "--name", "10.0.0.7")
    assert result.exit_code == 0, result.output
    assert "for node-a.lan, 10.0.0.7" in result.output
    assert opened(handshake(tmp_path, "node-a.lan"))
    assert opened(handshake(tmp_path, "10.0.0.7"))
    assert not opened(handshake(tmp_path, "localhost"))


def test_certs_refuses_to_overwrite_unless_forced(tmp_path: Path) -> None:
    assert invoke("certs", str(tmp_path)).exit_code == 0
    before = {name: (tmp_path / name).read_bytes() for name in FILES}
    refused = invoke("certs", str(tmp_path))
    assert refused.exit_code == 1
    assert "already exist" in refused.output
    assert "--force" in refused.output
    assert {name: (tmp_path / name).read_bytes() for name in FILES} == before
    forced = invoke("certs", str(tmp_path), "--force")
    assert forced.exit_code == 0, forced.output
    assert (tmp_path / "ca.pem").read_bytes() != before["ca.pem"]
    assert opened(handshake(tmp_path, "localhost"))


def test_forcing_makes_an_overwritten_key_private_again(tmp_path: Path) -> None:
    key = tmp_path / "node.key"
    key.write_text("old")
    key.chmod(0o644)
    assert invoke("certs", str(tmp_path), "--force").exit_code == 0
    assert stat.S_IMODE(key.stat().st_mode) == 0o600


def test_one_existing_file_is_enough_to_refuse_and_nothing_is_written(tmp_path: Path) -> None:
    (tmp_path / "client.key").write_text("mine")
    with pytest.raises(CertificatesExist) as caught:
        write_dev_certificates(tmp_path)
    assert caught.value.paths == (tmp_path / "client.key",)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["client.key"]


def test_a_bad_name_is_a_usage_error(tmp_path: Path) -> None:
    result = invoke("certs", str(tmp_path), "--name", "not a host")
    assert result.exit_code == 2
    assert "--name" in result.output
    assert "not a host" in result.output
    assert not list(tmp_path.iterdir())


def test_the_directory_is_made_when_missing(tmp_path: Path) -> None:
    written = write_dev_certificates(tmp_path / "a" / "b", names=["localhost"], valid_days=1)
    assert written.names == ("localhost",)
    assert all(path.is_file() for path in written.files)
