"""What an operator sees: Prometheus metrics, HTTP probes, request ids, JSON logs, and
gRPC health that follows the database's availability."""

from __future__ import annotations

import json
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pgserver.postgres_server import get_server
from prometheus_client.parser import text_string_to_metric_families

from segmentation.v1 import auth_service_pb2 as auth_pb
from segmentation.v1 import auth_service_pb2_grpc as auth_grpc
from segmentation.v1 import user_service_pb2 as pb
from segmentation.v1 import user_service_pb2_grpc as user_grpc
from segsvc.config import DEFAULT_MIGRATIONS_DIR as MIGRATIONS
from segsvc.domain.roles import Role
from segsvc.server import SegsvcServer
from segsvc.service_layer.accounts import create_account
from segsvc.store.migrations import migrate
from tests.support.servers import JWT_SECRET, child_env, make_settings, start_process

Metadata = tuple[tuple[str, str], ...]


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as reply:  # noqa: S310 - loopback
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def test_metrics_count_calls_by_method_and_code(
    server: SegsvcServer, users: user_grpc.UserServiceStub, auth_metadata: Metadata
) -> None:
    users.GetUserSegments(pb.GetUserSegmentsRequest(user_id=5), metadata=auth_metadata)
    with pytest.raises(grpc.RpcError):
        users.GetUserSegments(pb.GetUserSegmentsRequest(user_id=-5), metadata=auth_metadata)
    status, body = get(f"http://127.0.0.1:{server.http_port}/metrics")
    assert status == 200
    method = 'method="/segmentation.v1.UserService/GetUserSegments"'
    lines = body.splitlines()
    assert any(
        line.startswith("segsvc_grpc_requests_total{") and 'code="OK"' in line and method in line
        for line in lines
    )
    assert any('code="INVALID_ARGUMENT"' in line and method in line for line in lines)
    assert any(
        line.startswith("segsvc_grpc_request_duration_seconds_bucket{") and method in line
        for line in lines
    )
    for name in (
        "segsvc_grpc_in_flight_requests",
        "segsvc_db_pool_size",
        "segsvc_db_pool_in_use",
        "segsvc_db_pool_waiting",
        "segsvc_db_read_pool_size",
        "segsvc_db_read_pool_in_use",
        "segsvc_expired_memberships_swept_total",
    ):
        assert any(line.startswith(name) for line in lines), name


def test_probes(server: SegsvcServer) -> None:
    base = f"http://127.0.0.1:{server.http_port}"
    assert get(f"{base}/healthz") == (200, "ok\n")
    assert get(f"{base}/readyz") == (200, "ready\n")
    assert get(f"{base}/nothing")[0] == 404


def test_request_id_is_echoed_or_generated(
    users: user_grpc.UserServiceStub, auth_metadata: Metadata
) -> None:
    _, call = users.GetUserSegments.with_call(
        pb.GetUserSegmentsRequest(user_id=7), metadata=(*auth_metadata, ("x-request-id", "abc-123"))
    )
    assert ("x-request-id", "abc-123") in list(call.trailing_metadata() or ())
    _, call = users.GetUserSegments.with_call(
        pb.GetUserSegmentsRequest(user_id=7), metadata=auth_metadata
    )
    generated = dict(call.trailing_metadata() or ())["x-request-id"]
    assert isinstance(generated, str)
    assert len(generated) == 32
    with pytest.raises(grpc.RpcError) as err:
        users.GetUserSegments(
            pb.GetUserSegmentsRequest(user_id=0),
            metadata=(*auth_metadata, ("x-request-id", "bad-1")),
        )
    trailing: list[tuple[str, object]] = [
        (m.key, m.value) for m in err.value.trailing_metadata() or ()
    ]
    assert ("x-request-id", "bad-1") in trailing


def test_json_log_line_per_call_without_secrets(database_url: str) -> None:
    server = start_process(
        child_env(
            SEGSVC_DATABASE_URL=database_url,
            SEGSVC_JWT_SECRET=JWT_SECRET,
            SEGSVC_GRPC_ADDR="127.0.0.1:0",
            SEGSVC_HTTP_ADDR="127.0.0.1:0",
            SEGSVC_BCRYPT_ROUNDS="4",
            SEGSVC_OPEN_SIGNUP="true",
            SEGSVC_ACCESS_LOG_EVERY="1",
        )
    )

    password = "very-secret-password"
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as ch:
            auth = auth_grpc.AuthServiceStub(ch)
            account = auth.SignUp(
                auth_pb.SignUpRequest(name="L", username="logger", password=password)
            )
            token = auth.SignIn(
                auth_pb.SignInRequest(username="logger", password=password)
            ).access_token
            user_grpc.UserServiceStub(ch).GetUserSegments(
                pb.GetUserSegmentsRequest(user_id=3),
                metadata=(("authorization", f"Bearer {token}"), ("x-request-id", "trace-77")),
            )
    finally:
        assert server.terminate() == 0
    text = "".join(server.log)
    assert password not in text
    assert token not in text
    events = [json.loads(line) for line in server.log if line.startswith("{")]
    call = next(e for e in events if e.get("request_id") == "trace-77")
    assert call["event"] == "rpc"
    assert call["method"] == "/segmentation.v1.UserService/GetUserSegments"
    assert call["code"] == "OK"
    assert call["account_id"] == account.account_id
    assert call["level"] == "info"
    assert isinstance(call["duration_ms"], float)


def wait_for(check: object, expected: bool, seconds: float = 15) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check() == expected:  # type: ignore[operator]
            return True
        time.sleep(0.1)
    return False


def test_health_follows_the_database() -> None:
    """Stop PostgreSQL under a running server: NOT_SERVING, data calls UNAVAILABLE (not
    UNKNOWN), not ready; start it again: SERVING and answering, without a restart."""
    with tempfile.TemporaryDirectory(prefix="segsvc-h-") as data:
        pg = get_server(Path(data), cleanup_mode="stop")
        url = str(pg.get_uri())
        migrate(url, MIGRATIONS)
        server = SegsvcServer(make_settings(pool_timeout_seconds=1.0), url)
        server.start()
        try:
            with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as ch:
                health = health_pb2_grpc.HealthStub(ch)

                def status(service: str = "") -> int:
                    request = health_pb2.HealthCheckRequest(service=service)
                    return int(health.Check(request, timeout=5).status)

                reader = create_account(server.db, "Ops", "ops", "password-1", Role.READER, 4)
                token, _ = server.accounts.tokens.issue(reader)
                md = (("authorization", f"Bearer {token}"),)
                stub = user_grpc.UserServiceStub(ch)
                serving = health_pb2.HealthCheckResponse.SERVING
                assert status() == serving
                pg.cleanup()  # stops PostgreSQL
                assert wait_for(status, health_pb2.HealthCheckResponse.NOT_SERVING)
                assert status("liveness") == serving  # no restart for a database outage
                with pytest.raises(grpc.RpcError) as err:
                    stub.GetUserSegments(
                        pb.GetUserSegmentsRequest(user_id=1), metadata=md, timeout=10
                    )
                assert err.value.code() == grpc.StatusCode.UNAVAILABLE
                assert get(f"http://127.0.0.1:{server.http_port}/readyz")[0] == 503
                pg = get_server(Path(data), cleanup_mode="stop")
                assert wait_for(status, serving)

                def answers() -> bool:
                    try:
                        stub.GetUserSegments(
                            pb.GetUserSegmentsRequest(user_id=1), metadata=md, timeout=5
                        )
                        return True
                    except grpc.RpcError:
                        return False

                assert wait_for(answers, True)
        finally:
            server.stop(grace=0)
            pg.cleanup()


def test_no_access_log_line_by_default_but_metrics_count_every_call(database_url: str) -> None:
    """At the default settings (INFO) a call writes no log line: the access log is opt-in
    (SEGSVC_ACCESS_LOG_EVERY), because a JSON line per call cost more CPU than the rest
    of the per-call bookkeeping. The metrics still count every call."""
    server = start_process(
        child_env(
            SEGSVC_DATABASE_URL=database_url,
            SEGSVC_JWT_SECRET=JWT_SECRET,
            SEGSVC_GRPC_ADDR="127.0.0.1:0",
            SEGSVC_HTTP_ADDR="127.0.0.1:0",
            SEGSVC_BCRYPT_ROUNDS="4",
            SEGSVC_OPEN_SIGNUP="true",
        )
    )
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as ch:
            auth = auth_grpc.AuthServiceStub(ch)
            auth.SignUp(auth_pb.SignUpRequest(name="Q", username="quiet", password="pw-quiet-1"))
            token = auth.SignIn(
                auth_pb.SignInRequest(username="quiet", password="pw-quiet-1")
            ).access_token
            for _ in range(3):
                user_grpc.UserServiceStub(ch).GetUserSegments(
                    pb.GetUserSegmentsRequest(user_id=3),
                    metadata=(("authorization", f"Bearer {token}"), ("x-request-id", "quiet-1")),
                )
            metrics = (
                urllib.request.urlopen(f"http://127.0.0.1:{server.http_port}/metrics", timeout=5)
                .read()
                .decode()
            )
    finally:
        assert server.terminate() == 0
    assert "quiet-1" not in "".join(server.log)
    assert not [line for line in server.log if '"event": "rpc"' in line]
    counted = {
        (sample.labels["method"], sample.labels["code"]): sample.value
        for family in text_string_to_metric_families(metrics)
        for sample in family.samples
        if sample.name == "segsvc_grpc_requests_total"
    }
    assert counted[("/segmentation.v1.UserService/GetUserSegments", "OK")] == 3
