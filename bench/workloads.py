"""What the load client sends: the traffic shapes of the benchmark.

A workload is a small picklable description (sent to the client processes); each caller
turns it into an endless stream of (method, body) pairs with its own random generator.
The Go client (clients/go/cmd/segsvc-load) draws the same shapes with the same constants
in Go, so that either client measures the same traffic: change both together.

- `uniform`: GetUserSegments for ids drawn uniformly from 1..users (every read a miss
  for any cache smaller than the data set: the database path).
- `zipf`: GetUserSegments with ids drawn from a Zipf distribution of exponent 1.0 over
  all users, as on a real site where a few users are most of the reads. Ranks are
  mapped to ids by a fixed permutation, so the hot users are spread over the id space.
- `batch`: BatchGetUserSegments with 100 uniform ids a call.
- `update`: UpdateUserSegments adding 2 segments with a TTL and removing 1, uniform users
  and segments (every call writes memberships and history).
- `mix`: 95 % `zipf` reads, 5 % `update` writes on Zipf-drawn users (the hot users are
  also the ones that change, which is what tests a cache's invalidation).
- `empty`: the empty Health/Check, the ceiling of the RPC layer alone.
"""

from __future__ import annotations

import bisect
import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache

from google.protobuf.duration_pb2 import Duration

from segmentation.v1 import user_service_pb2 as pb

GET = "/segmentation.v1.UserService/GetUserSegments"
BATCH = "/segmentation.v1.UserService/BatchGetUserSegments"
UPDATE = "/segmentation.v1.UserService/UpdateUserSegments"
EMPTY = "/grpc.health.v1.Health/Check"
METHODS = (GET, BATCH, UPDATE, EMPTY)
BATCH_SIZE = 100
WRITE_SHARE = 0.05
# Long enough that nothing expires during a run (the sweeper is not under test here).
UPDATE_TTL_SECONDS = 3600
# A prime that divides no benchmark size: rank -> id is a bijection on 1..users.
_SPREAD = 1_000_003
KINDS = ("uniform", "zipf", "batch", "update", "mix", "empty")


@dataclass(frozen=True)
class Workload:
    """A traffic shape over `users` users and `segments` segments (SEG_0001 ...)."""

    kind: str
    users: int
    segments: int = 1000

    @property
    def lookups_per_call(self) -> int:
        """User look-ups one call makes (100 for batch calls)."""
        return BATCH_SIZE if self.kind == "batch" else 1


@cache
def _zipf_cdf(users: int) -> list[float]:
    """Cumulative weights 1/1, 1/1 + 1/2, ... (exponent 1.0), built once per process."""
    return list(itertools.accumulate(1.0 / rank for rank in range(1, users + 1)))


def _zipf_ids(users: int, rng: random.Random) -> Iterator[int]:
    cdf = _zipf_cdf(users)
    total = cdf[-1]
    spread = _SPREAD if users % _SPREAD else 1
    while True:
        rank = bisect.bisect_left(cdf, rng.random() * total)  # 0-based
        yield rank * spread % users + 1


def _uniform_ids(users: int, rng: random.Random) -> Iterator[int]:
    while True:
        yield rng.randint(1, users)


def _slug(rng: random.Random, segments: int, exclude: tuple[str, ...] = ()) -> str:
    while (slug := f"SEG_{rng.randint(1, segments):04d}") in exclude:
        pass
    return slug


def _update(user_id: int, segments: int, rng: random.Random) -> bytes:
    first = _slug(rng, segments)
    second = _slug(rng, segments, (first,))
    removed = _slug(rng, segments, (first, second))
    ttl = Duration(seconds=UPDATE_TTL_SECONDS)
    return pb.UpdateUserSegmentsRequest(
        user_id=user_id,
        add=[pb.SegmentAddition(slug=first, ttl=ttl), pb.SegmentAddition(slug=second, ttl=ttl)],
        remove=[removed],
    ).SerializeToString()


def _read(user_id: int) -> bytes:
    return pb.GetUserSegmentsRequest(user_id=user_id).SerializeToString()


def calls(workload: Workload, seed: int) -> Iterator[tuple[str, bytes]]:
    """The endless (method, serialized request) stream of one caller."""
    rng = random.Random(seed)
    users, segments = workload.users, workload.segments
    if workload.kind == "uniform":
        for user_id in _uniform_ids(users, rng):
            yield GET, _read(user_id)
    elif workload.kind == "zipf":
        for user_id in _zipf_ids(users, rng):
            yield GET, _read(user_id)
    elif workload.kind == "batch":
        ids = _uniform_ids(users, rng)
        while True:
            request = pb.BatchGetUserSegmentsRequest(user_ids=itertools.islice(ids, BATCH_SIZE))
            yield BATCH, request.SerializeToString()
    elif workload.kind == "update":
        for user_id in _uniform_ids(users, rng):
            yield UPDATE, _update(user_id, segments, rng)
    elif workload.kind == "mix":
        for user_id in _zipf_ids(users, rng):
            if rng.random() < WRITE_SHARE:
                yield UPDATE, _update(user_id, segments, rng)
            else:
                yield GET, _read(user_id)
    elif workload.kind == "empty":
        while True:
            yield EMPTY, b""
    else:
        raise ValueError(f"unknown workload {workload.kind!r}; choose from {', '.join(KINDS)}")
