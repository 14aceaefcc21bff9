"""SQL for memberships: who is in which segment, and every change to it.

Each statement that changes memberships writes its history rows in the same statement
(a data-modifying CTE), so a change without its history row cannot exist. A row whose
`expires_at` has passed is treated as absent by every read here, whether or not the
sweeper has moved it out yet; the sweeper records such removals at the expiry time.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime

from segsvc.domain.models import ActiveSegment, Reason
from segsvc.store.database import Connection

ACTIVE_FOR_USER = """
SELECT s.slug, m.added_at, m.expires_at, m.reason
FROM memberships m JOIN segments s ON s.id = m.segment_id
WHERE m.user_id = %s AND (m.expires_at IS NULL OR m.expires_at > %s)
ORDER BY s.slug
"""

ACTIVE_FOR_USERS = """
SELECT m.user_id, s.slug, m.added_at, m.expires_at, m.reason
FROM memberships m JOIN segments s ON s.id = m.segment_id
WHERE m.user_id = ANY(%s) AND (m.expires_at IS NULL OR m.expires_at > %s)
ORDER BY m.user_id, s.slug
"""

SWEEP_EXPIRED = """
WITH due AS (
    SELECT user_id, segment_id FROM memberships
    WHERE expires_at <= %(now)s
    ORDER BY expires_at
    LIMIT %(batch)s
    FOR UPDATE SKIP LOCKED
),
gone AS (
    DELETE FROM memberships m USING due
    WHERE m.user_id = due.user_id AND m.segment_id = due.segment_id
    RETURNING m.user_id, m.segment_id, m.expires_at
)
INSERT INTO membership_history
    (user_id, segment_id, slug, operation, reason, at, account_id)
SELECT g.user_id, g.segment_id, s.slug, 'remove', 'expired', g.expires_at, NULL
FROM gone g JOIN segments s ON s.id = g.segment_id
"""

MEMBER_COUNT = """
SELECT count(*) FROM memberships
WHERE segment_id = %s AND (expires_at IS NULL OR expires_at > %s)
"""


# Rows become ActiveSegments through plain tuples and a dict lookup of the reason: the
# batch read converts 800 rows a call, where keyword row factories, Enum calls and
# iterating the cursor row by row were most of its CPU.
_REASONS = {reason.value: reason for reason in Reason}


def active_for_user(conn: Connection, user_id: int, now: datetime) -> list[ActiveSegment]:
    """The hot read: the user's active segments sorted by slug (one index range scan)."""
    rows = conn.execute(ACTIVE_FOR_USER, (user_id, now)).fetchall()
    return [
        ActiveSegment(slug, added, expires, _REASONS[reason])
        for slug, added, expires, reason in rows
    ]


def active_for_users(
    conn: Connection, user_ids: Sequence[int], now: datetime
) -> dict[int, list[ActiveSegment]]:
    """Active segments of many users in one query; users without any are absent."""
    result: dict[int, list[ActiveSegment]] = {}
    rows = conn.execute(ACTIVE_FOR_USERS, (list(user_ids), now)).fetchall()
    for user_id, slug, added, expires, reason in rows:
        segment = ActiveSegment(slug, added, expires, _REASONS[reason])
        if (segments := result.get(user_id)) is None:
            result[user_id] = [segment]
        else:
            segments.append(segment)
    return result


def current_expiries(conn: Connection, user_id: int, now: datetime) -> dict[int, datetime | None]:
    """Active memberships of a (locked) user: segment id -> expiry."""
    rows = conn.execute(
        "SELECT segment_id, expires_at FROM memberships"
        " WHERE user_id = %s AND (expires_at IS NULL OR expires_at > %s)",
        (user_id, now),
    ).fetchall()
    return {int(r[0]): r[1] for r in rows}


def purge_expired_for_user(conn: Connection, user_id: int, now: datetime) -> int:
    """Move the user's expired rows to history (at their expiry time) before a change,
    so a re-add after expiry starts a fresh membership instead of hitting a stale row."""
    cur = conn.execute(
        """
        WITH gone AS (
            DELETE FROM memberships
            WHERE user_id = %(user_id)s AND expires_at <= %(now)s
            RETURNING user_id, segment_id, expires_at
        )
        INSERT INTO membership_history
            (user_id, segment_id, slug, operation, reason, at, account_id)
        SELECT g.user_id, g.segment_id, s.slug, 'remove', 'expired', g.expires_at, NULL
        FROM gone g JOIN segments s ON s.id = g.segment_id
        """,
        {"user_id": user_id, "now": now},
    )
    return cur.rowcount


def add(
    conn: Connection,
    user_id: int,
    expiries: Mapping[int, datetime | None],
    now: datetime,
    account_id: int | None,
) -> None:
    """Insert new memberships (segment id -> expiry) with their 'add' history rows."""
    conn.execute(
        """
        WITH added AS (
            INSERT INTO memberships (user_id, segment_id, added_at, expires_at, reason)
            SELECT %(user_id)s, a.segment_id, %(now)s, a.expires_at, 'manual'
            FROM unnest(%(segment_ids)s::bigint[], %(expiries)s::timestamptz[])
                AS a (segment_id, expires_at)
            RETURNING user_id, segment_id, expires_at
        )
        INSERT INTO membership_history
            (user_id, segment_id, slug, operation, reason, at, expires_at, account_id)
        SELECT a.user_id, a.segment_id, s.slug, 'add', 'manual', %(now)s, a.expires_at,
               %(account_id)s
        FROM added a JOIN segments s ON s.id = a.segment_id
        """,
        {
            "user_id": user_id,
            "segment_ids": list(expiries),
            "expiries": list(expiries.values()),
            "now": now,
            "account_id": account_id,
        },
    )


def change_expiry(
    conn: Connection,
    user_id: int,
    expiries: Mapping[int, datetime | None],
    now: datetime,
    account_id: int | None,
) -> None:
    """Replace the expiry of active memberships, recording 'update' history rows."""
    conn.execute(
        """
        WITH changed AS (
            UPDATE memberships m SET expires_at = c.expires_at
            FROM unnest(%(segment_ids)s::bigint[], %(expiries)s::timestamptz[])
                AS c (segment_id, expires_at)
            WHERE m.user_id = %(user_id)s AND m.segment_id = c.segment_id
            RETURNING m.user_id, m.segment_id, m.expires_at, m.reason
        )
        INSERT INTO membership_history
            (user_id, segment_id, slug, operation, reason, at, expires_at, account_id)
        SELECT c.user_id, c.segment_id, s.slug, 'update', c.reason, %(now)s, c.expires_at,
               %(account_id)s
        FROM changed c JOIN segments s ON s.id = c.segment_id
        """,
        {
            "user_id": user_id,
            "segment_ids": list(expiries),
            "expiries": list(expiries.values()),
            "now": now,
            "account_id": account_id,
        },
    )


def remove(
    conn: Connection,
    user_id: int,
    segment_ids: Sequence[int],
    now: datetime,
    account_id: int | None,
) -> None:
    """Delete memberships explicitly, recording 'remove' history rows (reason manual)."""
    conn.execute(
        """
        WITH gone AS (
            DELETE FROM memberships
            WHERE user_id = %(user_id)s AND segment_id = ANY(%(segment_ids)s)
            RETURNING user_id, segment_id
        )
        INSERT INTO membership_history
            (user_id, segment_id, slug, operation, reason, at, account_id)
        SELECT g.user_id, g.segment_id, s.slug, 'remove', 'manual', %(now)s, %(account_id)s
        FROM gone g JOIN segments s ON s.id = g.segment_id
        """,
        {
            "user_id": user_id,
            "segment_ids": list(segment_ids),
            "now": now,
            "account_id": account_id,
        },
    )


def remove_all_in_segment(
    conn: Connection, segment_id: int, now: datetime, account_id: int | None
) -> int:
    """End every membership of a segment being deleted; return how many were active.

    Rows already past their expiry are recorded as expired at their expiry time; the
    rest as removed because the segment was deleted, now.
    """
    row = conn.execute(
        """
        WITH gone AS (
            DELETE FROM memberships WHERE segment_id = %(segment_id)s
            RETURNING user_id, segment_id, expires_at,
                      (expires_at IS NOT NULL AND expires_at <= %(now)s) AS expired
        ),
        recorded AS (
            INSERT INTO membership_history
                (user_id, segment_id, slug, operation, reason, at, account_id)
            SELECT g.user_id, g.segment_id, s.slug, 'remove',
                   CASE WHEN g.expired THEN 'expired' ELSE 'segment_deleted' END,
                   CASE WHEN g.expired THEN g.expires_at ELSE %(now)s END,
                   CASE WHEN g.expired THEN NULL ELSE %(account_id)s::bigint END
            FROM gone g JOIN segments s ON s.id = g.segment_id
        )
        SELECT count(*) FILTER (WHERE NOT expired) FROM gone
        """,
        {"segment_id": segment_id, "now": now, "account_id": account_id},
    ).fetchone()
    assert row is not None
    return int(row[0])


def sweep_expired(conn: Connection, now: datetime, batch: int) -> int:
    """Move up to `batch` expired memberships to history; safe on many replicas at once.

    SKIP LOCKED lets concurrent sweepers (and user updates purging the same rows) each
    take different rows; a row is deleted, and its removal recorded, exactly once.
    """
    cur = conn.execute(SWEEP_EXPIRED, {"now": now, "batch": batch})
    return cur.rowcount


def member_count(conn: Connection, segment_id: int, now: datetime) -> int:
    """Active members of a segment (index-only scan on memberships_segment_idx)."""
    row = conn.execute(MEMBER_COUNT, (segment_id, now)).fetchone()
    assert row is not None
    return int(row[0])


def stream_members(
    conn: Connection, segment_id: int, now: datetime, chunk_size: int
) -> Iterator[list[int]]:
    """Active member ids of a segment, ascending, in chunks, through a server-side cursor
    so that a segment of millions never sits in memory at once. Needs a transaction."""
    with conn.cursor(name="segment_members") as cur:
        cur.itersize = chunk_size
        cur.execute(
            "SELECT user_id FROM memberships"
            " WHERE segment_id = %s AND (expires_at IS NULL OR expires_at > %s)"
            " ORDER BY user_id",
            (segment_id, now),
        )
        while rows := cur.fetchmany(chunk_size):
            yield [int(r[0]) for r in rows]
