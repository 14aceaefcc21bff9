"""An in-memory model of segsvc's memberships, written from the README's promises and
kept independent of the server's code (only the pure rollout hash is shared).

The model-based test (tests/e2e/test_model.py) applies every mutating call to this model
and to the real server, then compares every read. Each operation returns what the server
must answer: a gRPC status code for a refused call, or the expected result. Time is the
model's `now`, which the test also gives the server's clock, so every expected timestamp
is exact to the microsecond.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import grpc

from segmentation.v1 import user_service_pb2 as pb
from segsvc.domain.rollout import bucket
from tests.support.history_replay import HistoryRow

MANUAL = pb.MEMBERSHIP_REASON_MANUAL
ROLLOUT = pb.MEMBERSHIP_REASON_ROLLOUT
MAX_TTL = timedelta(days=3650)


@dataclass(frozen=True)
class Membership:
    """One active (or expired, not yet ended) membership as reads show it."""

    added_at: datetime
    expires_at: datetime | None
    reason: int

    def active_at(self, instant: datetime) -> bool:
        """Expiry is exact: a membership ends at the instant it expires."""
        return self.expires_at is None or self.expires_at > instant


@dataclass(frozen=True)
class SegmentState:
    """A live segment. `foreign_members`: users outside the test case that its rollout
    enrolled at creation (they never change while the case runs)."""

    slug: str
    description: str
    basis_points: int | None
    salt: str | None
    created_at: datetime
    foreign_members: frozenset[int] = frozenset()

    def enrols(self, user_id: int) -> bool:
        """The README's rollout rule, with the pure hash."""
        return (
            self.basis_points is not None
            and self.salt is not None
            and bucket(self.salt, user_id) < self.basis_points
        )


@dataclass(frozen=True)
class Addition:
    """An `add` entry: exactly one of ttl / expires_at, or neither."""

    slug: str
    ttl: timedelta | None = None
    expires_at: datetime | None = None


@dataclass(frozen=True)
class Refused:
    """The status a call must fail with (and the model is left unchanged)."""

    code: grpc.StatusCode


@dataclass(frozen=True)
class ImportCounts:
    """What ImportUsers must report."""

    received: int
    created: int
    rollout_memberships: int


UserView = dict[str, Membership]


@dataclass
class MembershipModel:
    """The state of one test case's users and segments, plus what it needs to know
    about the rest of the database: registered users of earlier cases (rollouts enrol
    them too) and live rollout segments left by earlier cases (they enrol our users)."""

    now: datetime
    foreign_users: frozenset[int]
    segments: dict[str, SegmentState] = field(default_factory=dict)
    registered: set[int] = field(default_factory=set)
    memberships: dict[int, dict[str, Membership]] = field(default_factory=dict)
    history: list[HistoryRow] = field(default_factory=list)
    snapshots: list[tuple[datetime, dict[int, UserView]]] = field(default_factory=list)

    # ---- reads -------------------------------------------------------------------

    def active(self, user_id: int, instant: datetime | None = None) -> UserView:
        """The user's segments as GetUserSegments shows them now (or at `instant`, from
        the current state)."""
        at = instant or self.now
        return {slug: m for slug, m in self.memberships.get(user_id, {}).items() if m.active_at(at)}

    def as_of(self, user_id: int, instant: datetime) -> UserView:
        """The user's segments at a past instant: the last snapshot taken at or before
        it, with expiry applied at that instant."""
        state: dict[int, UserView] = {}
        for taken, snapshot in self.snapshots:
            if taken > instant:
                break
            state = snapshot
        return {s: m for s, m in state.get(user_id, {}).items() if m.active_at(instant)}

    def member_count(self, slug: str) -> int:
        """GetSegment's member_count: active members, ours and foreign."""
        return len(self.members(slug))

    def members(self, slug: str) -> set[int]:
        """ListSegmentUsers: every active member id."""
        ours = {uid for uid in self.memberships if slug in self.active(uid)}
        return ours | set(self.segments[slug].foreign_members)

    def expected_history(self) -> list[HistoryRow]:
        """The report's add/remove rows for our users: every change recorded so far,
        plus the removal of each membership that has expired by now (the report shows
        it at its expiry instant whether or not the sweeper has run)."""
        expired = [
            HistoryRow(uid, slug, "remove", m.expires_at)
            for uid, ms in self.memberships.items()
            for slug, m in ms.items()
            if m.expires_at is not None and m.expires_at <= self.now
        ]
        return self.history + expired

    def snapshot(self) -> None:
        """Remember the state at `now` for later `as_of` reads."""
        self.snapshots.append((self.now, {uid: dict(ms) for uid, ms in self.memberships.items()}))

    # ---- writes ------------------------------------------------------------------

    def create_segment(
        self,
        slug: str,
        description: str,
        auto_percent: float | None,
        rollout_salt: str,
        validate_only: bool,
    ) -> Refused | tuple[SegmentState, int]:
        """CreateSegment: the segment and how many users its rollout enrols (would
        enrol, with validate_only)."""
        basis_points = None
        if auto_percent is not None:
            scaled = auto_percent * 100
            if not (0 < auto_percent <= 100) or abs(scaled - round(scaled)) > 1e-6:
                return Refused(grpc.StatusCode.INVALID_ARGUMENT)
            basis_points = round(scaled)
        if slug in self.segments:
            return Refused(grpc.StatusCode.ALREADY_EXISTS)
        salt = (rollout_salt or slug) if basis_points else None
        segment = SegmentState(slug, description, basis_points, salt, self.now)
        ours = sorted(uid for uid in self.registered if segment.enrols(uid))
        foreign = frozenset(uid for uid in self.foreign_users if segment.enrols(uid))
        if validate_only:
            return segment, len(ours) + len(foreign)
        segment = replace(segment, foreign_members=foreign)
        self.segments[slug] = segment
        for uid in ours:
            self._start(uid, slug, Membership(self.now, None, ROLLOUT))
        return segment, len(ours) + len(foreign)

    def delete_segment(self, slug: str) -> Refused | tuple[SegmentState, int]:
        """DeleteSegment: end every membership; the count of those that were active."""
        segment = self.segments.get(slug)
        if segment is None:
            return Refused(grpc.StatusCode.NOT_FOUND)
        ended = len(segment.foreign_members)
        for uid, ms in self.memberships.items():
            if slug in ms:
                ended += ms[slug].active_at(self.now)
                self._end(uid, slug)
        del self.segments[slug]
        return segment, ended

    def create_user(self, user_id: int) -> Refused | UserView:
        """CreateUser: ALREADY_EXISTS for a known id; else its rollout segments."""
        if user_id in self.registered:
            return Refused(grpc.StatusCode.ALREADY_EXISTS)
        self._register([user_id])
        return self.active(user_id)

    def import_users(self, chunks: Sequence[Sequence[int]]) -> Refused | ImportCounts:
        """ImportUsers: all ids registered in one transaction, or none."""
        ids = [uid for chunk in chunks for uid in chunk]
        if any(uid <= 0 for uid in ids):
            return Refused(grpc.StatusCode.INVALID_ARGUMENT)
        created, enrolled = self._register(ids)
        return ImportCounts(len(ids), created, enrolled)

    def update(
        self, user_id: int, additions: Sequence[Addition], removals: Sequence[str]
    ) -> Refused | UserView:
        """UpdateUserSegments: validation, then NOT_FOUND, then the atomic change."""
        resolved = [self._resolve(a) for a in additions]
        added = [a.slug for a in additions]
        if (
            not all(valid for valid, _ in resolved)
            or _repeats(added)
            or _repeats(removals)
            or set(added) & set(removals)
        ):
            return Refused(grpc.StatusCode.INVALID_ARGUMENT)
        if not added and not removals:
            return self.active(user_id)
        if any(slug not in self.segments for slug in [*added, *removals]):
            return Refused(grpc.StatusCode.NOT_FOUND)
        self._register([user_id])
        self._purge_expired(user_id)
        current = self.memberships.setdefault(user_id, {})
        for a, (_, expires_at) in zip(additions, resolved, strict=True):
            if a.slug not in current:
                self._start(user_id, a.slug, Membership(self.now, expires_at, MANUAL))
            elif current[a.slug].expires_at != expires_at:
                current[a.slug] = replace(current[a.slug], expires_at=expires_at)
        for slug in removals:
            if slug in current:
                self._end(user_id, slug)
        return self.active(user_id)

    # ---- rules shared by the writes ----------------------------------------------

    def _resolve(self, addition: Addition) -> tuple[bool, datetime | None]:
        """(valid, absolute expiry or None for "never")."""
        if addition.ttl is not None:
            return timedelta(0) < addition.ttl <= MAX_TTL, self.now + addition.ttl
        if addition.expires_at is not None:
            return addition.expires_at > self.now, addition.expires_at
        return True, None

    def _register(self, user_ids: Iterable[int]) -> tuple[int, int]:
        created = enrolled = 0
        for uid in dict.fromkeys(user_ids):
            if uid in self.registered or uid in self.foreign_users:
                continue
            self.registered.add(uid)
            created += 1
            for slug, segment in self.segments.items():
                if segment.enrols(uid):
                    self._start(uid, slug, Membership(self.now, None, ROLLOUT))
                    enrolled += 1
        return created, enrolled

    def _purge_expired(self, user_id: int) -> None:
        for slug, m in list(self.memberships.get(user_id, {}).items()):
            if not m.active_at(self.now):
                self._end(user_id, slug)

    def _start(self, user_id: int, slug: str, membership: Membership) -> None:
        self.memberships.setdefault(user_id, {})[slug] = membership
        self.history.append(HistoryRow(user_id, slug, "add", membership.added_at))

    def _end(self, user_id: int, slug: str) -> None:
        """End a membership now, or at its expiry if that came first."""
        membership = self.memberships[user_id].pop(slug)
        at = self.now
        if membership.expires_at is not None:
            at = min(at, membership.expires_at)
        self.history.append(HistoryRow(user_id, slug, "remove", at))


def _repeats(values: Sequence[str]) -> bool:
    return any(n > 1 for n in Counter(values).values())


def view_of(segments: Iterable[pb.UserSegment]) -> UserView:
    """A UserSegments message as the model's view (slug -> membership)."""
    return {
        s.slug: Membership(
            s.added_at.ToDatetime(tzinfo=UTC),
            s.expires_at.ToDatetime(tzinfo=UTC) if s.HasField("expires_at") else None,
            s.reason,
        )
        for s in segments
    }
