"""Closed-loop load from Go: clients/go/cmd/segsvc-load, the default client when Go is
installed.

The Python client (bench.load) costs 0.4-0.5 of a 2-core machine's cores in its
processes and threads, which the server under test then lacks; the Go binary sends the
same workloads (bench.workloads, re-implemented in Go: same shapes, constants and
per-caller seeding) from goroutines for about half the CPU per call (README,
"Performance"), leaving replies unparsed as the Python client does. It is built once per
bench process, offline against Debian's Go packages (tools/go_build.py), into build/,
and started once per client: it connects (a connection per four callers), says `ready`,
then runs a round for every `<seconds> <kind>` line on its stdin and answers with one
JSON line; the connections stay up across rounds, as the Python workers' do.
"""

from __future__ import annotations

import functools
import json
import os
import select
import subprocess
import tempfile
from pathlib import Path

from bench.load import CALL_TIMEOUT, CALLERS_PER_CONNECTION, START_TIMEOUT, LoadResult
from bench.workloads import Workload
from tools.go_build import ROOT, build

COMMAND = "segsvc-load"


@functools.cache
def binary() -> Path:
    """build/segsvc-load from the current sources, built at most once per process (Go's
    build cache makes a rebuild quick, but not free: models starts 15 clients)."""
    return build(COMMAND, ROOT / "build" / COMMAND)


class GoClient:
    """`concurrency` goroutine callers in one segsvc-load process, over users 1..`users`
    and `segments` segments: the binary draws the ids, so a round's workload must have
    these sizes."""

    name = "go"

    def __init__(
        self,
        target: str,
        token: str,
        concurrency: int,
        users: int,
        segments: int = 1000,
        *,
        executable: Path | None = None,
        seed: int = 1,
    ) -> None:
        self.users, self.segments = users, segments
        # stderr goes to a file read back on failure: a pipe nobody drains could fill up.
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - open until close()
        command = [
            str(executable or binary()),
            "-target",
            target,
            "-callers",
            str(concurrency),
            "-callers-per-connection",
            str(CALLERS_PER_CONNECTION),
            "-users",
            str(users),
            "-segments",
            str(segments),
            "-seed",
            str(seed),
        ]
        # The token travels in the environment, not in argv where `ps` would show it.
        self._process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env={**os.environ, "SEGSVC_TOKEN": token},
            text=True,
        )
        try:
            if (line := self._line(START_TIMEOUT + 10)) != "ready":
                raise RuntimeError(f"load client said {line!r} instead of ready")
        except BaseException:
            self.close()
            raise

    def _line(self, timeout: float) -> str:
        """The next line of the binary's stdout. It writes a line only when asked for one,
        so nothing waits in the reader's buffer and select() on the pipe is accurate."""
        stdout = self._process.stdout
        assert stdout is not None
        readable, _, _ = select.select([stdout], [], [], timeout)
        line = stdout.readline() if readable else ""
        if not line.endswith("\n"):
            what = "exited" if readable else f"gave no answer in {timeout:g} s"
            raise RuntimeError(f"load client {what}: {self._errors()}")
        return line.rstrip("\n")

    def _errors(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace").strip()[-2000:] or "(no stderr)"

    def round(self, seconds: float, workload: Workload) -> LoadResult:
        """Every caller runs for `seconds`; the rate is over the span from the start of
        the callers to the end of the last one's call."""
        if (workload.users, workload.segments) != (self.users, self.segments):
            raise ValueError(
                f"{workload} does not match the client's {self.users} users"
                f" and {self.segments} segments"
            )
        stdin = self._process.stdin
        assert stdin is not None
        stdin.write(f"{seconds!r} {workload.kind}\n")
        stdin.flush()
        answer = json.loads(self._line(seconds + CALL_TIMEOUT + 30))
        calls, span = int(answer["calls"]), float(answer["seconds"])
        return LoadResult(
            calls_per_second=calls / span if span else 0.0,
            calls=calls,
            errors=int(answer["errors"]),
            p50_ms=float(answer["p50_ms"]),
            p99_ms=float(answer["p99_ms"]),
            seconds=span,
            client_cpu_seconds=float(answer["client_cpu_seconds"]),
            first_error=str(answer["first_error"]),
        )

    def close(self) -> None:
        """End of stdin ends the binary; kill it if it does not go."""
        try:
            if self._process.stdin is not None:
                self._process.stdin.close()
        except BrokenPipeError:
            pass  # it has already exited
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        if self._process.stdout is not None:
            self._process.stdout.close()
        self._stderr.close()
