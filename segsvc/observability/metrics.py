"""Prometheus metrics (prometheus-client), served on the HTTP port at /metrics.

RPC metrics are recorded by the server interceptor, never by servicers; pool metrics
are read from psycopg_pool at scrape time, so they cost nothing between scrapes.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from psycopg_pool import ConnectionPool

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Metrics:
    """Every metric segsvc exports, in one registry (one per server, so tests can
    start several servers in one process without clashing)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
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
            "1 while this process listens for other processes' changes (cache usable).",
            registry=self.registry,
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

    def watch_pool(self, pool: ConnectionPool) -> None:
        """Export the pool's live statistics."""
        self.registry.register(_PoolCollector(pool))


class _PoolCollector(Collector):
    def __init__(self, pool: ConnectionPool) -> None:
        self.pool = pool

    def collect(self) -> Iterator[GaugeMetricFamily]:
        stats = self.pool.get_stats()
        size = stats.get("pool_size", 0)
        available = stats.get("pool_available", 0)
        yield GaugeMetricFamily("segsvc_db_pool_size", "Open connections.", value=size)
        yield GaugeMetricFamily(
            "segsvc_db_pool_in_use", "Connections lent out.", value=size - available
        )
        yield GaugeMetricFamily(
            "segsvc_db_pool_waiting",
            "Requests waiting for a connection.",
            value=stats.get("requests_waiting", 0),
        )
        yield GaugeMetricFamily(
            "segsvc_db_pool_max_size", "Configured maximum.", value=self.pool.max_size
        )
