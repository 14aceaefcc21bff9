"""A fresh benchmark database with the data set of shared/reference/anchors.md:
N users, 1 000 segments, 8 distinct segments per user, built with set-based SQL."""

from __future__ import annotations

import secrets
import time
from urllib.parse import urlsplit

import psycopg

from segsvc.config import DEFAULT_MIGRATIONS_DIR
from segsvc.store.migrations import migrate

SEGMENTS = 1000


def create_database(admin_url: str) -> tuple[str, str]:
    """(name, URL) of a new empty database."""
    name = f"bench_{secrets.token_hex(4)}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name, urlsplit(admin_url)._replace(path=f"/{name}").geturl()


def drop_database(admin_url: str, name: str) -> None:
    """Remove a benchmark database (connections are closed by force)."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def seed(url: str, users: int) -> float:
    """Migrate and fill the database; return the seconds it took."""
    started = time.perf_counter()
    migrate(url, DEFAULT_MIGRATIONS_DIR)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO segments (slug, description, created_at)"
            " SELECT format('SEG_%%s', lpad(s::text, 4, '0')), '', now()"
            " FROM generate_series(1, %s) s",
            (SEGMENTS,),
        )
        conn.execute(
            "INSERT INTO users (user_id, created_at)"
            " SELECT u, now() FROM generate_series(1, %s::bigint) u",
            (users,),
        )
        conn.execute(
            "INSERT INTO memberships (user_id, segment_id, added_at, expires_at, reason)"
            " SELECT u, x.s, now(), NULL, 'manual' FROM generate_series(1, %s::bigint) u,"
            " LATERAL (SELECT DISTINCT (1 + ((u * 7919 + k * 104729) %% 1000))::int AS s"
            "          FROM generate_series(1, 8::bigint) k) x",
            (users,),
        )
        conn.execute("VACUUM ANALYZE")
    return time.perf_counter() - started
