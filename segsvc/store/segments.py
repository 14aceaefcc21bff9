"""SQL for segments: creation (with rollout enrolment), lookup, listing, deletion.

Segments are soft-deleted: the row stays (history and audits keep their meaning) and
the slug is free again, enforced by a unique index over live segments only.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import LiteralString

import psycopg.errors
from psycopg import sql
from psycopg.rows import class_row

from segsvc.domain.errors import AlreadyExists
from segsvc.domain.models import Segment
from segsvc.store.database import Connection

# The one list of a segment's columns, named as the Segment fields they fill.
SEGMENT_COLUMNS = sql.SQL(
    "id, slug, description, rollout_bp AS rollout_basis_points, rollout_salt, created_at"
)
_SEGMENT_ROW = class_row(Segment)


def _with_columns(query: LiteralString) -> sql.Composed:
    return sql.SQL(query).format(columns=SEGMENT_COLUMNS)


def create(
    conn: Connection,
    slug: str,
    description: str,
    rollout_bp: int | None,
    rollout_salt: str | None,
    now: datetime,
    account_id: int | None,
) -> Segment:
    """Insert a live segment; AlreadyExists when a live one has the slug."""
    try:
        row = (
            conn.cursor(row_factory=_SEGMENT_ROW)
            .execute(
                _with_columns(
                    "INSERT INTO segments"
                    " (slug, description, rollout_bp, rollout_salt, created_at, created_by)"
                    " VALUES (%s, %s, %s, %s, %s, %s) RETURNING {columns}"
                ),
                (slug, description, rollout_bp, rollout_salt, now, account_id),
            )
            .fetchone()
        )
    except psycopg.errors.UniqueViolation:
        raise AlreadyExists("segment", slug) from None
    assert row is not None
    return row


def freeze_registrations(conn: Connection) -> None:
    """Block user registration until this transaction ends (and wait for running ones).

    A rollout enrols all users known when it is created and every user registered
    later; holding SHARE on users while the segment is created closes the gap in which
    a user registered concurrently could be seen by neither side.
    """
    conn.execute("LOCK TABLE users IN SHARE MODE")


def enroll_all_users(
    conn: Connection, segment: Segment, now: datetime, account_id: int | None
) -> int:
    """Enrol every registered user the rollout selects, with history; one statement."""
    cur = conn.execute(
        """
        WITH enrolled AS (
            INSERT INTO memberships (user_id, segment_id, added_at, expires_at, reason)
            SELECT u.user_id, %(segment_id)s, %(now)s, NULL, 'rollout' FROM users u
            WHERE segsvc_rollout_bucket(%(salt)s, u.user_id) < %(bp)s
            RETURNING user_id
        )
        INSERT INTO membership_history
            (user_id, segment_id, slug, operation, reason, at, account_id)
        SELECT user_id, %(segment_id)s, %(slug)s, 'add', 'rollout', %(now)s, %(account_id)s
        FROM enrolled
        """,
        {
            "segment_id": segment.id,
            "slug": segment.slug,
            "salt": segment.rollout_salt,
            "bp": segment.rollout_basis_points,
            "now": now,
            "account_id": account_id,
        },
    )
    return cur.rowcount


def count_rollout(conn: Connection, salt: str, basis_points: int) -> int:
    """How many registered users a rollout with this salt and share would enrol."""
    row = conn.execute(
        "SELECT count(*) FROM users WHERE segsvc_rollout_bucket(%s, user_id) < %s",
        (salt, basis_points),
    ).fetchone()
    assert row is not None
    return int(row[0])


def get_live(conn: Connection, slug: str) -> Segment | None:
    """The live segment with this slug, or None."""
    cur = conn.cursor(row_factory=_SEGMENT_ROW)
    return cur.execute(
        _with_columns("SELECT {columns} FROM segments WHERE slug = %s AND deleted_at IS NULL"),
        (slug,),
    ).fetchone()


def lock_live(conn: Connection, slugs: Sequence[str]) -> dict[str, int]:
    """Ids of the live segments among `slugs`, locked FOR KEY SHARE until commit.

    The lock makes a concurrent DeleteSegment (which takes FOR UPDATE) wait for this
    transaction, or this one see the deletion: no membership can be added to a segment
    that is being deleted. Key-share locks do not conflict with each other, so writers
    of different users never wait for one another here.
    """
    rows = conn.execute(
        "SELECT slug, id FROM segments WHERE slug = ANY(%s) AND deleted_at IS NULL"
        " ORDER BY id FOR KEY SHARE",
        (list(slugs),),
    ).fetchall()
    return {str(r[0]): int(r[1]) for r in rows}


def lock_for_delete(conn: Connection, slug: str) -> Segment | None:
    """The live segment with this slug, locked against concurrent membership writes."""
    cur = conn.cursor(row_factory=_SEGMENT_ROW)
    return cur.execute(
        _with_columns(
            "SELECT {columns} FROM segments WHERE slug = %s AND deleted_at IS NULL FOR UPDATE"
        ),
        (slug,),
    ).fetchone()


def mark_deleted(conn: Connection, segment_id: int, now: datetime) -> None:
    """Soft-delete: the row stays for history, the slug becomes free."""
    conn.execute("UPDATE segments SET deleted_at = %s WHERE id = %s", (now, segment_id))


def list_live(conn: Connection, after_slug: str, limit: int) -> list[Segment]:
    """Live segments with slug > after_slug, ascending (keyset pagination)."""
    cur = conn.cursor(row_factory=_SEGMENT_ROW)
    return cur.execute(
        _with_columns(
            "SELECT {columns} FROM segments"
            " WHERE deleted_at IS NULL AND slug > %s ORDER BY slug LIMIT %s"
        ),
        (after_slug, limit),
    ).fetchall()
