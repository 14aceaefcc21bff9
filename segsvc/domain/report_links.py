"""Signed, expiring links to history reports.

The link carries everything needed to produce the report (month, optional user filter,
expiry) in a JWT signed with a key derived from the service secret, so it needs no
stored state and works on any replica. A separate key and audience mean an access token
can never be used as a report link, nor the other way round.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt

from segsvc.domain.clock import Clock
from segsvc.domain.report_period import ReportPeriod, validate_period
from segsvc.domain.user_ids import require_user_ids

AUDIENCE = "segsvc-report"
# Users a filtered report may name: enough for an investigation, small enough for a link.
MAX_REPORT_USERS = 100


class LinkExpired(Exception):
    """The link was genuine but is past its expiry (HTTP 410)."""


class LinkInvalid(Exception):
    """The link was not issued by us or was altered (HTTP 403)."""


@dataclass(frozen=True)
class ReportRequest:
    """What a link asks for."""

    period: ReportPeriod
    user_ids: tuple[int, ...]


def report_request(year: int, month: int, user_ids: Sequence[int], now: datetime) -> ReportRequest:
    """A validated report request (InvalidArgument for a bad month or user filter)."""
    period = validate_period(year, month, now)
    require_user_ids(user_ids, MAX_REPORT_USERS)
    return ReportRequest(period, tuple(sorted(set(user_ids))))


@dataclass(frozen=True)
class ReportLinkSigner:
    """Signs and checks report link tokens."""

    secret: bytes
    lifetime: timedelta
    clock: Clock

    @property
    def _key(self) -> bytes:
        return hmac.new(self.secret, b"segsvc report links", hashlib.sha256).digest()

    def sign(self, request: ReportRequest) -> tuple[str, datetime]:
        """A token for `request` and the instant it stops working."""
        expires_at = (self.clock() + self.lifetime).replace(microsecond=0)
        claims = {
            "aud": AUDIENCE,
            "exp": expires_at,
            "y": request.period.year,
            "m": request.period.month,
            "u": list(request.user_ids),
        }
        return jwt.encode(claims, self._key, algorithm="HS256"), expires_at

    def verify(self, token: str) -> ReportRequest:
        """The request a genuine, unexpired token carries."""
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=["HS256"],
                audience=AUDIENCE,
                options={"require": ["exp", "aud", "y", "m"], "verify_exp": False},
            )
        except jwt.InvalidTokenError:
            raise LinkInvalid("report link is invalid") from None
        if datetime.fromtimestamp(int(claims["exp"]), tz=UTC) <= self.clock():
            raise LinkExpired("report link has expired: request a new one")
        try:
            period = ReportPeriod(int(claims["y"]), int(claims["m"]))
            user_ids = tuple(int(u) for u in claims.get("u", []))
        except (TypeError, ValueError):
            raise LinkInvalid("report link is invalid") from None
        return ReportRequest(period, user_ids)
