"""`python -m bench.run [--users N] [--quick] [--only traffic,models,bulk] [--client ...]`

Creates a fresh database (bench_<random>) on the server of SEGSVC_BENCH_DATABASE_URL
(default postgresql://postgres@127.0.0.1:5432/postgres), seeds N users (default
1 000 000; --quick: 10 000 and 1 s rounds, to prove the benchmark works, not to
measure), 1 000 segments and 8 memberships per user, and starts segsvc as production
would: a separate `segsvc serve` on a real PostgreSQL, from the executable named by
SEGSVC_BENCH_SERVER (`make bench`: a virtualenv of the runtime dependencies only, as a
production install has; else this one's). Then:

  traffic uniform and Zipf reads, batches of 100, updates and the 95/5 mix from 64
          callers, with start-up time and idle memory (bench.traffic)
  models  one segsvc process vs a minimal grpc.aio server of the same read:
          GetUserSegments for random users and the empty Health/Check, 32 closed-loop
          callers (bench.server_models)
  bulk    rollout and ImportUsers beside the bare SQL, ListSegmentUsers and the month
          report at N users, with the server's peak memory per operation (bench.bulk)

The load comes from closed-loop callers of `--client go|python|h2load` (bench.clients):
by default the Go binary clients/go/cmd/segsvc-load when Go is installed, as it takes
the least of the CPU the server shares, else the multi-process Python client; h2load
drives only the models part (traffic then uses the default).

The tables are prewarmed (pg_prewarm) before every measured round. Prints tables, the
targets of issue 8 beside the figures of this run and the machine state, writes
bench/results/<time>.json and drops the database at the end, on failure and on Ctrl-C
too. Figures on a shared 2-core machine drift by tens of percent between runs: compare
rows of one run.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from types import FrameType
from typing import Any

import grpc

from bench import bulk, clients, go_load, h2load, prewarm, seed, server_models, targets, traffic
from bench.servers import SEGSVC, Server, free_port, launch
from segmentation.v1 import auth_service_pb2 as auth_pb
from segmentation.v1 import auth_service_pb2_grpc as auth_grpc

ADMIN_URL = os.environ.get(
    "SEGSVC_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
# Random per run: segsvc refuses guessable secrets.
SECRET = secrets.token_urlsafe(48)
PASSWORD = "bench-password"  # noqa: S105 - a throwaway account in a throwaway database
RESULTS = Path(__file__).resolve().parent / "results"
PARTS = ("traffic", "models", "bulk")


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--users", type=int, default=None, help="default 1 000 000")
    parser.add_argument("--quick", action="store_true", help="10 000 users, 1 s rounds")
    parser.add_argument("--seconds", type=float, default=None, help="round length (10; quick 1)")
    parser.add_argument(
        "--concurrency", type=int, default=32, help="closed-loop callers of the models part"
    )
    parser.add_argument(
        "--traffic-concurrency", type=int, default=64, help="closed-loop callers of traffic"
    )
    parser.add_argument(
        "--client-processes", type=int, default=2, help="processes of the Python load client"
    )
    parser.add_argument(
        "--server-processes",
        type=int,
        default=0,
        help="SEGSVC_PROCESSES of the traffic part (default: the server's, the CPU count)",
    )
    parser.add_argument(
        "--client",
        choices=clients.CHOICES,
        default=None,
        help="load client (default: go when Go is installed, else python)",
    )
    parser.add_argument("--only", default=",".join(PARTS), help="comma-separated parts")
    parser.add_argument(
        "--results", type=Path, default=RESULTS, help="directory of the JSON results"
    )
    args = parser.parse_args(argv)
    args.parts = [p for p in args.only.split(",") if p]
    if unknown := set(args.parts) - set(PARTS):
        parser.error(f"unknown part(s) {sorted(unknown)}; choose from {', '.join(PARTS)}")
    args.users = args.users or (10_000 if args.quick else 1_000_000)
    args.seconds = args.seconds or (1.0 if args.quick else 10.0)
    _choose_client(args)
    return args


def _choose_client(args: argparse.Namespace) -> None:
    """Settle args.client (what models uses) and args.traffic_client, saying why; build
    the Go client now, so a failed build shows before the database is seeded."""
    default, why = clients.default()
    if args.client is None:
        args.client = default
        print(f"load client: {default} ({why}; --client go|python|h2load to choose)")
    elif args.client == "h2load" and not h2load.available():
        print(f"h2load not found (apt-get install nghttp2-client): using the {default} client")
        args.client = default
    args.traffic_client = default if args.client == "h2load" else args.client
    if args.client == "h2load" and "traffic" in args.parts:
        print(f"h2load repeats one request: the traffic part uses the {default} client ({why})")
    used = {"traffic": args.traffic_client, "models": args.client}
    if "go" in {used[part] for part in args.parts if part in used}:
        print("building the Go load client (clients/go/cmd/segsvc-load)", flush=True)
        print(f"  {go_load.binary()}", flush=True)


def _sign_in(target: str) -> str:
    with grpc.insecure_channel(target) as channel:
        auth = auth_grpc.AuthServiceStub(channel)
        auth.SignUp(auth_pb.SignUpRequest(name="Bench", username="bench", password=PASSWORD))
        reply = auth.SignIn(auth_pb.SignInRequest(username="bench", password=PASSWORD))
        return reply.access_token


def _segsvc(env: dict[str, str], logs: Path, name: str) -> Server:
    grpc_port, http_port = free_port(), free_port()
    return launch(
        [SEGSVC, "serve"],
        {
            **env,
            "SEGSVC_GRPC_ADDR": f"127.0.0.1:{grpc_port}",
            "SEGSVC_HTTP_ADDR": f"127.0.0.1:{http_port}",
        },
        grpc_port,
        http_port,
        logs / f"{name}.log",
    )


def table(title: str, rows: list[dict[str, Any]]) -> str:
    """A Markdown table of dataclass rows (floats with one decimal)."""
    if not rows:
        return ""
    header = list(rows[0])
    lines = [f"\n{title}", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [
            f"{v:,.1f}" if isinstance(v, float) else f"{v:,}" if isinstance(v, int) else str(v)
            for v in row.values()
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _commit() -> str:
    result = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    )
    return result.stdout.strip()


def _measure(args: argparse.Namespace, url: str, report: dict[str, Any]) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SEGSVC_")},
        "SEGSVC_DATABASE_URL": url,
        "SEGSVC_JWT_SECRET": SECRET,
        "SEGSVC_BCRYPT_ROUNDS": "4",
        "SEGSVC_TOKEN_TTL_SECONDS": "86400",
        "SEGSVC_LOG_LEVEL": "WARNING",
    }
    prewarm.install(url)
    logs = Path(tempfile.mkdtemp(prefix="segsvc-bench-"))
    print(f"server logs in {logs}", flush=True)
    server = _segsvc(env, logs, "sign_in")
    try:
        token = _sign_in(server.target)
    finally:
        server.stop()
    figures: dict[str, float] = {}
    if "traffic" in args.parts:
        spread = (
            "in one process"
            if args.traffic_client == "go"
            else f"over {args.client_processes} processes"
        )
        print(
            f"\ntraffic: {args.traffic_concurrency} callers of the {args.traffic_client} client"
            f" {spread}, 2 rounds of {args.seconds:g} s each (second reported):",
            flush=True,
        )
        settings = traffic.Settings(
            args.users,
            args.seconds,
            args.traffic_concurrency,
            args.client_processes,
            args.server_processes,
            args.traffic_client,
        )
        startup, rows = traffic.run(env, token, url, settings, logs)
        report["startup"] = asdict(startup)
        report["traffic"] = [asdict(r) for r in rows]
        figures.update(traffic.figures(startup, rows))
    if "models" in args.parts:
        print(
            f"\nserver models: {args.concurrency} callers, {args.client} client,"
            f" 2 rounds of {args.seconds:g} s each (second reported)",
            flush=True,
        )
        load = server_models.Load(
            token,
            args.users,
            args.seconds,
            args.concurrency,
            args.client_processes,
            args.client,
            url,
        )
        report["server_models"] = [asdict(r) for r in server_models.compare(env, load, logs)]
    if "bulk" in args.parts:
        print("\nbulk paths (fresh segsvc process):", flush=True)
        server = _segsvc(env, logs, "bulk")
        try:
            bulk_rows = bulk.run(server.target, token, server.pid, url, args.users)
        finally:
            server.stop()
        report["bulk"] = [asdict(r) for r in bulk_rows]
        figures.update(bulk.ratios(bulk_rows))
    report["figures"] = figures


def main(argv: list[str] | None = None) -> None:
    """Seed, measure the selected parts, print and save the results, clean up."""
    args = _arguments(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    report: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "commit": _commit(),
        "server_executable": SEGSVC,
        "cpus": os.cpu_count(),
        "users": args.users,
        "seconds": args.seconds,
        "concurrency": args.concurrency,
        "client": args.client,
        "traffic_client": args.traffic_client,
        "client_processes": args.client_processes,
    }
    report["load_average_start"] = os.getloadavg()
    name, url = seed.create_database(ADMIN_URL)
    print(f"database {name}; server {SEGSVC}", flush=True)
    try:
        print(f"seeding {args.users:,} users, 1 000 segments, 8 memberships each:", flush=True)
        report["seed_seconds"] = seed.seed(url, args.users)
        print(f"seeded in {report['seed_seconds']['total']:.1f} s", flush=True)
        _measure(args, url, report)
    except KeyboardInterrupt:
        print("\ninterrupted: cleaning up", file=sys.stderr)
        raise SystemExit(130) from None
    finally:
        seed.drop_database(ADMIN_URL, name)
        print(f"dropped database {name}", flush=True)
    report["load_average_end"] = os.getloadavg()
    print(table("Traffic (second round)", report.get("traffic", [])))
    print(table("Server models (second round)", report.get("server_models", [])))
    print(table("Bulk paths", report.get("bulk", [])))
    print(f"\nTargets of issue 8 ({args.users:,} users, {os.cpu_count()} CPUs):")
    print(targets.table(report.get("figures", {})))
    print(
        "machine: load average (1/5/15 min) at start {:.2f} {:.2f} {:.2f},"
        " at end {:.2f} {:.2f} {:.2f}; per-round load average and server/client cores"
        " in the traffic table".format(*report["load_average_start"], *report["load_average_end"])
    )
    args.results.mkdir(parents=True, exist_ok=True)
    out = args.results / time.strftime("%Y%m%dT%H%M%S.json")
    out.write_text(json.dumps(report, indent=2))
    print(f"\nseed {report['seed_seconds']['total']:.1f} s; results in {out}")


if __name__ == "__main__":
    main()
