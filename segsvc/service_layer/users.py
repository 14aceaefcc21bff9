"""End users and their memberships: registration, the atomic update, the reads."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from segsvc.domain.clock import Clock
from segsvc.domain.errors import AlreadyExists, InvalidArgument, NotFound
from segsvc.domain.history import segments_at
from segsvc.domain.imports import check_chunk
from segsvc.domain.membership_change import MembershipChange
from segsvc.domain.membership_update import RequestedAddition, plan_update, validate_update
from segsvc.domain.models import ActiveSegment
from segsvc.domain.user_ids import require_user_id
from segsvc.store import change_notices, history, memberships, segments, users
from segsvc.store.database import Connection, Database


@dataclass(frozen=True)
class ImportResult:
    """Counts reported by ImportUsers."""

    received: int
    created: int
    rollout_memberships: int


@dataclass(frozen=True)
class Users:
    """Use cases of UserService."""

    db: Database
    clock: Clock

    def create_user(self, user_id: int, account_id: int | None) -> list[ActiveSegment]:
        """Register one id (ALREADY_EXISTS if known); return its rollout segments."""
        require_user_id(user_id)
        now = self.clock()
        with self.db.transaction() as conn:
            created, enrolled = users.register(conn, [user_id], now, account_id)
            if not created:
                raise AlreadyExists("user", str(user_id))
            if enrolled:
                change_notices.publish(conn, MembershipChange.users([user_id]))
            return memberships.active_for_user(conn, user_id, now)

    def import_users(self, chunks: Iterable[Sequence[int]], account_id: int | None) -> ImportResult:
        """Register many ids in one transaction: all of them, or none if any is invalid."""

        def validated() -> Iterable[Sequence[int]]:
            for number, chunk in enumerate(chunks):
                check_chunk(number, chunk)
                yield chunk

        with self.db.bulk_transaction() as conn:
            result = users.import_chunks(conn, validated(), self.clock(), account_id)
            if result[2]:  # enrolled in rollouts: which ones is not known here
                change_notices.publish(conn, MembershipChange.all_users())
        return ImportResult(*result)

    def update(
        self,
        user_id: int,
        additions: Sequence[RequestedAddition],
        removals: Sequence[str],
        account_id: int | None,
    ) -> list[ActiveSegment]:
        """Apply adds and removes atomically; return the user's segments afterwards."""
        now = self.clock()
        update = validate_update(user_id, additions, removals, now)
        if not update.slugs:  # nothing to change: no implicit registration either
            return self.get(user_id)
        with self.db.transaction() as conn:
            self._register_and_lock(conn, user_id, now, account_id)
            ids = segments.lock_live(conn, update.slugs)
            missing = [slug for slug in update.slugs if slug not in ids]
            if missing:
                raise NotFound("segment", missing)
            memberships.purge_expired_for_user(conn, user_id, now)
            plan = plan_update(
                memberships.current_expiries(conn, user_id, now),
                {ids[a.slug]: a.expires_at for a in update.additions},
                [ids[slug] for slug in update.removals],
            )
            if plan.delete:
                memberships.remove(conn, user_id, plan.delete, now, account_id)
            if plan.insert:
                memberships.add(conn, user_id, plan.insert, now, account_id)
            if plan.change_expiry:
                memberships.change_expiry(conn, user_id, plan.change_expiry, now, account_id)
            change_notices.publish(conn, MembershipChange.users([user_id]))
            return memberships.active_for_user(conn, user_id, now)

    @staticmethod
    def _register_and_lock(
        conn: Connection, user_id: int, now: datetime, account_id: int | None
    ) -> None:
        # The common case, a known user, costs one round trip; an unknown one is
        # registered (and enrolled in rollouts) first, which also locks its new row.
        if not users.lock(conn, user_id):
            users.register(conn, [user_id], now, account_id)
            users.lock(conn, user_id)

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
