"""SQL for end users: registration, bulk import, and the per-user lock.

Registration only inserts `users` rows (in ascending id order, so overlapping imports
wait for each other instead of deadlocking); enrolling the new users in live rollouts
is a membership change and goes through store/membership_changes.py. Registration is
the only moment a rollout looks at an existing segment for a user: whatever the user's
later history (an explicit removal, say), the rollout never touches them again.

An import (`copy_import`, `insert_imported`) copies its ids into a temporary table as
they stream in, then registers them with one INSERT ... SELECT: a plain one when no
registered id lies in their range, else one that leaves the known ids out. Which new
users each live rollout enrols is decided in Python (SHA-256 there costs a fraction of
the same hash in SQL), on a second thread while PostgreSQL inserts the users, and
copied beside the ids for the enrolment statement.
"""

from __future__ import annotations

import hashlib
import mmap
import struct
from array import array
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import LiteralString

import psycopg.errors
from psycopg import sql

from segsvc.domain.rollout import BUCKETS
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
# these statements cost more than it saved. The statistics target applies to the
# ANALYZE of the import's temporary tables only: a tenth of the default sample reads
# half the blocks of a million ids and still puts the enrolment rows within a few
# percent, all the plans need.
IMPORT_SETTINGS = {"work_mem": "256MB", "jit": "off", "default_statistics_target": "10"}
# The copied rows: each id once with segment_id NULL, and once more per rollout segment
# whose bucket selects it (decided in Python, which costs a fraction of the same SHA-256
# in SQL).
IMPORT_ROWS = "import_user_ids"
# Ids whose rollout enrolment is decided while `users` rows are inserted rather than
# while they stream in: the SHA-256 of each id (half of the stream's Python time) then
# runs on a second core beside PostgreSQL's insert instead of before it. They are held
# as 8-byte integers until then (16 MB at most); the ids of a larger import beyond
# these are decided as they stream in.
HELD_IDS_LIMIT = 2_000_000


class HeldIds:
    """Ids held for a later rollout decision, in an anonymous memory map of their own:
    closing it gives the memory back to the system at once, where 8 MB of arrays freed
    into the heap stayed in the worker's RSS after the import."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._map: mmap.mmap | None = None
        self._ids: memoryview | None = None
        self._bounds: list[tuple[int, int]] = []
        self._count = 0

    def add(self, chunk: Sequence[int]) -> bool:
        """Hold `chunk`; False (nothing held) when it would pass the limit."""
        end = self._count + len(chunk)
        if end > self.limit:
            return False
        if self._ids is None:
            # Address space only: pages become resident as ids are written.
            self._map = mmap.mmap(-1, max(self.limit, 1) * 8)
            self._ids = memoryview(self._map).cast("q")
        self._ids[self._count : end] = array("q", chunk)
        self._bounds.append((self._count, end))
        self._count = end
        return True

    def chunks(self) -> Iterator[memoryview]:
        """The held chunks, as they arrived."""
        if self._ids is None:
            return
        for start, end in self._bounds:
            with self._ids[start:end] as chunk:
                yield chunk

    def __bool__(self) -> bool:
        return self._count > 0

    def release(self) -> None:
        """Give the memory back; nothing is held afterwards."""
        if self._ids is not None:
            self._ids.release()
            self._ids = None
        if self._map is not None:
            self._map.close()
            self._map = None
        self._bounds, self._count = [], 0


@dataclass(frozen=True)
class Copied:
    """What `copy_import` received: how many ids, the smallest and largest, and the
    ids whose rollout enrolment is still to be decided (`insert_imported` does; the
    caller releases them once the import is over)."""

    received: int
    lowest: int = 0
    highest: int = 0
    held: HeldIds = field(default_factory=lambda: HeldIds(0))

    def release(self) -> None:
        """Give back the memory of the held ids."""
        self.held.release()


@dataclass(frozen=True)
class Created:
    """What `insert_imported` registered: how many ids, the table holding them (None
    when they are exactly the copied ids, IMPORT_ROWS with segment_id NULL), and
    whether no id was copied twice (so no copied row is there twice either)."""

    count: int
    table: str | None
    once_each: bool = False


def copy_import(
    conn: Connection, chunks: Iterable[Sequence[int]], rollouts: Sequence[Rollout]
) -> Copied:
    """Stream ids into a temporary table through COPY; return how many were received,
    their range, and the ids (up to HELD_IDS_LIMIT) whose enrolment in `rollouts` is
    left to `insert_imported`. The enrolment of any further id is copied as it
    arrives: one more row per rollout that would enrol it (domain.rollout.bucket).
    """
    for name, value in IMPORT_SETTINGS.items():
        conn.execute("SELECT set_config(%s, %s, true)", (name, value))
    conn.execute(
        "CREATE TEMP TABLE import_user_ids (user_id bigint NOT NULL, segment_id bigint)"
        " ON COMMIT DROP"
    )
    received = 0
    lowest = highest = 0
    held = HeldIds(HELD_IDS_LIMIT if rollouts else 0)
    try:
        with conn.cursor().copy("COPY import_user_ids (user_id, segment_id) FROM STDIN") as copy:
            for chunk in chunks:
                if not chunk:
                    continue
                copy.write("\t\\N\n".join(map(str, chunk)) + "\t\\N\n")
                if not held.add(chunk):
                    for part in _enrolment_rows(chunk, rollouts):
                        copy.write(part)
                low, high = min(chunk), max(chunk)
                lowest = low if not received else min(lowest, low)
                highest = max(highest, high)
                received += len(chunk)
    except BaseException:
        held.release()
        raise
    return Copied(received, lowest, highest, held)


def _enrolment_rows(chunk: Sequence[int], rollouts: Sequence[Rollout]) -> Iterator[str]:
    """COPY text of the (id, rollout segment) rows: the ids each rollout selects."""
    for rollout in rollouts:
        if selected := _selected(chunk, rollout):
            line_end = f"\t{rollout.id}\n"
            yield line_end.join(map(str, selected)) + line_end


def _held_enrolment_rows(held: HeldIds, rollouts: Sequence[Rollout]) -> list[str]:
    return [part for chunk in held.chunks() for part in _enrolment_rows(chunk, rollouts)]


def _selected(chunk: Sequence[int], rollout: Rollout) -> list[int]:
    """The ids of `chunk` that `rollout` enrols: domain.rollout.bucket(salt, id) <
    basis_points, unrolled for a million ids (the salt's hash state is copied instead
    of rehashed, the first 8 bytes read with one unpack), which halves its cost; a
    test checks both agree."""
    salted = hashlib.sha256(f"{rollout.salt}:".encode())
    first_8_bytes = _BIG_ENDIAN_U64.unpack_from
    basis_points = rollout.basis_points
    selected = []
    for user_id in chunk:
        digest = salted.copy()
        digest.update(str(user_id).encode())
        if (first_8_bytes(digest.digest())[0] >> 4) % BUCKETS < basis_points:
            selected.append(user_id)
    return selected


_BIG_ENDIAN_U64 = struct.Struct(">Q")


def insert_imported(
    conn: Connection, created_at: datetime, copied: Copied, rollouts: Sequence[Rollout]
) -> Created:
    """Register the copied ids not seen before and copy the enrolment rows of the held
    ids in `rollouts` (decided on another thread meanwhile); return how many ids were
    created and where they are listed.

    When no registered id lies between the smallest and the largest copied id (one
    index probe), every copied id is new: they are inserted plainly, and the copied
    rows themselves say which ids were created. Otherwise (or if a concurrent
    registration of one of the ids commits meanwhile, failing the plain insert), the
    ids already registered are left out by an anti-join and the created ones are
    remembered in IMPORTED; if a concurrent registration still gets in between, the
    statement is run again with ON CONFLICT DO NOTHING (ON CONFLICT checks every row a
    second time, doubling the cost, so it is never the first choice).
    """
    if copied.held and rollouts:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="import-enrolment") as thread:
            # Pure Python on the ids, run while this thread waits for PostgreSQL (psycopg
            # releases the GIL while it waits).
            decided = thread.submit(_held_enrolment_rows, copied.held, rollouts)
            created = _insert(conn, created_at, copied)
            enrolment_rows = decided.result()
    else:
        created, enrolment_rows = _insert(conn, created_at, copied), []
    if enrolment_rows:
        with conn.cursor().copy("COPY import_user_ids (user_id, segment_id) FROM STDIN") as copy:
            for part in enrolment_rows:
                copy.write(part)
    # Temporary tables get no statistics otherwise: without them the enrolment's plan
    # expects one row where there are 100 000 (of both columns: ANALYZE of segment_id
    # alone left DISTINCT on the pair at a guess of 200 rows).
    conn.execute("ANALYZE import_user_ids")
    return created


def _insert(conn: Connection, created_at: datetime, copied: Copied) -> Created:
    if not copied.received:
        return Created(0, None)
    known = conn.execute(_ANY_REGISTERED_BETWEEN, (copied.lowest, copied.highest)).fetchone()
    if known is not None and not known[0]:
        try:
            with conn.transaction():
                count = conn.execute(_INSERT_ALL_NEW, (created_at,)).rowcount
                return Created(count, None, once_each=count == copied.received)
        except psycopg.errors.UniqueViolation:
            pass
    conn.execute("ANALYZE import_user_ids")  # for the anti-join's plan
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
    return Created(cur.rowcount, IMPORTED)


def list_created(conn: Connection, created: Created) -> str:
    """The name of a table with one row per created id (column user_id), made from the
    copied ids when `created` says they all were (rare: for a rollout created while
    the ids streamed in)."""
    if created.table is not None:
        return created.table
    conn.execute(
        sql.SQL(
            "CREATE TEMP TABLE {} ON COMMIT DROP AS"
            " SELECT DISTINCT user_id FROM import_user_ids WHERE segment_id IS NULL"
        ).format(sql.Identifier(IMPORTED))
    )
    conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(IMPORTED)))
    return IMPORTED


_ANY_REGISTERED_BETWEEN: LiteralString = (
    "SELECT EXISTS (SELECT FROM users WHERE user_id BETWEEN %s AND %s)"
)

# In ascending id order (lock order 2 of store.membership_changes). DISTINCT ON, not
# DISTINCT: it is a Sort and a Unique, and ids that arrived in order sort almost for
# free, where DISTINCT hashes a million ids and then sorts them (0.8 s of 2 s).
_INSERT_ALL_NEW: LiteralString = """
INSERT INTO users (user_id, created_at)
SELECT DISTINCT ON (user_id) user_id, %s::timestamptz FROM import_user_ids
WHERE segment_id IS NULL
ORDER BY user_id
"""

# In ascending id order, DISTINCT ON likewise.
_INSERT_IMPORTED: LiteralString = """
WITH created AS (
    INSERT INTO users (user_id, created_at)
    SELECT DISTINCT ON (i.user_id) i.user_id, %s::timestamptz FROM import_user_ids i
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
