"""Authentication: who a bearer credential is, answered from memory on the hot path.

Two kinds of credential arrive as `authorization: Bearer <credential>`:
- an API key (`sgk_...`): looked up by its SHA-256 in the database;
- a JWT from SignIn: verified with the shared secret, then its account is looked up
  (role, and whether it was removed).

Each answer is remembered for `cache_seconds` (at most 10), so a valid caller costs one
dictionary lookup per call and one database round trip per credential per period. That
period is the documented bound within which a revoked key, a removed account or a
changed role takes effect on *every* replica; the replica that made the change forgets
at once. Failures are not remembered, so a new key works at once everywhere.
`remembered` answers from memory alone, on the event loop; only its misses go to a
worker thread for `authenticate`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TypeVar

from segsvc.domain import api_keys
from segsvc.domain.errors import Unauthenticated
from segsvc.domain.roles import Principal, Role
from segsvc.domain.tokens import TokenService
from segsvc.store import accounts
from segsvc.store import api_keys as key_store
from segsvc.store.database import Database

MAX_CACHE_SECONDS = 10.0
CACHE_SIZE = 10_000
K = TypeVar("K")
V = TypeVar("V")


@dataclass(frozen=True)
class Authenticator:
    """Turns a bearer credential into a Principal, or raises Unauthenticated."""

    db: Database
    tokens: TokenService
    cache_seconds: float
    _keys: dict[str, tuple[Principal, float]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    _accounts: dict[int, tuple[Role, float]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if not 0 <= self.cache_seconds <= MAX_CACHE_SECONDS:
            raise ValueError(f"cache_seconds must be 0-{MAX_CACHE_SECONDS}")

    def remembered(self, credential: str) -> Principal | None:
        """The caller a credential proves, when that is known without the database
        (None: ask `authenticate`). Never blocks, so the event loop may call it."""
        now = time.monotonic()
        if api_keys.is_api_key(credential):
            known_key = self._keys.get(credential)
            return known_key[0] if known_key is not None and known_key[1] > now else None
        account_id = self.tokens.verify(credential)
        known_role = self._accounts.get(account_id)
        if known_role is None or known_role[1] <= now:
            return None
        return Principal(account_id, known_role[0])

    def authenticate(self, credential: str) -> Principal:
        """The caller a credential proves; Unauthenticated for anything else. May take
        a database round trip (blocking)."""
        if api_keys.is_api_key(credential):
            return self._key(credential)
        account_id = self.tokens.verify(credential)
        return Principal(account_id, self._role(account_id))

    def forget(self) -> None:
        """Drop every remembered answer (after a revocation or removal on this replica)."""
        self._keys.clear()
        self._accounts.clear()

    def _key(self, key: str) -> Principal:
        now = time.monotonic()
        known = self._keys.get(key)
        if known is not None and known[1] > now:
            return known[0]
        with self.db.connection() as conn:
            principal = key_store.principal_for(conn, api_keys.digest(key))
        if principal is None:
            self._keys.pop(key, None)
            raise Unauthenticated("API key invalid or revoked")
        _bounded(self._keys)[key] = (principal, now + self.cache_seconds)
        return principal

    def _role(self, account_id: int) -> Role:
        now = time.monotonic()
        known = self._accounts.get(account_id)
        if known is not None and known[1] > now:
            return known[0]
        with self.db.connection() as conn:
            role = accounts.role_of(conn, account_id)
        if role is None:
            self._accounts.pop(account_id, None)
            raise Unauthenticated("account removed: its tokens are no longer valid")
        _bounded(self._accounts)[account_id] = (role, now + self.cache_seconds)
        return role


def _bounded(cache: dict[K, V]) -> dict[K, V]:
    """`cache`, emptied first when full: crude but bounded, refilled by the next calls."""
    if len(cache) >= CACHE_SIZE:
        cache.clear()
    return cache
