"""Faults in the middle of a burst of writes: the server's database connections killed,
the database unreachable, the server SIGKILLed.

Every write is one UpdateUserSegments for a user nobody has seen: it registers the
user (two 100 % rollouts enrol it in R0 and R1), adds S0 and S1 and removes R0, so one
request makes five history rows. Afterwards each request is checked on its own: the
user is in exactly {R1, S0, S1} with exactly those five history rows, or in nothing
with no history at all; an acknowledged request must be the former. A caller sees OK
or UNAVAILABLE only, and the server recovers without a restart.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import grpc
import psycopg
import pytest

from segmentation.v1 import segment_service_pb2 as seg_pb
from segmentation.v1 import segment_service_pb2_grpc as seg_grpc
from segmentation.v1 import user_service_pb2 as pb
from segmentation.v1 import user_service_pb2_grpc as user_grpc
from tests.support.clock import MovableClock
from tests.support.history_replay import by_pair, read_report
from tests.support.names import Names
from tests.support.servers import (
    JWT_SECRET,
    child_env,
    private_server,
    sign_in,
    start_process,
)
from tests.support.tcp_proxy import tcp_proxy

Metadata = tuple[tuple[str, str], ...]
WRITERS = 8
CALL_TIMEOUT = 10
RECOVERY_SECONDS = 10
ALLOWED = {grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE}


@dataclass
class Burst:
    """Writers sending one all-or-nothing request per fresh user, and what each got."""

    users: user_grpc.UserServiceStub
    md: Metadata
    names: Names
    outcomes: dict[int, grpc.StatusCode] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def slugs(self) -> dict[str, str]:
        return {label: self.names.slug(label) for label in ("R0", "R1", "S0", "S1")}

    def prepare(self, segments: seg_grpc.SegmentServiceStub) -> None:
        """The two rollouts every new user joins and the two plain segments."""
        for label, slug in self.slugs.items():
            request = seg_pb.CreateSegmentRequest(slug=slug)
            if label.startswith("R"):
                request.auto_percent = 100
            segments.CreateSegment(request, metadata=self.md, timeout=CALL_TIMEOUT)

    def write(self, user_id: int) -> grpc.StatusCode:
        s = self.slugs
        request = pb.UpdateUserSegmentsRequest(
            user_id=user_id,
            add=[pb.SegmentAddition(slug=s["S0"]), pb.SegmentAddition(slug=s["S1"])],
            remove=[s["R0"]],
        )
        try:
            self.users.UpdateUserSegments(request, metadata=self.md, timeout=CALL_TIMEOUT)
            code = grpc.StatusCode.OK
        except grpc.RpcError as exc:
            code = exc.code()
        with self.lock:
            self.outcomes[user_id] = code
        return code

    def writer(self) -> None:
        while not self.stop.is_set():
            self.write(self.names.user_id())

    def start(self) -> list[threading.Thread]:
        threads = [threading.Thread(target=self.writer) for _ in range(WRITERS)]
        for thread in threads:
            thread.start()
        return threads

    def finish(self, threads: list[threading.Thread]) -> Counter[str]:
        self.stop.set()
        for thread in threads:
            thread.join()
        return Counter(code.name for code in self.outcomes.values())

    def acknowledged(self) -> int:
        with self.lock:
            return sum(code == grpc.StatusCode.OK for code in self.outcomes.values())

    def recover(self) -> float:
        """Seconds until a write succeeds again (the server is not restarted)."""
        started = time.monotonic()
        while time.monotonic() - started < RECOVERY_SECONDS:
            if self.write(self.names.user_id()) == grpc.StatusCode.OK:
                return time.monotonic() - started
            time.sleep(0.05)
        raise AssertionError(f"no successful write within {RECOVERY_SECONDS} s")

    def check_all_or_nothing(
        self, users: user_grpc.UserServiceStub, segments: seg_grpc.SegmentServiceStub
    ) -> Counter[str]:
        """Each request fully applied (required if acknowledged) or fully absent."""
        s = self.slugs
        applied_state = {s["R1"], s["S0"], s["S1"]}
        adds = [("add", s[label]) for label in ("R0", "R1", "S0", "S1")]
        applied_history = sorted([*adds, ("remove", s["R0"])])
        ids = sorted(self.outcomes)
        state: dict[int, set[str]] = {}
        for start in range(0, len(ids), 1000):
            batch = users.BatchGetUserSegments(
                pb.BatchGetUserSegmentsRequest(user_ids=ids[start : start + 1000]), metadata=self.md
            )
            state.update({u.user_id: {seg.slug for seg in u.segments} for u in batch.users})
        history: dict[int, list[tuple[str, str]]] = {uid: [] for uid in ids}
        now = datetime.now(UTC)
        report = read_report(segments, self.md, ids, now - timedelta(hours=1), now)
        for (uid, slug), rows in by_pair(report).items():
            history[uid] += [(r.operation, slug) for r in rows]
        verdicts: Counter[str] = Counter()
        problems = []
        for uid in ids:
            applied = state[uid] == applied_state and sorted(history[uid]) == applied_history
            absent = not state[uid] and not history[uid]
            if not (applied or absent):
                problems.append(f"user {uid}: half-applied: {state[uid]} {history[uid]}")
            elif self.outcomes[uid] == grpc.StatusCode.OK and not applied:
                problems.append(f"user {uid}: acknowledged but absent")
            verdicts["applied" if applied else "absent"] += 1
        assert problems == [], problems[:10]
        return verdicts


def database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def kill_server_backends(admin: psycopg.Connection[Any], database: str) -> int:
    """pg_terminate_backend every segsvc session (pool, cache listener, health) of
    `database`, and no other (other test runs share this PostgreSQL)."""
    rows = admin.execute(
        "SELECT pid FROM pg_stat_activity"
        " WHERE datname = %s AND application_name LIKE 'segsvc%%'"
        " AND pid <> pg_backend_pid()",
        (database,),
    ).fetchall()
    for (pid,) in rows:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    return len(rows)


def test_killed_connections_cost_only_unavailable_and_no_half_write(
    fresh_database: Callable[[], str], admin_url: str, clock: MovableClock, names: Names
) -> None:
    url = fresh_database()
    with (
        private_server(url, clock, pool_size=WRITERS) as env,
        psycopg.connect(admin_url, autocommit=True) as admin,
    ):
        burst = Burst(env.users, env.metadata, names)
        burst.prepare(env.segments)
        threads = burst.start()
        killed = 0
        for _ in range(8):
            time.sleep(0.15)
            killed += kill_server_backends(admin, database_name(url))
        recovery = burst.recover()
        outcomes = burst.finish(threads)
        print(
            f"\nkills: {killed} sessions terminated; {dict(outcomes)}; recovered {recovery:.2f} s"
        )
        assert killed > 0
        assert set(outcomes) <= {code.name for code in ALLOWED}, outcomes
        assert burst.acknowledged() > 0
        verdicts = burst.check_all_or_nothing(env.users, env.segments)
        assert verdicts["applied"] >= burst.acknowledged()


def test_unreachable_database_costs_only_unavailable_and_no_half_write(
    fresh_database: Callable[[], str], clock: MovableClock, names: Names
) -> None:
    url = urlsplit(fresh_database())
    if not url.port or url.hostname not in ("127.0.0.1", "localhost"):
        pytest.skip("needs PostgreSQL on loopback TCP to put a proxy in front of it")
    with tcp_proxy(url.hostname, url.port) as proxy:
        proxied = url._replace(netloc=f"{url.username}@127.0.0.1:{proxy.port}").geturl()
        with private_server(proxied, clock, pool_size=WRITERS, pool_timeout_seconds=1) as env:
            burst = Burst(env.users, env.metadata, names)
            burst.prepare(env.segments)
            threads = burst.start()
            time.sleep(0.5)
            before = burst.acknowledged()
            proxy.cut()
            time.sleep(1.5)
            during = burst.acknowledged() - before
            proxy.restore()
            recovery = burst.recover()
            time.sleep(0.3)
            outcomes = burst.finish(threads)
            print(f"\noutage: {dict(outcomes)}; recovered {recovery:.2f} s after restore")
            assert set(outcomes) <= {code.name for code in ALLOWED}, outcomes
            assert outcomes["UNAVAILABLE"] > 0, "the outage was not noticed"
            assert before > 0
            assert during <= WRITERS  # at most the calls already committing at the cut
            verdicts = burst.check_all_or_nothing(env.users, env.segments)
            assert verdicts["applied"] >= burst.acknowledged()


def test_sigkill_mid_burst_keeps_every_acknowledged_write_whole(
    fresh_database: Callable[[], str], clock: MovableClock, names: Names
) -> None:
    env = child_env(
        SEGSVC_DATABASE_URL=fresh_database(),
        SEGSVC_JWT_SECRET=JWT_SECRET,
        SEGSVC_GRPC_ADDR="127.0.0.1:0",
        SEGSVC_HTTP_ADDR="127.0.0.1:0",
        SEGSVC_BCRYPT_ROUNDS="4",
        SEGSVC_POOL_SIZE=str(WRITERS),
    )
    first = start_process(env)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{first.grpc_port}") as channel:
            md = sign_in(channel)
            burst = Burst(user_grpc.UserServiceStub(channel), md, names)
            burst.prepare(seg_grpc.SegmentServiceStub(channel))
            threads = burst.start()
            deadline = time.monotonic() + 5
            while burst.acknowledged() < 50 and time.monotonic() < deadline:
                time.sleep(0.01)
            first.process.kill()
            first.process.wait(timeout=10)
            outcomes = burst.finish(threads)
    finally:
        if first.process.poll() is None:
            first.process.kill()
    print(f"\nsigkill: {dict(outcomes)}")
    assert burst.acknowledged() >= 50

    second = start_process(env)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{second.grpc_port}") as channel:
            verdicts = burst.check_all_or_nothing(
                user_grpc.UserServiceStub(channel), seg_grpc.SegmentServiceStub(channel)
            )
    finally:
        second.terminate()
    print(f"after restart: {dict(verdicts)}")
    assert verdicts["applied"] >= burst.acknowledged()
