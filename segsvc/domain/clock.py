"""The clock every rule and query uses.

One injectable source of "now" (always timezone-aware UTC), passed down to the SQL as a
parameter instead of using PostgreSQL's now(): expiry, history timestamps and reads then
agree on a single clock, and tests can move time without sleeping.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    """Wall-clock time in UTC."""
    return datetime.now(UTC)
