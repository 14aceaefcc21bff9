"""The plain Python values the client returns and accepts.

Frozen dataclasses with `datetime` (UTC-aware) and `timedelta` instead of protobuf
messages, so calling code never imports generated modules and results can be compared,
hashed and logged like any other value.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta


class Role(enum.Enum):
    """What an account or API key may do: each role includes the ones before it."""

    READER = "reader"
    """Reads and reports."""
    WRITER = "writer"
    """Reader, plus every membership and segment change."""
    ADMIN = "admin"
    """Writer, plus accounts and API keys."""


class MembershipReason(enum.Enum):
    """Why a user is in a segment."""

    UNSPECIFIED = "unspecified"
    MANUAL = "manual"
    ROLLOUT = "rollout"


@dataclass(frozen=True)
class UserSegment:
    """One segment a user is (or was) in."""

    slug: str
    added_at: datetime
    expires_at: datetime | None
    reason: MembershipReason


@dataclass(frozen=True)
class UserSegments:
    """The segments of one user, sorted by slug."""

    user_id: int
    segments: tuple[UserSegment, ...]

    @property
    def slugs(self) -> tuple[str, ...]:
        """Just the slugs, in order."""
        return tuple(s.slug for s in self.segments)


@dataclass(frozen=True)
class SegmentAddition:
    """A segment to add to a user, optionally ending after `ttl` or at `expires_at`."""

    slug: str
    ttl: timedelta | None = None
    expires_at: datetime | None = None


@dataclass(frozen=True)
class Segment:
    """A live segment; `member_count` is set by the calls that count members."""

    slug: str
    description: str
    auto_percent: float | None
    rollout_salt: str
    create_time: datetime
    member_count: int | None


@dataclass(frozen=True)
class ImportResult:
    """What ImportUsers did."""

    received_count: int
    created_count: int
    rollout_membership_count: int


@dataclass(frozen=True)
class ReportLink:
    """A signed HTTP link to a month's CSV history report."""

    url: str
    expires_at: datetime


@dataclass(frozen=True)
class AccessToken:
    """A bearer token from SignIn and when it stops working."""

    token: str
    expires_at: datetime


@dataclass(frozen=True)
class NewApiKey:
    """A freshly created API key: `api_key` is shown this once, store it as a secret."""

    key_id: int
    api_key: str


@dataclass(frozen=True)
class ApiKey:
    """An API key as ListApiKeys shows it (never the secret itself)."""

    key_id: int
    name: str
    role: Role | None
    prefix: str
    created_by: int
    create_time: datetime
    revoke_time: datetime | None
