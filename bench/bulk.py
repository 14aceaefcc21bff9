"""The bulk paths at full size, through the real server: a 10 % rollout over every seeded
user, ImportUsers of N new ids, streaming a large segment's members, and a month report
over >= 1M history rows, downloaded through its link and streamed over gRPC.

The rollout and the import are each followed by the bare SQL doing the same work in
the same run (rolled back, so the data set is unchanged): the enrolment `INSERT ...
SELECT` with history, and `COPY` of N ids into a temporary table plus one `INSERT ...
SELECT` into users. Their ratio is what the targets compare, since absolute times
drift between runs.

Around each operation the server's peak RSS (VmHWM) is reset and read again, so the
table shows how much memory that operation alone needed (of its largest process: a
supervisor's worker, not the idle supervisor): a path that streams holds a
chunk at a time whatever N is; one that buffers grows with N.
"""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import grpc
import psycopg

from bench.procstat import Usage, descendants, reset_peak, usage
from segmentation.v1 import segment_service_pb2 as seg_pb
from segmentation.v1 import segment_service_pb2_grpc as seg_grpc
from segmentation.v1 import user_service_pb2 as pb
from segmentation.v1 import user_service_pb2_grpc as user_grpc

CHUNK = 10_000
REPORT_ROWS = 1_000_000
ROLLOUT_SLUG = "BENCH_ROLLOUT"
TIMEOUT = 900.0

# Synthetic add/remove events spread over the current month up to now, for users that
# exist, topping the month up to the wanted number of rows.
_HISTORY = """
INSERT INTO membership_history (user_id, segment_id, slug, operation, reason, at)
SELECT 1 + g %% %(users)s, 1, 'SEG_0001',
       CASE WHEN g %% 2 = 0 THEN 'add' ELSE 'remove' END, 'manual',
       %(start)s + (%(now)s - %(start)s) * (g::float8 / %(rows)s)
FROM generate_series(1, %(rows)s) g
"""


@dataclass(frozen=True)
class BulkRow:
    """One bulk measurement."""

    what: str
    seconds: float
    amount: int
    unit: str
    rss_before_mib: float
    peak_rss_mib: float
    note: str = ""


@dataclass(frozen=True)
class _Outcome:
    amount: int
    note: str = ""


def _timed(pid: int, what: str, unit: str, work: Callable[[], _Outcome]) -> BulkRow:
    # `pid` is the supervisor when the server runs several workers: the memory that
    # matters is the workers' (one of them serves the call), so each process of the
    # tree is reset and the largest figures are reported.
    members = descendants(pid)
    per_operation = all([reset_peak(member) for member in members])
    before = _largest(members)
    started = time.perf_counter()
    outcome = work()
    elapsed = time.perf_counter() - started
    after = _largest(members)
    note = outcome.note if per_operation else f"{outcome.note} (peak since start)".strip()
    row = BulkRow(what, elapsed, outcome.amount, unit, before.rss_mib, after.peak_rss_mib, note)
    print(
        f"  {what}: {elapsed:.1f} s, {outcome.amount:,} {unit},"
        f" RSS {before.rss_mib:.0f} -> peak {after.peak_rss_mib:.0f} MiB {note}",
        flush=True,
    )
    return row


def _largest(pids: list[int]) -> Usage:
    """The largest current and the largest peak RSS among `pids` (CPU summed)."""
    each = [usage(p) for p in pids]
    return Usage(
        sum(u.cpu_seconds for u in each),
        max(u.rss_mib for u in each),
        max(u.peak_rss_mib for u in each),
    )


def run(target: str, token: str, pid: int, database_url: str, users: int) -> list[BulkRow]:
    """Every bulk measurement on a server (pid) over a database seeded with `users`."""
    metadata = (("authorization", f"Bearer {token}"),)
    with grpc.insecure_channel(target) as channel:
        user_stub = user_grpc.UserServiceStub(channel)
        segment_stub = seg_grpc.SegmentServiceStub(channel)

        def rollout() -> _Outcome:
            reply = segment_stub.CreateSegment(
                seg_pb.CreateSegmentRequest(slug=ROLLOUT_SLUG, auto_percent=10),
                metadata=metadata,
                timeout=TIMEOUT,
            )
            return _Outcome(reply.segment.member_count)

        def chunks() -> Iterator[pb.ImportUsersRequest]:
            for start in range(users + 1, 2 * users + 1, CHUNK):
                yield pb.ImportUsersRequest(
                    user_ids=range(start, min(start + CHUNK, 2 * users + 1))
                )

        def import_users() -> _Outcome:
            reply = user_stub.ImportUsers(chunks(), metadata=metadata, timeout=TIMEOUT)
            return _Outcome(
                reply.created_count, f"+{reply.rollout_membership_count:,} rollout memberships"
            )

        def members() -> _Outcome:
            stream = segment_stub.ListSegmentUsers(
                seg_pb.ListSegmentUsersRequest(slug=ROLLOUT_SLUG),
                metadata=metadata,
                timeout=TIMEOUT,
            )
            return _Outcome(sum(len(message.user_ids) for message in stream))

        rows = [
            _timed(pid, f"CreateSegment auto_percent=10 over {users:,} users", "enrolled", rollout),
            _timed(
                pid,
                "bare-rollout: the same enrolment INSERT ... SELECT",
                "enrolled",
                lambda: _bare_rollout(database_url),
            ),
            _timed(
                pid, f"ImportUsers {users:,} new ids, chunks of {CHUNK:,}", "created", import_users
            ),
            _timed(
                pid,
                f"bare-import: COPY {users:,} ids + INSERT ... SELECT",
                "created",
                lambda: _bare_import(database_url, 2 * users + 1, users),
            ),
            _timed(pid, "ListSegmentUsers of the rollout segment", "ids", members),
        ]
        month_rows = _top_up_history(database_url, users, min(REPORT_ROWS, 10 * users))
        now = datetime.now(UTC)
        link = segment_stub.GetHistoryReport(
            seg_pb.GetHistoryReportRequest(year=now.year, month=now.month),
            metadata=metadata,
            timeout=60,
        )
        rows.append(
            _timed(
                pid,
                f"history report download, {month_rows:,} events in the month",
                "bytes",
                lambda: _download(link.url),
            )
        )

        def stream_report() -> _Outcome:
            stream = segment_stub.StreamHistoryReport(
                seg_pb.StreamHistoryReportRequest(year=now.year, month=now.month),
                metadata=metadata,
                timeout=TIMEOUT,
            )
            messages = total = 0
            for message in stream:
                messages += 1
                total += len(message.chunk)
            return _Outcome(total, f"{messages:,} messages")

        rows.append(
            _timed(pid, "StreamHistoryReport, same month, over gRPC", "bytes", stream_report)
        )
    return rows


def _bare_rollout(database_url: str) -> _Outcome:
    """The rollout's enrolment as one statement (the store's SQL) on a new segment."""
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "INSERT INTO segments (slug, rollout_bp, rollout_salt, created_at)"
            " VALUES ('BARE_ROLLOUT', 1000, 'bare', now()) RETURNING id"
        ).fetchone()
        assert row is not None
        cur = conn.execute(
            """
            WITH enrolled AS (
                INSERT INTO memberships (user_id, segment_id, added_at, expires_at, reason)
                SELECT u.user_id, %(id)s, now(), NULL, 'rollout' FROM users u
                WHERE segsvc_rollout_bucket('bare', u.user_id) < 1000
                RETURNING user_id
            )
            INSERT INTO membership_history (user_id, segment_id, slug, operation, reason, at)
            SELECT user_id, %(id)s, 'BARE_ROLLOUT', 'add', 'rollout', now() FROM enrolled
            """,
            {"id": row[0]},
        )
        conn.rollback()
    return _Outcome(cur.rowcount, "bare SQL, rolled back")


def _bare_import(database_url: str, first: int, count: int) -> _Outcome:
    """COPY `count` new ids into a temporary table, then one INSERT ... SELECT."""
    with psycopg.connect(database_url) as conn:
        conn.execute("CREATE TEMP TABLE bare_ids (user_id bigint NOT NULL) ON COMMIT DROP")
        with conn.cursor().copy("COPY bare_ids (user_id) FROM STDIN") as copy:
            for start in range(first, first + count, CHUNK):
                chunk = range(start, min(start + CHUNK, first + count))
                copy.write("\n".join(map(str, chunk)) + "\n")
        cur = conn.execute(
            "INSERT INTO users (user_id, created_at) SELECT user_id, now() FROM bare_ids"
        )
        conn.rollback()
    return _Outcome(cur.rowcount, "bare SQL, rolled back")


def ratios(rows: list[BulkRow]) -> dict[str, float]:
    """Server time / bare SQL time for the rollout and the import (bench.targets keys)."""
    by_key = {row.what.split(" ", 1)[0].rstrip(":"): row.seconds for row in rows}
    found: dict[str, float] = {}
    if by_key.get("bare-rollout") and "CreateSegment" in by_key:
        found["rollout_ratio"] = by_key["CreateSegment"] / by_key["bare-rollout"]
    if by_key.get("bare-import") and "ImportUsers" in by_key:
        found["import_ratio"] = by_key["ImportUsers"] / by_key["bare-import"]
    return found


def _top_up_history(database_url: str, users: int, at_least: int) -> int:
    """Make the current month hold at least `at_least` history rows; return how many."""
    now = datetime.now(UTC)
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM membership_history WHERE at >= %s", (start,)
        ).fetchone()
        have = int(row[0]) if row else 0
        if have < at_least:
            started = time.perf_counter()
            params = {"users": users, "start": start, "now": now, "rows": at_least - have}
            conn.execute(_HISTORY, params)
            conn.execute("ANALYZE membership_history")
            took = time.perf_counter() - started
            print(f"  (added {at_least - have:,} history rows in {took:.1f} s)", flush=True)
        return max(have, at_least)


def _download(url: str) -> _Outcome:
    """Stream the CSV to /dev/null; bytes, with the number of data lines as a note."""
    total = lines = 0
    with (
        urllib.request.urlopen(url, timeout=TIMEOUT) as reply,  # noqa: S310 - our loopback link
        open("/dev/null", "wb") as sink,
    ):
        while chunk := reply.read(1 << 16):
            total += len(chunk)
            lines += chunk.count(b"\n")
            sink.write(chunk)
    return _Outcome(total, f"{lines - 1:,} CSV rows")
