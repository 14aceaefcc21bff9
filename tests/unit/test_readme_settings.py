"""The README's settings table lists every setting with its real default, so operators
never read a stale table."""

from __future__ import annotations

import re
from pathlib import Path

from segsvc.config import Settings

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()
ROOT_PACKAGE = Path(__file__).resolve().parents[2] / "segsvc"
ROW = re.compile(r"^\| `(SEGSVC_[A-Z_]+)` \| ([^|]+) \|", re.MULTILINE)


def test_every_setting_is_documented_with_its_default() -> None:
    documented = {name: default.strip() for name, default in ROW.findall(README)}
    expected = {
        f"SEGSVC_{name.upper()}": field.default for name, field in Settings.model_fields.items()
    }
    assert set(documented) == set(expected)
    for name, default in expected.items():
        shown = documented[name].strip("`")
        if default is None:
            assert shown == "unset", name
        elif name == "SEGSVC_DATA_DIR":
            assert shown == "~/.local/share/segsvc"
        elif name == "SEGSVC_MIGRATIONS_DIR":
            assert shown == "<package>/migrations"
            assert default == ROOT_PACKAGE / "migrations"
        else:
            assert shown == str(default), name
