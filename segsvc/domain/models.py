"""Plain data the rules and the store exchange. Frozen: values, not entities."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import NamedTuple


class Reason(StrEnum):
    """Why a membership began or ended; stored as text in memberships and history."""

    MANUAL = "manual"
    ROLLOUT = "rollout"
    EXPIRED = "expired"
    SEGMENT_DELETED = "segment_deleted"


class ActiveSegment(NamedTuple):
    """A segment a user is in (now, or at some instant in the past).

    A named tuple rather than a frozen dataclass like the others: the hot reads make
    one per row, 800 for a batch of 100 users, and a frozen dataclass costs twice as
    much to build (each field is set through object.__setattr__).
    """

    slug: str
    added_at: datetime
    expires_at: datetime | None
    reason: Reason


@dataclass(frozen=True)
class Segment:
    """A live (or just deleted) segment."""

    id: int
    slug: str
    description: str
    rollout_basis_points: int | None
    rollout_salt: str | None
    created_at: datetime
    member_count: int | None = None


@dataclass(frozen=True)
class Addition:
    """One validated `add` entry: the slug and its absolute expiry (None: never)."""

    slug: str
    expires_at: datetime | None


@dataclass(frozen=True)
class HistoryEvent:
    """One row of membership history, as the as-of reconstruction needs it."""

    segment_id: int
    slug: str
    operation: str
    reason: Reason
    at: datetime
    expires_at: datetime | None
