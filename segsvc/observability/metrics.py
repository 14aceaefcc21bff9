"""Prometheus metrics (prometheus-client), served on the HTTP port at /metrics.

RPC metrics are recorded by the server interceptor, never by servicers; pool metrics
are read from psycopg_pool at scrape time, so they cost nothing between scrapes.

Behind the multi-process supervisor (segsvc.supervisor) every worker records into
prometheus-client's multiprocess files (PROMETHEUS_MULTIPROC_DIR, set by the supervisor
before a worker starts), and the one worker that serves HTTP exposes the sum over all
workers, dead ones' counters included. Gauges then say how they combine (`livesum`:
in-flight calls and pool sizes of the live workers add up; `livemin`: the cache is
usable only if every worker listens), and pool statistics, which another process
cannot read at scrape time, are published by each worker every second instead.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, multiprocess
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from psycopg_pool import AsyncConnectionPool, ConnectionPool

MULTIPROCESS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
POOL_PUBLISH_SECONDS = 1.0
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Metrics:
    """Every metric segsvc exports, in one registry (one per server, so tests can
    start several servers in one process without clashing)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.multiprocess_dir = os.environ.get(MULTIPROCESS_DIR_ENV) or None
        self.exposed = self.registry
        if self.multiprocess_dir:
            self.exposed = CollectorRegistry()
            multiprocess.MultiProcessCollector(self.exposed, self.multiprocess_dir)  # type: ignore[no-untyped-call]
        self._finished: dict[tuple[str, str], Counter] = {}
        self._latencies: dict[str, Histogram] = {}
        self.requests = Counter(
            "segsvc_grpc_requests",
            "Finished RPCs by method and status code.",
            ["method", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "segsvc_grpc_request_duration_seconds",
            "RPC latency by method, from handler start to last response.",
            ["method"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "segsvc_grpc_in_flight_requests",
            "RPCs being handled right now.",
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.expired_swept = Counter(
            "segsvc_expired_memberships_swept",
            "Expired memberships moved to history by this process's sweeper.",
            registry=self.registry,
        )
        self.cache_lookups = Counter(
            "segsvc_cache_lookups",
            "Read-cache lookups of one user: hit, miss, or bypass (cache off or not listening).",
            ["result"],
            registry=self.registry,
        )
        self.cache_fills_refused = Counter(
            "segsvc_cache_fills_refused",
            "Database reads not stored because an invalidation overtook them.",
            registry=self.registry,
        )
        self.cache_invalidations = Counter(
            "segsvc_cache_invalidations",
            "Changes applied to the read cache: some users, or everyone.",
            ["scope"],
            registry=self.registry,
        )
        self.cache_listening = Gauge(
            "segsvc_cache_listening",
            "1 while this process listens for other processes' changes (cache usable);"
            " behind the supervisor, 1 only while every worker listens.",
            registry=self.registry,
            multiprocess_mode="livemin",
        )
        self.sweep_errors = Counter(
            "segsvc_expiry_sweep_errors",
            "Sweeper runs that failed (database unreachable, ...).",
            registry=self.registry,
        )

    def rpc_finished(self, method: str, code: str, seconds: float) -> None:
        """Count one finished RPC and its latency.

        `labels()` hashes and locks on every use; the children of each method (and
        method-code pair) are looked up once and kept, which is most of the per-call
        cost of the metrics. Methods are the server's own, so the dicts stay small.
        """
        counter = self._finished.get((method, code))
        if counter is None:
            counter = self._finished[(method, code)] = self.requests.labels(method, code)
        counter.inc()
        histogram = self._latencies.get(method)
        if histogram is None:
            histogram = self._latencies[method] = self.latency.labels(method)
        histogram.observe(seconds)

    def watch_pool(self, pool: Pool, prefix: str = "segsvc_db_pool") -> None:
        """Export the pool's live statistics as `<prefix>_size` etc.: read at scrape time
        in a single process, published every second by each worker behind the supervisor
        (summed)."""
        collector = _PoolCollector(pool, prefix)
        if not self.multiprocess_dir:
            self.registry.register(collector)
            return
        gauges = {
            prefix + suffix: Gauge(
                prefix + suffix, help_text, registry=self.registry, multiprocess_mode="livesum"
            )
            for suffix, help_text in _POOL_GAUGES.items()
        }

        def publish() -> None:
            while True:
                for family in collector.collect():
                    gauges[family.name].set(family.samples[0].value)
                time.sleep(POOL_PUBLISH_SECONDS)

        threading.Thread(target=publish, name="pool-metrics", daemon=True).start()


# Either pool kind: both keep their statistics in plain counters, readable from any thread.
Pool = ConnectionPool | AsyncConnectionPool
_POOL_GAUGES = {
    "_size": "Open connections.",
    "_in_use": "Connections lent out.",
    "_waiting": "Requests waiting for a connection.",
    "_max_size": "Configured maximum.",
}


class _PoolCollector(Collector):
    def __init__(self, pool: Pool, prefix: str) -> None:
        self.pool = pool
        self.prefix = prefix

    def collect(self) -> Iterator[GaugeMetricFamily]:
        stats = self.pool.get_stats()
        size = stats.get("pool_size", 0)
        values = {
            "_size": size,
            "_in_use": size - stats.get("pool_available", 0),
            "_waiting": stats.get("requests_waiting", 0),
            "_max_size": self.pool.max_size,
        }
        for suffix, help_text in _POOL_GAUGES.items():
            yield GaugeMetricFamily(self.prefix + suffix, help_text, value=values[suffix])
