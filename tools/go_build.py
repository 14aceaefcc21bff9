"""Build a command of the Go module (clients/go/cmd/<command>) offline.

Debian packages the Go gRPC and protobuf modules as source under /usr/share/gocode, the
GOPATH layout, and not their whole module graph (grpc's go.mod names modules such as
envoyproxy's that are not packaged), so module mode cannot resolve them without a
network. GOPATH mode needs only the packages actually imported: the module is copied
into a scratch GOPATH in front of Debian's and built with GO111MODULE=off, GOPROXY=off,
so nothing is fetched and no third-party code is vendored into the repository.

    python tools/go_build.py segsvc-example build/segsvc-example   # make go-example
    python tools/go_build.py segsvc-load build/segsvc-load         # the bench's client
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GO_MODULE = ROOT / "clients" / "go"
IMPORT_PATH = "github.com/segsvc/segsvc/clients/go"
DEBIAN_GOPATH = Path("/usr/share/gocode")


def build(command: str, output: Path) -> Path:
    """Compile clients/go/cmd/`command` to `output` and return it. Go's build cache
    (outside the scratch GOPATH) makes a rebuild of unchanged sources take a second."""
    go = shutil.which("go")
    if go is None:
        raise SystemExit("go is not installed: run `make go-deps`")
    if not (GO_MODULE / "cmd" / command).is_dir():
        raise SystemExit(f"no Go command {command!r} under {GO_MODULE / 'cmd'}")
    with tempfile.TemporaryDirectory(prefix="segsvc-gopath-") as scratch:
        package_dir = Path(scratch) / "src" / IMPORT_PATH
        shutil.copytree(GO_MODULE, package_dir)
        env = {
            **os.environ,
            "GO111MODULE": "off",
            "GOPROXY": "off",
            "GOFLAGS": "",
            "GOPATH": f"{scratch}{os.pathsep}{DEBIAN_GOPATH}",
        }
        subprocess.run(
            [go, "build", "-o", str(output.resolve()), f"{IMPORT_PATH}/cmd/{command}"],
            check=True,
            env=env,
            cwd=scratch,
        )
    return output


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        raise SystemExit("usage: python tools/go_build.py COMMAND [OUTPUT (build/COMMAND)]")
    name = sys.argv[1]
    print(build(name, Path(sys.argv[2]) if len(sys.argv) == 3 else ROOT / "build" / name))
