"""Access tokens: HS256 only, expiry enforced, forgeries rejected."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from segsvc.domain.errors import Unauthenticated
from segsvc.domain.report_links import LinkInvalid, ReportLinkSigner, ReportRequest
from segsvc.domain.report_period import ReportPeriod
from segsvc.domain.tokens import TokenService
from tests.support.clock import MovableClock

SECRET = b"k" * 64


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock()


@pytest.fixture
def tokens(clock: MovableClock) -> TokenService:
    return TokenService(SECRET, timedelta(hours=1), clock)


def test_round_trip(tokens: TokenService, clock: MovableClock) -> None:
    token, expires_at = tokens.issue(42)
    assert tokens.verify(token) == 42
    assert timedelta(minutes=59) < expires_at - clock() <= timedelta(hours=1)


def test_expired(tokens: TokenService, clock: MovableClock) -> None:
    """Also once the token's claims are cached by a first successful check."""
    token, _ = tokens.issue(42)
    assert tokens.verify(token) == 42
    clock.advance(timedelta(hours=1, seconds=10))
    with pytest.raises(Unauthenticated, match="expired"):
        tokens.verify(token)


def b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_forgeries_are_rejected(tokens: TokenService) -> None:
    now = datetime.now(UTC)
    claims = {"sub": "1", "iss": "segsvc", "iat": now, "exp": now + timedelta(hours=1)}
    numeric = {
        "sub": "1",
        "iss": "segsvc",
        "iat": int(now.timestamp()),
        "exp": int(now.timestamp()) + 60,
    }
    forged = [
        jwt.encode(claims, b"x" * 64, algorithm="HS256"),
        jwt.encode(claims, SECRET, algorithm="HS512"),
        f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(numeric)}.",
        jwt.encode({k: v for k, v in claims.items() if k != "exp"}, SECRET, algorithm="HS256"),
        jwt.encode({**claims, "iss": "someone-else"}, SECRET, algorithm="HS256"),
        jwt.encode({**claims, "sub": "not-a-number"}, SECRET, algorithm="HS256"),
        "garbage",
    ]
    for token in forged:
        with pytest.raises(Unauthenticated):
            tokens.verify(token)


def test_tokens_and_report_links_are_not_interchangeable(
    tokens: TokenService, clock: MovableClock
) -> None:
    signer = ReportLinkSigner(SECRET, timedelta(hours=1), clock)
    access, _ = tokens.issue(1)
    link, _ = signer.sign(ReportRequest(ReportPeriod(2024, 1), ()))
    with pytest.raises(LinkInvalid):
        signer.verify(access)
    with pytest.raises(Unauthenticated):
        tokens.verify(link)
