"""The benchmark's Go load client (clients/go/cmd/segsvc-load) driven through
bench.go_load.GoClient, as bench.run drives it: short rounds of reads, batches and
updates against a real server all succeed, the updates really change memberships, a
refused call is reported as the Python client reports it, and its Zipf draws follow
bench.workloads' distribution and rank -> id permutation.

The server has a database of its own: the workloads name fixed slugs (SEG_0001...) and
ids (1..USERS) that would collide with other tests' data in the session database."""

from __future__ import annotations

import collections
import itertools
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bench.go_load import GoClient
from bench.workloads import Workload, calls
from segmentation.v1 import user_service_pb2 as pb
from segsvc.server import SegsvcServer
from segsvc_client import Role, SegsvcClient
from tests.support.servers import server_with_admin
from tools.go_build import build

USERS = 5
SEGMENTS = 3
SLUGS = {f"SEG_{n:04d}" for n in range(1, SEGMENTS + 1)}
ADMIN = ("load-admin", "load-admin-password")
ROUND_SECONDS = 0.5


@pytest.fixture(scope="session")
def go_load(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build("segsvc-load", tmp_path_factory.mktemp("go") / "segsvc-load")


@pytest.fixture(scope="module")
def load_server(fresh_database: Callable[[], str]) -> Iterator[SegsvcServer]:
    with server_with_admin(fresh_database(), "Admin", *ADMIN) as server:
        yield server


@pytest.fixture(scope="module")
def admin(load_server: SegsvcServer) -> Iterator[SegsvcClient]:
    """An admin client of the load server, which has SEG_0001... and users 1..USERS."""
    username, password = ADMIN
    with SegsvcClient(
        f"127.0.0.1:{load_server.grpc_port}", username=username, password=password
    ) as client:
        for slug in sorted(SLUGS):
            client.create_segment(slug)
        client.import_users(range(1, USERS + 1))
        yield client


@pytest.fixture(scope="module")
def client(load_server: SegsvcServer, admin: SegsvcClient, go_load: Path) -> Iterator[GoClient]:
    """Four callers (one connection), authenticated with a writer's API key."""
    key = admin.create_api_key("go load", Role.WRITER).api_key
    target = f"127.0.0.1:{load_server.grpc_port}"
    started = GoClient(target, key, 4, USERS, SEGMENTS, executable=go_load)
    yield started
    started.close()


def _memberships(admin: SegsvcClient) -> dict[int, set[str]]:
    return {user_id: set(admin.get_user_segments(user_id).slugs) for user_id in range(1, USERS + 1)}


def test_reads_batches_and_empty_calls_succeed(client: GoClient) -> None:
    for kind in ("uniform", "batch", "empty"):
        result = client.round(ROUND_SECONDS, Workload(kind, USERS, SEGMENTS))
        assert result.calls > 0, kind
        assert (result.errors, result.first_error) == (0, ""), kind
        assert 0 < result.p50_ms <= result.p99_ms, kind
        assert result.seconds >= ROUND_SECONDS, kind
        assert result.calls_per_second == pytest.approx(result.calls / result.seconds)
        assert result.client_cpu_seconds > 0, kind


def test_updates_change_memberships(client: GoClient, admin: SegsvcClient) -> None:
    assert not any(_memberships(admin).values())

    result = client.round(ROUND_SECONDS, Workload("update", USERS, SEGMENTS))

    assert result.calls > 0
    assert (result.errors, result.first_error) == (0, "")
    # Each update adds two of the three segments and removes the third, so a user it
    # touched holds exactly two, whichever update came last.
    after = _memberships(admin)
    touched = {user_id: slugs for user_id, slugs in after.items() if slugs}
    assert touched
    assert all(len(slugs) == 2 and slugs < SLUGS for slugs in touched.values()), after


def test_refused_calls_are_counted_with_the_first_error(
    load_server: SegsvcServer, admin: SegsvcClient, go_load: Path
) -> None:
    target = f"127.0.0.1:{load_server.grpc_port}"
    refused = GoClient(target, "not-a-token", 1, USERS, SEGMENTS, executable=go_load)
    try:
        result = refused.round(0.2, Workload("uniform", USERS, SEGMENTS))
    finally:
        refused.close()
    assert result.calls == 0
    assert result.errors > 0
    assert result.first_error.startswith("GetUserSegments: UNAUTHENTICATED ")


def test_zipf_draws_follow_the_python_workload(go_load: Path) -> None:
    """Both clients' generators differ, so their ids cannot be equal draw by draw; their
    frequencies per id must agree (the hot ranks land on the same ids: 1, 4, 7, ...)."""
    users, draws = 10, 20_000
    printed = subprocess.run(
        [str(go_load), "-users", str(users), "-print-ids", str(draws), "zipf"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout.split()
    go = collections.Counter(int(user_id) for user_id in printed)
    requests = itertools.islice(calls(Workload("zipf", users), seed=1), draws)
    python = collections.Counter(
        pb.GetUserSegmentsRequest.FromString(body).user_id for _, body in requests
    )
    assert sum(go.values()) == draws
    assert set(go) == set(python) == set(range(1, users + 1))
    for user_id in range(1, users + 1):
        # Four standard deviations of the difference of two shares near 1/3.
        assert abs(go[user_id] - python[user_id]) / draws < 0.02, (user_id, go, python)
