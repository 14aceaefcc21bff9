"""Background removal of expired memberships, in every replica.

Reads never need it (expiry is exact at read time); it keeps the memberships table
small and writes each expiry into history at the expiry instant. Runs safely on many
replicas at once (SKIP LOCKED in the store), survives database outages by logging and
trying again on the next tick, and keeps no timers in memory: after a restart, whatever
expired meanwhile is simply found by the next sweep.
"""

from __future__ import annotations

import threading

import psycopg
import structlog

from segsvc.domain.clock import Clock
from segsvc.domain.request_ids import RETENTION
from segsvc.observability.metrics import Metrics
from segsvc.service_layer.transactions import Transactions
from segsvc.store import request_ids
from segsvc.store.database import Database

log = structlog.get_logger("segsvc.expiry")


class ExpirySweeper:
    """A daemon thread that sweeps every `interval` seconds until stopped."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        metrics: Metrics,
        interval: float,
        batch: int,
    ) -> None:
        # No locks to wait for (SKIP LOCKED): the transaction's time is the threshold.
        self.transactions = Transactions(db, clock)
        self.metrics = metrics
        self.interval = interval
        self.batch = batch
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="expiry-sweeper", daemon=True)

    def start(self) -> None:
        """Begin sweeping in the background."""
        self._thread.start()

    def stop(self) -> None:
        """Finish the current batch and stop."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def sweep_once(self) -> int:
        """Sweep until no expired row is left; return how many were moved."""
        total = 0
        while not self._stop.is_set():
            moved = self.transactions.write(
                None, lambda conn: None, lambda changes, _: changes.sweep_expired(self.batch)
            )
            total += moved
            self.metrics.expired_swept.inc(moved)
            if moved < self.batch:
                break
        if total:
            log.info("expired_memberships_swept", count=total)
        self.purge_request_ids()
        return total

    def purge_request_ids(self) -> int:
        """Forget request ids (AIP-155) older than their retention; return how many."""
        with self.transactions.db.transaction() as conn:
            return request_ids.purge(conn, self.transactions.clock() - RETENTION)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.sweep_once()
            except psycopg.Error as exc:
                self.metrics.sweep_errors.inc()
                log.warning("expiry_sweep_failed", error=type(exc).__name__)
