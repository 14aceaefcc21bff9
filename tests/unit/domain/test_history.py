"""Reconstructing memberships at a past instant from history events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from segsvc.domain.history import segments_at
from segsvc.domain.models import HistoryEvent, Reason

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def event(
    segment: int,
    operation: str,
    hours: float,
    expires_in: float | None = None,
    reason: Reason = Reason.MANUAL,
) -> HistoryEvent:
    at = T0 + timedelta(hours=hours)
    expires = at + timedelta(hours=expires_in) if expires_in is not None else None
    return HistoryEvent(segment, f"S{segment}", operation, reason, at, expires)


def slugs(events: list[HistoryEvent], hours: float) -> list[str]:
    return [s.slug for s in segments_at(events, T0 + timedelta(hours=hours))]


def test_add_then_remove() -> None:
    events = [event(1, "add", 0), event(1, "remove", 5)]
    assert slugs(events, -1) == []
    assert slugs(events, 0) == ["S1"]
    assert slugs(events, 4.9) == ["S1"]
    assert slugs(events, 5) == []


def test_expiry_applies_without_a_removal_row() -> None:
    events = [event(1, "add", 0, expires_in=2)]
    assert slugs(events, 1.99) == ["S1"]
    assert slugs(events, 2) == []


def test_update_changes_expiry_but_keeps_start_and_reason() -> None:
    events = [
        event(1, "add", 0, expires_in=2, reason=Reason.ROLLOUT),
        event(1, "update", 1, expires_in=10),
    ]
    (segment,) = segments_at(events, T0 + timedelta(hours=5))
    assert segment.added_at == T0
    assert segment.reason == Reason.ROLLOUT
    assert segment.expires_at == T0 + timedelta(hours=11)
    cleared = [*events, event(1, "update", 6)]
    (segment,) = segments_at(cleared, T0 + timedelta(hours=100))
    assert segment.expires_at is None


def test_readd_starts_a_new_membership_and_results_are_sorted() -> None:
    events = [event(2, "add", 0), event(1, "add", 1), event(2, "remove", 2), event(2, "add", 3)]
    result = segments_at(events, T0 + timedelta(hours=4))
    assert [s.slug for s in result] == ["S1", "S2"]
    assert result[1].added_at == T0 + timedelta(hours=3)


def test_events_after_the_instant_are_ignored() -> None:
    events = [event(1, "add", 0), event(1, "remove", 1), event(1, "add", 2)]
    assert slugs(events, 1.5) == []
