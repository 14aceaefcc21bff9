"""Report periods and signed report links."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from segsvc.domain.errors import InvalidArgument
from segsvc.domain.report_links import LinkExpired, LinkInvalid, ReportLinkSigner, ReportRequest
from segsvc.domain.report_period import ReportPeriod, validate_period
from tests.support.clock import MovableClock

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("year", "month", "field"),
    [(2026, 0, "month"), (2026, 13, "month"), (1999, 6, "year"), (2026, 12, "month")],
)
def test_invalid_periods(year: int, month: int, field: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        validate_period(year, month, NOW)
    assert err.value.violations[0].field == field


def test_current_and_past_months_are_half_open_intervals() -> None:
    assert validate_period(2026, 11, NOW) == ReportPeriod(2026, 11)
    december = validate_period(2025, 12, NOW)
    assert december.start == datetime(2025, 12, 1, tzinfo=UTC)
    assert december.end == datetime(2026, 1, 1, tzinfo=UTC)
    assert december.label == "2025-12"
    assert ReportPeriod(2024, 2).end == datetime(2024, 3, 1, tzinfo=UTC)


def test_links_round_trip_and_reject_tampering_and_expiry() -> None:
    clock = MovableClock()
    signer = ReportLinkSigner(b"s" * 64, timedelta(hours=1), clock)
    request = ReportRequest(ReportPeriod(2024, 3), (5, 7))
    token, expires_at = signer.sign(request)
    assert signer.verify(token) == request
    assert expires_at > clock()
    header, payload, signature = token.split(".")
    flipped = payload[:-1] + ("A" if payload[-1] != "A" else "B")
    with pytest.raises(LinkInvalid):
        signer.verify(f"{header}.{flipped}.{signature}")
    with pytest.raises(LinkInvalid):
        ReportLinkSigner(b"t" * 64, timedelta(hours=1), clock).verify(token)
    clock.advance(timedelta(hours=1, seconds=1))
    with pytest.raises(LinkExpired):
        signer.verify(token)
