"""Build the Go example caller (clients/go/cmd/segsvc-example) offline.

Debian packages the Go gRPC and protobuf modules as source under /usr/share/gocode, the
GOPATH layout, and not their whole module graph (grpc's go.mod names modules such as
envoyproxy's that are not packaged), so module mode cannot resolve them without a
network. GOPATH mode needs only the packages actually imported: the module is copied
into a scratch GOPATH in front of Debian's and built with GO111MODULE=off, GOPROXY=off,
so nothing is fetched and no third-party code is vendored into the repository.
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


def build(output: Path) -> Path:
    """Compile segsvc-example to `output` and return it."""
    go = shutil.which("go")
    if go is None:
        raise SystemExit("go is not installed: run `make go-deps`")
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
            [go, "build", "-o", str(output.resolve()), f"{IMPORT_PATH}/cmd/segsvc-example"],
            check=True,
            env=env,
            cwd=scratch,
        )
    return output


if __name__ == "__main__":
    print(build(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "build" / "segsvc-example"))
