"""Fixtures shared by every test: a real PostgreSQL, a fresh database per test run, and
a real segsvc server on a free loopback port.

Where PostgreSQL comes from: SEGSVC_TEST_DATABASE_URL if set (an admin URL), else the
server on 127.0.0.1:5432 if one answers, else an embedded one from the pgserver wheel.
Each run creates its own database `segsvc_test_<random>` and drops it at the end, so
runs never see each other's data.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import grpc
import psycopg
import pytest

from segmentation.v1 import auth_service_pb2 as auth_pb
from segmentation.v1 import auth_service_pb2_grpc as auth_grpc
from segmentation.v1 import segment_service_pb2
from segmentation.v1 import segment_service_pb2_grpc as segment_grpc
from segmentation.v1 import user_service_pb2_grpc as user_grpc
from segsvc.api.messages import role_value
from segsvc.config import DEFAULT_MIGRATIONS_DIR as MIGRATIONS
from segsvc.domain.roles import Role
from segsvc.observability.logs import configure_logging
from segsvc.server import SegsvcServer
from segsvc.service_layer.accounts import create_account
from segsvc.store.migrations import migrate
from tests.support.clock import MovableClock
from tests.support.names import Names
from tests.support.servers import make_settings

LOCAL_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
ADMIN_CREDENTIALS = ("session-admin", "admin-password")


def _reachable(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=3):
            return True
    except psycopg.Error:
        return False


@pytest.fixture(scope="session")
def admin_url() -> Iterator[str]:
    """A URL with the right to create databases."""
    configured = os.environ.get("SEGSVC_TEST_DATABASE_URL")
    if configured:
        yield configured
        return
    if _reachable(LOCAL_ADMIN_URL):
        yield LOCAL_ADMIN_URL
        return
    from pgserver.postgres_server import get_server

    with tempfile.TemporaryDirectory(prefix="segsvc-pg-") as data:
        server = get_server(Path(data), cleanup_mode="stop")
        yield str(server.get_uri())
        server.cleanup()


def _with_database(admin: str, name: str) -> str:
    """The admin URL pointed at another database (query options such as host kept)."""
    return urlsplit(admin)._replace(path=f"/{name}").geturl()


@pytest.fixture(scope="session")
def fresh_database(admin_url: str) -> Iterator[Any]:
    """A factory of empty databases, all dropped when the session ends."""
    created: list[str] = []

    def make() -> str:
        name = f"segsvc_test_{secrets.token_hex(6)}"
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        created.append(name)
        return _with_database(admin_url, name)

    yield make
    with psycopg.connect(admin_url, autocommit=True) as conn:
        for name in created:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def database_url(fresh_database: Any) -> str:
    """The session's migrated database, shared by the in-process server and SQL tests."""
    url: str = fresh_database()
    migrate(url, MIGRATIONS)
    return url


@pytest.fixture(scope="session", autouse=True)
def quiet_logs() -> None:
    """In-process servers log like production, but only warnings, to keep output readable."""
    configure_logging("console", "WARNING")


@pytest.fixture(scope="session")
def clock() -> MovableClock:
    """The server's clock; tests move it and the `restore_clock` fixture resets it."""
    return MovableClock()


@pytest.fixture(autouse=True)
def restore_clock(clock: MovableClock) -> Iterator[None]:
    """Every test starts at real time."""
    clock.reset()
    yield
    clock.reset()


@pytest.fixture(scope="session")
def server(database_url: str, clock: MovableClock) -> Iterator[SegsvcServer]:
    """A real segsvc server, in this process, for the whole session. Its database gets
    an admin account first (as `segsvc accounts create` would make it), whatever order
    the tests run in, since sign-up is closed once an account exists."""
    instance = SegsvcServer(make_settings(), database_url, clock=clock)
    instance.start()
    create_account(instance.db, "Admin", *ADMIN_CREDENTIALS, Role.ADMIN, bcrypt_rounds=4)
    yield instance
    instance.stop(grace=1)


@pytest.fixture(scope="session")
def channel(server: SegsvcServer) -> Iterator[grpc.Channel]:
    """A plaintext channel to the session server."""
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as ch:
        yield ch


@pytest.fixture(scope="session")
def token(channel: grpc.Channel) -> str:
    """An access token of the session's admin account (the database's first account)."""
    username, password = ADMIN_CREDENTIALS
    reply = auth_grpc.AuthServiceStub(channel).SignIn(
        auth_pb.SignInRequest(username=username, password=password)
    )
    return reply.access_token


@pytest.fixture(scope="session")
def auth_metadata(token: str) -> tuple[tuple[str, str], ...]:
    """Call metadata carrying the session token (an admin's: it may call every RPC)."""
    return (("authorization", f"Bearer {token}"),)


@pytest.fixture(scope="session")
def role_metadata(
    channel: grpc.Channel, auth_metadata: tuple[tuple[str, str], ...]
) -> dict[Role, tuple[tuple[str, str], ...]]:
    """Call metadata carrying an API key of each role (created by the session admin)."""
    auth = auth_grpc.AuthServiceStub(channel)
    found: dict[Role, tuple[tuple[str, str], ...]] = {}
    for role in Role:
        reply = auth.CreateApiKey(
            auth_pb.CreateApiKeyRequest(name=f"tests {role.label}", role=role_value(role)),
            metadata=auth_metadata,
        )
        found[role] = (("authorization", f"Bearer {reply.api_key}"),)
    return found


@pytest.fixture(scope="session")
def users(channel: grpc.Channel) -> user_grpc.UserServiceStub:
    """UserService stub."""
    return user_grpc.UserServiceStub(channel)


@pytest.fixture(scope="session")
def segments(channel: grpc.Channel) -> segment_grpc.SegmentServiceStub:
    """SegmentService stub."""
    return segment_grpc.SegmentServiceStub(channel)


@pytest.fixture
def names() -> Names:
    """Slugs and user ids no other test uses."""
    return Names()


@pytest.fixture
def db(database_url: str) -> Iterator[psycopg.Connection[Any]]:
    """A direct connection to the session database, for checks behind the API."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        yield conn


@pytest.fixture
def rollouts(
    segments: segment_grpc.SegmentServiceStub, auth_metadata: tuple[tuple[str, str], ...]
) -> Iterator[list[str]]:
    """Slugs appended here are deleted after the test: a live rollout would enrol the
    users every later test registers."""
    created: list[str] = []
    yield created
    for slug in created:
        segments.DeleteSegment(
            segment_service_pb2.DeleteSegmentRequest(slug=slug), metadata=auth_metadata
        )
