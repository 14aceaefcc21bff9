"""How long a write through one segsvc process stays invisible to reads through another.

Used by the cross-process cache test (a few rounds, generous bound) and to measure the
distribution the README quotes (`STALENESS_ROUNDS=1000 pytest -s -k cross_process`).
"""

from __future__ import annotations

import statistics
import time
import urllib.request
from collections.abc import Sequence

from segmentation.v1 import user_service_pb2 as pb
from segmentation.v1 import user_service_pb2_grpc as user_grpc
from tests.support.api import slugs_of, update

Metadata = tuple[tuple[str, str], ...]


def metric(http_port: int, sample: str) -> float:
    """One sample line's value from a server's /metrics (0 when absent)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=5) as reply:
        for line in reply.read().decode().splitlines():
            if line.startswith(sample + " "):
                return float(line.split()[-1])
    return 0.0


def wait_until_listening(http_port: int, timeout: float = 10) -> None:
    """Wait until the server's read cache is in use."""
    deadline = time.monotonic() + timeout
    while metric(http_port, "segsvc_cache_listening") != 1:
        assert time.monotonic() < deadline, "the cache never started listening"
        time.sleep(0.02)


def read(users: user_grpc.UserServiceStub, md: Metadata, uid: int) -> list[str]:
    """GetUserSegments' slugs."""
    reply = users.GetUserSegments(pb.GetUserSegmentsRequest(user_id=uid), metadata=md)
    return slugs_of(reply.user)


def wait_for(
    users: user_grpc.UserServiceStub, md: Metadata, uid: int, expected: list[str], timeout: float
) -> float:
    """Poll reads until they answer `expected`; the seconds it took (fails after timeout)."""
    started = time.monotonic()
    while (got := read(users, md, uid)) != expected:
        assert time.monotonic() - started < timeout, f"still {got}, expected {expected}"
    return time.monotonic() - started


def staleness(
    writer: user_grpc.UserServiceStub,
    reader: user_grpc.UserServiceStub,
    md: Metadata,
    slug: str,
    user_ids: Sequence[int],
    timeout: float,
) -> list[float]:
    """For each user: cache its empty segments in the reader, add it to `slug` through
    the writer, and time from the write's answer until the reader shows it."""
    delays = []
    for uid in user_ids:
        read(reader, md, uid)
        read(reader, md, uid)  # a hit: the reader holds the entry the write makes stale
        update(writer, md, uid, add=[slug])
        delays.append(wait_for(reader, md, uid, [slug], timeout))
    return delays


def summary(delays: Sequence[float]) -> str:
    """p50 / p99 / max in milliseconds."""
    ms = sorted(d * 1000 for d in delays)
    p99 = ms[min(len(ms) - 1, round(0.99 * (len(ms) - 1)))]
    return (
        f"{len(ms)} writes: p50 {statistics.median(ms):.2f} ms, p99 {p99:.2f} ms,"
        f" max {ms[-1]:.2f} ms"
    )
