"""SQL for accounts: the people and services that call the API."""

from __future__ import annotations

import psycopg.errors

from segsvc.domain.errors import AlreadyExists
from segsvc.store.database import Connection


def create(conn: Connection, name: str, username: str, password_hash: str) -> int:
    """Insert an account and return its id; AlreadyExists if the username is taken."""
    try:
        row = conn.execute(
            "INSERT INTO accounts (name, username, password_hash) VALUES (%s, %s, %s) RETURNING id",
            (name, username, password_hash),
        ).fetchone()
    except psycopg.errors.UniqueViolation:
        raise AlreadyExists("account", username) from None
    assert row is not None
    return int(row[0])


def credentials(conn: Connection, username: str) -> tuple[int, str] | None:
    """(account id, bcrypt hash) for `username`, or None when there is no such account."""
    row = conn.execute(
        "SELECT id, password_hash FROM accounts WHERE username = %s", (username,)
    ).fetchone()
    return (int(row[0]), str(row[1])) if row else None
