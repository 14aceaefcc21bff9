"""Percentage rollout: which users a segment enrols automatically.

Deterministic and sticky: user U is in a p % rollout of a segment with salt S iff

    bucket(S, U) = int(first 15 hex digits of SHA-256("S:U")) mod 10000  <  p * 100

The bucket depends only on (S, U), so the same user always gets the same answer, on
every replica, after every restart, and for users who register years later. The same
function exists in SQL (`segsvc_rollout_bucket`, migration 000001) so that enrolling a
million existing users is one set-based statement; a test checks both agree.
"""

from __future__ import annotations

import hashlib
import math

from segsvc.domain.errors import InvalidArgument

BUCKETS = 10_000
_DECIMALS_TOLERANCE = 1e-9


def bucket(salt: str, user_id: int) -> int:
    """The user's bucket in [0, 10000) for a rollout salted with `salt`."""
    # The first 15 hex digits are the first 60 bits: the top of the first 8 bytes
    # (cheaper than formatting the digest as hex, which matters for a 1M-id import).
    digest = hashlib.sha256(f"{salt}:{user_id}".encode()).digest()
    return (int.from_bytes(digest[:8], "big") >> 4) % BUCKETS


def is_enrolled(salt: str, basis_points: int, user_id: int) -> bool:
    """True when the user falls into a rollout of `basis_points` / 100 percent."""
    return bucket(salt, user_id) < basis_points


def percent_to_basis_points(percent: float, field: str = "auto_percent") -> int:
    """Validate a percentage (0.01 <= p <= 100, two decimals) and return it in 1/100 %.

    Stored as an integer so SQL and Python compare exactly the same threshold. A value
    that rounds to 0 buckets (1e-9, a denormal) is refused, not taken as "no rollout".
    """
    if not math.isfinite(percent) or not 0 < percent <= 100:
        raise InvalidArgument.single(field, f"must be > 0 and <= 100, got {percent}")
    scaled = percent * 100
    basis_points = round(scaled)
    # Products of two-decimal values and 100 are within a few ulps of an integer.
    if basis_points < 1 or abs(scaled - basis_points) > _DECIMALS_TOLERANCE:
        raise InvalidArgument.single(
            field, f"at most two decimals allowed (0.01 is one bucket), got {percent}"
        )
    return basis_points


def basis_points_to_percent(basis_points: int) -> float:
    """Inverse of percent_to_basis_points, for responses."""
    return basis_points / 100
