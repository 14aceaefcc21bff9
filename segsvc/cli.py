"""`segsvc serve | migrate | accounts`: the process entry points (client commands such as
`segsvc segment` live in cli_commands).

Start-up problems (a bad setting, a missing secret, a port in use, an unreachable
database) end the process with one clear line on stderr and exit status 2 or 1, never
a traceback: they are operator errors, not bugs.
"""

from __future__ import annotations

import argparse
import gc
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
import structlog
from pydantic import ValidationError

from segsvc import accounts_cli, cli_commands, start_barrier
from segsvc.config import Settings
from segsvc.observability.logs import configure_logging
from segsvc.startup import StartupError, resolve_jwt_secret
from segsvc.store import migrations
from segsvc.store.embedded import start_embedded
from segsvc.supervisor import PortTaken, Supervisor

if TYPE_CHECKING:
    from segsvc.server import SegsvcServer

log = structlog.get_logger("segsvc")

# How often a worker checks that its supervisor is still there.
ORPHAN_CHECK_SECONDS = 1.0


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        lines = [
            f"segsvc: invalid setting SEGSVC_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}"
            for e in exc.errors()
        ]
        print("\n".join(lines) or "segsvc: invalid settings", file=sys.stderr)
        raise SystemExit(2) from None


def _warn_unknown_variables() -> None:
    """Name every SEGSVC_* variable that is no setting: a misspelt one is otherwise
    ignored without a word, and the default silently applies."""
    known = {f"SEGSVC_{name.upper()}" for name in Settings.model_fields}
    unknown = sorted(k for k in os.environ if k.startswith("SEGSVC_") and k not in known)
    if unknown:
        log.warning("unknown_settings_ignored", variables=unknown)


def _database_url(settings: Settings) -> tuple[str, Any]:
    """The configured URL, or an embedded server's (with the handle to keep alive)."""
    if settings.database_url is not None:
        return settings.database_url.get_secret_value(), None
    url, handle = start_embedded(settings.data_dir)
    log.warning(
        "embedded_postgres",
        data_dir=str(settings.data_dir / "pgdata"),
        note="development mode: set SEGSVC_DATABASE_URL in production",
    )
    return url, handle


def serve(settings: Settings) -> int:
    """Run until SIGTERM/SIGINT, then shut down gracefully and return 0: one process
    when SEGSVC_PROCESSES is 1, otherwise that many workers under the supervisor."""
    count = settings.process_count
    if count > 1:
        secret = resolve_jwt_secret(settings)  # checked (in dev mode generated) once, here
        url, _embedded = _database_url(settings)
        try:
            supervisor = (
                Supervisor(settings, count, url, secret.decode())
                if settings.embedded
                else Supervisor(settings, count)
            )
            return supervisor.run()
        except PortTaken as exc:
            raise StartupError(str(exc)) from None
    from segsvc.server import SegsvcServer  # see _run

    url, _embedded = _database_url(settings)
    return _run(SegsvcServer(settings, url), lambda: False)


def serve_worker(settings: Settings, index: int, ready_fd: int, count: int, marks: Path) -> int:
    """One worker behind the supervisor: bind the port, wait until all `count` workers
    listen (segsvc.start_barrier, marks in `marks`), serve, say so on `ready_fd`, and
    stop on SIGTERM or when the supervisor is gone (a worker must not outlive it)."""
    from segsvc.server import ProcessRole, SegsvcServer  # see _run

    parent = os.getppid()
    url = settings.database_url.get_secret_value() if settings.database_url else ""
    server = SegsvcServer(settings, url, role=ProcessRole.for_worker(index))
    start_barrier.listening(marks, index)
    start_barrier.wait_for_siblings(marks, count)
    return _run(server, lambda: os.getppid() != parent, ready_fd)


def _run(server: SegsvcServer, orphaned: Callable[[], bool], ready_fd: int = -1) -> int:
    # segsvc.server (grpc, the whole service) is imported by the processes that serve,
    # not by the supervisor, which would otherwise hold it in memory for nothing.
    server.start()
    # Everything built so far (modules, servicers, pools) lives as long as the process:
    # moved out of the collector's sight, a full collection under load scans only what
    # came later. Measured on a worker: 72 000 objects, a full collection 50-65 ms (every
    # call on the worker waits) before, 1.4 ms after (README, "Performance").
    gc.freeze()
    if ready_fd >= 0:
        os.write(ready_fd, b"1")
        os.close(ready_fd)
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log.info("signal", signal=signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    while not stop.wait(ORPHAN_CHECK_SECONDS):
        if orphaned():
            log.warning("supervisor_gone")
            break
    server.stop()
    return 0


def migrate(settings: Settings, target: int | None) -> int:
    """Apply (or revert to `target`) the migrations, then exit."""
    url, _embedded = _database_url(settings)
    changed = migrations.migrate(url, settings.migrations_dir, target)
    log.info("migrated", changed=changed, target=target if target is not None else "newest")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point."""
    parser = argparse.ArgumentParser(prog="segsvc", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the gRPC and HTTP servers")
    migrate_cmd = commands.add_parser("migrate", help="apply database migrations and exit")
    migrate_cmd.add_argument(
        "--to", type=int, default=None, help="target version (default: newest; 0 = empty)"
    )
    accounts_cli.add_parser(commands)
    worker_cmd = commands.add_parser(
        "worker", help="one worker process of `segsvc serve` (started by its supervisor)"
    )
    worker_cmd.add_argument("index", type=int)
    worker_cmd.add_argument("ready_fd", type=int)
    worker_cmd.add_argument("count", type=int)
    worker_cmd.add_argument("marks", type=Path)
    cli_commands.add_parsers(commands)
    args = parser.parse_args(argv)
    if args.command in cli_commands.COMMANDS:
        return cli_commands.run(args)
    settings = _settings()
    configure_logging(settings.log_format, settings.log_level)
    if args.command != "worker":  # the supervisor has warned already
        _warn_unknown_variables()
    try:
        if args.command == "serve":
            return serve(settings)
        if args.command == "worker":
            return serve_worker(settings, args.index, args.ready_fd, args.count, args.marks)
        if args.command == "accounts":
            url, _embedded = _database_url(settings)
            return accounts_cli.run(args, settings, url)
        return migrate(settings, args.to)
    except StartupError as exc:
        print(f"segsvc: {exc}", file=sys.stderr)
        return 2
    except (psycopg.OperationalError, RuntimeError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"segsvc: cannot start: {first_line}", file=sys.stderr)
        return 1
