"""The bulk paths at full size: ImportUsers of N new ids, a 10 % rollout over every user,
a month report over >= 1M history rows downloaded through its link, and streaming a
large segment's members, each with the server's peak memory before and after (VmHWM),
which shows whether a path holds its data in memory."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import grpc
import psycopg

from bench.procstat import usage
from segmentation.v1 import segment_service_pb2 as seg_pb
from segmentation.v1 import segment_service_pb2_grpc as seg_grpc
from segmentation.v1 import user_service_pb2 as pb
from segmentation.v1 import user_service_pb2_grpc as user_grpc

CHUNK = 10_000


@dataclass(frozen=True)
class BulkRow:
    """One bulk measurement."""

    what: str
    seconds: float
    amount: int
    unit: str
    peak_rss_before_mib: float
    peak_rss_after_mib: float


def _timed(pid: int, what: str, unit: str, work: object) -> BulkRow:
    before = usage(pid).peak_rss_mib
    started = time.perf_counter()
    amount = work()  # type: ignore[operator]
    elapsed = time.perf_counter() - started
    return BulkRow(what, elapsed, int(amount), unit, before, usage(pid).peak_rss_mib)


def run(
    target: str, token: str, pid: int, database_url: str, first_new_id: int, count: int
) -> list[BulkRow]:
    """Every bulk measurement, in an order where each builds on the previous data."""
    md = (("authorization", f"Bearer {token}"),)
    rows = []
    with grpc.insecure_channel(target, options=[("grpc.max_send_message_length", 1 << 26)]) as ch:
        users = user_grpc.UserServiceStub(ch)
        segments = seg_grpc.SegmentServiceStub(ch)

        def chunks() -> Iterator[pb.ImportUsersRequest]:
            for start in range(first_new_id, first_new_id + count, CHUNK):
                ids = range(start, min(start + CHUNK, first_new_id + count))
                yield pb.ImportUsersRequest(user_ids=ids)

        rows.append(
            _timed(
                pid,
                f"ImportUsers, {count:,} new ids",
                "users created",
                lambda: users.ImportUsers(chunks(), metadata=md, timeout=600).created_count,
            )
        )
        rows.append(
            _timed(
                pid,
                "CreateSegment at 10 % over all users",
                "users enrolled",
                lambda: (
                    segments.CreateSegment(
                        seg_pb.CreateSegmentRequest(slug="BENCH_ROLLOUT", auto_percent=10),
                        metadata=md,
                        timeout=600,
                    ).segment.member_count
                ),
            )
        )
        rows.append(
            _timed(
                pid,
                "ListSegmentUsers of the rollout segment",
                "ids streamed",
                lambda: sum(
                    len(m.user_ids)
                    for m in segments.ListSegmentUsers(
                        seg_pb.ListSegmentUsersRequest(slug="BENCH_ROLLOUT"),
                        metadata=md,
                        timeout=600,
                    )
                ),
            )
        )
        history_rows = _ensure_history(database_url, 1_000_000)
        now = datetime.now(UTC)
        link = segments.GetHistoryReport(
            seg_pb.GetHistoryReportRequest(year=now.year, month=now.month), metadata=md
        )
        rows.append(
            _timed(
                pid,
                f"report download, {history_rows:,} rows in the month",
                "bytes",
                lambda: _download(link.url),
            )
        )
    return rows


def _ensure_history(database_url: str, at_least: int) -> int:
    """Top the current month's history up to `at_least` rows with synthetic events."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        month_start = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        row = conn.execute(
            "SELECT count(*) FROM membership_history WHERE at >= %s", (month_start,)
        ).fetchone()
        have = int(row[0]) if row else 0
        if have < at_least:
            conn.execute(
                "INSERT INTO membership_history (user_id, segment_id, slug, operation, reason, at)"
                " SELECT g, 1, 'SEG_0001', CASE WHEN g %% 2 = 0 THEN 'add' ELSE 'remove' END,"
                " 'manual', %s + (g %% 86400) * interval '1 second'"
                " FROM generate_series(1, %s) g",
                (month_start, at_least - have),
            )
        return max(have, at_least)


def _download(url: str) -> int:
    total = 0
    with urllib.request.urlopen(url, timeout=600) as reply:  # noqa: S310 - loopback
        while chunk := reply.read(1 << 16):
            total += len(chunk)
    return total
