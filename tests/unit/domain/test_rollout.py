"""The rollout bucket: deterministic, uniform, independent across salts, and with no
off-by-one at the threshold. The expected buckets are computed here from the published
rule, independently of the implementation."""

from __future__ import annotations

import hashlib
import math

import pytest

from segsvc.domain.errors import InvalidArgument
from segsvc.domain.rollout import (
    basis_points_to_percent,
    bucket,
    is_enrolled,
    percent_to_basis_points,
)

IDS = range(1, 100_001)


def published_rule(salt: str, user_id: int) -> int:
    return int(hashlib.sha256(f"{salt}:{user_id}".encode()).hexdigest()[:15], 16) % 10_000


@pytest.mark.parametrize(
    ("salt", "user_id", "expected"),
    [
        ("AVITO_VOICE_MESSAGES", 1000, 4064),
        ("AVITO_VOICE_MESSAGES", 1002, 5646),
        ("AVITO_VOICE_MESSAGES", 1003, 2720),
        ("AVITO_VOICE_MESSAGES", 1009, 1237),
        ("AVITO_DISCOUNT_30", 1000, 3635),
        ("exp:v2", 1, 1181),
    ],
)
def test_readme_vectors(salt: str, user_id: int, expected: int) -> None:
    assert published_rule(salt, user_id) == expected
    assert bucket(salt, user_id) == expected


def test_matches_the_published_rule_and_is_stable() -> None:
    for user_id in range(1, 2001):
        assert bucket("S", user_id) == published_rule("S", user_id)
        assert bucket("S", user_id) == bucket("S", user_id)
        assert 0 <= bucket("S", user_id) < 10_000


@pytest.mark.parametrize("percent", [1, 10, 33.33, 50, 99.99])
def test_share_over_100k_ids_is_within_five_sigma(percent: float) -> None:
    basis_points = percent_to_basis_points(percent)
    enrolled = sum(is_enrolled("SHARE", basis_points, u) for u in IDS)
    p = basis_points / 10_000
    sigma = math.sqrt(len(IDS) * p * (1 - p))
    assert abs(enrolled - len(IDS) * p) <= 5 * sigma


def test_hundred_percent_is_everyone_and_one_basis_point_is_bucket_zero() -> None:
    assert all(is_enrolled("ALL", 10_000, u) for u in range(1, 5001))
    zero = [u for u in range(1, 50_001) if published_rule("EDGE", u) == 0]
    one = [u for u in range(1, 50_001) if published_rule("EDGE", u) == 1]
    assert zero
    assert one
    assert all(is_enrolled("EDGE", 1, u) for u in zero)
    assert not any(is_enrolled("EDGE", 1, u) for u in one)
    assert all(is_enrolled("EDGE", 2, u) for u in one)


def test_two_half_rollouts_are_independent() -> None:
    """2x2 chi-square over 100 000 ids; 10.83 is the 0.1 % critical value at 1 dof."""
    table = [[0, 0], [0, 0]]
    for u in IDS:
        table[is_enrolled("FIRST", 5000, u)][is_enrolled("SECOND", 5000, u)] += 1
    n = len(IDS)
    rows = [sum(r) for r in table]
    cols = [table[0][j] + table[1][j] for j in range(2)]
    chi2 = sum(
        (table[i][j] - rows[i] * cols[j] / n) ** 2 / (rows[i] * cols[j] / n)
        for i in range(2)
        for j in range(2)
    )
    assert chi2 < 10.83


def test_a_different_salt_picks_different_users() -> None:
    first = {u for u in range(1, 10_001) if is_enrolled("A", 1000, u)}
    second = {u for u in range(1, 10_001) if is_enrolled("B", 1000, u)}
    assert len(first & second) < len(first) / 3


@pytest.mark.parametrize(
    ("percent", "expected"), [(0.01, 1), (10, 1000), (33.33, 3333), (12.5, 1250), (100, 10_000)]
)
def test_percent_to_basis_points(percent: float, expected: int) -> None:
    assert percent_to_basis_points(percent) == expected
    assert basis_points_to_percent(expected) == pytest.approx(percent)


@pytest.mark.parametrize("percent", [0, -1, 100.01, 10.005, math.nan, math.inf])
def test_invalid_percentages_name_the_field(percent: float) -> None:
    with pytest.raises(InvalidArgument) as err:
        percent_to_basis_points(percent)
    assert err.value.violations[0].field == "auto_percent"
