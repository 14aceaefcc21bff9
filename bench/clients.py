"""Which closed-loop client drives the benchmark's load (`--client` of bench.run).

- `go` (bench.go_load): the default when Go is installed. It costs the server, which
  shares the machine, the least CPU of the clients that send the workloads.
- `python` (bench.load): the fallback, needing nothing beyond the virtualenv; its
  processes and threads take 0.4-0.5 of a 2-core machine.
- `h2load` (bench.h2load): cheap, but it repeats one request body, so only the models
  part can use it; the traffic part, whose workloads draw a new id every call, then runs
  on the default of the other two.
"""

from __future__ import annotations

import shutil
from typing import Literal

from bench.go_load import GoClient
from bench.load import LoadClient, PythonClient

ClientKind = Literal["go", "python", "h2load"]
WorkloadClientKind = Literal["go", "python"]
CHOICES: tuple[ClientKind, ...] = ("go", "python", "h2load")


def default() -> tuple[WorkloadClientKind, str]:
    """The client to use when none is named, and why (printed by bench.run)."""
    if shutil.which("go"):
        return "go", "Go is installed"
    return "python", "Go is not installed: `make go-deps` installs it"


def workload_client(
    kind: WorkloadClientKind,
    target: str,
    token: str,
    concurrency: int,
    users: int,
    processes: int,
) -> LoadClient:
    """A started client of `concurrency` callers over users 1..`users` (`processes`
    applies to the Python client only)."""
    if kind == "go":
        return GoClient(target, token, concurrency, users)
    return PythonClient(target, token, concurrency, processes)
