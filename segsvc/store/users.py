"""SQL for end users: registration, bulk import, and the per-user lock.

Registration only inserts `users` rows (in ascending id order, so overlapping imports
wait for each other instead of deadlocking); enrolling the new users in live rollouts
is a membership change and goes through store/membership_changes.py. Registration is
the only moment a rollout looks at an existing segment for a user: whatever the user's
later history (an explicit removal, say), the rollout never touches them again.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from psycopg import sql

from segsvc.store.database import Connection

# The ids an import actually created, for the enrolment that follows (ON COMMIT DROP).
IMPORTED = "import_created"


def insert_new(conn: Connection, user_ids: Sequence[int], created_at: datetime) -> list[int]:
    """Insert the ids not registered yet; return those this call created."""
    rows = conn.execute(
        "INSERT INTO users (user_id, created_at)"
        " SELECT DISTINCT unnest(%s::bigint[]), %s::timestamptz ORDER BY 1"
        " ON CONFLICT (user_id) DO NOTHING RETURNING user_id",
        (list(user_ids), created_at),
    ).fetchall()
    return sorted(int(r[0]) for r in rows)


def copy_import(conn: Connection, chunks: Iterable[Sequence[int]]) -> int:
    """Stream ids into a temporary table through COPY; return how many were received.

    Ids arrive as the chunks do, so a million ids never sit in one Python list.
    """
    conn.execute("CREATE TEMP TABLE import_user_ids (user_id bigint NOT NULL) ON COMMIT DROP")
    received = 0
    with conn.cursor().copy("COPY import_user_ids (user_id) FROM STDIN") as copy:
        for chunk in chunks:
            if chunk:
                copy.write("\n".join(map(str, chunk)) + "\n")
                received += len(chunk)
    return received


def insert_imported(conn: Connection, created_at: datetime) -> int:
    """Register the copied ids not seen before, remembering them in IMPORTED; return
    how many were created."""
    table = sql.Identifier(IMPORTED)
    conn.execute(
        sql.SQL("CREATE TEMP TABLE {} (user_id bigint NOT NULL) ON COMMIT DROP").format(table)
    )
    query = sql.SQL(
        """
        WITH created AS (
            INSERT INTO users (user_id, created_at)
            SELECT DISTINCT user_id, %s::timestamptz FROM import_user_ids ORDER BY user_id
            ON CONFLICT (user_id) DO NOTHING
            RETURNING user_id
        )
        INSERT INTO {} (user_id) SELECT user_id FROM created
        """
    ).format(table)
    cur = conn.execute(query, (created_at,))
    return cur.rowcount


def lock(conn: Connection, user_id: int) -> bool:
    """Serialise concurrent membership changes of one user until the transaction ends.

    Returns False when the user is not registered (nothing to lock). FOR NO KEY UPDATE
    conflicts with itself but not with the foreign-key checks of membership inserts, so
    it orders writers of the same user and nothing else.
    """
    row = conn.execute("SELECT 1 FROM users WHERE user_id = %s FOR NO KEY UPDATE", (user_id,))
    return row.fetchone() is not None
