"""Validation and planning of UpdateUserSegments: every problem reported at once, and
no-ops recognised before anything is written."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from segsvc.domain.errors import InvalidArgument
from segsvc.domain.membership_update import (
    RequestedAddition,
    UpdatePlan,
    plan_update,
    validate_update,
)

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def fields(err: InvalidArgument) -> list[str]:
    return [v.field for v in err.violations]


def test_all_violations_are_reported_together() -> None:
    with pytest.raises(InvalidArgument) as err:
        validate_update(
            0,
            [
                RequestedAddition("bad slug"),
                RequestedAddition("A", ttl=timedelta(0)),
                RequestedAddition("B", expires_at=NOW - timedelta(seconds=1)),
                RequestedAddition("C", ttl=timedelta(days=3651)),
                RequestedAddition("D"),
                RequestedAddition("D"),
            ],
            ["E", "E", "A", "lower"],
            NOW,
        )
    assert fields(err.value) == [
        "user_id",
        "add[0].slug",
        "add[1].ttl",
        "add[2].expires_at",
        "add[3].ttl",
        "remove[3]",
        "add",
        "remove",
        "remove",
    ]
    messages = [v.description for v in err.value.violations]
    assert "D" in messages[6]
    assert "E" in messages[7]
    assert "both added and removed: A" in messages[8]


def test_expiry_is_resolved_from_the_clock() -> None:
    at = NOW + timedelta(days=400)
    update = validate_update(
        7,
        [
            RequestedAddition("TTL", ttl=timedelta(hours=2)),
            RequestedAddition("AT", expires_at=at),
            RequestedAddition("NEVER"),
        ],
        ["GONE"],
        NOW,
    )
    assert [(a.slug, a.expires_at) for a in update.additions] == [
        ("TTL", NOW + timedelta(hours=2)),
        ("AT", at),
        ("NEVER", None),
    ]
    assert update.removals == ("GONE",)
    assert update.slugs == ["TTL", "AT", "NEVER", "GONE"]


def test_expiry_exactly_now_is_in_the_past() -> None:
    with pytest.raises(InvalidArgument) as err:
        validate_update(1, [RequestedAddition("A", expires_at=NOW)], [], NOW)
    assert fields(err.value) == ["add[0].expires_at"]


def test_too_many_slugs() -> None:
    with pytest.raises(InvalidArgument) as err:
        validate_update(1, [RequestedAddition(f"S{i}") for i in range(1001)], [], NOW)
    assert "at most 1000" in str(err.value)


def test_plan_inserts_changes_and_deletes_only_what_differs() -> None:
    later = NOW + timedelta(days=1)
    current = {1: None, 2: later, 3: None, 4: later}
    plan = plan_update(current, {1: None, 2: None, 4: later + timedelta(1), 5: later}, [3, 9])
    assert plan.insert == {5: later}
    assert plan.change_expiry == {2: None, 4: later + timedelta(1)}
    assert plan.delete == [3]


def test_plan_of_pure_noops_is_empty() -> None:
    later = NOW + timedelta(days=1)
    plan = plan_update({1: None, 2: later}, {1: None, 2: later}, [3])
    assert plan == UpdatePlan()
