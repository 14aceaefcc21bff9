"""SQL for request ids (AIP-155): claim one, remember its response, purge old ones.

A request id's row is inserted first thing in the transaction of the change it guards
(before any other lock): a concurrent repeat of the same request waits on that row and
then sees the first one's response, or, if the first rolled back, claims it itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from segsvc.domain.request_ids import RequestKey
from segsvc.store.database import Connection


@dataclass(frozen=True)
class Earlier:
    """What an earlier attempt with the same request id stored."""

    fingerprint: bytes
    response: bytes


def claim(
    conn: Connection, account_id: int, key: RequestKey, now: datetime, oldest: datetime
) -> Earlier | None:
    """Claim the request id for this transaction (None), or return the earlier attempt's
    answer. A row older than `oldest` no longer counts and is taken over."""
    claimed = conn.execute(
        "INSERT INTO request_ids (account_id, request_id, fingerprint, created_at)"
        " VALUES (%(account_id)s, %(request_id)s, %(fingerprint)s, %(now)s)"
        " ON CONFLICT (account_id, request_id) DO UPDATE"
        " SET fingerprint = EXCLUDED.fingerprint, response = NULL, created_at = EXCLUDED.created_at"
        " WHERE request_ids.created_at < %(oldest)s"
        " RETURNING 1",
        {
            "account_id": account_id,
            "request_id": key.request_id,
            "fingerprint": key.fingerprint,
            "now": now,
            "oldest": oldest,
        },
    ).fetchone()
    if claimed:
        return None
    row = conn.execute(
        "SELECT fingerprint, response FROM request_ids WHERE account_id = %s AND request_id = %s",
        (account_id, key.request_id),
    ).fetchone()
    assert row is not None
    assert row[1] is not None  # written in the claiming transaction
    return Earlier(bytes(row[0]), bytes(row[1]))


def remember(conn: Connection, account_id: int, key: RequestKey, response: bytes) -> None:
    """Store the response of the request this transaction claimed."""
    conn.execute(
        "UPDATE request_ids SET response = %s WHERE account_id = %s AND request_id = %s",
        (response, account_id, key.request_id),
    )


def purge(conn: Connection, oldest: datetime) -> int:
    """Forget request ids claimed before `oldest`; return how many."""
    return conn.execute("DELETE FROM request_ids WHERE created_at < %s", (oldest,)).rowcount
