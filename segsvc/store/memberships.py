"""SQL that reads memberships: who is in which segment now.

Changes go through store/membership_changes.py, the one write path. A row whose
`expires_at` has passed is treated as absent by every read here, whether or not the
sweeper has moved it out yet; the sweeper records such removals at the expiry time.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from segsvc.domain.models import ActiveSegment, Reason
from segsvc.store.database import AsyncConnection, Connection

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

MEMBER_COUNT = """
SELECT count(*) FROM memberships
WHERE segment_id = %s AND (expires_at IS NULL OR expires_at > %s)
"""


# Rows become ActiveSegments through plain tuples and a dict lookup of the reason: the
# batch read converts 800 rows a call, where keyword row factories, Enum calls and
# iterating the cursor row by row were most of its CPU.
_REASONS = {reason.value: reason for reason in Reason}


def active_for_user(conn: Connection, user_id: int, now: datetime) -> list[ActiveSegment]:
    """The user's active segments sorted by slug (one index range scan), inside a write."""
    return _segments(conn.execute(ACTIVE_FOR_USER, (user_id, now)).fetchall())


async def read_active_for_user(
    conn: AsyncConnection, user_id: int, now: datetime
) -> list[ActiveSegment]:
    """The hot read, on the event loop: `active_for_user` over the read pool."""
    cursor = await conn.execute(ACTIVE_FOR_USER, (user_id, now))
    return _segments(await cursor.fetchall())


async def read_active_for_users(
    conn: AsyncConnection, user_ids: Sequence[int], now: datetime
) -> dict[int, list[ActiveSegment]]:
    """Active segments of many users in one query (users without any are absent): the
    batch read, on the event loop, over the read pool."""
    cursor = await conn.execute(ACTIVE_FOR_USERS, (list(user_ids), now))
    return _by_user(await cursor.fetchall())


def _segments(rows: Sequence[tuple[Any, ...]]) -> list[ActiveSegment]:
    return [
        ActiveSegment(slug, added, expires, _REASONS[reason])
        for slug, added, expires, reason in rows
    ]


def _by_user(rows: Sequence[tuple[Any, ...]]) -> dict[int, list[ActiveSegment]]:
    result: dict[int, list[ActiveSegment]] = {}
    for user_id, slug, added, expires, reason in rows:
        segment = ActiveSegment(slug, added, expires, _REASONS[reason])
        if (segments := result.get(user_id)) is None:
            result[user_id] = [segment]
        else:
            segments.append(segment)
    return result


def held_expiries(conn: Connection, user_id: int) -> dict[int, datetime | None]:
    """Every membership row of a (locked) user, expired ones included: segment id ->
    expiry. One read tells both what is active and whether expired rows need a purge."""
    rows = conn.execute(
        "SELECT segment_id, expires_at FROM memberships WHERE user_id = %s", (user_id,)
    ).fetchall()
    return {int(r[0]): r[1] for r in rows}


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
