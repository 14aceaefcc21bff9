"""SQL for reading membership history: one user's events, and the monthly CSV report.

The report is produced by PostgreSQL itself (`COPY ... TO STDOUT`) and streamed through
in chunks, so a month with millions of events never sits in memory. It includes
memberships that expired inside the month but that the sweeper has not yet moved to
history: the report is exact whether or not background work has run.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime

from psycopg.rows import kwargs_row

from segsvc.domain.models import HistoryEvent, Reason
from segsvc.domain.report_period import ReportPeriod
from segsvc.store.database import Connection

CSV_HEADER = "user_id;segment;operation;timestamp"
CHUNK_BYTES = 64 * 1024

EVENTS_FOR_USER = """
SELECT segment_id, slug, operation, reason, at, expires_at FROM membership_history
WHERE user_id = %s AND at <= %s ORDER BY at, id
"""

# The month's add/remove events, plus expiries the sweeper has not yet recorded.
REPORT_EVENTS = """
SELECT user_id, slug, operation,
       to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
FROM (
    SELECT user_id, slug, operation, at, id
    FROM membership_history
    WHERE at >= %(start)s AND at < %(end)s AND operation IN ('add', 'remove')
      AND (%(all_users)s OR user_id = ANY(%(user_ids)s))
    UNION ALL
    SELECT m.user_id, s.slug, 'remove', m.expires_at, NULL
    FROM memberships m JOIN segments s ON s.id = m.segment_id
    WHERE m.expires_at >= %(start)s AND m.expires_at < %(end)s
      AND m.expires_at <= %(now)s
      AND (%(all_users)s OR m.user_id = ANY(%(user_ids)s))
) events
ORDER BY at, user_id, slug, id NULLS LAST
"""

_REPORT = f"COPY ({REPORT_EVENTS}) TO STDOUT WITH (FORMAT csv, DELIMITER ';', HEADER false)"


def _event(
    *,
    segment_id: int,
    slug: str,
    operation: str,
    reason: str,
    at: datetime,
    expires_at: datetime | None,
) -> HistoryEvent:
    return HistoryEvent(segment_id, slug, operation, Reason(reason), at, expires_at)


def events_for_user(conn: Connection, user_id: int, until: datetime) -> list[HistoryEvent]:
    """The user's history up to `until`, in the order it happened."""
    cur = conn.cursor(row_factory=kwargs_row(_event))
    return cur.execute(EVENTS_FOR_USER, (user_id, until)).fetchall()


def stream_report(
    conn: Connection, period: ReportPeriod, user_ids: Sequence[int], now: datetime
) -> Iterator[bytes]:
    """The CSV report (header first) in chunks of about CHUNK_BYTES, straight from COPY.

    COPY hands over one row at a time; gathering rows into chunks keeps memory constant
    while sending a few hundred writes or gRPC messages instead of one per row.
    """
    buffer = bytearray((CSV_HEADER + "\n").encode())
    params = {
        "start": period.start,
        "end": period.end,
        "now": now,
        "all_users": not user_ids,
        "user_ids": list(user_ids),
    }
    with conn.cursor().copy(_REPORT, params) as copy:
        for row in copy:
            buffer += row
            if len(buffer) >= CHUNK_BYTES:
                yield bytes(buffer)
                buffer.clear()
    yield bytes(buffer)
