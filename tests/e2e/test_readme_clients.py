"""The README's "Calling segsvc from your service" section, executed: the Python example
with an API key, the Go example (its excerpt must be the real program, which is built and
run), and the command-line session, against a server on a fresh database."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from segsvc.server import SegsvcServer
from segsvc_client import Role, SegsvcClient
from tests.support.servers import server_with_admin

ROOT = Path(__file__).resolve().parents[2]
SECTION_TITLE = "## Calling segsvc from your service"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```\n", re.MULTILINE | re.DOTALL)
OPS = ("ops", "ops-password-1")


def section_blocks() -> list[tuple[str, str]]:
    """(language, body) of every fenced block in the section, in order."""
    text = (ROOT / "README.md").read_text()
    start = text.index(SECTION_TITLE)
    end = text.find("\n## ", start + len(SECTION_TITLE))
    return [(m[1], m[2]) for m in FENCE.finditer(text[start : end if end > 0 else None])]


def block(language: str, index: int = 0) -> str:
    return [body for kind, body in section_blocks() if kind == language][index]


@pytest.fixture(scope="module")
def fresh_server(fresh_database: Callable[[], str]) -> Iterator[SegsvcServer]:
    """A server of its own, so the README's fixed slugs and user ids are free."""
    with server_with_admin(fresh_database(), "Ops", *OPS) as server:
        yield server


@pytest.fixture(scope="module")
def api_key(fresh_server: SegsvcServer) -> str:
    target = f"127.0.0.1:{fresh_server.grpc_port}"
    with SegsvcClient(target, username=OPS[0], password=OPS[1]) as admin:
        admin.create_segment("NEW_CHECKOUT")
        return admin.create_api_key("readme", Role.WRITER).api_key


def _shell(script: str, server: SegsvcServer, api_key: str, cwd: Path) -> str:
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "SEGSVC_API_KEY": api_key,
        "OPS_PASSWORD": OPS[1],
        "XDG_CONFIG_HOME": str(cwd / "config"),
        "COLUMNS": "120",
    }
    script = script.replace("localhost:50051", f"127.0.0.1:{server.grpc_port}")
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_python_example_with_an_api_key(fresh_server: SegsvcServer, api_key: str) -> None:
    code = block("python")
    assert len([line for line in code.splitlines() if line.strip()]) == 5
    assert 'api_key=os.environ["SEGSVC_API_KEY"]' in code
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            code.replace("localhost:50051", f"127.0.0.1:{fresh_server.grpc_port}"),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "SEGSVC_API_KEY": api_key},
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == block("text", 0)


def test_go_example_is_the_real_program_and_runs(fresh_server: SegsvcServer, api_key: str) -> None:
    program = (ROOT / "clients" / "go" / "cmd" / "segsvc-example" / "main.go").read_text()
    # The excerpt is the body of main(), shown one tab less indented.
    excerpt = "".join(
        f"\t{line}" if line.strip() else line for line in block("go").splitlines(keepends=True)
    )
    assert excerpt in program
    stdout = _shell(block("sh", 0), fresh_server, api_key, ROOT)
    assert stdout.splitlines()[-1:] == block("text", 1).splitlines()


def test_command_line_session(fresh_server: SegsvcServer, api_key: str, tmp_path: Path) -> None:
    stdout = _shell(block("sh", 1), fresh_server, api_key, tmp_path)
    assert (tmp_path / "checkout.key").read_text().startswith("sgk_")
    assert "CHECKOUT_V2" in stdout
    assert '"slug": "CHECKOUT_V2"' in stdout
    history = (tmp_path / "history.csv").read_text().splitlines()
    assert history[0] == "user_id;segment;operation;timestamp"
    assert any(row.startswith("42;CHECKOUT_V2;add;") for row in history)
    with SegsvcClient(f"127.0.0.1:{fresh_server.grpc_port}", api_key=api_key) as client:
        assert client.get_segment("CHECKOUT_V2").member_count == 1
        assert client.import_users([1000, 1100]).created_count == 0
