"""The contract as released (contracts/segmentation-v1.binpb, a buf image) against proto/:
`make lint` runs `buf breaking`, so a change that would break existing callers fails the
build. Shown here on a copy of proto/ with such changes made to it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUF = str(Path(sys.executable).parent / "buf")
RELEASED = ROOT / "contracts" / "segmentation-v1.binpb"
USER_SERVICE = Path("proto") / "segmentation" / "v1" / "user_service.proto"


def _breaking(workspace: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BUF, "breaking", "--against", str(RELEASED)],
        cwd=workspace,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "proto", tmp_path / "proto")
    shutil.copy(ROOT / "buf.yaml", tmp_path / "buf.yaml")
    return tmp_path


def test_current_contract_keeps_the_released_one(workspace: Path) -> None:
    result = _breaking(workspace)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("before", "after", "complaint"),
    [
        (
            "  int64 user_id = 1;\n  // Optional instant",
            "  int64 user = 1;\n  // Optional instant",
            "changed name",
        ),
        ("  repeated string remove = 3;", "  repeated string remove = 9;", "deleted"),
        ("  rpc CreateUser(", "  rpc RegisterUser(", "deleted"),
    ],
)
def test_a_change_that_breaks_callers_fails(
    workspace: Path, before: str, after: str, complaint: str
) -> None:
    proto = workspace / USER_SERVICE
    text = proto.read_text()
    assert before in text
    proto.write_text(text.replace(before, after, 1))
    result = _breaking(workspace)
    assert result.returncode != 0
    assert complaint in result.stdout.lower() + result.stderr.lower()
