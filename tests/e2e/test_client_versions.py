"""segsvc-client installed on its own, at the lowest and the newest grpcio/protobuf it
claims (clients/python/pyproject.toml), calling the real server.

Each runtime set gets a throw-away virtualenv in the user's cache (~/.cache/segsvc), made
once per machine and reused while the pins and the client's pyproject stay the same; pip
serves the wheels from its cache. The client is installed there from clients/python (so
pip checks that its declared ranges admit the pins), and the smoke script imports this
checkout's copy of it through PYTHONPATH, so the cached environment tests today's code
wherever the repository lives. The script runs with warnings as errors, so a
version-check warning of the generated code fails too.

protobuf 5.29.0 is not in the package registry this project uses; 5.29.1 is the lowest
5.29 release there, so it stands for the bottom of the range.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import venv
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from segsvc.server import SegsvcServer
from segsvc_client import Role, SegsvcClient
from tests.conftest import ADMIN_CREDENTIALS
from tests.support.names import Names

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "clients" / "python"
RUNTIMES = {
    "lowest": ("grpcio==1.66.0", "protobuf==5.29.1"),
    "protobuf-6": ("grpcio==1.70.0", "protobuf==6.33.6"),
    "newest": ("grpcio==1.85.3", "protobuf==7.36.2"),
}
SMOKE = """
import sys
import grpc, google.protobuf
import segsvc_client
from segsvc_client import SegsvcClient, InvalidArgument

target, key, slug, user_id, expected, source = sys.argv[1:]
assert segsvc_client.__file__.startswith(source), segsvc_client.__file__
assert f"{grpc.__version__} {google.protobuf.__version__}" == expected, expected
with SegsvcClient(target, api_key=key) as client:
    client.update_user_segments(int(user_id), add=[slug])
    assert client.get_user_segments(int(user_id)).slugs == (slug,)
    try:
        client.update_user_segments(0)
    except InvalidArgument as exc:
        assert [v.field for v in exc.field_violations] == ["user_id"], exc.field_violations
    else:
        raise AssertionError("no InvalidArgument")
print("ok", grpc.__version__, google.protobuf.__version__)
"""


def _client_protogen() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "client_protogen", ROOT / "tools" / "client_protogen.py"
    )
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _environment(name: str, pins: tuple[str, ...]) -> Path:
    """The virtualenv's Python with the client and `pins`, made on first use."""
    fingerprint = hashlib.sha256(
        "\n".join(pins).encode() + (CLIENT / "pyproject.toml").read_bytes()
    ).hexdigest()[:12]
    cache: Path = _client_protogen().cache_dir()
    env_dir = cache / "client-versions" / f"{name}-{fingerprint}"
    python = env_dir / "bin" / "python"
    if not (env_dir / ".complete").exists():
        shutil.rmtree(env_dir, ignore_errors=True)
        venv.create(env_dir, with_pip=True)
        subprocess.run(
            [python, "-m", "pip", "install", "--quiet", *pins, str(CLIENT)],
            check=True,
            timeout=600,
        )
        (env_dir / ".complete").touch()
    return python


@pytest.fixture(scope="module")
def writer_key(server: SegsvcServer) -> Iterator[str]:
    username, password = ADMIN_CREDENTIALS
    with SegsvcClient(
        f"127.0.0.1:{server.grpc_port}", username=username, password=password
    ) as admin:
        yield admin.create_api_key("client versions", Role.WRITER).api_key


@pytest.mark.parametrize("runtime", sorted(RUNTIMES))
def test_client_works_across_its_claimed_runtime_range(
    runtime: str, server: SegsvcServer, writer_key: str, names: Names
) -> None:
    pins = RUNTIMES[runtime]
    python = _environment(runtime, pins)
    slug, user_id = names.slug("VERSIONS"), names.user_id()
    with SegsvcClient(f"127.0.0.1:{server.grpc_port}", api_key=writer_key) as client:
        client.create_segment(slug)
    expected = " ".join(pin.split("==")[1] for pin in pins)
    result = subprocess.run(
        [
            python,
            "-W",
            "error",
            "-c",
            SMOKE,
            f"127.0.0.1:{server.grpc_port}",
            writer_key,
            slug,
            str(user_id),
            expected,
            str(CLIENT / "src"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(CLIENT / "src")},
        cwd=sys.prefix,  # not the repository, whose tests/ and segsvc/ must not be on the path
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok")
