"""The `segsvc_membership_changes` channel: PostgreSQL LISTEN/NOTIFY between processes.

A write announces what it changed with `publish`, inside its own transaction: NOTIFY is
transactional, so the notice is delivered to listeners exactly when the change commits
(and never when it rolls back), and a listener that receives it and then reads sees the
change. `publish` also hands the change to the Database that runs the transaction, which
gives it to this process's own cache right after the commit (before the write returns).

A payload is the writing Database's origin tag, a space, and "*" (forget everyone) or
"u:" and up to a few hundred comma-separated user ids, under PostgreSQL's 8000-byte
payload limit; more users than MAX_LISTED_USERS are announced as "*", which is cheaper
for everyone than thousands of notices. The origin lets the writing process skip the
echo of its own changes, which it applied at commit: a second, later invalidation would
only make the reads that follow a write refuse to fill the cache.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from segsvc.domain.membership_change import MembershipChange
from segsvc.store.database import Connection, record_change

CHANNEL = "segsvc_membership_changes"
EVERYONE = "*"
USERS_PREFIX = "u:"
MAX_PAYLOAD_BYTES = 7900
MAX_LISTED_USERS = 2000


def payloads(change: MembershipChange, origin: str = "") -> list[str]:
    """The NOTIFY payloads announcing `change` (none for an empty change)."""
    head = f"{origin} "
    if change.everyone or len(change.user_ids) > MAX_LISTED_USERS:
        return [head + EVERYONE]
    start = head + USERS_PREFIX
    result: list[str] = []
    batch: list[str] = []
    size = len(start)
    for user_id in sorted(change.user_ids):
        text = str(user_id)
        if batch and size + len(text) + 1 > MAX_PAYLOAD_BYTES:
            result.append(start + ",".join(batch))
            batch, size = [], len(start)
        batch.append(text)
        size += len(text) + 1
    if batch:
        result.append(start + ",".join(batch))
    return result


def parse(payload: str) -> tuple[str, MembershipChange]:
    """The origin tag and the change a payload announces. Anything unrecognised means
    "everyone", so a newer writer's format can only make an older reader forget too
    much, never too little."""
    origin, _, body = payload.partition(" ")
    if body.startswith(USERS_PREFIX):
        try:
            ids = [int(text) for text in body[len(USERS_PREFIX) :].split(",")]
        except ValueError:
            return origin, MembershipChange.all_users()
        return origin, MembershipChange.users(ids)
    return origin, MembershipChange.all_users()


def publish(conn: Connection, change: MembershipChange) -> None:
    """Announce `change` to every process when (and only if) this transaction commits."""
    if not change:
        return
    origin = record_change(change)
    conn.execute(
        "SELECT pg_notify(%s, p) FROM unnest(%s::text[]) AS p",
        (CHANNEL, payloads(change, origin)),
    )


@contextmanager
def listening(conninfo: str) -> Iterator[Connection]:
    """A dedicated connection (not from the pool) that LISTENs on the channel.

    TCP keepalives make a silently dead peer an error within about 15 s instead of
    the kernel's retransmission timeout; a terminated backend is an error at once.
    """
    with psycopg.connect(
        conninfo,
        autocommit=True,
        application_name="segsvc-cache-listener",
        connect_timeout=5,
        keepalives=1,
        keepalives_idle=5,
        keepalives_interval=2,
        keepalives_count=3,
        tcp_user_timeout=15_000,
    ) as conn:
        conn.execute(f"LISTEN {CHANNEL}")
        yield conn
