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
from typing import LiteralString

import psycopg.errors
from psycopg import sql

from segsvc.domain.rollout import bucket
from segsvc.store.database import Connection
from segsvc.store.membership_changes import Rollout

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


# Enough for the sort of a million ids (and the enrolment's joins) in memory: at the
# default 4 MB they spill to disk, which doubled the import's time. JIT compilation of
# these statements cost more than it saved.
IMPORT_SETTINGS = {"work_mem": "256MB", "jit": "off"}
# The copied rows: each id once with segment_id NULL, and once more per rollout segment
# whose bucket selects it (decided in Python while the ids stream in, which costs a
# fraction of the same SHA-256 in SQL).
IMPORT_ROWS = "import_user_ids"


def copy_import(
    conn: Connection, chunks: Iterable[Sequence[int]], rollouts: Sequence[Rollout]
) -> int:
    """Stream ids into a temporary table through COPY, each with the `rollouts` that
    would enrol it (domain.rollout.bucket); return how many ids were received.

    Ids arrive as the chunks do, so a million ids never sit in one Python list.
    """
    for name, value in IMPORT_SETTINGS.items():
        conn.execute("SELECT set_config(%s, %s, true)", (name, value))
    conn.execute(
        "CREATE TEMP TABLE import_user_ids (user_id bigint NOT NULL, segment_id bigint)"
        " ON COMMIT DROP"
    )
    received = 0
    with conn.cursor().copy("COPY import_user_ids (user_id, segment_id) FROM STDIN") as copy:
        for chunk in chunks:
            if chunk:
                copy.write(_rows(chunk, rollouts))
                received += len(chunk)
    conn.execute("ANALYZE import_user_ids")  # temporary tables get no statistics otherwise
    return received


def _rows(chunk: Sequence[int], rollouts: Sequence[Rollout]) -> str:
    if not rollouts:
        return "\t\\N\n".join(map(str, chunk)) + "\t\\N\n"
    lines = []
    for user_id in chunk:
        lines.append(f"{user_id}\t\\N\n")
        lines.extend(
            f"{user_id}\t{r.id}\n" for r in rollouts if bucket(r.salt, user_id) < r.basis_points
        )
    return "".join(lines)


def insert_imported(conn: Connection, created_at: datetime) -> int:
    """Register the copied ids not seen before, remembering them in IMPORTED; return
    how many were created.

    The ids already registered are left out by an anti-join, so that the insert is a
    plain one (ON CONFLICT checks every row a second time, doubling the cost); if a
    concurrent registration of one of the ids commits meanwhile, the plain insert
    fails and the statement is run again with ON CONFLICT DO NOTHING.
    """
    table = sql.Identifier(IMPORTED)
    conn.execute(
        sql.SQL("CREATE TEMP TABLE {} (user_id bigint NOT NULL) ON COMMIT DROP").format(table)
    )
    try:
        with conn.transaction():
            cur = conn.execute(sql.SQL(_INSERT_IMPORTED).format(table, sql.SQL("")), (created_at,))
    except psycopg.errors.UniqueViolation:
        cur = conn.execute(
            sql.SQL(_INSERT_IMPORTED).format(table, sql.SQL("ON CONFLICT (user_id) DO NOTHING")),
            (created_at,),
        )
    conn.execute(sql.SQL("ANALYZE {}").format(table))
    return cur.rowcount


# In ascending id order (lock order 2 of store.membership_changes).
_INSERT_IMPORTED: LiteralString = """
WITH created AS (
    INSERT INTO users (user_id, created_at)
    SELECT DISTINCT i.user_id, %s::timestamptz FROM import_user_ids i
    WHERE i.segment_id IS NULL
      AND NOT EXISTS (SELECT FROM users u WHERE u.user_id = i.user_id)
    ORDER BY i.user_id
    {1}
    RETURNING user_id
)
INSERT INTO {0} (user_id) SELECT user_id FROM created
"""


def lock(conn: Connection, user_id: int) -> bool:
    """Serialise concurrent membership changes of one user until the transaction ends.

    Returns False when the user is not registered (nothing to lock). FOR NO KEY UPDATE
    conflicts with itself but not with the foreign-key checks of membership inserts, so
    it orders writers of the same user and nothing else.
    """
    row = conn.execute("SELECT 1 FROM users WHERE user_id = %s FOR NO KEY UPDATE", (user_id,))
    return row.fetchone() is not None
