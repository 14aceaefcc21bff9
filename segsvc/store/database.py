"""The connection pool and the two ways to use it: a transaction, or one autocommit read.

Connections are in autocommit mode so that single-statement reads on the hot path cost
one round trip (no BEGIN/COMMIT); anything that writes runs inside `transaction()`.
Every session uses UTC, so timestamps read back are UTC-aware datetimes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg.rows import TupleRow
from psycopg_pool import ConnectionPool

Connection = psycopg.Connection[TupleRow]


class Database:
    """A psycopg pool with the session settings segsvc relies on."""

    def __init__(self, conninfo: str, min_size: int, max_size: int, timeout: float) -> None:
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
        """A connection inside a transaction that commits on success, rolls back on error."""
        with self.pool.connection() as conn, conn.transaction():
            yield conn

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
