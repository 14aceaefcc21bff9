"""The read cache's rules without a server: LRU bound, validity window, and the
invalidation sequence that refuses fills overtaken by an invalidation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from segsvc.cache.read_cache import FOREVER, STRIPES, ReadCache
from segsvc.domain.membership_change import MembershipChange
from segsvc.observability.metrics import Metrics

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def listening_cache(capacity: int = 10) -> ReadCache:
    cache = ReadCache(capacity, Metrics())
    cache.enable()
    return cache


def fill(cache: ReadCache, user_id: int, value: bytes = b"x", until: datetime = FOREVER) -> bool:
    return cache.fill(user_id, cache.ticket(), value, T0, until)


def test_nothing_is_stored_or_served_until_the_process_listens() -> None:
    cache = ReadCache(10, Metrics())
    assert not fill(cache, 1)
    assert cache.get(1, T0) is None
    cache.enable()
    assert fill(cache, 1)
    assert cache.get(1, T0) == b"x"


def test_losing_the_listener_empties_the_cache_and_refuses_fills() -> None:
    cache = listening_cache()
    fill(cache, 1)
    ticket = cache.ticket()
    cache.disable()
    assert cache.get(1, T0) is None
    assert not cache.fill(2, cache.ticket(), b"y", T0, FOREVER)
    cache.enable()  # listening again: reads from before the gap still refused
    assert not cache.fill(2, ticket, b"y", T0, FOREVER)
    assert fill(cache, 2)


def test_least_recently_used_entry_goes_first() -> None:
    cache = listening_cache(capacity=2)
    fill(cache, 1, b"one")
    fill(cache, 2, b"two")
    assert cache.get(1, T0) == b"one"  # 2 is now the least recently used
    fill(cache, 3, b"three")
    assert len(cache) == 2
    assert cache.get(2, T0) is None
    assert cache.get(1, T0) == b"one"
    assert cache.get(3, T0) == b"three"


def test_an_entry_is_served_from_its_read_until_its_earliest_expiry_exactly() -> None:
    cache = listening_cache()
    expiry = T0 + timedelta(days=2)
    fill(cache, 1, until=expiry)
    tick = timedelta(microseconds=1)
    assert cache.get(1, T0) == b"x"
    assert cache.get(1, expiry - tick) == b"x"
    assert cache.get(1, expiry) is None
    # A clock moved back before the read may be in a past the read did not see.
    assert cache.get(1, T0 - tick) is None


def test_a_fill_overtaken_by_an_invalidation_of_its_user_is_refused() -> None:
    cache = listening_cache()
    ticket = cache.ticket()  # the read's ticket, before its query
    cache.forget(MembershipChange.users([7]))  # the change commits meanwhile
    assert not cache.fill(7, ticket, b"stale", T0, FOREVER)
    assert cache.get(7, T0) is None
    # A read that began after the invalidation may store what it read.
    assert fill(cache, 7, b"fresh")
    assert cache.get(7, T0) == b"fresh"


def test_other_users_invalidations_do_not_refuse_a_fill() -> None:
    cache = listening_cache()
    ticket = cache.ticket()
    cache.forget(MembershipChange.users([8]))
    assert cache.fill(7, ticket, b"x", T0, FOREVER)
    # ...except a user on the same stripe: a refused fill, never a stale entry.
    ticket = cache.ticket()
    cache.forget(MembershipChange.users([7 + STRIPES]))
    assert not cache.fill(7, ticket, b"x", T0, FOREVER)


def test_forgetting_everyone_drops_all_entries_and_refuses_older_fills() -> None:
    cache = listening_cache()
    fill(cache, 1)
    fill(cache, 2)
    ticket = cache.ticket()
    cache.forget(MembershipChange.all_users())
    assert len(cache) == 0
    assert not cache.fill(3, ticket, b"x", T0, FOREVER)


def test_forgetting_a_user_drops_only_that_entry() -> None:
    cache = listening_cache()
    fill(cache, 1, b"one")
    fill(cache, 2, b"two")
    cache.forget(MembershipChange.users([1]))
    assert cache.get(1, T0) is None
    assert cache.get(2, T0) == b"two"


def test_capacity_zero_never_stores() -> None:
    cache = listening_cache(capacity=0)
    assert not cache.enabled
    assert not fill(cache, 1)
    assert cache.get(1, T0) is None


@pytest.mark.parametrize(
    ("listening", "stored", "result"),
    [(True, True, "hit"), (True, False, "miss"), (False, False, "bypass")],
)
def test_lookups_are_counted_by_result(listening: bool, stored: bool, result: str) -> None:
    metrics = Metrics()
    cache = ReadCache(10, metrics)
    if listening:
        cache.enable()
    if stored:
        fill(cache, 1)
    cache.get(1, T0)
    sample = metrics.registry.get_sample_value("segsvc_cache_lookups_total", {"result": result})
    assert sample == 1
