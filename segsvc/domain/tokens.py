"""Access tokens: HS256 JWTs whose `sub` is the account id.

Only HS256 is accepted when verifying (never `none`, never an algorithm named by the
token itself), and `exp`, `iat` and `sub` are required, so a token without an expiry
cannot exist. Verification costs ~30 us, cheap enough to do on every call.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt

from segsvc.domain.clock import Clock
from segsvc.domain.errors import Unauthenticated

ALGORITHM = "HS256"
ISSUER = "segsvc"
MIN_SECRET_BYTES = 32
# Tolerated clock skew between the issuing and the verifying replica.
LEEWAY = timedelta(seconds=5)


@dataclass(frozen=True)
class TokenService:
    """Issues and verifies access tokens with one shared secret."""

    secret: bytes
    lifetime: timedelta
    clock: Clock

    def issue(self, account_id: int) -> tuple[str, datetime]:
        """A signed token for `account_id` and the instant it expires."""
        now = self.clock()
        expires_at = (now + self.lifetime).replace(microsecond=0)
        claims = {"sub": str(account_id), "iss": ISSUER, "iat": now, "exp": expires_at}
        return jwt.encode(claims, self.secret, algorithm=ALGORITHM), expires_at

    def verify(self, token: str) -> int:
        """The account id a valid token names; Unauthenticated otherwise.

        Expiry is checked against the injected clock (like everything else), so PyJWT's
        own wall-clock check is switched off and `exp` is required instead.
        """
        try:
            claims = jwt.decode(
                token,
                self.secret,
                algorithms=[ALGORITHM],
                issuer=ISSUER,
                options={"require": ["exp", "iat", "sub", "iss"], "verify_exp": False},
            )
            account_id = int(claims["sub"])
            expires_at = datetime.fromtimestamp(int(claims["exp"]), tz=UTC)
        except (jwt.InvalidTokenError, ValueError, TypeError):
            raise Unauthenticated("access token invalid") from None
        if expires_at + LEEWAY <= self.clock():
            raise Unauthenticated("access token expired: sign in again")
        return account_id
