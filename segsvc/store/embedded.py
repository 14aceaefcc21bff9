"""The embedded PostgreSQL for development: a real server from the `pgserver` wheel.

Started only when no database URL is configured, so `make run` works on a machine with
nothing but Python. The data directory persists between runs; pgserver stops the server
when the last process using it exits.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any


def start_embedded(data_dir: Path) -> tuple[str, Any]:
    """Start (or reuse) PostgreSQL in `data_dir`; return its URL and the handle to keep."""
    # pgserver asks platformdirs for a runtime directory that containers often lack.
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
    try:
        from pgserver.postgres_server import get_server
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise RuntimeError(
            "no SEGSVC_DATABASE_URL and the embedded PostgreSQL is not installed: "
            "pip install 'segsvc[embedded]' or set SEGSVC_DATABASE_URL"
        ) from exc
    pgdata = data_dir / "pgdata"
    pgdata.mkdir(parents=True, exist_ok=True)
    server = get_server(pgdata, cleanup_mode="stop")
    return str(server.get_uri()), server
