"""Health status: gRPC health checking (grpc-health-checking) fed by a database watcher.

Every `interval` seconds the watcher pings PostgreSQL and sets every service to SERVING
or NOT_SERVING, so load balancers and Kubernetes probes stop sending traffic to a
replica that cannot reach its database and resume when it can again. On shutdown the
status turns NOT_SERVING for good before the server stops accepting calls.

The service name "liveness" is different: SERVING from start to shutdown whatever the
database does, for liveness probes. A liveness probe on the overall status would make
Kubernetes restart every replica during a database outage, which cures nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from pathlib import Path

import structlog
from grpc_health.v1 import health, health_pb2

from segsvc.store import migrations
from segsvc.store.database import Database

log = structlog.get_logger("segsvc.health")

LIVENESS_SERVICE = "liveness"


class HealthMonitor:
    """Owns the HealthServicer and the watcher thread."""

    def __init__(
        self, db: Database, service_names: Iterable[str], interval: float, migrations_dir: Path
    ) -> None:
        self.db = db
        self.migrations_dir = migrations_dir
        self.services = ["", *service_names]
        self.interval = interval
        self.servicer = health.HealthServicer()
        self._serving: bool | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="health", daemon=True)

    def start(self) -> None:
        """Set the initial status and begin watching."""
        self.servicer.set(LIVENESS_SERVICE, health_pb2.HealthCheckResponse.SERVING)
        self.check()
        self._thread.start()

    def check(self) -> bool:
        """Ping the database once and publish the result; return it."""
        # A second try on a fresh connection: a dropped connection is not an outage.
        serving = self.db.ping() or self.db.ping()
        if serving != self._serving:
            status = (
                health_pb2.HealthCheckResponse.SERVING
                if serving
                else health_pb2.HealthCheckResponse.NOT_SERVING
            )
            for name in self.services:
                self.servicer.set(name, status)
            if self._serving is not None:
                log.warning("health_changed", serving=serving)
            self._serving = serving
        return serving

    def readiness_problem(self) -> str | None:
        """Why this replica should not get traffic, or None (HTTP /readyz)."""
        if self._stop.is_set():
            return "shutting down"
        try:
            with self.db.connection() as conn:
                if not migrations.is_at_head(conn, self.migrations_dir):
                    return "database schema is not at the newest migration"
        except Exception:
            return "database unreachable"
        return None

    def shutdown(self) -> None:
        """NOT_SERVING from now on, whatever the database says."""
        self._stop.set()
        self.servicer.enter_graceful_shutdown()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.check()
