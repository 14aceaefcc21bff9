"""API keys for services: created by an admin, shown once, stored as a hash."""

from __future__ import annotations

from dataclasses import dataclass

from segsvc.domain import api_keys as rules
from segsvc.domain.api_keys import ApiKey
from segsvc.domain.clock import Clock
from segsvc.domain.errors import NotFound
from segsvc.domain.roles import Principal, Role
from segsvc.service_layer.authentication import Authenticator
from segsvc.store import api_keys
from segsvc.store.database import Database


@dataclass(frozen=True)
class ApiKeys:
    """Create, list and revoke API keys."""

    db: Database
    authenticator: Authenticator
    clock: Clock

    def create(self, name: str, role: Role, caller: Principal) -> tuple[ApiKey, str]:
        """A new key acting as `caller`'s account with `role`, and the key itself."""
        clean_name = rules.validate_name(name)
        key = rules.generate()
        with self.db.transaction() as conn:
            stored = api_keys.create(
                conn,
                clean_name,
                role,
                rules.digest(key),
                key[: rules.SHOWN_PREFIX_LENGTH],
                caller.account_id,
                self.clock(),
            )
        return stored, key

    def list(self) -> list[ApiKey]:
        """Every key, oldest first."""
        with self.db.connection() as conn:
            return api_keys.list_all(conn)

    def revoke(self, key_id: int) -> ApiKey:
        """Revoke a key; this replica forgets it at once, the others within the cache bound."""
        with self.db.transaction() as conn:
            key = api_keys.revoke(conn, key_id, self.clock())
        if key is None:
            raise NotFound("api key", [str(key_id)])
        self.authenticator.forget()
        return key
