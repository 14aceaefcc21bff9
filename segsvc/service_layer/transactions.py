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

A request with a request id (AIP-155) first claims it (store/request_ids.py), before
any other lock: a repeat gets the first attempt's stored response (`Replayed`) and
changes nothing; the first attempt stores its response in the transaction of its change.

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
from typing import Generic, TypeVar

import psycopg.errors
import structlog

from segsvc.domain.clock import Clock
from segsvc.domain.request_ids import RETENTION, Replayed, RequestKey, check_same_request
from segsvc.store import request_ids
from segsvc.store.database import Connection, Database
from segsvc.store.membership_changes import MembershipChanges

T = TypeVar("T")
L = TypeVar("L")

RETRYABLE = (psycopg.errors.SerializationFailure, psycopg.errors.DeadlockDetected)
ATTEMPTS = 3
BACKOFF_SECONDS = 0.02

log = structlog.get_logger("segsvc.transactions")


@dataclass(frozen=True)
class Once(Generic[T]):
    """How to apply a request at most once: its key (computed when needed, as a client
    stream's fingerprint is known only at its end; None without a request id) and how
    to store its response."""

    key: Callable[[], RequestKey | None]
    encode: Callable[[T], bytes]


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
        result = self.write_once(account_id, lock, change, None, statement_timeout)
        assert not isinstance(result, Replayed)
        return result

    def write_once(
        self,
        account_id: int | None,
        lock: Callable[[Connection], L],
        change: Callable[[MembershipChanges, L], T],
        once: Once[T] | None,
        statement_timeout: float | None = None,
    ) -> T | Replayed:
        """Like `write`, applied at most once per request id (when `once` has one)."""

        def attempt() -> T | Replayed:
            with self.db.transaction(statement_timeout) as conn:
                return locked_write(conn, self.clock, account_id, lock, change, once)

        return retrying(attempt)


def locked_write(
    conn: Connection,
    clock: Clock,
    account_id: int | None,
    lock: Callable[[Connection], L],
    change: Callable[[MembershipChanges, L], T],
    once: Once[T] | None = None,
) -> T | Replayed:
    """Claim the request id (if any), `lock`, read the clock, `change` and announce it,
    and remember the response, on an open transaction."""
    key = once.key() if once else None
    owner = account_id or 0
    if key is not None:
        now = clock()
        earlier = request_ids.claim(conn, owner, key, now, now - RETENTION)
        if earlier is not None:
            check_same_request(key, earlier.fingerprint)
            return Replayed(earlier.response)
    locked = lock(conn)
    changes = MembershipChanges(conn, clock(), account_id)
    result = change(changes, locked)
    changes.announce()
    if once is not None and key is not None:
        request_ids.remember(conn, owner, key, once.encode(result))
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
