"""The connection pool and the two ways to use it: a transaction, or one autocommit read.

Connections are in autocommit mode so that single-statement reads on the hot path cost
one round trip (no BEGIN/COMMIT); anything that writes runs inside `transaction()`.
Every session uses UTC, so timestamps read back are UTC-aware datetimes.

A transaction also collects the membership changes its statements announce
(store.change_notices.publish) and, once it has committed, hands them to `on_commit`:
that is how the writing process's own read cache forgets a change before the write
returns to its caller, whichever store function made it.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

import psycopg
from psycopg.rows import TupleRow
from psycopg_pool import ConnectionPool

from segsvc.domain.membership_change import MembershipChange

Connection = psycopg.Connection[TupleRow]
CommitObserver = Callable[[Sequence[MembershipChange]], None]


@dataclass(frozen=True)
class _Announcements:
    origin: str
    changes: list[MembershipChange]


# What the transaction running on this thread announced (None outside one).
_announcing: ContextVar[_Announcements | None] = ContextVar("announcing", default=None)


def record_change(change: MembershipChange) -> str:
    """Remember `change` for the enclosing Database.transaction() to report on commit;
    return that Database's origin tag ("" outside a transaction of a Database)."""
    announcing = _announcing.get()
    if announcing is None:
        return ""
    announcing.changes.append(change)
    return announcing.origin


class Database:
    """A psycopg pool with the session settings segsvc relies on."""

    def __init__(
        self,
        conninfo: str,
        min_size: int,
        max_size: int,
        timeout: float,
        on_commit: CommitObserver | None = None,
    ) -> None:
        self.on_commit = on_commit
        # Tags this Database's announcements, so its own process can skip the echo of
        # changes `on_commit` has already applied.
        self.origin = secrets.token_hex(6)
        self.pool: ConnectionPool[Connection] = ConnectionPool(
            conninfo,
            min_size=min_size,
            max_size=max_size,
            timeout=timeout,
            open=False,
            name="segsvc",
            kwargs={
                "autocommit": True,
                "options": "-c timezone=UTC -c statement_timeout=60000",
                "application_name": "segsvc",
            },
        )

    def open(self, wait_seconds: float = 10.0) -> None:
        """Open the pool and wait until its first connections work."""
        self.pool.open(wait=True, timeout=wait_seconds)

    def close(self) -> None:
        """Close every connection; in-flight users finish first."""
        self.pool.close()

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A connection inside a transaction that commits on success, rolls back on error;
        after the commit, the changes it announced go to `on_commit`."""
        announcing = _Announcements(self.origin, [])
        # set/restore rather than a reset token: a streaming RPC's generator may be
        # closed from another context, where a token would not be accepted.
        outer = _announcing.get()
        _announcing.set(announcing)
        try:
            with self.pool.connection() as conn, conn.transaction():
                yield conn
        finally:
            _announcing.set(outer)
        if announcing.changes and self.on_commit is not None:
            self.on_commit(announcing.changes)

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        """An autocommit connection for reads that need no transaction."""
        with self.pool.connection() as conn:
            yield conn

    def ping(self) -> bool:
        """True when the database answers a trivial query (health checks)."""
        try:
            with self.pool.connection(timeout=2.0) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.Error:
            return False
