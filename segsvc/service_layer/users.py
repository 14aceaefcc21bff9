"""End users and their memberships: registration, the atomic update, the reads."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from segsvc.domain.clock import Clock
from segsvc.domain.errors import AlreadyExists, Cancelled, InvalidArgument, NotFound
from segsvc.domain.history import segments_at
from segsvc.domain.imports import check_chunk
from segsvc.domain.membership_update import (
    RequestedAddition,
    active_at,
    plan_update,
    validate_update,
)
from segsvc.domain.models import ActiveSegment
from segsvc.domain.request_ids import Replayed
from segsvc.domain.user_ids import require_user_id
from segsvc.service_layer.transactions import Once, Transactions, in_savepoint, locked_write
from segsvc.store import history, memberships, segments, users
from segsvc.store.database import Connection, Database
from segsvc.store.membership_changes import MembershipChanges, Rollout


@dataclass(frozen=True)
class ImportResult:
    """Counts reported by ImportUsers."""

    received: int
    created: int
    rollout_memberships: int


@dataclass(frozen=True)
class _UpdateLocks:
    """What UpdateUserSegments found while taking its locks."""

    created: bool
    rollouts: list[Rollout]
    segment_ids: dict[str, int]


@dataclass(frozen=True)
class Users:
    """Use cases of UserService."""

    db: Database
    clock: Clock

    @property
    def _transactions(self) -> Transactions:
        return Transactions(self.db, self.clock)

    def create_user(self, user_id: int, account_id: int | None) -> list[ActiveSegment]:
        """Register one id (ALREADY_EXISTS if known); return its rollout segments."""
        require_user_id(user_id)

        def lock(conn: Connection) -> list[Rollout]:
            if not users.insert_new(conn, [user_id], self.clock()):
                raise AlreadyExists("user", str(user_id))
            return segments.lock_rollouts(conn)

        def change(changes: MembershipChanges, rollouts: list[Rollout]) -> list[ActiveSegment]:
            changes.enrol_users([user_id], rollouts)
            return memberships.active_for_user(changes.conn, user_id, changes.now)

        return self._transactions.write(account_id, lock, change)

    def import_users(
        self,
        chunks: Iterable[Sequence[int]],
        account_id: int | None,
        still_wanted: Callable[[], bool] = lambda: True,
        once: Once[ImportResult] | None = None,
    ) -> ImportResult | Replayed:
        """Register many ids in one transaction: all of them, or none if any is invalid.

        Commits only if `still_wanted()` right before the commit: a client stream that
        ended because the server is stopping (grpcio then ends the iteration as if the
        client had half-closed) or because the caller went away imports nothing.
        """

        def validated() -> Iterable[Sequence[int]]:
            for number, chunk in enumerate(chunks):
                check_chunk(number, chunk)
                yield chunk

        def lock(conn: Connection) -> tuple[users.Created, list[Rollout]]:
            created = users.insert_imported(conn, self.clock(), copied, decided)
            return created, segments.lock_rollouts(conn)

        def change(
            changes: MembershipChanges, locked: tuple[users.Created, list[Rollout]]
        ) -> ImportResult:
            created, rollouts = locked
            # Enrolment was decided in Python (store.users: while the ids streamed in, or
            # while the users were inserted) for the rollouts live when the stream began;
            # one created since (rare) is decided now, in SQL; one deleted since is
            # skipped.
            known = {r.id for r in decided}
            enrolled = changes.enrol_imported(
                users.IMPORT_ROWS,
                created.table,
                [r.id for r in rollouts if r.id in known],
                unique=created.once_each,
            )
            if late := [r for r in rollouts if r.id not in known]:
                table = users.list_created(changes.conn, created)
                enrolled += changes.enrol_table(table, late)
            return ImportResult(copied.received, created.count, enrolled)

        with self.db.bulk_transaction() as conn:
            # The stream cannot be read twice: only the registration after it is retried.
            decided = segments.live_rollouts(conn)
            copied = users.copy_import(conn, validated(), decided)
            try:
                result = in_savepoint(
                    conn, lambda: locked_write(conn, self.clock, account_id, lock, change, once)
                )
            finally:
                copied.release()
            if not still_wanted():
                raise Cancelled("the stream ended before the client half-closed it")
        return result

    def update(
        self,
        user_id: int,
        additions: Sequence[RequestedAddition],
        removals: Sequence[str],
        account_id: int | None,
        once: Once[list[ActiveSegment]] | None = None,
    ) -> list[ActiveSegment] | Replayed:
        """Apply adds and removes atomically; return the user's segments afterwards."""
        # Checked before any database work; checked again with the transaction's time.
        update = validate_update(user_id, additions, removals, self.clock())
        if not update.slugs:  # nothing to change: no implicit registration either
            return self.get(user_id)

        def lock(conn: Connection) -> _UpdateLocks:
            # The common case, a known user, costs one round trip; an unknown one is
            # registered first, which the same lock then holds.
            created = False
            if not users.lock(conn, user_id):
                created = bool(users.insert_new(conn, [user_id], self.clock()))
                users.lock(conn, user_id)
            rollouts = segments.lock_rollouts(conn) if created else []
            ids = segments.lock_live(conn, update.slugs)
            missing = [slug for slug in update.slugs if slug not in ids]
            if missing:
                raise NotFound("segment", missing)
            return _UpdateLocks(created, rollouts, ids)

        def change(changes: MembershipChanges, locked: _UpdateLocks) -> list[ActiveSegment]:
            conn, now, ids = changes.conn, changes.now, locked.segment_ids
            final = validate_update(user_id, additions, removals, now)
            if locked.created:
                changes.enrol_users([user_id], locked.rollouts)
            held = memberships.held_expiries(conn, user_id)
            current = active_at(held, now)
            if len(current) < len(held):  # rare: the sweeper moves expired rows first
                changes.purge_expired_of_user(user_id)
            plan = plan_update(
                current,
                {ids[a.slug]: a.expires_at for a in final.additions},
                [ids[slug] for slug in final.removals],
            )
            changes.update_user(user_id, plan)
            return memberships.active_for_user(conn, user_id, now)

        return self._transactions.write_once(account_id, lock, change, once)

    def get(self, user_id: int, as_of: datetime | None = None) -> list[ActiveSegment]:
        """Active segments now, or (with `as_of`) at a past instant from history."""
        require_user_id(user_id)
        now = self.clock()
        if as_of is None:
            with self.db.connection() as conn:
                return memberships.active_for_user(conn, user_id, now)
        if as_of > now:
            raise InvalidArgument.single("as_of", "must not be in the future")
        with self.db.connection() as conn:
            return segments_at(history.events_for_user(conn, user_id, as_of), as_of)
