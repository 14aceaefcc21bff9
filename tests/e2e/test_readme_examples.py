"""The README's grpcurl walkthrough, executed with the real grpcurl binary against a real
server on a fresh database, each output compared with the block that follows it.

Convention in README.md: a ```bash block is executed (all of them in order, in one shell,
so exported variables carry over); a ```json, ```text or ```csv block right after it is
the expected output. Timestamps, tokens and report links vary between runs and are
compared by shape only; everything else must match exactly.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from segsvc.server import SegsvcServer
from tests.support.servers import make_settings

README = Path(__file__).resolve().parents[2] / "README.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```\n", re.MULTILINE | re.DOTALL)
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")
VARYING_KEYS = {"access_token", "url", "chunk", "api_key", "prefix"}
MARKER = "@@README-BLOCK@@"


def examples() -> list[tuple[str, str | None, str | None]]:
    """(script, expected kind, expected text) for each bash block, in order."""
    blocks = [(m[1], m[2]) for m in FENCE.finditer(README.read_text())]
    found = []
    for i, (kind, body) in enumerate(blocks):
        if kind != "bash":
            continue
        following = blocks[i + 1] if i + 1 < len(blocks) else ("", "")
        if following[0] in {"json", "text", "csv"}:
            found.append((body, following[0], following[1]))
        else:
            found.append((body, None, None))
    return found


def json_documents(text: str) -> list[Any]:
    decoder = json.JSONDecoder()
    documents, position = [], 0
    while position < len(text.rstrip()):
        while text[position].isspace():
            position += 1
        document, position = decoder.raw_decode(text, position)
        documents.append(document)
    return documents


def same_shape(expected: Any, actual: Any, path: str = "$") -> Iterator[str]:
    """Differences between expected and actual, treating varying values as wildcards."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        if set(expected) != set(actual):
            yield f"{path}: keys {sorted(expected)} != {sorted(actual)}"
            return
        for key in expected:
            if key in VARYING_KEYS:
                if not isinstance(actual[key], str) or not actual[key]:
                    yield f"{path}.{key}: expected a non-empty string"
                continue
            yield from same_shape(expected[key], actual[key], f"{path}.{key}")
    elif isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            yield f"{path}: {len(expected)} items expected, got {len(actual)}"
            return
        for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
            yield from same_shape(e, a, f"{path}[{i}]")
    elif isinstance(expected, str) and TIMESTAMP.fullmatch(expected):
        if not (isinstance(actual, str) and TIMESTAMP.fullmatch(actual)):
            yield f"{path}: expected a timestamp, got {actual!r}"
    elif expected != actual:
        yield f"{path}: {expected!r} != {actual!r}"


def normalised(text: str) -> str:
    return TIMESTAMP.sub("<timestamp>", text).strip()


@pytest.fixture(scope="module")
def readme_server(fresh_database: Callable[[], str]) -> Iterator[SegsvcServer]:
    """A server of its own on an empty database, so ids and counts are the README's."""
    server = SegsvcServer(make_settings(token_ttl_seconds=3600), fresh_database())
    server.start()
    yield server
    server.stop(grace=0)


def test_readme_has_examples_for_every_rpc() -> None:
    text = "\n".join(script for script, _, _ in examples())
    for rpc in (
        "AuthService/SignUp",
        "AuthService/SignIn",
        "AuthService/CreateApiKey",
        "AuthService/ListApiKeys",
        "AuthService/RevokeApiKey",
        "UserService/CreateUser",
        "UserService/ImportUsers",
        "UserService/UpdateUserSegments",
        "UserService/GetUserSegments",
        "UserService/BatchGetUserSegments",
        "SegmentService/CreateSegment",
        "SegmentService/DeleteSegment",
        "SegmentService/GetSegment",
        "SegmentService/ListSegments",
        "SegmentService/ListSegmentUsers",
        "SegmentService/GetHistoryReport",
        "SegmentService/StreamHistoryReport",
        "Health/Check",
    ):
        assert rpc in text, rpc


def test_readme_examples_produce_the_documented_output(readme_server: SegsvcServer) -> None:
    found = examples()
    script = (
        "\n".join(f"echo '{MARKER}'\n{{\n{body}\n}} 2>&1" for body, _, _ in found)
        + f"\necho '{MARKER}'\n"
    )
    script = script.replace("localhost:50051", f"127.0.0.1:{readme_server.grpc_port}")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    result = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    outputs = result.stdout.split(MARKER + "\n")[1:]
    assert len(outputs) == len(found) + 1, result.stderr
    problems: list[str] = []
    for (body, kind, expected), actual in zip(found, outputs, strict=False):
        if kind == "json":
            try:
                diffs = list(same_shape(json_documents(expected or ""), json_documents(actual)))
            except ValueError:
                diffs = [f"not JSON: {actual!r}"]
        elif kind in {"text", "csv"}:
            diffs = [] if normalised(expected or "") == normalised(actual) else [actual]
        else:
            diffs = [] if not actual.strip() else [f"unexpected output: {actual!r}"]
        problems.extend(f"{body.splitlines()[0]}\n  {d}" for d in diffs)
    assert problems == [], "\n".join(problems)
