"""`segsvc serve` against a minimal grpc.aio server of the same read, measured in one run.

segsvc serves with grpc.aio since it measured 2.7-3.1x the reads of grpcio's threaded
server (README, "Server model"); this part keeps measuring what segsvc's whole stack
(blocking-call layer, health, every servicer) costs beside the least a grpc.aio server
can do for the read: bench.aio_server, with segsvc's cache, SQL and interceptor work.
Each server model is started in turn on the same database and driven by the same client
(`--client`: the Go binary by default, see bench.clients) with the same concurrency:
GetUserSegments for random users, then an empty RPC (Health/Check) for the ceiling of
the RPC layer alone.
Each gets a warm-up round and a measured round; around the measured one the server's
CPU time is read from /proc, giving CPU per 1000 calls, which is what decides how many
calls a core can serve whatever the client costs.

`python -m bench.server_models [bench.run flags]` runs this part alone.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from grpc_health.v1 import health_pb2

from bench import h2load, prewarm
from bench.clients import ClientKind, workload_client
from bench.load import LoadClient
from bench.procstat import usage
from bench.servers import SEGSVC, Server, free_port, launch
from bench.workloads import EMPTY, GET, Workload
from segmentation.v1 import user_service_pb2 as pb

READ = GET
# h2load repeats one body, hence one user.
H2LOAD_USER_ID = 42


@dataclass(frozen=True)
class Variant:
    """One server model to measure: how to start it, with which extra settings."""

    name: str
    command: list[str]
    env: dict[str, str] = field(default_factory=dict)
    port_flag: bool = False


@dataclass(frozen=True)
class Row:
    """One line of the comparison table."""

    server: str
    rpc: str
    client: str
    calls_per_second: float
    p50_ms: float
    p99_ms: float
    errors: int
    cpu_ms_per_1000: float
    server_cores: float
    client_cores: float
    rss_mib: float
    peak_rss_mib: float


@dataclass(frozen=True)
class Load:
    """How hard and with what to drive each server."""

    token: str
    users: int
    seconds: float
    concurrency: int = 32
    processes: int = 2  # of the Python client
    client: ClientKind = "go"
    database_url: str = ""  # prewarmed before every round when set


def variants() -> list[Variant]:
    """segsvc itself in one process (as configured by default, then with an access log
    line per call) and the minimal grpc.aio twin with the same read cache (with segsvc's
    interceptor work on uvloop, on asyncio's own loop, then bare): how far segsvc's
    whole stack is from the least a grpc.aio server can do for this read."""
    aio = [sys.executable, "-m", "bench.aio_server"]
    one = {"SEGSVC_PROCESSES": "1"}
    quiet = {"SEGSVC_LOG_LEVEL": "WARNING"}
    return [
        Variant("segsvc", [SEGSVC, "serve"], {**one, "SEGSVC_LOG_LEVEL": "INFO"}),
        Variant(
            "segsvc, access log",
            [SEGSVC, "serve"],
            {**one, "SEGSVC_LOG_LEVEL": "INFO", "SEGSVC_ACCESS_LOG_EVERY": "1"},
        ),
        Variant("twin, uvloop, interceptor", [*aio, "--uvloop"], quiet, port_flag=True),
        Variant("twin, asyncio, interceptor", aio, quiet, port_flag=True),
        Variant("twin, uvloop, bare", [*aio, "--uvloop", "--bare"], quiet, port_flag=True),
    ]


def _client(server: Server, method: str, load: Load) -> LoadClient:
    if load.client == "h2load":
        body = (
            pb.GetUserSegmentsRequest(user_id=H2LOAD_USER_ID).SerializeToString()
            if method == READ
            else health_pb2.HealthCheckRequest().SerializeToString()
        )
        return h2load.H2loadClient(
            f"http://{server.target}{method}", body, load.token, connections=load.concurrency
        )
    return workload_client(
        load.client, server.target, load.token, load.concurrency, load.users, load.processes
    )


def measure(name: str, server: Server, kind: str, load: Load) -> Row:
    """A warm-up round, then the measured round with the server's CPU around it."""
    method = EMPTY if kind == "empty" else READ
    client = _client(server, method, load)
    workload = Workload(kind, load.users)
    try:
        if load.database_url:
            prewarm.prewarm(load.database_url)
        client.round(load.seconds, workload)
        if load.database_url:
            prewarm.prewarm(load.database_url)
        before = usage(server.pid)
        result = client.round(load.seconds, workload)
        after = usage(server.pid)
    finally:
        client.close()
    cpu = after.cpu_seconds - before.cpu_seconds
    return Row(
        server=name,
        rpc=f"{method.rsplit('/', 1)[1]} ({kind})",
        client=client.name,
        calls_per_second=result.calls_per_second,
        p50_ms=result.p50_ms,
        p99_ms=result.p99_ms,
        errors=result.errors,
        cpu_ms_per_1000=cpu * 1e6 / max(1, result.calls + result.errors),
        server_cores=cpu / result.seconds if result.seconds else 0.0,
        client_cores=result.client_cpu_seconds / result.seconds if result.seconds else 0.0,
        rss_mib=after.rss_mib,
        peak_rss_mib=after.peak_rss_mib,
    )


@contextmanager
def _running(variant: Variant, base_env: dict[str, str], logs: Path) -> Iterator[Server]:
    port, http_port = free_port(), free_port()
    env = {
        **base_env,
        **variant.env,
        "SEGSVC_GRPC_ADDR": f"127.0.0.1:{port}",
        "SEGSVC_HTTP_ADDR": f"127.0.0.1:{http_port}",
    }
    command = [*variant.command, "--port", str(port)] if variant.port_flag else variant.command
    log = logs / (variant.name.replace(" ", "_").replace(",", "") + ".log")
    server = launch(command, env, port, http_port, log)
    try:
        yield server
    finally:
        server.stop()


def compare(base_env: dict[str, str], load: Load, logs: Path) -> list[Row]:
    """Every variant, both RPCs; rows in the order measured (printed as they come)."""
    rows: list[Row] = []
    for variant in variants():
        with _running(variant, base_env, logs) as server:
            for kind in ("uniform", "zipf", "empty"):
                row = measure(variant.name, server, kind, load)
                print(
                    f"  {row.server:<32} {row.rpc:<28} {row.calls_per_second:8,.0f} calls/s"
                    f"  p99 {row.p99_ms:6.1f} ms  {row.cpu_ms_per_1000:6.0f} CPU ms/1k"
                    f"  errors {row.errors}",
                    flush=True,
                )
                rows.append(row)
    return rows


if __name__ == "__main__":
    from bench.run import main

    main(["--only", "models", *sys.argv[1:]])
