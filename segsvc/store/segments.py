"""SQL for segments: creation, lookup, listing, the locks writers take, deletion.

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
from segsvc.store.membership_changes import Rollout

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

    A rollout enrols the users it sees without this lock, then takes it to enrol those
    registered meanwhile (store.membership_changes, lock order 1): held for that short
    catch-up only, not for the whole enrolment.
    """
    conn.execute("LOCK TABLE users IN SHARE MODE")


def registrations_horizon(conn: Connection) -> str:
    """The oldest transaction still running now (32-bit id, as text): every user row a
    statement started after this call cannot see was inserted by it or a younger one."""
    row = conn.execute(
        "SELECT mod(pg_snapshot_xmin(pg_current_snapshot())::text::bigint, 4294967296)::text"
    ).fetchone()
    assert row is not None
    return str(row[0])


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


def live_rollouts(conn: Connection) -> list[Rollout]:
    """Every live rollout segment, unlocked: what an import decides its new users'
    enrolment for while their ids stream in; `lock_rollouts` later says which of those
    decisions still apply (store.users.copy_import)."""
    rows = conn.execute(
        "SELECT id, rollout_salt, rollout_bp FROM segments"
        " WHERE deleted_at IS NULL AND rollout_bp IS NOT NULL ORDER BY id"
    ).fetchall()
    return [Rollout(int(r[0]), str(r[1]), int(r[2])) for r in rows]


def lock_rollouts(conn: Connection) -> list[Rollout]:
    """Every live rollout segment, locked FOR KEY SHARE until commit (for registration).

    Like `lock_live`: a DeleteSegment of one of them waits for the registration, or the
    registration sees it deleted; never a new member in a segment being deleted.
    """
    rows = conn.execute(
        "SELECT id, rollout_salt, rollout_bp FROM segments"
        " WHERE deleted_at IS NULL AND rollout_bp IS NOT NULL ORDER BY id FOR KEY SHARE"
    ).fetchall()
    return [Rollout(int(r[0]), str(r[1]), int(r[2])) for r in rows]


def wait_for_slug(conn: Connection, slug: str) -> bool:
    """Before creating `slug`: wait for a DeleteSegment of it that is running, and say
    whether a live segment still holds it.

    FOR KEY SHARE conflicts with the deletion's FOR UPDATE, so a create that meets a
    deletion in progress waits for it here, before its clock is read, and is dated
    after it; otherwise its INSERT would wait on the unique index with an older "now"
    and the re-created segment's history would start before the old one's ended.
    """
    row = conn.execute(
        "SELECT 1 FROM segments WHERE slug = %s AND deleted_at IS NULL FOR KEY SHARE", (slug,)
    ).fetchone()
    return row is not None


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
