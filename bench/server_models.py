"""Threaded `segsvc serve` against the same handler on grpc.aio (with and without uvloop,
when uvloop is installed): calls/s, latency, server CPU per 1000 calls, memory, plus the
empty-RPC ceiling (health check) of each, all in one run on the same data."""

from __future__ import annotations

import importlib.util
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from grpc_health.v1 import health_pb2

from bench import h2load
from bench.procstat import usage
from bench.servers import SEGSVC, Server, free_port, launch
from segmentation.v1 import user_service_pb2 as pb

READ = "/segmentation.v1.UserService/GetUserSegments"
EMPTY = "/grpc.health.v1.Health/Check"


@dataclass(frozen=True)
class Row:
    """One line of the comparison table."""

    server: str
    rpc: str
    calls_per_second: float
    p50_ms: float
    p99_ms: float
    cpu_ms_per_1000: float
    rss_mib: float
    failed: int


def measure(name: str, server: Server, token: str, user_id: int, seconds: int) -> list[Row]:
    """Two rounds per RPC (the first warms caches); the second is reported."""
    rows = []
    for rpc, message in (
        (READ, pb.GetUserSegmentsRequest(user_id=user_id)),
        (EMPTY, health_pb2.HealthCheckRequest()),
    ):
        url = f"http://127.0.0.1:{server.grpc_port}{rpc}"
        h2load.run(url, message, token, seconds=max(3, seconds // 2))
        before = usage(server.process.pid)
        result = h2load.run(url, message, token, seconds=seconds)
        after = usage(server.process.pid)
        cpu = (after.cpu_seconds - before.cpu_seconds) * 1000 / max(result.done, 1) * 1000
        rows.append(
            Row(
                name,
                rpc.rsplit("/", 1)[1],
                result.calls_per_second,
                result.p50_ms,
                result.p99_ms,
                cpu,
                after.rss_mib,
                result.failed,
            )
        )
    return rows


def compare(
    segsvc_env: dict[str, str],
    database_url: str,
    secret: str,
    token: str,
    user_id: int,
    seconds: int,
    logs: Path,
) -> list[Row]:
    """Start each server model in turn on the same database and measure it."""
    aio = [
        sys.executable,
        "-m",
        "bench.aio_server",
        "--database-url",
        database_url,
        "--secret",
        secret,
    ]
    variants: list[tuple[str, list[str], dict[str, str]]] = [
        ("threaded, logs at WARNING", [SEGSVC, "serve"], {"SEGSVC_LOG_LEVEL": "WARNING"}),
        ("threaded, a log line per call", [SEGSVC, "serve"], {"SEGSVC_LOG_LEVEL": "INFO"}),
        ("grpc.aio", aio, {}),
    ]
    if importlib.util.find_spec("uvloop"):
        variants.append(("grpc.aio + uvloop", [*aio, "--uvloop"], {}))
    rows: list[Row] = []
    for name, command, extra in variants:
        port = free_port()
        env = {
            **segsvc_env,
            **extra,
            "SEGSVC_GRPC_ADDR": f"127.0.0.1:{port}",
            "SEGSVC_HTTP_ADDR": f"127.0.0.1:{free_port()}",
        }
        if command is aio or command[0] == sys.executable:
            command = [*command, "--port", str(port)]
        server = launch(command, env, port, 0, logs / f"{name.split(',')[0].replace(' ', '_')}.log")
        try:
            rows.extend(measure(name, server, token, user_id, seconds))
        finally:
            server.stop()
    return rows


def as_json(rows: list[Row]) -> str:
    """The rows for bench/results."""
    return json.dumps([row.__dict__ for row in rows], indent=2)
