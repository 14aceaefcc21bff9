"""Running a membership write: lock, then read the clock, then change, then report.

Every use case that changes memberships runs as two functions: `lock` takes the locks
that order it against concurrent changes (see the lock order in
store/membership_changes.py) and checks what must exist; only then is the clock read,
and `change` writes through a `MembershipChanges` dated at that instant. The split makes
"now after the locks" a property of the structure rather than of each call site.

Serialization failures and deadlocks are the database's way of saying "two changes met;
run one of them again". They are retried here, a bounded number of times with a small
jittered backoff, so a caller never sees ABORTED for a conflict it did not cause. If
every attempt fails, the error reaches the caller as UNAVAILABLE (api/status_mapping),
which standard gRPC retry policies retry; the call changed nothing.

At the end of the change, inside the transaction, the write path announces what it
changed (`MembershipChanges.announce`): NOTIFY is transactional, so other processes'
read caches hear of it exactly when it commits, and this process's cache right after
(store.database); an attempt that rolls back announces nothing.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import psycopg.errors
import structlog

from segsvc.domain.clock import Clock
from segsvc.store.database import Connection, Database
from segsvc.store.membership_changes import MembershipChanges

T = TypeVar("T")
L = TypeVar("L")

RETRYABLE = (psycopg.errors.SerializationFailure, psycopg.errors.DeadlockDetected)
ATTEMPTS = 3
BACKOFF_SECONDS = 0.02

log = structlog.get_logger("segsvc.transactions")


@dataclass(frozen=True)
class Transactions:
    """Membership writes with retries; see the module doc."""

    db: Database
    clock: Clock

    def write(
        self,
        account_id: int | None,
        lock: Callable[[Connection], L],
        change: Callable[[MembershipChanges, L], T],
        statement_timeout: float | None = None,
    ) -> T:
        """One transaction: `lock`, read the clock, `change`; retried on conflicts.
        `statement_timeout` raises the time limit of its statements (bulk writes)."""

        def attempt() -> T:
            with self.db.transaction(statement_timeout) as conn:
                return locked_write(conn, self.clock, account_id, lock, change)

        return retrying(attempt)


def locked_write(
    conn: Connection,
    clock: Clock,
    account_id: int | None,
    lock: Callable[[Connection], L],
    change: Callable[[MembershipChanges, L], T],
) -> T:
    """`lock`, then read the clock, then `change` and announce it, on an open transaction."""
    locked = lock(conn)
    changes = MembershipChanges(conn, clock(), account_id)
    result = change(changes, locked)
    changes.announce()
    return result


def in_savepoint(conn: Connection, work: Callable[[], T]) -> T:
    """Retry `work` inside a savepoint of a transaction that cannot be replayed from the
    start (a client stream already consumed): only the part after the savepoint is run
    again, and the locks it took are released before the next attempt."""

    def attempt() -> T:
        with conn.transaction():
            return work()

    return retrying(attempt)


def retrying(attempt: Callable[[], T]) -> T:
    """Run `attempt` up to ATTEMPTS times while it fails with a retryable conflict."""
    for number in range(1, ATTEMPTS + 1):
        try:
            return attempt()
        except RETRYABLE as exc:
            if number == ATTEMPTS:
                log.warning("write_conflict_gave_up", attempts=number, error=type(exc).__name__)
                raise
            # Jitter so that the two sides of a deadlock do not meet again in lockstep.
            time.sleep(random.uniform(0, BACKOFF_SECONDS * 2**number))
    raise AssertionError("unreachable")
