"""Real traffic against `segsvc serve` as production runs it, figure by figure beside the
targets: uniform and Zipf reads, batches of 100, updates, and the 95/5 mix, from 64
closed-loop callers of a client that sends those workloads (bench.clients): the Go
binary when Go is installed, as it leaves the server the most CPU, else the
multi-process Python client. Each row names the client that measured it.

The server is started with SEGSVC_PROCESSES workers; its CPU is that of the whole
process tree (supervisor and workers), its idle memory each worker's RSS before the
first call, and its start-up time from exec to the first SERVING health answer. Every
workload gets a warm-up round and a measured round, each after a pg_prewarm of the
database, with the load average, the server's and the load generator's CPU, and the
read cache's hit ratio (from /metrics) over the measured round.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from bench import prewarm
from bench.clients import WorkloadClientKind, workload_client
from bench.load import LoadClient
from bench.procstat import cpu_by_process, tree_usage
from bench.server_metrics import CacheCounts, cache_counts, hit_ratio, scrape
from bench.servers import SEGSVC, Server, free_port, launch
from bench.workloads import Workload

WORKLOADS = ("uniform", "zipf", "batch", "update", "mix")


@dataclass(frozen=True)
class Settings:
    """How hard, how long, with how many processes on each side."""

    users: int
    seconds: float
    concurrency: int = 64
    client_processes: int = 2  # of the Python client
    server_processes: int = 0  # 0: the server's default (the CPU count)
    client: WorkloadClientKind = "go"


@dataclass(frozen=True)
class TrafficRow:
    """One measured round."""

    workload: str
    client: str
    calls_per_second: float
    lookups_per_second: float
    p50_ms: float
    p99_ms: float
    errors: int
    cache_hit_ratio: float | None
    server_cpu_ms_per_1000: float
    server_cores: float
    # Of the server's CPU in the round, the share of its busiest process: near
    # 1/workers when the kernel spreads connections over the workers evenly, near 1 when
    # one worker serves them all (README, "Several processes on one port").
    busiest_process_share: float
    client_cores: float
    load_average: float
    prewarm_seconds: float
    first_error: str = ""


@dataclass(frozen=True)
class Startup:
    """The server before any traffic."""

    processes: int
    start_seconds: float
    idle_rss_mib: list[float]


def start(env: dict[str, str], settings: Settings, logs: Path) -> Server:
    """segsvc serve with the configured number of worker processes."""
    port, http_port = free_port(), free_port()
    processes = settings.server_processes
    extra = {"SEGSVC_PROCESSES": str(processes)} if processes else {}
    return launch(
        [SEGSVC, "serve"],
        {
            **env,
            **extra,
            "SEGSVC_GRPC_ADDR": f"127.0.0.1:{port}",
            "SEGSVC_HTTP_ADDR": f"127.0.0.1:{http_port}",
        },
        port,
        http_port,
        logs / "traffic.log",
    )


def _cache(server: Server) -> CacheCounts | None:
    try:
        return cache_counts(scrape(server.http_port))
    except OSError:
        return None


def measure(
    server: Server, client: LoadClient, url: str, workload: Workload, seconds: float
) -> TrafficRow:
    """Prewarm, warm up, prewarm, then the measured round with everything around it."""
    prewarm.prewarm(url)
    client.round(seconds, workload)
    warmed = prewarm.prewarm(url)
    load_average = os.getloadavg()[0]
    cache_before = _cache(server)
    before = cpu_by_process(server.pid)
    result = client.round(seconds, workload)
    after = cpu_by_process(server.pid)
    cache_after = _cache(server)
    each = [cpu - before.get(pid, 0.0) for pid, cpu in after.items()]
    cpu = sum(each)
    calls = result.calls + result.errors
    return TrafficRow(
        workload=workload.kind,
        client=client.name,
        calls_per_second=result.calls_per_second,
        lookups_per_second=result.calls_per_second * workload.lookups_per_call,
        p50_ms=result.p50_ms,
        p99_ms=result.p99_ms,
        errors=result.errors,
        cache_hit_ratio=hit_ratio(cache_before, cache_after),
        server_cpu_ms_per_1000=cpu * 1e6 / max(1, calls),
        server_cores=cpu / result.seconds if result.seconds else 0.0,
        busiest_process_share=max(each, default=0.0) / cpu if cpu else 0.0,
        client_cores=result.client_cpu_seconds / result.seconds if result.seconds else 0.0,
        load_average=load_average,
        prewarm_seconds=warmed,
        first_error=result.first_error,
    )


def run(
    env: dict[str, str], token: str, url: str, settings: Settings, logs: Path
) -> tuple[Startup, list[TrafficRow]]:
    """Start the server, note its start-up, then every workload in turn."""
    server = start(env, settings, logs)
    try:
        _, each = tree_usage(server.pid)
        startup = Startup(len(each), server.start_seconds, [u.rss_mib for u in each])
        print(
            f"  {startup.processes} server process(es), SERVING after"
            f" {startup.start_seconds:.2f} s, idle RSS"
            f" {', '.join(f'{r:.0f}' for r in startup.idle_rss_mib)} MiB",
            flush=True,
        )
        client = workload_client(
            settings.client,
            server.target,
            token,
            settings.concurrency,
            settings.users,
            settings.client_processes,
        )
        rows: list[TrafficRow] = []
        try:
            for kind in WORKLOADS:
                row = measure(server, client, url, Workload(kind, settings.users), settings.seconds)
                ratio = "n/a" if row.cache_hit_ratio is None else f"{row.cache_hit_ratio:.1%}"
                print(
                    f"  {row.workload:<8} {row.calls_per_second:8,.0f} calls/s"
                    f" ({row.lookups_per_second:,.0f} look-ups/s)"
                    f"  p50/p99 {row.p50_ms:.1f}/{row.p99_ms:.1f} ms  errors {row.errors}"
                    f"  cache hits {ratio}  server {row.server_cores:.2f} cores"
                    f" ({row.busiest_process_share:.0%} in its busiest process)"
                    f"  client {row.client_cores:.2f} cores  load {row.load_average:.2f}"
                    + (f"  first error: {row.first_error}" if row.first_error else ""),
                    flush=True,
                )
                rows.append(row)
        finally:
            client.close()
    finally:
        server.stop()
    return startup, rows


def figures(startup: Startup | None, rows: list[TrafficRow]) -> dict[str, float]:
    """The values the targets table compares (bench.targets keys)."""
    found: dict[str, float] = {}
    by_kind = {row.workload: row for row in rows}
    if zipf := by_kind.get("zipf"):
        found["zipf_calls"] = zipf.calls_per_second
        found["zipf_p99"] = zipf.p99_ms
    if uniform := by_kind.get("uniform"):
        found["uniform_calls"] = uniform.calls_per_second
    if batch := by_kind.get("batch"):
        found["batch_lookups"] = batch.lookups_per_second
    if update := by_kind.get("update"):
        found["update_calls"] = update.calls_per_second
        found["update_errors"] = update.errors
    if mix := by_kind.get("mix"):
        found["mix_calls"] = mix.calls_per_second
    if startup is not None:
        found["start_seconds"] = startup.start_seconds
        found["idle_rss"] = max(startup.idle_rss_mib)
    return found
