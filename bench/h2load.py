"""Closed-loop load with h2load (Debian: nghttp2-client), optional.

A C HTTP/2 client costs far less CPU than Python callers, which matters when client and
server share two cores. A unary gRPC call is an HTTP/2 POST whose body is a 5-byte prefix
(compression flag, big-endian length) and the serialized message. h2load sends that same
body every time, so every call reads the same user; and it counts HTTP statuses, not
gRPC ones (errors arrive with HTTP 200 and a grpc-status trailer), so its error count
only shows broken streams.
"""

from __future__ import annotations

import resource
import shutil
import subprocess
import tempfile
from pathlib import Path

from bench.load import LoadResult, summarize
from bench.workloads import Workload


def available() -> bool:
    """True when h2load is installed."""
    return shutil.which("h2load") is not None


def grpc_frame(message: bytes) -> bytes:
    """The HTTP/2 body of a unary gRPC call: uncompressed flag + length + message."""
    return b"\x00" + len(message).to_bytes(4, "big") + message


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class H2loadClient:
    """`connections` x `streams` concurrent callers against one gRPC method."""

    name = "h2load"

    def __init__(
        self,
        url: str,
        body: bytes,
        token: str | None,
        connections: int = 32,
        streams: int = 1,
    ) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="bench-h2load-")
        self._body = Path(self._tmp.name) / "body"
        self._body.write_bytes(grpc_frame(body))
        self._url = url
        self._headers = ["-H", "content-type: application/grpc", "-H", "te: trailers"]
        if token:
            self._headers += ["-H", f"authorization: Bearer {token}"]
        self._connections = connections
        self._streams = streams

    def round(self, seconds: float, workload: Workload | None = None) -> LoadResult:
        """One h2load run of `seconds` (no warm-up inside: the caller runs a warm-up
        round, so the server CPU measured around this round covers only its calls). The
        body was fixed at construction: `workload` is ignored."""
        log = Path(self._tmp.name) / "log"
        log.unlink(missing_ok=True)  # h2load appends to an existing log
        cpu = _children_cpu()
        result = subprocess.run(
            [
                "h2load",
                "-t",
                "1",
                "-c",
                str(self._connections),
                "-m",
                str(self._streams),
                "-D",
                str(max(1, round(seconds))),
                "-d",
                str(self._body),
                *self._headers,
                f"--log-file={log}",
                self._url,
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=seconds + 60,
        )
        if result.returncode != 0 or not log.exists():
            raise RuntimeError(f"h2load failed:\n{result.stdout}\n{result.stderr}")
        rows = [line.split("\t") for line in log.read_text().splitlines()]
        ok = [row for row in rows if row[1] == "200"]
        starts = [int(row[0]) for row in rows]
        ends = [int(row[0]) + int(row[2]) for row in rows]
        span = (max(ends) - min(starts)) / 1e6 if rows else float(seconds)
        return summarize(
            [int(row[2]) / 1e6 for row in ok],
            len(rows) - len(ok),
            span,
            _children_cpu() - cpu,
        )

    def close(self) -> None:
        """Remove the request body and log."""
        self._tmp.cleanup()
