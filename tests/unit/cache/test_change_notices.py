"""The NOTIFY payloads: every listed user arrives, each payload fits PostgreSQL's
8000-byte limit, and what a reader cannot parse makes it forget everyone."""

from __future__ import annotations

from segsvc.domain.membership_change import MembershipChange
from segsvc.store.change_notices import EVERYONE, MAX_LISTED_USERS, parse, payloads


def test_users_round_trip_in_payloads_under_the_limit() -> None:
    ids = {10**15 + i for i in range(MAX_LISTED_USERS)}
    sent = payloads(MembershipChange.users(ids), "a1b2c3d4e5f6")
    assert len(sent) > 1
    assert all(len(p.encode()) < 8000 for p in sent)
    received: set[int] = set()
    for payload in sent:
        origin, change = parse(payload)
        assert origin == "a1b2c3d4e5f6"
        assert not change.everyone
        received |= change.user_ids
    assert received == ids


def test_one_user_is_one_short_payload() -> None:
    assert payloads(MembershipChange.users([42]), "o") == ["o u:42"]
    assert parse("o u:42") == ("o", MembershipChange.users([42]))
    assert parse(" u:42") == ("", MembershipChange.users([42]))


def test_wide_changes_are_announced_as_everyone() -> None:
    assert payloads(MembershipChange.all_users(), "o") == [f"o {EVERYONE}"]
    many = MembershipChange.users(range(1, MAX_LISTED_USERS + 2))
    assert payloads(many, "o") == [f"o {EVERYONE}"]
    assert parse(f"o {EVERYONE}")[1].everyone


def test_an_empty_change_announces_nothing() -> None:
    assert payloads(MembershipChange()) == []


def test_an_unknown_payload_means_everyone() -> None:
    assert parse("o s:17")[1].everyone
    assert parse("o u:1,x")[1].everyone
    assert parse("garbage")[1].everyone
