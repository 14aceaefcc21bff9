"""Segments: creation with percentage rollout, deletion, lookup, listing, members."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

from segsvc.domain import page_tokens
from segsvc.domain.clock import Clock
from segsvc.domain.errors import AlreadyExists, NotFound
from segsvc.domain.models import Segment
from segsvc.domain.request_ids import Replayed
from segsvc.domain.rollout import percent_to_basis_points
from segsvc.domain.segments import require_slug, validate_segment
from segsvc.service_layer.transactions import Once, Transactions
from segsvc.store import memberships, segments
from segsvc.store.database import Connection, Database
from segsvc.store.membership_changes import MembershipChanges

MEMBER_CHUNK = 10_000


@dataclass(frozen=True)
class Segments:
    """Use cases of SegmentService (the reports live in ReportService)."""

    db: Database
    clock: Clock

    @property
    def _transactions(self) -> Transactions:
        return Transactions(self.db, self.clock)

    def create(
        self,
        slug: str,
        description: str,
        auto_percent: float | None,
        rollout_salt: str,
        validate_only: bool,
        account_id: int | None,
        once: Once[Segment] | None = None,
    ) -> Segment | Replayed:
        """Create a segment and enrol its rollout share of users in one transaction.

        With `validate_only`, nothing is written and member_count says how many of
        today's users the rollout would enrol (exactly: the salt is deterministic).
        """
        validate_segment(slug, description, rollout_salt)
        basis_points = percent_to_basis_points(auto_percent) if auto_percent is not None else None
        salt = (rollout_salt or slug) if basis_points else None
        if validate_only:
            with self.db.connection() as conn:
                if segments.get_live(conn, slug):
                    raise AlreadyExists("segment", slug)
                count = (
                    segments.count_rollout(conn, salt, basis_points) if salt and basis_points else 0
                )
            return Segment(0, slug, description, basis_points, salt, self.clock(), count)

        def lock(conn: Connection) -> None:
            if segments.wait_for_slug(conn, slug):
                raise AlreadyExists("segment", slug)

        def change(changes: MembershipChanges, _: None) -> Segment:
            segment = segments.create(
                changes.conn, slug, description, basis_points, salt, changes.now, account_id
            )
            if not basis_points:
                return replace(segment, member_count=0)
            # Everyone registered so far, without holding registration back; then, with
            # registration held back until commit, whoever registered meanwhile (their
            # transactions are no older than `horizon`). See store.membership_changes.
            horizon = segments.registrations_horizon(changes.conn)
            enrolled = changes.enrol_rollout(segment)
            segments.freeze_registrations(changes.conn)
            enrolled += changes.enrol_rollout_since(segment, horizon)
            return replace(segment, member_count=enrolled)

        # A rollout enrols every user: its statements grow with the data, so they get the
        # bulk time limit rather than the one for short calls.
        limit = self.db.bulk_limits.statement_timeout if basis_points else None
        return self._transactions.write_once(account_id, lock, change, once, limit)

    def delete(self, slug: str, account_id: int | None) -> Segment:
        """Delete a live segment and end all its memberships (with history), atomically."""
        require_slug(slug)

        def lock(conn: Connection) -> Segment:
            segment = segments.lock_for_delete(conn, slug)
            if segment is None:
                raise NotFound("segment", [slug])
            return segment

        def change(changes: MembershipChanges, segment: Segment) -> Segment:
            segments.mark_deleted(changes.conn, segment.id, changes.now)
            return replace(segment, member_count=changes.end_segment(segment.id))

        # Ending every membership grows with the segment: the bulk time limit applies.
        limit = self.db.bulk_limits.statement_timeout
        return self._transactions.write(account_id, lock, change, limit)

    def get(self, slug: str) -> Segment:
        """A live segment with its number of active members."""
        require_slug(slug)
        with self.db.connection() as conn:
            segment = segments.get_live(conn, slug)
            if segment is None:
                raise NotFound("segment", [slug])
            return replace(
                segment, member_count=memberships.member_count(conn, segment.id, self.clock())
            )

    def list_page(self, page_size: int, page_token: str) -> tuple[list[Segment], str]:
        """One page of live segments by slug, and the token of the next page ('' if last)."""
        size = page_tokens.page_size(page_size)
        after = page_tokens.decode(page_token)
        with self.db.connection() as conn:
            page = segments.list_live(conn, after, size + 1)
        if len(page) > size:
            return page[:size], page_tokens.encode(page[size - 1].slug)
        return page, ""

    def stream_members(self, slug: str) -> Iterator[list[int]]:
        """Chunks of the segment's active member ids, ascending."""
        require_slug(slug)
        now = self.clock()
        with self.db.bulk_transaction() as conn:
            segment = segments.get_live(conn, slug)
            if segment is None:
                raise NotFound("segment", [slug])
            yield from memberships.stream_members(conn, segment.id, now, MEMBER_CHUNK)
