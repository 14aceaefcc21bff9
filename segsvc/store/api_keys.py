"""SQL for API keys. Keys are found by the SHA-256 of the secret (unique index)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from psycopg.rows import class_row

from segsvc.domain.api_keys import ApiKey
from segsvc.domain.roles import Principal, Role
from segsvc.store.database import Connection


@dataclass(frozen=True)
class _Row:
    id: int
    name: str
    role: str
    prefix: str
    created_by: int
    created_at: datetime
    revoked_at: datetime | None

    def to_domain(self) -> ApiKey:
        return ApiKey(
            self.id,
            self.name,
            Role.from_label(self.role),
            self.prefix,
            self.created_by,
            self.created_at,
            self.revoked_at,
        )


def create(
    conn: Connection,
    name: str,
    role: Role,
    key_hash: bytes,
    prefix: str,
    created_by: int,
    now: datetime,
) -> ApiKey:
    """Store a new key's hash and describe it."""
    with conn.cursor(row_factory=class_row(_Row)) as cur:
        row = cur.execute(
            "INSERT INTO api_keys (name, role, key_hash, prefix, created_by, created_at)"
            " VALUES (%s, %s, %s, %s, %s, %s)"
            " RETURNING id, name, role, prefix, created_by, created_at, revoked_at",
            (name, role.label, key_hash, prefix, created_by, now),
        ).fetchone()
    assert row is not None
    return row.to_domain()


def list_all(conn: Connection) -> list[ApiKey]:
    """Every key, oldest first."""
    with conn.cursor(row_factory=class_row(_Row)) as cur:
        rows = cur.execute(
            "SELECT id, name, role, prefix, created_by, created_at, revoked_at"
            " FROM api_keys ORDER BY id"
        ).fetchall()
    return [r.to_domain() for r in rows]


def revoke(conn: Connection, key_id: int, now: datetime) -> ApiKey | None:
    """Revoke a key (keeping an earlier revocation time); None if there is no such key."""
    with conn.cursor(row_factory=class_row(_Row)) as cur:
        row = cur.execute(
            "UPDATE api_keys SET revoked_at = coalesce(revoked_at, %s) WHERE id = %s"
            " RETURNING id, name, role, prefix, created_by, created_at, revoked_at",
            (now, key_id),
        ).fetchone()
    return row.to_domain() if row else None


def principal_for(conn: Connection, key_hash: bytes) -> Principal | None:
    """Who a live key (of a live account) acts as, or None."""
    row = conn.execute(
        "SELECT k.id, k.role, k.created_by FROM api_keys k"
        " JOIN accounts a ON a.id = k.created_by"
        " WHERE k.key_hash = %s AND k.revoked_at IS NULL AND a.deleted_at IS NULL",
        (key_hash,),
    ).fetchone()
    if row is None:
        return None
    return Principal(int(row[2]), Role.from_label(str(row[1])), key_id=int(row[0]))
