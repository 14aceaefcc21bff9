"""SQL for accounts: the people and services that call the API.

A removed account keeps its row (history and segments point at it) with `deleted_at`
set; every lookup here sees live accounts only.
"""

from __future__ import annotations

from datetime import datetime

import psycopg.errors

from segsvc.domain.errors import AlreadyExists
from segsvc.domain.roles import Role
from segsvc.store.database import Connection

# Serialises "is this the first account?" with the insert that follows it, so two
# concurrent sign-ups on an empty system cannot both become admin. Arbitrary constant:
# "sgacct" in ASCII.
FIRST_ACCOUNT_LOCK_ID = 0x736761636374


def create(conn: Connection, name: str, username: str, password_hash: str, role: Role) -> int:
    """Insert an account and return its id; AlreadyExists if the username is taken."""
    try:
        row = conn.execute(
            "INSERT INTO accounts (name, username, password_hash, role)"
            " VALUES (%s, %s, %s, %s) RETURNING id",
            (name, username, password_hash, role.label),
        ).fetchone()
    except psycopg.errors.UniqueViolation:
        raise AlreadyExists("account", username) from None
    assert row is not None
    return int(row[0])


def lock_first_account(conn: Connection) -> None:
    """Hold, until the transaction ends, the lock that orders first-account checks."""
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (FIRST_ACCOUNT_LOCK_ID,))


def any_exists(conn: Connection) -> bool:
    """True once any account was ever created (removed ones count: a system whose
    accounts were all removed is not empty, and does not hand out admin again)."""
    row = conn.execute("SELECT EXISTS (SELECT 1 FROM accounts)").fetchone()
    return bool(row and row[0])


def credentials(conn: Connection, username: str) -> tuple[int, str] | None:
    """(account id, bcrypt hash) of the live account `username`, or None."""
    row = conn.execute(
        "SELECT id, password_hash FROM accounts WHERE username = %s AND deleted_at IS NULL",
        (username,),
    ).fetchone()
    return (int(row[0]), str(row[1])) if row else None


def role_of(conn: Connection, account_id: int) -> Role | None:
    """The role of a live account, or None when it does not exist or was removed."""
    row = conn.execute(
        "SELECT role FROM accounts WHERE id = %s AND deleted_at IS NULL", (account_id,)
    ).fetchone()
    return Role.from_label(str(row[0])) if row else None


def remove(conn: Connection, account_id: int, now: datetime) -> bool:
    """Mark a live account removed and revoke its API keys; False if there was none."""
    row = conn.execute(
        "UPDATE accounts SET deleted_at = %s WHERE id = %s AND deleted_at IS NULL RETURNING id",
        (now, account_id),
    ).fetchone()
    if row is None:
        return False
    conn.execute(
        "UPDATE api_keys SET revoked_at = %s WHERE created_by = %s AND revoked_at IS NULL",
        (now, account_id),
    )
    return True
