"""The real `segsvc serve` process: embedded PostgreSQL start, graceful SIGTERM under
load, and one-line start-up errors."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import psycopg
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from segmentation.v1 import auth_options_pb2
from segmentation.v1 import auth_service_pb2 as auth_pb
from segmentation.v1 import auth_service_pb2_grpc as auth_grpc
from segmentation.v1 import user_service_pb2 as pb
from segmentation.v1 import user_service_pb2_grpc as user_grpc
from segsvc.config import DEFAULT_MIGRATIONS_DIR as MIGRATIONS
from segsvc.store import migrations
from tests.support.servers import JWT_SECRET, SEGSVC, child_env, start_process

RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED}


@pytest.mark.parametrize("processes", ["1", "2"])
def test_embedded_database_start(tmp_path: Path, processes: str) -> None:
    """No database URL and no secret: dev mode starts PostgreSQL from the wheel,
    generates a JWT secret, says so, and serves; behind the supervisor too (`make run`
    on a machine of several CPUs), whose workers get the embedded server and its secret."""
    env = child_env(
        SEGSVC_PROCESSES=processes,
        SEGSVC_DATA_DIR=str(tmp_path / "data"),
        SEGSVC_GRPC_ADDR="127.0.0.1:0",
        SEGSVC_HTTP_ADDR="127.0.0.1:0",
    )
    server = start_process(env, timeout=120)
    try:
        log = "".join(server.log)
        assert "embedded_postgres" in log
        assert str(tmp_path / "data" / "pgdata") in log
        assert "generated_dev_jwt_secret" in log
        secret = (tmp_path / "data" / "jwt-secret").read_text()
        assert secret not in log
        with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as ch:
            reply = health_pb2_grpc.HealthStub(ch).Check(
                health_pb2.HealthCheckRequest(), timeout=10
            )
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        assert server.terminate() == 0
    assert (tmp_path / "data" / "pgdata" / "PG_VERSION").exists()


def test_sigterm_lets_started_calls_finish(database_url: str) -> None:
    env = child_env(
        SEGSVC_DATABASE_URL=database_url,
        SEGSVC_JWT_SECRET=JWT_SECRET,
        SEGSVC_GRPC_ADDR="127.0.0.1:0",
        SEGSVC_HTTP_ADDR="127.0.0.1:0",
        SEGSVC_SHUTDOWN_GRACE="5",
        SEGSVC_BCRYPT_ROUNDS="4",
        SEGSVC_OPEN_SIGNUP="true",
    )
    server = start_process(env)

    target = f"127.0.0.1:{server.grpc_port}"
    with grpc.insecure_channel(target) as ch:
        auth = auth_grpc.AuthServiceStub(ch)
        auth.SignUp(
            auth_pb.SignUpRequest(
                name="T",
                username="sigterm",
                password="password-1",
                role=auth_options_pb2.ROLE_WRITER,
            )
        )
        token = auth.SignIn(
            auth_pb.SignInRequest(username="sigterm", password="password-1")
        ).access_token
    md = (("authorization", f"Bearer {token}"),)
    outcomes: list[grpc.StatusCode] = []
    stop = threading.Event()
    lock = threading.Lock()

    def caller() -> None:
        with grpc.insecure_channel(target) as ch:
            stub = user_grpc.UserServiceStub(ch)
            while not stop.is_set():
                try:
                    stub.GetUserSegments(
                        pb.GetUserSegmentsRequest(user_id=42), metadata=md, timeout=10
                    )
                    code = grpc.StatusCode.OK
                except grpc.RpcError as err:
                    code = err.code()
                with lock:
                    outcomes.append(code)
                if code != grpc.StatusCode.OK:
                    return

    threads = [threading.Thread(target=caller) for _ in range(8)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    started = time.monotonic()
    status = server.terminate(timeout=20)
    elapsed = time.monotonic() - started
    stop.set()
    for t in threads:
        t.join(timeout=20)
    assert status == 0
    assert elapsed < 5 + 3
    assert outcomes.count(grpc.StatusCode.OK) > 50
    assert set(outcomes) <= {grpc.StatusCode.OK} | RETRYABLE, set(outcomes)


def run_serve(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SEGSVC, "serve"], env=env, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"SEGSVC_DATABASE_URL": "mysql://x"}, "SEGSVC_DATABASE_URL"),
        ({"SEGSVC_GRPC_ADDR": "no-port"}, "SEGSVC_GRPC_ADDR"),
        ({"SEGSVC_POOL_SIZE": "zero"}, "SEGSVC_POOL_SIZE"),
        ({"SEGSVC_BULK_POOL_SIZE": "16"}, "SEGSVC_BULK_POOL_SIZE must be below"),
        (
            {
                "SEGSVC_DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/x",
                "SEGSVC_JWT_SECRET": JWT_SECRET,
                "SEGSVC_MIGRATIONS_DIR": "/nonexistent/migrations",
            },
            "holds no migrations",
        ),
        ({"SEGSVC_DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/x"}, "SEGSVC_JWT_SECRET"),
        (
            {
                "SEGSVC_DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/x",
                "SEGSVC_JWT_SECRET": "short",
            },
            "at least 32 bytes",
        ),
    ],
)
def test_bad_settings_fail_fast_with_one_clear_line(
    settings: dict[str, str], expected: str
) -> None:
    result = run_serve(child_env(**settings))
    assert result.returncode == 2, "the README promises exit status 2 for bad settings"
    assert expected in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert len(result.stderr.strip().splitlines()) == 1


def test_port_in_use_fails_fast(database_url: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_serve(
            child_env(
                SEGSVC_DATABASE_URL=database_url,
                SEGSVC_JWT_SECRET=JWT_SECRET,
                SEGSVC_GRPC_ADDR=f"127.0.0.1:{port}",
                SEGSVC_HTTP_ADDR="127.0.0.1:0",
            )
        )
    assert result.returncode != 0
    assert f"SEGSVC_GRPC_ADDR=127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_unreachable_database_fails_fast() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    result = run_serve(
        child_env(
            SEGSVC_DATABASE_URL=f"postgresql://postgres@127.0.0.1:{free}/x?connect_timeout=2",
            SEGSVC_JWT_SECRET=JWT_SECRET,
            SEGSVC_GRPC_ADDR="127.0.0.1:0",
            SEGSVC_HTTP_ADDR="127.0.0.1:0",
        )
    )
    assert result.returncode == 1
    assert "cannot start" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_migrate_command_goes_up_and_down(fresh_database: Callable[[], str]) -> None:
    url = fresh_database()
    env = child_env(SEGSVC_DATABASE_URL=url)
    up = subprocess.run([SEGSVC, "migrate"], env=env, capture_output=True, text=True, check=False)
    assert up.returncode == 0, up.stderr
    with psycopg.connect(url) as conn:
        assert migrations.is_at_head(conn, MIGRATIONS)
    down = subprocess.run(
        [SEGSVC, "migrate", "--to", "0"], env=env, capture_output=True, text=True, check=False
    )
    assert down.returncode == 0, down.stderr
    with psycopg.connect(url) as conn:
        assert migrations.applied_versions(conn) == []


def test_unknown_variables_are_named_in_a_warning() -> None:
    """A misspelt setting is reported at start (here the start then fails on purpose)."""
    env = child_env(SEGSVC_POOL_SIZ="3", SEGSVC_MIGRATIONS_DIR="/nonexistent/migrations")
    result = run_serve(env)
    assert "unknown_settings_ignored" in result.stdout
    assert "SEGSVC_POOL_SIZ" in result.stdout
    assert result.returncode == 2
