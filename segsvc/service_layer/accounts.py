"""Accounts: sign-up (closed by default), sign-in and removal.

Sign-up needs an admin, with two exceptions: the very first account of an empty system
(it becomes admin, so a fresh install can be bootstrapped over the API) and, with
`open_signup`, reader and writer accounts for anyone. The first-account check and the
insert run under one advisory lock, so concurrent sign-ups cannot make two admins.

bcrypt runs through PasswordWork: a small dedicated pool behind a bounded number of
admission slots, so a burst of sign-ins uses at most `password_workers` cores and a fixed
few RPC workers, and is refused beyond that instead of stalling the hot read path.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from segsvc.domain import accounts as rules
from segsvc.domain.clock import Clock
from segsvc.domain.errors import (
    FailedPrecondition,
    NotFound,
    PermissionDenied,
    Unauthenticated,
)
from segsvc.domain.roles import Principal, Role
from segsvc.domain.tokens import TokenService
from segsvc.service_layer.authentication import Authenticator
from segsvc.service_layer.password_work import PasswordWork
from segsvc.store import accounts
from segsvc.store.database import Database


@dataclass(frozen=True)
class Accounts:
    """Accounts and their access tokens."""

    db: Database
    tokens: TokenService
    authenticator: Authenticator
    password_work: PasswordWork
    bcrypt_rounds: int
    # A real hash of a random password: unknown usernames cost as much as wrong
    # passwords, so timing does not reveal which usernames exist.
    decoy_hash: str
    open_signup: bool
    clock: Clock

    def sign_up(
        self,
        name: str,
        username: str,
        password: str,
        role: Role | None,
        caller: Principal | None,
    ) -> tuple[int, Role]:
        """Create an account; return its id and role.

        `caller` is None when no credential was sent; the interceptor has already
        refused a credential below admin.
        """
        rules.validate_sign_up(name, username, password)
        wanted = role or Role.READER
        if caller is None:
            # Refuse before spending bcrypt on a call that cannot succeed.
            with self.db.connection() as conn:
                empty = not accounts.any_exists(conn)
            self._check_anonymous(empty, wanted)
        password_hash = self.password_work.run(rules.hash_password, password, self.bcrypt_rounds)
        with self.db.transaction() as conn:
            if caller is None:
                accounts.lock_first_account(conn)
                empty = not accounts.any_exists(conn)
                self._check_anonymous(empty, wanted)
                wanted = Role.ADMIN if empty else wanted
            return accounts.create(conn, name.strip(), username, password_hash, wanted), wanted

    def _check_anonymous(self, empty: bool, wanted: Role) -> None:
        if empty:
            return
        if not self.open_signup:
            raise Unauthenticated(
                "sign-up is closed: send an admin's credential as 'authorization: Bearer ...'"
            )
        if wanted is Role.ADMIN:
            raise PermissionDenied("SignUp with role admin needs an admin's credential")

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

    def remove(self, account_id: int, caller: Principal) -> None:
        """Remove an account and revoke its keys; NotFound if it is not a live account."""
        if account_id == caller.account_id:
            raise FailedPrecondition("an account cannot remove itself; ask another admin")
        with self.db.transaction() as conn:
            if not accounts.remove(conn, account_id, self.clock()):
                raise NotFound("account", [str(account_id)])
        self.authenticator.forget()


def create_account(
    db: Database, name: str, username: str, password: str, role: Role, bcrypt_rounds: int
) -> int:
    """Create an account with any role, no caller needed: `segsvc accounts create`, run
    by an operator who already holds the database credentials."""
    rules.validate_sign_up(name, username, password)
    password_hash = rules.hash_password(password, bcrypt_rounds)
    with db.transaction() as conn:
        return accounts.create(conn, name.strip(), username, password_hash, role)
