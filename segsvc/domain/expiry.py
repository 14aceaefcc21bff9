"""Time-limited memberships: turning a request's expiry into one absolute instant.

A request may give an absolute `expires_at` or a relative `ttl`; both become an
absolute UTC instant computed from the single injected clock, so the stored value never
depends on when a background task happens to run.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from segsvc.domain.errors import FieldViolation

# For `ttl` only: far enough for any campaign, near enough to catch a duration sent in
# milliseconds where seconds were meant. An absolute timestamp is unambiguous.
MAX_HORIZON = timedelta(days=3650)


def resolve_expiry(
    field: str,
    expires_at: datetime | None,
    ttl: timedelta | None,
    now: datetime,
) -> tuple[datetime | None, FieldViolation | None]:
    """Return (absolute expiry or None, violation or None) for one `add` entry."""
    if ttl is not None:
        if ttl <= timedelta(0):
            return None, FieldViolation(
                f"{field}.ttl", f"must be positive, got {ttl.total_seconds():g}s"
            )
        if ttl > MAX_HORIZON:
            return None, FieldViolation(f"{field}.ttl", "must be at most 3650 days")
        return now + ttl, None
    if expires_at is not None:
        if expires_at <= now:
            return None, FieldViolation(
                f"{field}.expires_at",
                f"must be in the future, got {expires_at.isoformat()} (now {now.isoformat()})",
            )
        return expires_at, None
    return None, None
