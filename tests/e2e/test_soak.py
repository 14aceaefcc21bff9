"""Concurrency soak: 32 clients hammer a small shared set of segments and users with
overlapping adds, removes, TTLs, deletes, re-creates, rollouts, registrations, imports
and expiry sweeps. Afterwards, for every (user, segment), the history report ordered by
time alternates add/remove and replays exactly to the current state, the member lists
agree with the users' segments, and no call failed with a status other than the ones
the contract documents for such races:

- UpdateUserSegments: NOT_FOUND (a named segment was deleted meanwhile);
- CreateSegment: ALREADY_EXISTS (another client created the slug first);
- DeleteSegment: NOT_FOUND (already deleted);
- CreateUser: ALREADY_EXISTS (registered meanwhile);
- ImportUsers: RESOURCE_EXHAUSTED (more streams and bulk operations at once than
  SEGSVC_BULK_POOL_SIZE; the import changed nothing).

CI runs SEGSVC_SOAK_SECONDS (default 3) seconds; the long mode is
`SEGSVC_SOAK_SECONDS=30 pytest tests/e2e/test_soak.py -s`, which prints its figures.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration

from segmentation.v1 import segment_service_pb2 as seg_pb
from segmentation.v1 import user_service_pb2 as pb
from tests.support.clock import MovableClock
from tests.support.history_replay import HistoryRow, read_report, replay_problems
from tests.support.names import Names
from tests.support.servers import PrivateServer, private_server

SOAK_SECONDS = float(os.environ.get("SEGSVC_SOAK_SECONDS", "3"))
CLIENTS = 32
SEGMENTS = 6
USERS = 40
FRESH_IDS = 5_000  # more than the imports can use in the long mode
TIMEOUT = 30

# Per RPC, the statuses a race may legitimately produce (besides OK).
ALLOWED = {
    "UpdateUserSegments": {grpc.StatusCode.NOT_FOUND},
    "CreateSegment": {grpc.StatusCode.ALREADY_EXISTS},
    "DeleteSegment": {grpc.StatusCode.NOT_FOUND},
    "CreateUser": {grpc.StatusCode.ALREADY_EXISTS},
    # Beyond the bulk slots an import is refused at once, before reading its stream.
    "ImportUsers": {grpc.StatusCode.RESOURCE_EXHAUSTED},
}


@pytest.fixture(scope="module")
def soak_server(fresh_database: Callable[[], str], clock: MovableClock) -> Iterator[PrivateServer]:
    """A server on a database of its own: the rollouts enrol every user there."""
    with private_server(fresh_database(), clock) as env:
        yield env


class Workload:
    """The shared names and the tallies of one soak."""

    def __init__(self, env: PrivateServer, names: Names) -> None:
        self.env = env
        self.slugs = [names.slug(f"SOAK{i}") for i in range(SEGMENTS)]
        self.users = names.user_ids(USERS)
        self.fresh = names.user_ids(FRESH_IDS)
        self.touched = set(self.users)
        self.lock = threading.Lock()
        self.outcomes: Counter[tuple[str, str]] = Counter()
        self.unexpected: list[str] = []

    def take_fresh(self, count: int) -> list[int]:
        with self.lock:
            taken = [self.fresh.pop() for _ in range(min(count, len(self.fresh)))]
            self.touched.update(taken)
            return taken

    def record(self, rpc: str, call: Callable[[], object]) -> None:
        try:
            call()
            code = grpc.StatusCode.OK
        except grpc.RpcError as exc:
            code = exc.code()
            if code not in ALLOWED[rpc]:
                with self.lock:
                    self.unexpected.append(f"{rpc}: {code.name} {exc.details()}")
        with self.lock:
            self.outcomes[(rpc, code.name)] += 1

    def one_call(self, rng: random.Random) -> None:
        """A random mutating call, weighted toward membership changes."""
        env, md = self.env, self.env.metadata
        kind = rng.choices(
            ["update", "update_ttl", "remove", "create", "delete", "user", "import", "sweep"],
            weights=[30, 15, 15, 8, 3, 4, 3, 2],
        )[0]
        uid = rng.choice(self.users)
        if kind in ("update", "update_ttl", "remove"):
            chosen = rng.sample(self.slugs, rng.randint(1, 3))
            split = 0 if kind == "remove" else rng.randint(1, len(chosen))
            adds = [pb.SegmentAddition(slug=s) for s in chosen[:split]]
            if kind == "update_ttl":
                for addition in adds:
                    ttl = Duration()
                    ttl.FromTimedelta(timedelta(milliseconds=rng.randint(20, 1500)))
                    addition.ttl.CopyFrom(ttl)
            request = pb.UpdateUserSegmentsRequest(user_id=uid, add=adds, remove=chosen[split:])
            self.record(
                "UpdateUserSegments",
                lambda: env.users.UpdateUserSegments(request, metadata=md, timeout=TIMEOUT),
            )
        elif kind == "create":
            create = seg_pb.CreateSegmentRequest(slug=rng.choice(self.slugs))
            if rng.random() < 0.5:
                create.auto_percent = rng.choice([10.0, 33.33, 50.0, 100.0])
            self.record(
                "CreateSegment",
                lambda: env.segments.CreateSegment(create, metadata=md, timeout=TIMEOUT),
            )
        elif kind == "delete":
            delete = seg_pb.DeleteSegmentRequest(slug=rng.choice(self.slugs))
            self.record(
                "DeleteSegment",
                lambda: env.segments.DeleteSegment(delete, metadata=md, timeout=TIMEOUT),
            )
        elif kind == "user":
            target = rng.choice([uid, *self.take_fresh(1)])
            self.record(
                "CreateUser",
                lambda: env.users.CreateUser(
                    pb.CreateUserRequest(user_id=target), metadata=md, timeout=TIMEOUT
                ),
            )
        elif kind == "import":
            ids = rng.sample(self.users, 5) + self.take_fresh(rng.randint(1, 20))
            chunks = [pb.ImportUsersRequest(user_ids=ids[i : i + 7]) for i in range(0, 25, 7)]
            self.record(
                "ImportUsers",
                lambda: env.users.ImportUsers(iter(chunks), metadata=md, timeout=TIMEOUT),
            )
        else:
            env.server.sweeper.sweep_once()

    def client(self, seed: int, until: float) -> None:
        rng = random.Random(seed)
        while time.monotonic() < until:
            self.one_call(rng)


@dataclass(frozen=True)
class SoakResult:
    """What the soak did, and every read taken afterwards at one frozen instant."""

    load: Workload
    seed: int
    current: set[tuple[int, str]]
    history: list[HistoryRow]
    members: dict[str, set[int]]
    member_counts: dict[str, int]


@pytest.fixture(scope="module")
def soak(soak_server: PrivateServer, clock: MovableClock) -> Iterator[SoakResult]:
    """Run the soak once; the tests below each check one promise about its outcome."""
    env, md = soak_server, soak_server.metadata
    clock.reset()
    load = Workload(env, Names())
    for slug in load.slugs[: SEGMENTS // 2]:
        env.segments.CreateSegment(seg_pb.CreateSegmentRequest(slug=slug), metadata=md)
    started = clock()
    until = time.monotonic() + SOAK_SECONDS
    seed = random.randrange(1 << 30)
    threads = [threading.Thread(target=load.client, args=(seed + i, until)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    calls = sum(load.outcomes.values())
    print(f"\nsoak: {CLIENTS} clients, {SOAK_SECONDS:g} s, {calls} calls, seed {seed}")
    print("soak outcomes:", dict(sorted(load.outcomes.items())))

    # Read everything at one frozen instant, so that no TTL ends between two reads.
    clock.freeze(clock())
    users = sorted(load.touched)
    current: set[tuple[int, str]] = set()
    for start in range(0, len(users), 1000):
        batch = env.users.BatchGetUserSegments(
            pb.BatchGetUserSegmentsRequest(user_ids=users[start : start + 1000]), metadata=md
        )
        current |= {(u.user_id, s.slug) for u in batch.users for s in u.segments}
    history = read_report(env.segments, md, users, started, clock())
    members, counts = {}, {}
    for slug in load.slugs:
        try:
            counts[slug] = env.segments.GetSegment(
                seg_pb.GetSegmentRequest(slug=slug), metadata=md
            ).segment.member_count
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND:
                raise
            continue
        request = seg_pb.ListSegmentUsersRequest(slug=slug)
        listed = env.segments.ListSegmentUsers(request, metadata=md, timeout=TIMEOUT)
        members[slug] = {uid for chunk in listed for uid in chunk.user_ids}
    yield SoakResult(load, seed, current, history, members, counts)
    clock.reset()


def test_soak_calls_fail_only_with_documented_statuses(soak: SoakResult) -> None:
    assert sum(soak.load.outcomes.values()) >= CLIENTS
    assert soak.load.unexpected == [], f"seed {soak.seed}"


def test_soak_history_replays_to_the_state(soak: SoakResult) -> None:
    problems = replay_problems(soak.history, soak.current)
    assert problems == [], f"{len(problems)} pairs (seed {soak.seed}):\n" + "\n".join(problems[:20])


def test_soak_member_lists_agree_with_user_segments(soak: SoakResult) -> None:
    for slug in soak.load.slugs:
        expected = {uid for uid, s in soak.current if s == slug}
        assert soak.members.get(slug, set()) == expected, slug
        assert soak.member_counts.get(slug, 0) == len(expected), slug
