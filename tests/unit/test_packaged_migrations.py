"""The installed wheel carries the migrations (issue 7, defect 9): before, a wheel had
none, so `segsvc serve` from an installation started "ready" on an empty database and
every RPC answered INTERNAL. Building the real wheel and comparing it with migrations/
shows the packaged copy is complete and identical to the source."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from segsvc.config import DEFAULT_MIGRATIONS_DIR

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "migrations"


def test_the_wheel_carries_every_migration_unchanged(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("segsvc-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        packaged = {
            Path(name).name: archive.read(name)
            for name in archive.namelist()
            if name.startswith("segsvc/migrations/") and name.endswith(".sql")
        }
    source = {path.name: path.read_bytes() for path in SOURCE.glob("*.sql")}
    assert source, "migrations/ is empty"
    assert packaged == source


def test_the_default_directory_is_the_package_copy() -> None:
    assert DEFAULT_MIGRATIONS_DIR.parent.name == "segsvc"
    assert sorted(p.name for p in DEFAULT_MIGRATIONS_DIR.glob("*.sql")) == sorted(
        p.name for p in SOURCE.glob("*.sql")
    )
