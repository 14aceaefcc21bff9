"""`segsvc serve | migrate | accounts`: the process entry points.

Start-up problems (a bad setting, a missing secret, a port in use, an unreachable
database) end the process with one clear line on stderr and exit status 2 or 1, never
a traceback: they are operator errors, not bugs.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import Any

import psycopg
import structlog
from pydantic import ValidationError

from segsvc import accounts_cli
from segsvc.config import Settings
from segsvc.observability.logs import configure_logging
from segsvc.server import SegsvcServer, StartupError
from segsvc.store import migrations
from segsvc.store.embedded import start_embedded

log = structlog.get_logger("segsvc")


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        lines = [
            f"segsvc: invalid setting SEGSVC_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}"
            for e in exc.errors()
        ]
        raise SystemExit("\n".join(lines) or "segsvc: invalid settings") from None


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
    """Run until SIGTERM/SIGINT, then shut down gracefully and return 0."""
    url, _embedded = _database_url(settings)
    server = SegsvcServer(settings, url)
    server.start()
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log.info("signal", signal=signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    stop.wait()
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
    args = parser.parse_args(argv)
    settings = _settings()
    configure_logging(settings.log_format, settings.log_level)
    try:
        if args.command == "serve":
            return serve(settings)
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
