"""Which credential the client sends, and when a signed-in token must be renewed.

A service should use an API key: it is sent as it is (`authorization: Bearer <key>`),
with no sign-in round trip and nothing to renew. Username and password are for people
and scripts: the client signs in on the first call and again shortly before the token
expires, so a long-lived client never sends an expired token.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from segsvc_client.models import AccessToken

RENEW_BEFORE_EXPIRY = timedelta(minutes=1)


@dataclass(frozen=True)
class Credentials:
    """An API key, or a username and password to sign in with, or nothing."""

    api_key: str | None = None
    username: str | None = None
    password: str | None = None

    def __post_init__(self) -> None:
        if self.api_key is not None and (self.username is not None or self.password is not None):
            raise ValueError("give api_key or username/password, not both")
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together")

    @property
    def signs_in(self) -> bool:
        """True when calls need a token from SignIn."""
        return self.username is not None


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    """The call metadata that carries a token or API key."""
    return (("authorization", f"Bearer {token}"),)


def needs_renewal(token: AccessToken | None, now: datetime | None = None) -> bool:
    """True when there is no token yet or it expires within RENEW_BEFORE_EXPIRY."""
    if token is None:
        return True
    moment = now or datetime.now(timezone.utc)
    return token.expires_at - RENEW_BEFORE_EXPIRY <= moment
