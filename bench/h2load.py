"""Closed-loop load with h2load (Debian's nghttp2-client): a C HTTP/2 client that costs
the server's machine far less CPU than a Python client would, so the server keeps its
cores. gRPC over HTTP/2 is a POST of a length-prefixed protobuf; h2load sends the same
request each time and records every request's latency in its log file."""

from __future__ import annotations

import re
import shutil
import statistics
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from google.protobuf.message import Message


@dataclass(frozen=True)
class LoadResult:
    """What one h2load run measured."""

    calls_per_second: float
    done: int
    failed: int
    p50_ms: float
    p99_ms: float


def available() -> bool:
    """True when h2load is installed."""
    return shutil.which("h2load") is not None


def grpc_frame(message: Message) -> bytes:
    """The HTTP/2 body of a unary gRPC call: uncompressed flag + length + message."""
    payload = message.SerializeToString()
    return b"\x00" + len(payload).to_bytes(4, "big") + payload


def run(
    url: str,
    message: Message,
    token: str | None,
    connections: int = 32,
    seconds: int = 10,
    warm_up: int = 3,
) -> LoadResult:
    """`connections` concurrent callers, one call in flight each, for `seconds`."""
    with tempfile.TemporaryDirectory() as tmp:
        body, log = Path(tmp) / "body", Path(tmp) / "log"
        body.write_bytes(grpc_frame(message))
        headers = ["-H", "content-type: application/grpc", "-H", "te: trailers"]
        if token:
            headers += ["-H", f"authorization: Bearer {token}"]
        result = subprocess.run(
            [
                "h2load",
                "-t",
                "1",
                "-c",
                str(connections),
                "-m",
                "1",
                f"--warm-up-time={warm_up}",
                "-D",
                str(seconds),
                "-d",
                str(body),
                *headers,
                f"--log-file={log}",
                url,
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=seconds + warm_up + 60,
        )
        latencies = sorted(int(line.split("\t")[2]) / 1000 for line in log.read_text().splitlines())
    rate = re.search(r"finished in [\d.]+s, ([\d.]+) req/s", result.stdout)
    counts = re.search(
        r"requests: \d+ total, \d+ started, (\d+) done, \d+ succeeded, (\d+) failed", result.stdout
    )
    if not rate or not counts or not latencies:
        raise RuntimeError(f"unexpected h2load output:\n{result.stdout}\n{result.stderr}")
    return LoadResult(
        calls_per_second=float(rate[1]),
        done=int(counts[1]),
        failed=int(counts[2]),
        p50_ms=statistics.median(latencies),
        p99_ms=latencies[int(len(latencies) * 0.99) - 1],
    )
