"""Migrations: discovered in golang-migrate layout, applied up and down, recorded in
schema_migrations, and safe when many replicas start at once (advisory lock)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import psycopg

from segsvc.config import DEFAULT_MIGRATIONS_DIR as MIGRATIONS
from segsvc.store import migrations

TABLES = {"accounts", "users", "segments", "memberships", "membership_history"}


def tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        ).fetchall()
    return {r[0] for r in rows}


def test_every_migration_has_up_and_down_in_order() -> None:
    found = migrations.discover(MIGRATIONS)
    assert found, "no migrations found"
    assert [m.version for m in found] == list(range(1, len(found) + 1))
    for m in found:
        assert m.up.name == f"{m.version:06d}_{m.name}.up.sql"
        assert m.down.name == f"{m.version:06d}_{m.name}.down.sql"


def test_up_down_up(fresh_database: Callable[[], str]) -> None:
    url = fresh_database()
    newest = migrations.discover(MIGRATIONS)[-1].version
    assert migrations.migrate(url, MIGRATIONS) == list(range(1, newest + 1))
    assert TABLES | {"schema_migrations"} <= tables(url)
    assert migrations.migrate(url, MIGRATIONS) == []  # idempotent
    with psycopg.connect(url) as conn:
        assert migrations.is_at_head(conn, MIGRATIONS)
    assert migrations.migrate(url, MIGRATIONS, target=0) == list(range(newest, 0, -1))
    assert tables(url) == {"schema_migrations"}
    with psycopg.connect(url) as conn:
        assert not migrations.is_at_head(conn, MIGRATIONS)
        assert migrations.applied_versions(conn) == []
    assert migrations.migrate(url, MIGRATIONS) == list(range(1, newest + 1))
    assert tables(url) >= TABLES


def test_concurrent_starts_apply_each_migration_once(fresh_database: Callable[[], str]) -> None:
    url = fresh_database()
    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda _: migrations.migrate(url, MIGRATIONS), range(6)))
    applied = [v for r in results for v in r]
    assert sorted(applied) == [m.version for m in migrations.discover(MIGRATIONS)]
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT version FROM schema_migrations ORDER BY version").fetchall()
    assert [r[0] for r in rows] == sorted(applied)
