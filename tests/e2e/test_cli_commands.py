"""The client commands (`segsvc login|segment|user|report`) run as a person or a script
would: as child processes of the real console script against the real server, with
their own configuration directory."""

from __future__ import annotations

import json
import secrets
import stat
import subprocess
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from segsvc.cli_commands import exit_codes
from segsvc.server import SegsvcServer
from segsvc_client import Role, SegsvcClient
from tests.conftest import ADMIN_CREDENTIALS
from tests.support.names import Names
from tests.support.servers import SEGSVC, child_env

PASSWORD = "password-1"
Cli = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def admin(server: SegsvcServer) -> Iterator[SegsvcClient]:
    username, password = ADMIN_CREDENTIALS
    target = f"127.0.0.1:{server.grpc_port}"
    with SegsvcClient(target, username=username, password=password) as client:
        yield client


@pytest.fixture(scope="module")
def cli_account(admin: SegsvcClient) -> str:
    """A writer account for the commands (a person, signing in with a password)."""
    username = f"cli-{secrets.token_hex(4)}"
    admin.sign_up(username, PASSWORD, role=Role.WRITER)
    return username


@pytest.fixture
def config_home(tmp_path: Path) -> Path:
    return tmp_path / "config"


@pytest.fixture
def cli(config_home: Path) -> Cli:
    """Run `segsvc ARGS...` with its own XDG config dir; returns the finished process."""

    def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        env = child_env(XDG_CONFIG_HOME=str(config_home), COLUMNS="200")
        return subprocess.run(
            [SEGSVC, *args], input=stdin, capture_output=True, text=True, env=env, timeout=60
        )

    return run


@pytest.fixture
def logged_in(cli: Cli, server: SegsvcServer, cli_account: str) -> Cli:
    login = cli(
        "login",
        "--target",
        f"127.0.0.1:{server.grpc_port}",
        "--username",
        cli_account,
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    assert login.returncode == 0, login.stderr
    return cli


def _json(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_login_stores_a_token_readable_by_the_owner_only(logged_in: Cli, config_home: Path) -> None:
    stored = config_home / "segsvc" / "credentials.json"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert stat.S_IMODE(stored.parent.stat().st_mode) == 0o700
    content = json.loads(stored.read_text())
    assert content["access_token"]
    assert PASSWORD not in stored.read_text()
    assert logged_in("logout").returncode == 0
    assert not stored.exists()


def test_login_with_an_api_key(
    cli: Cli, admin: SegsvcClient, server: SegsvcServer, names: Names, config_home: Path
) -> None:
    target = f"127.0.0.1:{server.grpc_port}"
    reader = admin.create_api_key(f"cli reader {names.tag}", Role.READER)
    assert cli("login", "--target", target, "--api-key", "wrong").returncode == (
        exit_codes.AUTH_FAILED
    )
    assert not (config_home / "segsvc" / "credentials.json").exists()

    assert cli("login", "--target", target, "--api-key", reader.api_key).returncode == 0
    assert _json(cli("user", "get", str(names.user_id()), "--json"))["segments"] == []
    denied = cli("segment", "create", names.slug())
    assert denied.returncode == exit_codes.AUTH_FAILED
    assert "writer" in denied.stderr


def test_main_workflow(logged_in: Cli, names: Names, tmp_path: Path) -> None:
    slug, other, user_id = names.slug("CLI"), names.slug("CLI2"), names.user_id()

    created = _json(logged_in("segment", "create", slug, "--description", "from the CLI", "--json"))
    assert created["slug"] == slug
    assert created["description"] == "from the CLI"
    assert logged_in("segment", "create", other).returncode == 0

    user = _json(logged_in("user", "update", str(user_id), "--add", slug, "--add", other, "--json"))
    assert [s["slug"] for s in user["segments"]] == sorted([slug, other])
    user = _json(
        logged_in(
            "user",
            "update",
            str(user_id),
            "--remove",
            other,
            "--add",
            slug,
            "--ttl",
            "2h",
            "--json",
        )
    )
    assert [s["slug"] for s in user["segments"]] == [slug]
    assert user["segments"][0]["expires_at"].endswith("Z")

    table = logged_in("user", "get", str(user_id))
    assert table.returncode == 0
    assert slug in table.stdout
    assert "manual" in table.stdout
    assert _json(logged_in("segment", "get", slug, "--json"))["member_count"] == 1
    assert logged_in("segment", "members", slug).stdout.split() == [str(user_id)]
    assert slug in [s["slug"] for s in _json(logged_in("segment", "list", "--json"))]

    today = date.today()
    out = tmp_path / "report.csv"
    report = logged_in(
        "report", f"{today.year}-{today.month}", "--user", str(user_id), "-o", str(out)
    )
    assert report.returncode == 0, report.stderr
    rows = out.read_text().splitlines()
    assert rows[0] == "user_id;segment;operation;timestamp"
    assert [r.rsplit(";", 1)[0] for r in rows[1:] if other in r] == [
        f"{user_id};{other};add",
        f"{user_id};{other};remove",
    ]

    deleted = _json(logged_in("segment", "delete", other, "--json"))
    assert deleted["member_count"] == 0


def test_import_from_file_and_stdin_with_progress(
    logged_in: Cli, names: Names, tmp_path: Path
) -> None:
    ids = names.user_ids(30)
    source = tmp_path / "ids.txt"
    source.write_text("# exported ids\n" + "\n".join(map(str, ids[:20])) + "\n\n")

    from_file = logged_in("user", "import", str(source), "--chunk-size", "7", "--json")
    assert _json(from_file) == {
        "received_count": 20,
        "created_count": 20,
        "rollout_membership_count": 0,
    }
    assert "20/20" in from_file.stderr  # the progress bar's final count

    piped = logged_in("user", "import", "-", stdin="\n".join(map(str, ids[15:])) + "\n")
    assert piped.returncode == 0, piped.stderr
    assert "received" in piped.stdout
    assert _json(logged_in("user", "import", "-", "--json", stdin=f"{ids[0]}\n")) == {
        "received_count": 1,
        "created_count": 0,
        "rollout_membership_count": 0,
    }


def test_malformed_import_sends_nothing(logged_in: Cli, names: Names, tmp_path: Path) -> None:
    from_file, from_stdin = names.user_id(), names.user_id()
    source = tmp_path / "ids.txt"
    source.write_text(f"{from_file}\nnot-an-id\n")
    result = logged_in("user", "import", str(source))
    assert result.returncode == exit_codes.INVALID_INPUT
    assert "line 2: not a user id: 'not-an-id'" in result.stderr
    piped = logged_in("user", "import", "-", stdin=f"{from_stdin}\nbad\n")
    assert piped.returncode == exit_codes.INVALID_INPUT
    assert "line 2" in piped.stderr
    # Neither good id was registered: importing them now creates both.
    again = logged_in("user", "import", "-", "--json", stdin=f"{from_file}\n{from_stdin}\n")
    assert _json(again)["created_count"] == 2


def test_exit_statuses(logged_in: Cli, cli: Cli, names: Names, server: SegsvcServer) -> None:
    slug = names.slug("CODES")
    missing = logged_in("segment", "get", names.slug("NOPE"))
    assert missing.returncode == exit_codes.NOT_FOUND
    assert "not found" in missing.stderr.lower()

    invalid = logged_in("user", "update", "0", "--add", "bad slug")
    assert invalid.returncode == exit_codes.INVALID_INPUT
    assert "user_id" in invalid.stderr
    assert "add[0].slug" in invalid.stderr

    assert logged_in("segment", "create", slug).returncode == 0
    assert logged_in("segment", "create", slug).returncode == exit_codes.ALREADY_EXISTS

    unavailable = logged_in("segment", "list", "--target", "127.0.0.1:1", "--timeout", "2")
    assert unavailable.returncode == exit_codes.UNAVAILABLE

    assert cli("logout").returncode == 0
    anonymous = cli("segment", "list", "--target", f"127.0.0.1:{server.grpc_port}")
    assert anonymous.returncode == exit_codes.AUTH_FAILED
    assert "segsvc login" in anonymous.stderr

    assert cli("user", "update", "1", "--ttl", "soon").returncode == exit_codes.USAGE
