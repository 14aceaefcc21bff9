"""The rules of UpdateUserSegments: what a valid request is and what it changes.

Validation rejects every ambiguous request instead of guessing (a slug twice, or in both
lists, is an error, not "add then remove"). Planning compares the request with the
user's current memberships so that no-ops are recognised here and write no history.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from segsvc.domain.errors import FieldViolation, InvalidArgument
from segsvc.domain.expiry import resolve_expiry
from segsvc.domain.models import Addition
from segsvc.domain.slugs import slug_violation
from segsvc.domain.user_ids import user_id_violation

MAX_SLUGS_PER_REQUEST = 1000


@dataclass(frozen=True)
class RequestedAddition:
    """An `add` entry as received, before validation."""

    slug: str
    expires_at: datetime | None = None
    ttl: timedelta | None = None


@dataclass(frozen=True)
class MembershipUpdate:
    """A validated update: every slug well-formed and mentioned once."""

    user_id: int
    additions: tuple[Addition, ...]
    removals: tuple[str, ...]

    @property
    def slugs(self) -> list[str]:
        """Every slug the update names, additions first."""
        return [a.slug for a in self.additions] + list(self.removals)


def validate_update(
    user_id: int,
    additions: Sequence[RequestedAddition],
    removals: Sequence[str],
    now: datetime,
) -> MembershipUpdate:
    """Check the whole request and report every problem at once."""
    violations: list[FieldViolation] = []
    if v := user_id_violation("user_id", user_id):
        violations.append(v)
    if len(additions) + len(removals) > MAX_SLUGS_PER_REQUEST:
        violations.append(
            FieldViolation("add", f"at most {MAX_SLUGS_PER_REQUEST} slugs per request")
        )
    resolved: list[Addition] = []
    for i, addition in enumerate(additions):
        if v := slug_violation(f"add[{i}].slug", addition.slug):
            violations.append(v)
        expires_at, v = resolve_expiry(f"add[{i}]", addition.expires_at, addition.ttl, now)
        if v:
            violations.append(v)
        resolved.append(Addition(addition.slug, expires_at))
    for i, slug in enumerate(removals):
        if v := slug_violation(f"remove[{i}]", slug):
            violations.append(v)
    violations.extend(_duplicate_violations([a.slug for a in additions], list(removals)))
    if violations:
        raise InvalidArgument(violations)
    return MembershipUpdate(user_id, tuple(resolved), tuple(removals))


def _duplicate_violations(added: list[str], removed: list[str]) -> Iterable[FieldViolation]:
    for name, slugs in (("add", added), ("remove", removed)):
        repeated = sorted(s for s, n in Counter(slugs).items() if n > 1)
        if repeated:
            yield FieldViolation(name, f"slugs listed more than once: {', '.join(repeated)}")
    both = sorted(set(added) & set(removed))
    if both:
        yield FieldViolation("remove", f"slugs both added and removed: {', '.join(both)}")


@dataclass
class UpdatePlan:
    """What must change, by segment id; everything else in the request is a no-op."""

    insert: dict[int, datetime | None] = field(default_factory=dict)
    change_expiry: dict[int, datetime | None] = field(default_factory=dict)
    delete: list[int] = field(default_factory=list)


def plan_update(
    current: Mapping[int, datetime | None],
    additions: Mapping[int, datetime | None],
    removals: Iterable[int],
) -> UpdatePlan:
    """Diff the request against the user's active memberships (segment id -> expiry).

    Adding a segment the user has with the same expiry, or removing one the user lacks,
    changes nothing. Re-adding with another expiry (or none) replaces the expiry.
    """
    plan = UpdatePlan()
    for segment_id, expires_at in additions.items():
        if segment_id not in current:
            plan.insert[segment_id] = expires_at
        elif current[segment_id] != expires_at:
            plan.change_expiry[segment_id] = expires_at
    plan.delete = sorted(s for s in removals if s in current)
    return plan


def active_at(held: Mapping[int, datetime | None], now: datetime) -> dict[int, datetime | None]:
    """The memberships of `held` (segment id -> expiry) still active at `now`: those
    without an expiry or expiring after it. An expired row the sweeper has not moved
    yet is not a membership."""
    return {s: e for s, e in held.items() if e is None or e > now}
