"""Start-up refuses a JWT secret anyone could know (the shipped Kubernetes placeholder, a
repetitive value) with one line and exit status 2, and /metrics can require a token."""

from __future__ import annotations

import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from segsvc.server import SegsvcServer
from segsvc.startup import StartupError, resolve_jwt_secret
from tests.support.servers import SEGSVC, child_env, make_settings

SECRET_YAML = Path(__file__).resolve().parents[2] / "deploy/kubernetes/shared/secret.yaml"


def shipped_placeholder() -> str:
    secret: str = yaml.safe_load(SECRET_YAML.read_text())["stringData"]["SEGSVC_JWT_SECRET"]
    return secret


def test_start_refuses_the_shipped_placeholder_secret(database_url: str) -> None:
    """One process start; the other refused kinds are unit-tested (test_secret_strength)."""
    secret = shipped_placeholder()
    result = subprocess.run(
        [SEGSVC, "serve"],
        env=child_env(
            SEGSVC_DATABASE_URL=database_url,
            SEGSVC_JWT_SECRET=secret,
            SEGSVC_GRPC_ADDR="127.0.0.1:0",
            SEGSVC_HTTP_ADDR="127.0.0.1:0",
        ),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "SEGSVC_JWT_SECRET" in lines[0]
    assert "placeholder" in lines[0]
    assert secret not in result.stderr + result.stdout


def test_a_repetitive_secret_stops_the_server_too() -> None:
    with pytest.raises(StartupError, match="too little entropy"):
        resolve_jwt_secret(make_settings(jwt_secret="ab" * 32))


def status_of(url: str, authorization: str | None = None) -> int:
    request = urllib.request.Request(url)  # noqa: S310 - loopback test server
    if authorization:
        request.add_header("Authorization", authorization)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_metrics_token_guards_metrics_only(database_url: str) -> None:
    server = SegsvcServer(make_settings(metrics_token="scrape-token-1"), database_url)
    server.start()
    try:
        base = f"http://127.0.0.1:{server.http_port}"
        assert status_of(f"{base}/metrics") == 401
        assert status_of(f"{base}/metrics", "Bearer wrong") == 401
        assert status_of(f"{base}/metrics", "Bearer scrape-token-1") == 200
        assert status_of(f"{base}/healthz") == 200  # probes stay open
    finally:
        server.stop(grace=0)
