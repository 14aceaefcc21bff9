"""Database trouble is answered fast and seen by health: an unreachable database gives
UNAVAILABLE at once (not after the pool timeout) and recovers by itself; a missing
schema turns health NOT_SERVING; a newer schema (another release's additive migrations)
does not; a shutdown drains before it refuses anything."""

from __future__ import annotations

import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import grpc
import psycopg
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from segmentation.v1 import user_service_pb2 as pb
from tests.support.clock import MovableClock
from tests.support.names import Names
from tests.support.servers import PrivateServer, private_server
from tests.support.tcp_proxy import TcpProxy

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def health_status(env: PrivateServer) -> int:
    with grpc.insecure_channel(f"127.0.0.1:{env.server.grpc_port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=2)
        return int(reply.status)


def wait_for(condition: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def read_code(env: PrivateServer, user_id: int, timeout: float = 1) -> grpc.StatusCode:
    try:
        env.users.GetUserSegments(
            pb.GetUserSegmentsRequest(user_id=user_id), metadata=env.metadata, timeout=timeout
        )
    except grpc.RpcError as exc:
        code: grpc.StatusCode = exc.code()
        return code
    return grpc.StatusCode.OK


@pytest.fixture
def proxied(
    fresh_database: Callable[[], str], clock: MovableClock
) -> Iterator[tuple[PrivateServer, TcpProxy]]:
    url = fresh_database()
    target = urlsplit(url)
    proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 5432)
    port = proxy.start()
    via_proxy = target._replace(netloc=f"{target.username}@127.0.0.1:{port}").geturl()
    try:
        with private_server(via_proxy, clock, pool_timeout_seconds=5) as env:
            yield env, proxy
    finally:
        proxy.stop()


def test_known_outage_fails_fast_and_recovers(
    proxied: tuple[PrivateServer, TcpProxy], names: Names
) -> None:
    """Defect 10: with the database unreachable, calls with a 1 s deadline get
    UNAVAILABLE (not DEADLINE_EXCEEDED after the 5 s pool timeout); within 5 s of its
    return, calls succeed again without a restart."""
    env, proxy = proxied
    assert read_code(env, names.user_id()) == grpc.StatusCode.OK
    proxy.cut()
    wait_for(lambda: health_status(env) == NOT_SERVING, 5)
    codes = {read_code(env, names.user_id()) for _ in range(10)}
    assert codes == {grpc.StatusCode.UNAVAILABLE}
    proxy.restore()
    wait_for(lambda: read_code(env, names.user_id(), timeout=5) == grpc.StatusCode.OK, 5)
    assert health_status(env) == SERVING


def test_health_follows_the_schema_not_only_the_ping(
    fresh_database: Callable[[], str], clock: MovableClock, names: Names
) -> None:
    """Defect 9: the database re-created empty makes health NOT_SERVING and calls
    UNAVAILABLE (not INTERNAL); a schema newer than the code keeps it SERVING/ready."""
    url = fresh_database()
    with private_server(url, clock) as env:
        readyz = f"http://127.0.0.1:{env.server.http_port}/readyz"
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES (999999, 'newer_release')"
            )
            time.sleep(0.5)
            assert health_status(env) == SERVING
            with urllib.request.urlopen(readyz, timeout=2) as reply:
                assert reply.status == 200
            conn.execute("DROP SCHEMA public CASCADE")
            conn.execute("CREATE SCHEMA public")
        wait_for(lambda: health_status(env) == NOT_SERVING, 5)
        assert read_code(env, names.user_id()) == grpc.StatusCode.UNAVAILABLE


def test_shutdown_drains_before_refusing_calls(
    fresh_database: Callable[[], str], clock: MovableClock, names: Names
) -> None:
    """Defect 8: after the stop begins, health is NOT_SERVING at once while calls are
    still answered for the drain period."""
    with private_server(fresh_database(), clock, shutdown_drain=1.5) as env:
        stopping = threading.Thread(target=env.server.stop, kwargs={"grace": 1})
        stopping.start()
        try:
            wait_for(lambda: health_status(env) == NOT_SERVING, 0.5)
            assert read_code(env, names.user_id()) == grpc.StatusCode.OK
        finally:
            stopping.join(timeout=10)
