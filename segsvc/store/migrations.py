"""Applies migrations/NNNNNN_name.up.sql (golang-migrate layout) under an advisory lock.

Every replica runs this at start; the session-level advisory lock makes concurrent
starts safe (one applies, the others wait and then find nothing to do). Applied
versions are recorded in `schema_migrations`, one row per version, so the history of
the schema is visible in the database itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import psycopg

from segsvc.store.database import Connection

# Arbitrary constant shared by every segsvc process: "segsvc" in ASCII.
ADVISORY_LOCK_ID = 0x736567737663
FILE_PATTERN = re.compile(r"(\d{6})_([a-z0-9_]+)\.(up|down)\.sql")


@dataclass(frozen=True)
class Migration:
    """One numbered schema change with its up and down scripts."""

    version: int
    name: str
    up: Path
    down: Path


def discover(directory: Path) -> list[Migration]:
    """Every migration in `directory`, ascending; each version must have up and down."""
    found: dict[int, dict[str, Path]] = {}
    names: dict[int, str] = {}
    for path in directory.glob("*.sql"):
        match = FILE_PATTERN.fullmatch(path.name)
        if not match:
            raise ValueError(f"unexpected file in migrations: {path.name}")
        version = int(match[1])
        names[version] = match[2]
        found.setdefault(version, {})[match[3]] = path
    migrations = []
    for version in sorted(found):
        scripts = found[version]
        if set(scripts) != {"up", "down"}:
            raise ValueError(f"migration {version:06d} needs both .up.sql and .down.sql")
        migrations.append(Migration(version, names[version], scripts["up"], scripts["down"]))
    return migrations


def _ensure_table(conn: Connection) -> None:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version bigint PRIMARY KEY,"
        " name text NOT NULL,"
        " applied_at timestamptz NOT NULL DEFAULT now())"
    )


def applied_versions(conn: Connection) -> list[int]:
    """Versions recorded as applied, ascending (empty for a fresh database)."""
    exists = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
    if not exists or not exists[0]:
        return []
    rows = conn.execute("SELECT version FROM schema_migrations ORDER BY version").fetchall()
    return [int(r[0]) for r in rows]


def migrate(conninfo: str, directory: Path, target: int | None = None) -> list[int]:
    """Bring the schema to `target` (default: the newest), up or down.

    Returns the versions applied (or reverted). Each migration runs in its own
    transaction together with its schema_migrations bookkeeping.
    """
    migrations = discover(directory)
    newest = migrations[-1].version if migrations else 0
    goal = newest if target is None else target
    changed: list[int] = []
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (ADVISORY_LOCK_ID,))
        try:
            _ensure_table(conn)
            done = set(applied_versions(conn))
            for m in migrations:
                if m.version <= goal and m.version not in done:
                    with conn.transaction():
                        conn.execute(m.up.read_text())
                        conn.execute(
                            "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                            (m.version, m.name),
                        )
                    changed.append(m.version)
            for m in reversed(migrations):
                if m.version > goal and m.version in done:
                    with conn.transaction():
                        conn.execute(m.down.read_text())
                        conn.execute(
                            "DELETE FROM schema_migrations WHERE version = %s", (m.version,)
                        )
                    changed.append(m.version)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (ADVISORY_LOCK_ID,))
    return changed


def is_at_head(conn: Connection, directory: Path) -> bool:
    """True when every known migration is applied (readiness probe)."""
    known = [m.version for m in discover(directory)]
    return applied_versions(conn) == known


def missing_versions(conn: Connection, needed: list[int]) -> list[int]:
    """Versions this code needs that the database lacks (readiness). Versions the
    database has beyond them are a newer release's additive migrations: fine."""
    return sorted(set(needed) - set(applied_versions(conn)))
