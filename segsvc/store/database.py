"""The database connections segsvc uses, kept apart by what they are for.

- The **hot pool** serves unary RPCs: short reads and writes, each statement bounded by
  `statement_timeout`. Nothing that waits on a client ever holds one of its connections,
  so reads never queue behind a slow reader.
- The **bulk pool** serves streams and bulk work (member listings, report COPYs, imports),
  whose length depends on the client. It has as many connections as bulk operations may
  run at once; one more is refused at once (`ResourceExhausted`) instead of queueing, so a
  flood of streams cannot starve anything. Its statements are bounded by the much longer
  bulk timeout: a COPY is one statement for the whole stream.
- The **read pool** serves the hot reads (GetUserSegments, BatchGetUserSegments) from
  the event loop, with psycopg's asyncio connections: a read that misses the cache
  waits for PostgreSQL without taking a worker thread. Same session limits as the hot
  pool; opened and closed on the loop (`open_reads`, `close_reads`). Its connections
  are not checked when lent: a read on a dead one is run again (`read`).
- The **probe connection** is the health watcher's own: health checks never wait for a
  pool, and a full pool never looks like a dead database.

Every session sets `idle_in_transaction_session_timeout`, so a transaction abandoned by a
stuck thread cannot hold locks for ever. The blocking pools check a connection when
they lend it (`_check_lent`), so after the database drops its connections (a restart, a
failover) the next call gets a fresh one instead of an error.

While the health watcher knows the database is unreachable (or its schema unusable),
every use fails at once with `DatabaseUnavailable` instead of waiting out the pool
timeout: callers learn in milliseconds, and nothing piles up.

Connections are in autocommit mode so that single-statement reads cost one round trip;
anything that writes runs inside a transaction. Every session uses UTC.

A transaction (hot or bulk) also collects the membership changes its statements announce
(store.change_notices.publish) and, once it has committed, hands them to `on_commit`:
that is how the writing process's own read cache forgets a change before the write
returns to its caller, whichever store function made it.
"""

from __future__ import annotations

import secrets
import select
import threading
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TypeVar

import psycopg
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from segsvc.config import Settings
from segsvc.domain.errors import ResourceExhausted
from segsvc.domain.membership_change import MembershipChange

Connection = psycopg.Connection[TupleRow]
AsyncConnection = psycopg.AsyncConnection[TupleRow]
T = TypeVar("T")
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


# How long a refused bulk caller should wait before trying again (Retry-After).
BULK_RETRY_AFTER_SECONDS = 1
PROBE_TIMEOUT_SECONDS = 2


class DatabaseUnavailable(psycopg.OperationalError):
    """The health watcher knows the database cannot serve: fail now, not after a timeout."""


@dataclass(frozen=True)
class SessionLimits:
    """Server-side limits every session of a pool gets, in seconds."""

    statement_timeout: float
    idle_in_transaction_timeout: float

    def options(self) -> str:
        """libpq `options` setting these limits (and UTC) for each new session."""
        return (
            "-c timezone=UTC"
            f" -c statement_timeout={_ms(self.statement_timeout)}"
            f" -c idle_in_transaction_session_timeout={_ms(self.idle_in_transaction_timeout)}"
        )


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def _session(limits: SessionLimits) -> dict[str, object]:
    return {"autocommit": True, "options": limits.options(), "application_name": "segsvc"}


def _check_lent(conn: Connection) -> None:
    """Raise if an idle pooled connection is dead, without a round trip when it is not.

    A session the server ends (a restart, `pg_terminate_backend`, a failover) sends its
    last error and closes the socket, so the socket of that idle connection reads as
    ready; a live idle one has nothing to read (pool connections never LISTEN). Only
    then is psycopg's check query sent, which fails and makes the pool open a new
    connection. This saves the query on every lending: a round trip, one tenth of a
    membership update. A peer that vanished without closing (a cut network) is not
    seen here, but neither would the check query see it before the TCP timeout;
    statement and pool timeouts bound that case.
    """
    # poll, not select: a busy process's descriptors may pass select's limit of 1024.
    socket_state = select.poll()
    socket_state.register(conn.pgconn.socket, select.POLLIN)
    if socket_state.poll(0):
        ConnectionPool.check_connection(conn)


def _pool(
    conninfo: str, name: str, min_size: int, max_size: int, timeout: float, limits: SessionLimits
) -> ConnectionPool[Connection]:
    return ConnectionPool(
        conninfo,
        min_size=min_size,
        max_size=max_size,
        timeout=timeout,
        open=False,
        name=name,
        check=_check_lent,
        kwargs=_session(limits),
    )


class Database:
    """The hot pool, the bulk pool and the probe connection (see the module docstring)."""

    def __init__(
        self,
        conninfo: str,
        *,
        min_size: int,
        max_size: int,
        timeout: float,
        bulk_size: int,
        hot_limits: SessionLimits,
        bulk_limits: SessionLimits,
        on_commit: CommitObserver | None = None,
    ) -> None:
        self.conninfo = conninfo
        self.on_commit = on_commit
        # Tags this Database's announcements, so its own process can skip the echo of
        # changes `on_commit` has already applied.
        self.origin = secrets.token_hex(6)
        self.hot_limits = hot_limits
        self.bulk_limits = bulk_limits
        self.pool = _pool(conninfo, "segsvc", min_size, max_size, timeout, hot_limits)
        # No idle bulk connections: bulk work is rare, and each costs a server process.
        self.bulk_pool = _pool(conninfo, "segsvc-bulk", 0, bulk_size, timeout, bulk_limits)
        self._bulk_slots = threading.BoundedSemaphore(bulk_size)
        self.read_pool: AsyncConnectionPool[AsyncConnection] | None = None
        self._read_sizes = (min_size, max_size, timeout)
        self._unavailable: str | None = None
        self._probe: Connection | None = None
        self._probe_lock = threading.Lock()

    @classmethod
    def from_settings(
        cls, conninfo: str, settings: Settings, on_commit: CommitObserver | None = None
    ) -> Database:
        """The pools and limits `settings` asks for."""
        idle = settings.idle_in_transaction_timeout_seconds
        return cls(
            conninfo,
            min_size=settings.pool_min_size,
            max_size=settings.pool_size,
            timeout=settings.pool_timeout_seconds,
            bulk_size=settings.bulk_pool_size,
            hot_limits=SessionLimits(settings.statement_timeout_seconds, idle),
            bulk_limits=SessionLimits(settings.bulk_statement_timeout_seconds, idle),
            on_commit=on_commit,
        )

    def open(self, wait_seconds: float = 10.0) -> None:
        """Open both pools and wait until their first connections work."""
        self.pool.open(wait=True, timeout=wait_seconds)
        self.bulk_pool.open(wait=True, timeout=wait_seconds)

    async def open_reads(self, wait_seconds: float = 10.0) -> None:
        """Open the read pool, on the event loop that will use it."""
        min_size, max_size, timeout = self._read_sizes
        self.read_pool = AsyncConnectionPool(
            self.conninfo,
            min_size=min_size,
            max_size=max_size,
            timeout=timeout,
            open=False,
            name="segsvc-reads",
            kwargs=_session(self.hot_limits),
        )
        await self.read_pool.open(wait=True, timeout=wait_seconds)

    async def close_reads(self) -> None:
        """Close the read pool, on its event loop."""
        if self.read_pool is not None:
            await self.read_pool.close()

    async def read(self, query: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """`query(connection)` on a read-pool connection (autocommit), on the event loop.

        Unlike the blocking pools, the read pool does not check a connection before
        lending it (a round trip on every cache miss): a read is idempotent, so one
        that finds its connection dead (the database restarted or ended the session)
        runs once more, after the pool has checked its idle connections and replaced
        the dead ones.
        """
        self._require_available()
        assert self.read_pool is not None, "open_reads() first"
        async with self.read_pool.connection() as conn:
            try:
                return await query(conn)
            except psycopg.OperationalError:
                if not conn.broken:  # a timeout or a server error: no second try
                    raise
        # What killed this connection (a restart, a failover) usually killed the idle
        # ones too: check those once now, then run the read again on a live one.
        await self.read_pool.check()
        async with self.read_pool.connection() as conn:
            return await query(conn)

    def close(self) -> None:
        """Close every connection; in-flight users finish first."""
        self.bulk_pool.close()
        self.pool.close()
        with self._probe_lock:
            if self._probe is not None:
                self._probe.close()
                self._probe = None

    def set_unavailable(self, reason: str | None) -> None:
        """Called by the health watcher: a reason makes every use fail fast; None clears."""
        self._unavailable = reason

    def _require_available(self) -> None:
        if (reason := self._unavailable) is not None:
            raise DatabaseUnavailable(reason)

    @contextmanager
    def transaction(self, statement_timeout: float | None = None) -> Iterator[Connection]:
        """A hot connection inside a transaction that commits on success, rolls back on
        error. `statement_timeout` raises the limit for this transaction only, for the
        few writes whose size grows with the data (a rollout over every user)."""
        self._require_available()
        with self._announced(), self.pool.connection() as conn, conn.transaction():
            if statement_timeout is not None:
                conn.execute(
                    "SELECT set_config('statement_timeout', %s, true)",
                    (str(_ms(statement_timeout)),),
                )
            yield conn

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        """A hot autocommit connection for reads that need no transaction."""
        self._require_available()
        with self.pool.connection() as conn:
            yield conn

    @contextmanager
    def bulk_transaction(self) -> Iterator[Connection]:
        """A bulk connection inside a transaction, or `ResourceExhausted` at once when
        every bulk slot is taken."""
        self._require_available()
        if not self._bulk_slots.acquire(blocking=False):
            raise ResourceExhausted("streams and bulk operations", BULK_RETRY_AFTER_SECONDS)
        try:
            with self._announced(), self.bulk_pool.connection() as conn, conn.transaction():
                yield conn
        finally:
            self._bulk_slots.release()

    @contextmanager
    def _announced(self) -> Iterator[None]:
        """Collect the changes announced inside the block; after it ends without error
        (the transaction committed), hand them to `on_commit`."""
        announcing = _Announcements(self.origin, [])
        # set/restore rather than a reset token: a streaming RPC's generator may be
        # closed from another context, where a token would not be accepted.
        outer = _announcing.get()
        _announcing.set(announcing)
        try:
            yield
        finally:
            _announcing.set(outer)
        if announcing.changes and self.on_commit is not None:
            self.on_commit(announcing.changes)

    @contextmanager
    def probe(self) -> Iterator[Connection]:
        """The health watcher's own connection, opened again after any failure."""
        with self._probe_lock:
            try:
                if self._probe is None or self._probe.closed:
                    self._probe = psycopg.connect(
                        self.conninfo,
                        autocommit=True,
                        connect_timeout=PROBE_TIMEOUT_SECONDS,
                        options=f"-c statement_timeout={PROBE_TIMEOUT_SECONDS * 1000}",
                        application_name="segsvc-health",
                    )
                yield self._probe
            except psycopg.Error:
                if self._probe is not None:
                    self._probe.close()
                    self._probe = None
                raise

    def ping(self) -> bool:
        """True when the database answers a trivial query on the probe connection."""
        try:
            with self.probe() as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.Error:
            return False
