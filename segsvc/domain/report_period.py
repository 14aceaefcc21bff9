"""The monthly report's period: a half-open interval [first day 00:00 UTC, next month).

Half-open so that an event at exactly midnight on the 1st belongs to exactly one month,
and December rolls into the next year without special cases at the call sites.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import MAXYEAR, UTC, datetime

from segsvc.domain.errors import FieldViolation, InvalidArgument

FIRST_YEAR = 2000
# The last year a period can be computed for (its end is the next January), so that any
# int32 a client sends is a field violation, never an overflow.
LAST_YEAR = MAXYEAR - 1


@dataclass(frozen=True)
class ReportPeriod:
    """One calendar month in UTC."""

    year: int
    month: int

    @property
    def start(self) -> datetime:
        """First instant of the month."""
        return datetime(self.year, self.month, 1, tzinfo=UTC)

    @property
    def end(self) -> datetime:
        """First instant of the next month (excluded)."""
        if self.month == 12:
            return datetime(self.year + 1, 1, 1, tzinfo=UTC)
        return datetime(self.year, self.month + 1, 1, tzinfo=UTC)

    @property
    def label(self) -> str:
        """YYYY-MM, for file names."""
        return f"{self.year:04d}-{self.month:02d}"


def validate_period(year: int, month: int, now: datetime) -> ReportPeriod:
    """Accept months from January 2000 up to and including the current month."""
    violations: list[FieldViolation] = []
    if not 1 <= month <= 12:
        violations.append(FieldViolation("month", f"must be 1-12, got {month}"))
    if not FIRST_YEAR <= year <= LAST_YEAR:
        violations.append(FieldViolation("year", f"must be {FIRST_YEAR}-{LAST_YEAR}, got {year}"))
    if violations:
        raise InvalidArgument(violations)
    period = ReportPeriod(year, month)
    if period.start > now:
        raise InvalidArgument.single("month", f"{period.label} is in the future (now {now:%Y-%m})")
    return period
