"""The one write path for memberships: change rows, and record exactly one history row
per real change, in the same statement.

Every use case that changes who is in which segment (UpdateUserSegments, the purge of a
user's expired rows, registration and import rollout enrolment, rollout creation,
segment deletion, the expiry sweeper) describes its changes as a row source with the
columns (user_id, segment_id, operation, expires_at, reason, at, account_id) and hands
it to `MembershipChanges`. One statement then deletes, inserts or updates the rows,
and writes history only for what really changed (a row already gone, or already
present, writes nothing), so a change without its history row cannot exist.

A `MembershipChanges` is made only once the transaction holds its locks (the service
layer's `Transactions.write` does this): its `now` is read from the injected clock at
that moment, so a change that had to wait for another one is always dated after it, and
for each (user, segment) history ordered by time alternates add/remove and replays to
the current state.

What a transaction changed is summed up as one `MembershipChange` (the users whose
active segments changed, or "everyone" for set-based changes: rollout creation, segment
deletion, import enrolment) and announced once, at its end, by `announce`: the single
place where read caches learn of writes (store.change_notices, a transactional NOTIFY).
Removing rows that had already expired changes no reader's answer and is not announced.

Lock order (every writer takes the locks it needs in this order, never backwards, so
writers wait for each other but do not deadlock; a deadlock or serialization failure
that still happens is retried by the service layer):

1. `users` table, ROW EXCLUSIVE (registration, implicit in its INSERT) or SHARE (rollout
   creation, `segments.freeze_registrations`): a rollout enrols every user known when
   it is created and every user registered later. It enrols the users it sees first,
   without blocking anyone (seconds at a million users); then SHARE waits for running
   registrations and holds new ones back while it enrols the users registered since
   its first statement (`enrol_rollout_since`: rows whose inserting transaction is not
   older than that statement's snapshot; a few milliseconds of work), until commit. A
   registration cannot see the uncommitted segment, so no user is seen by neither
   side, and ON CONFLICT keeps one that both see enrolled (and recorded) once.
2. The user's row, FOR NO KEY UPDATE (`users.lock`): serialises changes of one user,
   so the plan (a diff against the current memberships) is made on a state nobody else
   is changing. New ids are inserted in ascending order, so overlapping imports wait
   for each other instead of deadlocking.
3. Segment rows, in id order: FOR KEY SHARE by writers of memberships
   (`segments.lock_live`, `segments.lock_rollouts`), which do not conflict with each
   other; FOR UPDATE by DeleteSegment (`segments.lock_for_delete`), which therefore
   waits for every running change of that segment and makes later ones see it deleted.
   CreateSegment takes FOR KEY SHARE on a live segment of its slug
   (`segments.wait_for_slug`), so it is dated after a deletion of that slug it waited for.
4. Membership rows, taken by the statement below. The expiry sweeper takes only these,
   with SKIP LOCKED, so it never waits for (or delays) a user's change.

The clock is read after step 3: `now` is the time of the whole transaction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import LiteralString

from psycopg import sql

from segsvc.domain.membership_change import MembershipChange
from segsvc.domain.membership_update import UpdatePlan
from segsvc.domain.models import Segment
from segsvc.store import change_notices
from segsvc.store.database import Connection


class Announce(Enum):
    """How a kind of change is announced to read caches."""

    USERS = "users"  # the few users it changed, by id
    EVERYONE = "everyone"  # too many users to list: every cached answer may be stale
    NOTHING = "nothing"  # rows that had already expired: no reader's answer changes


@dataclass(frozen=True)
class Rollout:
    """A live rollout segment, as enrolment needs it."""

    id: int
    salt: str
    basis_points: int


_APPLY: LiteralString = """
WITH changes AS MATERIALIZED ({changes}),
removed AS (
    DELETE FROM memberships m USING changes c
    WHERE c.operation = 'remove' AND m.user_id = c.user_id AND m.segment_id = c.segment_id
    RETURNING m.user_id, m.segment_id, NULL::text AS reason
),
added AS (
    INSERT INTO memberships (user_id, segment_id, added_at, expires_at, reason)
    SELECT user_id, segment_id, at, expires_at, reason FROM changes WHERE operation = 'add'
    ORDER BY user_id, segment_id
    ON CONFLICT (user_id, segment_id) DO NOTHING
    RETURNING user_id, segment_id, NULL::text AS reason
),
updated AS (
    UPDATE memberships m SET expires_at = c.expires_at FROM changes c
    WHERE c.operation = 'update' AND m.user_id = c.user_id AND m.segment_id = c.segment_id
      AND m.expires_at IS DISTINCT FROM c.expires_at
    RETURNING m.user_id, m.segment_id, m.reason
),
done AS (
    SELECT user_id, segment_id, 'remove' AS operation, reason FROM removed
    UNION ALL SELECT user_id, segment_id, 'add', reason FROM added
    UNION ALL SELECT user_id, segment_id, 'update', reason FROM updated
),
recorded AS (
    INSERT INTO membership_history
        (user_id, segment_id, slug, operation, reason, at, expires_at, account_id)
    SELECT c.user_id, c.segment_id, s.slug, c.operation, coalesce(d.reason, c.reason), c.at,
           c.expires_at, c.account_id
    FROM done d
    JOIN changes c
      ON c.user_id = d.user_id AND c.segment_id = d.segment_id AND c.operation = d.operation
    JOIN segments s ON s.id = c.segment_id
    RETURNING user_id, segment_id, operation, reason
)
SELECT operation, reason, count(*),
       CASE WHEN %(list_users)s THEN array_agg(DISTINCT user_id) END
FROM recorded GROUP BY operation, reason
"""

# Row sources, one per kind of change; each yields the columns _APPLY expects.
_UPDATE_USER: LiteralString = """
SELECT %(user_id)s::bigint AS user_id, c.segment_id, c.operation, c.expires_at,
       'manual' AS reason, %(now)s::timestamptz AS at, %(account_id)s::bigint AS account_id
FROM unnest(%(segment_ids)s::bigint[], %(operations)s::text[], %(expiries)s::timestamptz[])
    AS c (segment_id, operation, expires_at)
"""

# Expired rows are recorded as removed at their expiry instant, by the system.
_EXPIRED_OF_USER: LiteralString = """
SELECT user_id, segment_id, 'remove' AS operation, NULL::timestamptz AS expires_at,
       'expired' AS reason, expires_at AS at, NULL::bigint AS account_id
FROM memberships WHERE user_id = %(user_id)s AND expires_at <= %(now)s
"""

# SKIP LOCKED: concurrent sweepers (and users purging their own rows) take different
# rows; a row is removed, and its removal recorded, exactly once.
SWEEP_DUE: LiteralString = """
SELECT user_id, segment_id, 'remove' AS operation, NULL::timestamptz AS expires_at,
       'expired' AS reason, expires_at AS at, NULL::bigint AS account_id
FROM memberships WHERE expires_at <= %(now)s
ORDER BY expires_at LIMIT %(batch)s
FOR UPDATE SKIP LOCKED
"""

_ROLLOUT_OF_NEW_USERS: LiteralString = """
SELECT n.user_id, r.id AS segment_id, 'add' AS operation, NULL::timestamptz AS expires_at,
       'rollout' AS reason, %(now)s::timestamptz AS at, %(account_id)s::bigint AS account_id
FROM {new_users} CROSS JOIN unnest(%(rollout_ids)s::bigint[], %(salts)s::text[],
                                   %(basis_points)s::integer[]) AS r (id, salt, bp)
WHERE segsvc_rollout_bucket(r.salt, n.user_id) < r.bp
"""

_ROLLOUT_OF_ALL_USERS: LiteralString = """
SELECT u.user_id, %(segment_id)s::bigint AS segment_id, 'add' AS operation,
       NULL::timestamptz AS expires_at, 'rollout' AS reason, %(now)s::timestamptz AS at,
       %(account_id)s::bigint AS account_id
FROM users u WHERE segsvc_rollout_bucket(%(salt)s, u.user_id) < %(basis_points)s
"""

# Users whose row was written by a transaction not older than `since_xid` (age() compares
# 32-bit ids modulo wraparound). A superset of the users an earlier statement missed:
# an older row that matches too is one the bucket already decided the same way, and
# ON CONFLICT DO NOTHING leaves it alone.
_ROLLOUT_OF_USERS_SINCE: LiteralString = (
    _ROLLOUT_OF_ALL_USERS + "  AND age(u.xmin) <= age(%(since_xid)s::xid)\n"
)

# New users of an import whose enrolment was decided in Python and copied beside their
# ids (store.users.copy_import and insert_imported), in the rollouts still live. {only_created} is
# empty when every copied id was created, else _ONLY_CREATED; {distinct} is DISTINCT
# unless no id was copied twice (then the rows are unique, and without DISTINCT's hash
# they keep the copied ids' order, which the sorts of _APPLY then find done).
_ROLLOUT_OF_IMPORTED: LiteralString = """
SELECT {distinct} e.user_id, e.segment_id, 'add' AS operation, NULL::timestamptz AS expires_at,
       'rollout' AS reason, %(now)s::timestamptz AS at, %(account_id)s::bigint AS account_id
FROM {rows} e {only_created}
WHERE e.segment_id = ANY(%(rollout_ids)s::bigint[])
"""
_ONLY_CREATED: LiteralString = "JOIN {created} c ON c.user_id = e.user_id"

# Rows already past their expiry are recorded as expired at their expiry time; the
# rest as removed because the segment was deleted, now, by the caller.
_ALL_OF_SEGMENT: LiteralString = """
SELECT user_id, segment_id, 'remove' AS operation, NULL::timestamptz AS expires_at,
       CASE WHEN expires_at <= %(now)s THEN 'expired' ELSE 'segment_deleted' END AS reason,
       CASE WHEN expires_at <= %(now)s THEN expires_at ELSE %(now)s END AS at,
       CASE WHEN expires_at <= %(now)s THEN NULL ELSE %(account_id)s::bigint END AS account_id
FROM memberships WHERE segment_id = %(segment_id)s
"""


@dataclass
class MembershipChanges:
    """The membership writes of one transaction, all dated `now`; see the module doc.

    Only the service layer's transaction helper makes one, after the locks are held.
    """

    conn: Connection
    now: datetime
    account_id: int | None
    _users: set[int] = field(default_factory=set)
    _everyone: bool = False

    @property
    def report(self) -> MembershipChange:
        """What the changes so far mean to readers of users' segments."""
        if self._everyone:
            return MembershipChange.all_users()
        return MembershipChange.users(self._users)

    def announce(self) -> None:
        """Announce the report to every process's read cache, on commit."""
        change_notices.publish(self.conn, self.report)

    def _apply(
        self, changes: sql.Composable, params: Mapping[str, object], announce: Announce
    ) -> dict[tuple[str, str], int]:
        """Run the statement; return history rows written by (operation, reason)."""
        query = sql.SQL(_APPLY).format(changes=changes)
        list_users = announce is Announce.USERS
        rows = self.conn.execute(
            query,
            {**params, "now": self.now, "account_id": self.account_id, "list_users": list_users},
        ).fetchall()
        counts: dict[tuple[str, str], int] = {}
        for operation, reason, count, user_ids in rows:
            counts[(operation, reason)] = int(count)
            self._users.update(user_ids or ())
        if counts and announce is Announce.EVERYONE:
            self._everyone = True
        return counts

    def update_user(self, user_id: int, plan: UpdatePlan) -> None:
        """Apply a UpdateUserSegments plan: adds, removals and expiry changes at once."""
        entries: list[tuple[int, str, datetime | None]] = [
            *((s, "add", e) for s, e in plan.insert.items()),
            *((s, "update", e) for s, e in plan.change_expiry.items()),
            *((s, "remove", None) for s in plan.delete),
        ]
        if not entries:
            return
        segment_ids, operations, expiries = zip(*entries, strict=True)
        self._apply(
            sql.SQL(_UPDATE_USER),
            {
                "user_id": user_id,
                "segment_ids": list(segment_ids),
                "operations": list(operations),
                "expiries": list(expiries),
            },
            Announce.USERS,
        )

    def purge_expired_of_user(self, user_id: int) -> None:
        """Move the user's expired rows to history before a change, so that a re-add
        after expiry starts a fresh membership instead of meeting a stale row."""
        self._apply(sql.SQL(_EXPIRED_OF_USER), {"user_id": user_id}, Announce.NOTHING)

    def sweep_expired(self, batch: int) -> int:
        """Move up to `batch` expired rows (of any user) to history; return how many."""
        counts = self._apply(sql.SQL(SWEEP_DUE), {"batch": batch}, Announce.NOTHING)
        return sum(counts.values())

    def enrol_users(self, user_ids: Sequence[int], rollouts: Sequence[Rollout]) -> int:
        """Enrol just-registered users in every live rollout whose bucket selects them;
        return how many memberships that made."""
        return self._enrol(
            sql.SQL("unnest(%(new_user_ids)s::bigint[]) AS n (user_id)"),
            {"new_user_ids": list(user_ids)},
            rollouts,
            Announce.USERS,
        )

    def enrol_table(self, table: str, rollouts: Sequence[Rollout]) -> int:
        """Like `enrol_users` for the ids in a (temporary) table with column user_id;
        announced as a change of everyone, as the ids may be millions."""
        return self._enrol(
            sql.SQL("{} AS n").format(sql.Identifier(table)), {}, rollouts, Announce.EVERYONE
        )

    def _enrol(
        self,
        new_users: sql.Composable,
        params: Mapping[str, object],
        rollouts: Sequence[Rollout],
        announce: Announce,
    ) -> int:
        if not rollouts:
            return 0
        counts = self._apply(
            sql.SQL(_ROLLOUT_OF_NEW_USERS).format(new_users=new_users),
            {
                **params,
                "rollout_ids": [r.id for r in rollouts],
                "salts": [r.salt for r in rollouts],
                "basis_points": [r.basis_points for r in rollouts],
            },
            announce,
        )
        return sum(counts.values())

    def enrol_imported(
        self, rows: str, created: str | None, rollout_ids: Sequence[int], unique: bool = False
    ) -> int:
        """Enrol an import's new users (table `created`, or None when every id of `rows`
        is new) as its copied `rows` (user_id, segment_id) decided, in `rollout_ids`
        only (`unique`: no row of `rows` is there twice); announced as a change of
        everyone."""
        if not rollout_ids:
            return 0
        only_created = (
            sql.SQL(_ONLY_CREATED).format(created=sql.Identifier(created))
            if created is not None
            else sql.SQL("")
        )
        source = sql.SQL(_ROLLOUT_OF_IMPORTED).format(
            distinct=sql.SQL("" if unique else "DISTINCT"),
            rows=sql.Identifier(rows),
            only_created=only_created,
        )
        counts = self._apply(source, {"rollout_ids": list(rollout_ids)}, Announce.EVERYONE)
        return sum(counts.values())

    def enrol_rollout(self, segment: Segment) -> int:
        """Enrol every registered user a new rollout segment selects; return how many."""
        # One statement over every user: JIT compilation costs it more than it saves.
        self.conn.execute("SELECT set_config('jit', 'off', true)")
        counts = self._apply(
            sql.SQL(_ROLLOUT_OF_ALL_USERS),
            {
                "segment_id": segment.id,
                "salt": segment.rollout_salt,
                "basis_points": segment.rollout_basis_points,
            },
            Announce.EVERYONE,
        )
        return sum(counts.values())

    def enrol_rollout_since(self, segment: Segment, since_xid: str) -> int:
        """Enrol the users registered by transactions not older than `since_xid`
        (segments.registrations_horizon, read before `enrol_rollout`) that the rollout
        selects and that are not enrolled yet; return how many. Run it under
        `segments.freeze_registrations`."""
        counts = self._apply(
            sql.SQL(_ROLLOUT_OF_USERS_SINCE),
            {
                "segment_id": segment.id,
                "salt": segment.rollout_salt,
                "basis_points": segment.rollout_basis_points,
                "since_xid": since_xid,
            },
            Announce.EVERYONE,
        )
        return sum(counts.values())

    def end_segment(self, segment_id: int) -> int:
        """End every membership of a segment being deleted; return how many were active."""
        # Rows that had already expired change no answer; any other does, for everyone.
        counts = self._apply(sql.SQL(_ALL_OF_SEGMENT), {"segment_id": segment_id}, Announce.NOTHING)
        ended = counts.get(("remove", "segment_deleted"), 0)
        self._everyone = self._everyone or ended > 0
        return ended
