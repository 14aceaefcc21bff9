"""Optional TLS and mutual TLS for gRPC, with certificates made at test time (trustme)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import trustme
from grpc_health.v1 import health_pb2, health_pb2_grpc

import segsvc_client
from segsvc.server import SegsvcServer
from segsvc.startup import StartupError
from segsvc_client import SegsvcClient
from tests.conftest import ADMIN_CREDENTIALS
from tests.support.servers import make_settings


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def write_pair(ca: trustme.CA, directory: Path, name: str) -> tuple[Path, Path, bytes, bytes]:
    cert = ca.issue_cert("localhost", "127.0.0.1")
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert.private_key_pem.write_to_path(str(key_path))
    cert.cert_chain_pems[0].write_to_path(str(cert_path))
    return cert_path, key_path, cert.cert_chain_pems[0].bytes(), cert.private_key_pem.bytes()


@pytest.fixture
def tls_server(ca: trustme.CA, tmp_path: Path, database_url: str) -> Iterator[SegsvcServer]:
    cert, key, _, _ = write_pair(ca, tmp_path, "server")
    server = SegsvcServer(make_settings(tls_cert=cert, tls_key=key), database_url)
    server.start()
    yield server
    server.stop(grace=0)


def check(channel: grpc.Channel) -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    return int(stub.Check(health_pb2.HealthCheckRequest(), timeout=5).status)


def test_tls_serves_trusting_clients_only(ca: trustme.CA, tls_server: SegsvcServer) -> None:
    target = f"localhost:{tls_server.grpc_port}"
    credentials = grpc.ssl_channel_credentials(root_certificates=ca.cert_pem.bytes())
    with grpc.secure_channel(target, credentials) as ch:
        assert check(ch) == health_pb2.HealthCheckResponse.SERVING
    with grpc.insecure_channel(target) as ch, pytest.raises(grpc.RpcError) as err:
        check(ch)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    stranger = trustme.CA()
    untrusting = grpc.ssl_channel_credentials(root_certificates=stranger.cert_pem.bytes())
    with grpc.secure_channel(target, untrusting) as ch, pytest.raises(grpc.RpcError):
        check(ch)


def test_mutual_tls_requires_a_client_certificate(
    ca: trustme.CA, tmp_path: Path, database_url: str
) -> None:
    cert, key, _, _ = write_pair(ca, tmp_path, "server")
    ca_path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    server = SegsvcServer(
        make_settings(tls_cert=cert, tls_key=key, tls_client_ca=ca_path), database_url
    )
    server.start()
    try:
        target = f"localhost:{server.grpc_port}"
        _, _, client_cert, client_key = write_pair(ca, tmp_path, "client")
        with_cert = grpc.ssl_channel_credentials(ca.cert_pem.bytes(), client_key, client_cert)
        with grpc.secure_channel(target, with_cert) as ch:
            assert check(ch) == health_pb2.HealthCheckResponse.SERVING
        without = grpc.ssl_channel_credentials(root_certificates=ca.cert_pem.bytes())
        with grpc.secure_channel(target, without) as ch, pytest.raises(grpc.RpcError):
            check(ch)
    finally:
        server.stop(grace=0)


def test_half_configured_tls_is_a_startup_error(tmp_path: Path, database_url: str) -> None:
    with pytest.raises(StartupError, match="SEGSVC_TLS_CERT and SEGSVC_TLS_KEY"):
        SegsvcServer(make_settings(tls_cert=tmp_path / "only.crt"), database_url)
    with pytest.raises(StartupError, match="cannot read TLS files"):
        SegsvcServer(
            make_settings(tls_cert=tmp_path / "missing.crt", tls_key=tmp_path / "missing.key"),
            database_url,
        )


def test_python_client_over_tls(
    ca: trustme.CA, tls_server: SegsvcServer, server: SegsvcServer
) -> None:
    """`server` makes the session's admin account in the database both servers share."""
    target = f"localhost:{tls_server.grpc_port}"
    username, password = ADMIN_CREDENTIALS
    with SegsvcClient(
        target, username=username, password=password, root_certificates=ca.cert_pem.bytes()
    ) as client:
        assert client.get_user_segments(1).user_id == 1
    with (
        SegsvcClient(target, api_key="k", tls=True, timeout=2) as untrusting,
        pytest.raises(segsvc_client.Unavailable),
    ):
        untrusting.get_user_segments(1)
