"""Sign-up and sign-in.

bcrypt runs through PasswordWork: a small dedicated pool behind a bounded number of
admission slots, so a burst of sign-ins uses at most `password_workers` cores and a fixed
few RPC workers, and is refused beyond that instead of stalling the hot read path.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from segsvc.domain import accounts as rules
from segsvc.domain.errors import Unauthenticated
from segsvc.domain.tokens import TokenService
from segsvc.service_layer.password_work import PasswordWork
from segsvc.store import accounts
from segsvc.store.database import Database


@dataclass(frozen=True)
class AccountService:
    """Accounts and their access tokens."""

    db: Database
    tokens: TokenService
    password_work: PasswordWork
    bcrypt_rounds: int
    # A real hash of a random password: unknown usernames cost as much as wrong
    # passwords, so timing does not reveal which usernames exist.
    decoy_hash: str

    def sign_up(self, name: str, username: str, password: str) -> int:
        """Create an account; return its id."""
        rules.validate_sign_up(name, username, password)
        password_hash = self.password_work.run(rules.hash_password, password, self.bcrypt_rounds)
        with self.db.transaction() as conn:
            return accounts.create(conn, name.strip(), username, password_hash)

    def sign_in(self, username: str, password: str) -> tuple[str, datetime]:
        """An access token and its expiry for correct credentials."""
        rules.validate_sign_in(username, password)
        with self.db.connection() as conn:
            found = accounts.credentials(conn, username)
        account_id, stored = found if found else (0, self.decoy_hash)
        ok = self.password_work.run(rules.check_password, password, stored)
        if not (found and ok):
            raise Unauthenticated("invalid username or password")
        return self.tokens.issue(account_id)
