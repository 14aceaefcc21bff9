"""Reading the history report back and checking it against the current state.

The promise checked here (issue 7, defect 1): for each (user, segment) the history,
ordered by time, alternates add/remove starting with an add, and replaying it gives
exactly the current memberships. The report is read through the API
(StreamHistoryReport), the way an analyst would.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from segmentation.v1 import segment_service_pb2 as seg_pb
from segmentation.v1 import segment_service_pb2_grpc as seg_grpc

Metadata = tuple[tuple[str, str], ...]
MAX_REPORT_USERS = 100


@dataclass(frozen=True)
class HistoryRow:
    """One line of the CSV report."""

    user_id: int
    slug: str
    operation: str
    at: datetime


def months_between(first: datetime, last: datetime) -> list[tuple[int, int]]:
    """Every (year, month) from `first`'s month to `last`'s, inclusive."""
    months = []
    year, month = first.year, first.month
    while (year, month) <= (last.year, last.month):
        months.append((year, month))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


def parse_report(csv_text: str) -> list[HistoryRow]:
    """The rows of a `user_id;segment;operation;timestamp` report, header dropped."""
    lines = csv_text.splitlines()
    assert lines[0] == "user_id;segment;operation;timestamp", lines[:1]
    rows = []
    for line in lines[1:]:
        user_id, slug, operation, at = line.split(";")
        stamp = datetime.strptime(at, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
        rows.append(HistoryRow(int(user_id), slug, operation, stamp))
    return rows


def read_report(
    segments: seg_grpc.SegmentServiceStub,
    md: Metadata,
    user_ids: Sequence[int],
    first: datetime,
    last: datetime,
    timeout: float = 30,
) -> list[HistoryRow]:
    """The report rows of `user_ids` for every month from `first` to `last`: one report
    per month and 100 users, each checked to be ordered by time, concatenated."""
    rows: list[HistoryRow] = []
    ids = sorted(set(user_ids))
    for year, month in months_between(first, last):
        for start in range(0, len(ids), MAX_REPORT_USERS):
            batch = ids[start : start + MAX_REPORT_USERS]
            chunks = segments.StreamHistoryReport(
                seg_pb.StreamHistoryReportRequest(year=year, month=month, user_ids=batch),
                metadata=md,
                timeout=timeout,
            )
            part = parse_report(b"".join(c.chunk for c in chunks).decode())
            times = [r.at for r in part]
            assert times == sorted(times), f"report {year}-{month:02d} not ordered by time"
            rows.extend(part)
    return rows


def by_pair(rows: Iterable[HistoryRow]) -> dict[tuple[int, str], list[HistoryRow]]:
    """Rows grouped by (user, slug), each group in the given (time) order."""
    groups: dict[tuple[int, str], list[HistoryRow]] = {}
    for row in rows:
        groups.setdefault((row.user_id, row.slug), []).append(row)
    return groups


def replay_problems(rows: Sequence[HistoryRow], current: set[tuple[int, str]]) -> list[str]:
    """Why the history does not replay to `current` (empty when it does).

    `rows` must hold the complete history of the pairs concerned, sorted by time (ties
    in the report's order); `current` is every (user, slug) active now among them.
    """
    problems = []
    groups = by_pair(sorted(rows, key=lambda r: r.at))
    for (user_id, slug), events in groups.items():
        operations = [e.operation for e in events]
        expected = ["add", "remove"] * (len(events) // 2) + ["add"] * (len(events) % 2)
        if operations != expected:
            times = [f"{e.operation}@{e.at.isoformat()}" for e in events]
            problems.append(f"user {user_id} {slug}: history does not alternate: {times}")
        elif (operations[-1] == "add") != ((user_id, slug) in current):
            state = "in" if (user_id, slug) in current else "not in"
            problems.append(
                f"user {user_id} {slug}: history ends with {operations[-1]} but user is {state}"
            )
    for user_id, slug in current - set(groups):
        problems.append(f"user {user_id} {slug}: member without any history")
    return problems


def history_differences(got: Sequence[HistoryRow], expected: Sequence[HistoryRow]) -> list[str]:
    """One readable line per (user, slug) whose history differs (empty when none)."""

    def line(rows: Sequence[HistoryRow]) -> str:
        return " ".join(f"{r.operation}@{r.at:%m-%dT%H:%M:%S.%f}" for r in rows) or "-"

    got_pairs = by_pair(got)
    expected_pairs = by_pair(sorted(expected, key=lambda r: r.at))
    return [
        f"user {uid} {slug}: report {line(got_pairs.get((uid, slug), []))}"
        f" | model {line(expected_pairs.get((uid, slug), []))}"
        for uid, slug in sorted(set(got_pairs) | set(expected_pairs))
        if got_pairs.get((uid, slug)) != expected_pairs.get((uid, slug))
    ]
