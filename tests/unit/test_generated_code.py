"""generated/ must be exactly what tools/protogen.py makes from proto/ today, so a
.proto edit without `make proto` fails here instead of at a client."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_generated_code_is_fresh(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("protogen", ROOT / "tools" / "protogen.py")
    assert spec
    assert spec.loader
    protogen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(protogen)
    fresh = {p.relative_to(tmp_path): p.read_bytes() for p in protogen.generate(tmp_path)}
    committed = {
        p.relative_to(ROOT / "generated"): p.read_bytes()
        for p in (ROOT / "generated").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert sorted(fresh) == sorted(committed)
    stale = [str(name) for name, data in fresh.items() if committed[name] != data]
    assert stale == [], f"run `make proto`: stale files {stale}"
