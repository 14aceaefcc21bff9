"""The Go example caller (clients/go), built from the committed stubs with Debian's Go
toolchain and gRPC packages, against the real server: an API key, an update, a read."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from segsvc.server import SegsvcServer
from segsvc_client import Role, SegsvcClient
from tests.conftest import ADMIN_CREDENTIALS
from tests.support.names import Names
from tools.go_build import build


@pytest.fixture(scope="session")
def go_example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build("segsvc-example", tmp_path_factory.mktemp("go") / "segsvc-example")


@pytest.fixture(scope="module")
def admin(server: SegsvcServer) -> Iterator[SegsvcClient]:
    username, password = ADMIN_CREDENTIALS
    target = f"127.0.0.1:{server.grpc_port}"
    with SegsvcClient(target, username=username, password=password) as client:
        yield client


def _run(binary: Path, key: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(binary), *args],
        env={**os.environ, "SEGSVC_API_KEY": key},
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_go_example_updates_and_reads_back_with_an_api_key(
    go_example: Path, admin: SegsvcClient, server: SegsvcServer, names: Names
) -> None:
    slug, user_id = names.slug("GO"), names.user_id()
    admin.create_segment(slug)
    key = admin.create_api_key(f"go example {names.tag}", Role.WRITER).api_key
    target = f"127.0.0.1:{server.grpc_port}"

    result = _run(go_example, key, "-target", target, "-user", str(user_id), "-add", slug)

    assert result.returncode == 0, result.stderr
    assert result.stdout == f"user {user_id}: {slug}\n"
    assert admin.get_user_segments(user_id).slugs == (slug,)


def test_go_example_reports_a_bad_key(go_example: Path, server: SegsvcServer, names: Names) -> None:
    target = f"127.0.0.1:{server.grpc_port}"
    result = _run(go_example, "not-a-key", "-target", target, "-user", "1", "-add", "X")
    assert result.returncode == 1
    assert "Unauthenticated" in result.stderr
