"""Health status: gRPC health checking (grpc-health-checking) fed by a readiness watcher.

Every `interval` seconds the watcher asks PostgreSQL, on its own connection (never one
from the pools, which may all be busy), whether this replica can serve: the database
answers, and its schema has every migration this code needs. A schema *newer* than the
code is fine: migrations are additive (expand first, contract in a later release), so an
older replica keeps serving while a newer one rolls out. Every service then turns SERVING
or NOT_SERVING, so load balancers and the Kubernetes readiness probe (gRPC health) stop
sending traffic to a replica that cannot serve, and resume by themselves when it can.

The watcher also tells the database layer (`Database.set_unavailable`): while it knows
the database is unusable, data calls fail in milliseconds with UNAVAILABLE instead of
waiting out the pool timeout, and the outage is logged once, as one WARNING line per
change of state, not as a traceback per call.

The service name "liveness" is different: SERVING from start to the end of shutdown
whatever the database does, for liveness probes. A liveness probe on the overall status
would make Kubernetes restart every replica during a database outage, which cures nothing.

The servicer is grpc-health-checking's asyncio one, served on the gRPC event loop: a
`Check` costs no thread hand-off, and each `Watch` (clients that balance with health
checking keep one open per connection, for as long as they run) is a coroutine, not a
worker thread held for ever. The watcher thread publishes to it through that loop.

Shutdown has two steps (server.py): `drain()` turns everything but liveness NOT_SERVING
at once while calls are still served, so balancers and clients move away; `shutdown()`
ends the watcher when the server stops accepting calls.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from pathlib import Path

import psycopg
import structlog
from grpc_health.v1 import health, health_pb2

from segsvc.loop_thread import LoopThread
from segsvc.store import migrations
from segsvc.store.database import Database

log = structlog.get_logger("segsvc.health")

LIVENESS_SERVICE = "liveness"
UNREACHABLE = "database unreachable"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class HealthMonitor:
    """Owns the HealthServicer and the watcher thread."""

    def __init__(
        self,
        db: Database,
        service_names: Iterable[str],
        interval: float,
        migrations_dir: Path,
        loop: LoopThread,
    ) -> None:
        self.db = db
        self.loop = loop
        self.needed_versions = [m.version for m in migrations.discover(migrations_dir)]
        self.services = ["", *service_names]
        self.interval = interval
        self.servicer = health.aio.HealthServicer()  # type: ignore[attr-defined]  # re-export
        self._problem: str | None = None
        self._checked = False
        self._draining = threading.Event()
        self._publish = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="health", daemon=True)

    def start(self) -> None:
        """Set the initial status and begin watching."""
        self._set(LIVENESS_SERVICE, SERVING)
        self.check()
        self._thread.start()

    def check(self) -> str | None:
        """Check readiness once and publish the result; return the problem, if any."""
        problem = self._find_problem()
        self.db.set_unavailable(problem)
        if problem != self._problem or not self._checked:
            with self._publish:
                if not self._draining.is_set():
                    for name in self.services:
                        self._set(name, NOT_SERVING if problem else SERVING)
            if self._checked:
                if problem:
                    log.warning("database_unusable", reason=problem)
                else:
                    log.warning("database_usable_again")
            self._problem, self._checked = problem, True
        return problem

    def _find_problem(self) -> str | None:
        # A second try on a fresh connection: one dropped connection is not an outage.
        for attempt in (1, 2):
            try:
                with self.db.probe() as conn:
                    missing = migrations.missing_versions(conn, self.needed_versions)
                break
            except psycopg.Error:
                if attempt == 2:
                    return UNREACHABLE
        if missing:
            listed = ", ".join(f"{v:06d}" for v in missing)
            return f"database schema lacks migrations this code needs: {listed}"
        return None

    def readiness_problem(self) -> str | None:
        """Why this replica should not get traffic, or None (HTTP /readyz)."""
        if self._draining.is_set():
            return "shutting down"
        return self._problem

    def drain(self) -> None:
        """NOT_SERVING from now on (liveness excepted), whatever the database says."""
        with self._publish:
            self._draining.set()
            for name in self.services:
                self._set(name, NOT_SERVING)

    def shutdown(self) -> None:
        """Stop watching; every service NOT_SERVING for good."""
        self._draining.set()
        self._stop.set()
        self.loop.run(self.servicer.enter_graceful_shutdown())

    def _set(self, service: str, status: health_pb2.HealthCheckResponse.ServingStatus) -> None:
        self.loop.run(self.servicer.set(service, status))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.check()
