"""Generate the client package's own copy of the Python code for proto/.

The server's generated/ code is made by the newest grpcio-tools and needs protobuf 7 and
grpcio >= 1.85. A service that calls segsvc usually pins older releases, so the client
(clients/python) carries code from an old generator: grpcio-tools 1.66.0 bundles protoc
27.2, whose code asks for protobuf >= 5.27.2 at import, and its *_pb2_grpc.py files ask for
grpcio >= 1.66.0. That generator cannot be installed beside the dev tools (it needs
protobuf < 6), so this script runs it from its own virtualenv in the user's cache, made
once per set of pins. `make proto` and tests/unit/test_generated_code.py both call `generate`.

The modules keep their proto file names (segmentation/v1/*.proto) so that a process that
also loads the server's generated code registers identical descriptors, which protobuf
accepts, but live under segsvc_client._proto so they never shadow another `segmentation`
package.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
CLIENT_PROTO_ROOT = ROOT / "clients" / "python" / "proto"
PACKAGE_DIR = ROOT / "clients" / "python" / "src"
PROTO_PACKAGE = "segsvc_client._proto"
# Changing one of these changes the generated code: regenerate and commit.
GENERATOR_PINS = (
    "grpcio-tools==1.66.0",
    "grpcio==1.66.0",
    "protobuf==5.29.6",
    "mypy-protobuf==3.6.0",
)
# `from segmentation.v1 import x_pb2`, `import segmentation.v1.x_pb2` and, in the stubs,
# qualified names `segmentation.v1.x_pb2.Message`; not method paths or full proto names.
_MODULE_REFERENCE = re.compile(r"(?<![\w./])segmentation\.v1(?=\.\w+_pb2\b| import )")


def cache_dir() -> Path:
    """Where throw-away virtualenvs live: the user's cache, so every worktree and CI run
    on a machine shares them ($XDG_CACHE_HOME/segsvc, default ~/.cache/segsvc)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "segsvc"


def generator_python() -> Path:
    """The Python of the pinned generator's virtualenv, created on first use."""
    digest = hashlib.sha256("\n".join(GENERATOR_PINS).encode()).hexdigest()[:12]
    env_dir = cache_dir() / f"client-protogen-{digest}"
    python = env_dir / "bin" / "python"
    if not (env_dir / ".complete").exists():
        shutil.rmtree(env_dir, ignore_errors=True)
        venv.create(env_dir, with_pip=True)
        subprocess.run(
            [
                python,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--no-warn-script-location",
                *GENERATOR_PINS,
            ],
            check=True,
        )
        (env_dir / ".complete").touch()
    return python


def _protoc(
    python: Path, include: Path, out_dir: Path, protos: list[str], *, services: bool
) -> None:
    plugins = python.parent
    outputs = [f"--python_out={out_dir}", f"--mypy_out=quiet:{out_dir}"]
    if services:
        outputs += [f"--grpc_python_out={out_dir}", f"--mypy_grpc_out=quiet:{out_dir}"]
    subprocess.run(
        [
            python,
            "-m",
            "grpc_tools.protoc",
            f"-I{include}",
            f"--plugin=protoc-gen-mypy={plugins / 'protoc-gen-mypy'}",
            f"--plugin=protoc-gen-mypy_grpc={plugins / 'protoc-gen-mypy_grpc'}",
            *outputs,
            *protos,
        ],
        check=True,
        cwd=include,
    )


def generate(out_dir: Path) -> list[Path]:
    """Write segsvc_client/_proto/** (modules, stubs, package markers) under out_dir."""
    python = generator_python()
    target = out_dir / Path(*PROTO_PACKAGE.split("."))
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    with tempfile.TemporaryDirectory() as scratch:
        raw = Path(scratch)
        protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_ROOT.rglob("*.proto"))
        _protoc(python, PROTO_ROOT, raw, protos, services=True)
        for path in sorted(raw.rglob("*.py*")):
            moved = target / path.relative_to(raw)
            moved.parent.mkdir(parents=True, exist_ok=True)
            moved.write_text(
                _MODULE_REFERENCE.sub(f"{PROTO_PACKAGE}.segmentation.v1", path.read_text())
            )
    own = sorted(str(p.relative_to(CLIENT_PROTO_ROOT)) for p in CLIENT_PROTO_ROOT.rglob("*.proto"))
    _protoc(python, CLIENT_PROTO_ROOT, out_dir, own, services=False)
    for package in [target, *(p for p in target.rglob("*") if p.is_dir())]:
        (package / "__init__.py").touch()
    return sorted(p for p in target.rglob("*") if p.is_file())


if __name__ == "__main__":
    generate(Path(sys.argv[1]) if len(sys.argv) > 1 else PACKAGE_DIR)
