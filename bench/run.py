"""`python -m bench.run [--users N] [--quick] [--seconds S] [--only models,bulk]`

Seeds a fresh database (N users, 1 000 segments, 8 memberships per user), starts segsvc as
production would (a separate process, real PostgreSQL), and measures: the read RPC and an
empty RPC on the threaded server and on grpc.aio (server_models), then the bulk paths
(bulk). Prints tables and writes bench/results/<time>.json. The database is dropped at
the end. Needs h2load (Debian: nghttp2-client) for the load part.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import grpc

from bench import bulk, h2load, seed, server_models
from bench.servers import SEGSVC, free_port, launch
from segmentation.v1 import auth_service_pb2 as auth_pb
from segmentation.v1 import auth_service_pb2_grpc as auth_grpc

ADMIN_URL = os.environ.get(
    "SEGSVC_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
SECRET = "bench-secret-" + "b" * 52
PASSWORD = "bench-password"  # noqa: S105 - a throwaway account in a throwaway database
RESULTS = Path(__file__).resolve().parent / "results"


def sign_in(target: str) -> str:
    with grpc.insecure_channel(target) as channel:
        auth = auth_grpc.AuthServiceStub(channel)
        auth.SignUp(auth_pb.SignUpRequest(name="Bench", username="bench", password=PASSWORD))
        return auth.SignIn(auth_pb.SignInRequest(username="bench", password=PASSWORD)).access_token


def table(title: str, header: list[str], rows: list[list[object]]) -> str:
    lines = [f"\n{title}", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += [
        "| " + " | ".join(f"{c:,.1f}" if isinstance(c, float) else str(c) for c in r) + " |"
        for r in rows
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="100 000 users, 5 s rounds")
    parser.add_argument("--seconds", type=int, default=10, help="length of each measured round")
    parser.add_argument("--only", default="models,bulk")
    args = parser.parse_args()
    users = 100_000 if args.quick else args.users
    seconds = 5 if args.quick else args.seconds
    parts = set(args.only.split(","))
    name, url = seed.create_database(ADMIN_URL)
    report: dict[str, object] = {"users": users, "seconds": seconds}
    try:
        print(f"seeding {users:,} users, 1 000 segments, 8 memberships each ...", flush=True)
        report["seed_seconds"] = seed.seed(url, users)
        print(f"seeded in {report['seed_seconds']:.1f} s", flush=True)
        env = {
            **os.environ,
            "SEGSVC_DATABASE_URL": url,
            "SEGSVC_JWT_SECRET": SECRET,
            "SEGSVC_BCRYPT_ROUNDS": "4",
            "SEGSVC_LOG_LEVEL": "WARNING",
        }
        logs = Path(tempfile.mkdtemp(prefix="segsvc-bench-"))
        grpc_port, http_port = free_port(), free_port()
        server = launch(
            [SEGSVC, "serve"],
            {
                **env,
                "SEGSVC_GRPC_ADDR": f"127.0.0.1:{grpc_port}",
                "SEGSVC_HTTP_ADDR": f"127.0.0.1:{http_port}",
            },
            grpc_port,
            http_port,
            logs / "segsvc.log",
        )
        token = sign_in(f"127.0.0.1:{grpc_port}")
        try:
            if "bulk" in parts:
                rows = bulk.run(
                    f"127.0.0.1:{grpc_port}", token, server.process.pid, url, users + 1, users
                )
                report["bulk"] = [asdict(r) for r in rows]
                print(
                    table(
                        "Bulk paths",
                        ["what", "seconds", "amount", "unit", "peak RSS before MiB", "after MiB"],
                        [list(asdict(r).values()) for r in rows],
                    ),
                    flush=True,
                )
        finally:
            server.stop()
        if "models" in parts:
            if not h2load.available():
                print("h2load not found (apt-get install nghttp2-client): skipping server models")
            else:
                rows_m = server_models.compare(env, url, SECRET, token, 42, seconds, logs)
                report["server_models"] = [asdict(r) for r in rows_m]
                print(
                    table(
                        "Server models (32 concurrent callers, h2load, second round)",
                        [
                            "server",
                            "rpc",
                            "calls/s",
                            "p50 ms",
                            "p99 ms",
                            "CPU ms / 1000 calls",
                            "RSS MiB",
                            "failed",
                        ],
                        [list(asdict(r).values()) for r in rows_m],
                    ),
                    flush=True,
                )
    finally:
        seed.drop_database(ADMIN_URL, name)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / time.strftime("%Y%m%dT%H%M%S.json")
    out.write_text(json.dumps(report, indent=2, default=str))
    print(f"\nwritten {out}")


if __name__ == "__main__":
    main()
