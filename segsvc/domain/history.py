"""Reconstructing a user's segments at a past instant from the membership history.

History rows are facts ("added at T with expiry E", "removed at T"); the membership at
instant X is the last add/remove at or before X, still unexpired at X. Expiry is applied
here too, so the answer is exact even where the expiry sweeper had not yet written the
removal row.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from segsvc.domain.models import ActiveSegment, HistoryEvent


def segments_at(events: Iterable[HistoryEvent], instant: datetime) -> list[ActiveSegment]:
    """The user's segments at `instant`, sorted by slug. `events` must be in time order."""
    state: dict[int, ActiveSegment] = {}
    for event in events:
        if event.at > instant:
            break
        if event.operation == "remove":
            state.pop(event.segment_id, None)
        elif event.operation == "add":
            state[event.segment_id] = ActiveSegment(
                event.slug, event.at, event.expires_at, event.reason
            )
        elif event.operation == "update" and event.segment_id in state:
            previous = state[event.segment_id]
            state[event.segment_id] = ActiveSegment(
                previous.slug, previous.added_at, event.expires_at, previous.reason
            )
    active = [s for s in state.values() if s.expires_at is None or s.expires_at > instant]
    return sorted(active, key=lambda s: s.slug)
