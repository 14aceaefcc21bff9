"""SQL for end users: registration, with rollout enrolment in the same statement.

Registration is the only moment a rollout looks at an existing segment for a user:
whatever the user's later history (an explicit removal, say), the rollout never touches
them again. New users are enrolled in every live rollout segment whose hash bucket
selects them, set-based, and each enrolment is written to history.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from psycopg import sql

from segsvc.store.database import Connection

# {source} yields the candidate ids (column user_id); rows already present are skipped.
_REGISTER = """
WITH candidates AS ({source}),
created AS (
    INSERT INTO users (user_id, created_at)
    SELECT user_id, %(now)s FROM candidates
    ON CONFLICT (user_id) DO NOTHING
    RETURNING user_id
),
rollouts AS (
    SELECT id, slug, rollout_salt, rollout_bp FROM segments
    WHERE deleted_at IS NULL AND rollout_bp IS NOT NULL
    FOR KEY SHARE
),
enrolled AS (
    INSERT INTO memberships (user_id, segment_id, added_at, expires_at, reason)
    SELECT c.user_id, r.id, %(now)s, NULL, 'rollout'
    FROM created c CROSS JOIN rollouts r
    WHERE segsvc_rollout_bucket(r.rollout_salt, c.user_id) < r.rollout_bp
    RETURNING user_id, segment_id
),
recorded AS (
    INSERT INTO membership_history (user_id, segment_id, slug, operation, reason, at, account_id)
    SELECT e.user_id, e.segment_id, r.slug, 'add', 'rollout', %(now)s, %(account_id)s
    FROM enrolled e JOIN rollouts r ON r.id = e.segment_id
)
SELECT (SELECT count(*) FROM created), (SELECT count(*) FROM enrolled)
"""


def _register(
    conn: Connection, source: sql.Composable, params: dict[str, object]
) -> tuple[int, int]:
    # Taken in its own statement so that the registering statement's snapshot starts
    # after any concurrent rollout creation (which holds SHARE on users) has committed:
    # then either that segment sees our users or we see that segment, never neither.
    conn.execute("LOCK TABLE users IN ROW EXCLUSIVE MODE")
    query = sql.SQL(_REGISTER).format(source=source)
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def register(
    conn: Connection, user_ids: Sequence[int], now: datetime, account_id: int | None
) -> tuple[int, int]:
    """Register ids not seen before; return (users created, rollout memberships made)."""
    return _register(
        conn,
        sql.SQL("SELECT DISTINCT unnest(%(user_ids)s::bigint[]) AS user_id"),
        {"user_ids": list(user_ids), "now": now, "account_id": account_id},
    )


def import_chunks(
    conn: Connection, chunks: Iterable[Sequence[int]], now: datetime, account_id: int | None
) -> tuple[int, int, int]:
    """Bulk registration through COPY; return (ids received, created, rollout memberships).

    Ids stream into a temporary table as the chunks arrive (so a million ids never sit
    in one Python list), then one set-based statement registers and enrols them.
    """
    conn.execute("CREATE TEMP TABLE import_user_ids (user_id bigint NOT NULL) ON COMMIT DROP")
    received = 0
    with conn.cursor().copy("COPY import_user_ids (user_id) FROM STDIN") as copy:
        for chunk in chunks:
            if chunk:
                copy.write("\n".join(map(str, chunk)) + "\n")
                received += len(chunk)
    created, enrolled = _register(
        conn,
        sql.SQL("SELECT DISTINCT user_id FROM import_user_ids"),
        {"now": now, "account_id": account_id},
    )
    return received, created, enrolled


def lock(conn: Connection, user_id: int) -> bool:
    """Serialise concurrent membership changes of one user until the transaction ends.

    Returns False when the user is not registered (nothing to lock). FOR NO KEY UPDATE
    conflicts with itself but not with the foreign-key checks of membership inserts, so
    it orders writers of the same user and nothing else.
    """
    row = conn.execute("SELECT 1 FROM users WHERE user_id = %s FOR NO KEY UPDATE", (user_id,))
    return row.fetchone() is not None
