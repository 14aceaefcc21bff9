"""Generate the Go stubs for proto/ into clients/go/segmentation/v1 (or another root).

protoc, protoc-gen-go and protoc-gen-go-grpc come from Debian (`make go-deps`), so every
machine of the project generates byte-identical code: the generated headers name those
versions. `make proto` and tests/unit/test_generated_code.py both call `generate`.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
GO_ROOT = ROOT / "clients" / "go"
PACKAGE = Path("segmentation") / "v1"
TOOLS = ("protoc", "protoc-gen-go", "protoc-gen-go-grpc")
WELL_KNOWN_TYPES = Path("/usr/include")


def missing_tools() -> list[str]:
    """The generator programs that are not installed."""
    return [tool for tool in TOOLS if shutil.which(tool) is None]


def generate(out_root: Path) -> list[Path]:
    """Write *.pb.go and *_grpc.pb.go under out_root/segmentation/v1."""
    if missing := missing_tools():
        raise SystemExit(f"missing {', '.join(missing)}: run `make go-deps`")
    target = out_root / PACKAGE
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in (PROTO_ROOT / PACKAGE).glob("*.proto"))
    protoc = shutil.which("protoc")
    assert protoc is not None
    subprocess.run(
        [
            protoc,
            f"-I{PROTO_ROOT}",
            f"-I{WELL_KNOWN_TYPES}",
            f"--go_out={out_root}",
            "--go_opt=paths=source_relative",
            f"--go-grpc_out={out_root}",
            "--go-grpc_opt=paths=source_relative",
            *protos,
        ],
        check=True,
        cwd=PROTO_ROOT,
    )
    return sorted(p for p in target.rglob("*") if p.is_file())


if __name__ == "__main__":
    generate(Path(sys.argv[1]) if len(sys.argv) > 1 else GO_ROOT)
