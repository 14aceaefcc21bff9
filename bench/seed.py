"""A fresh benchmark database holding the data set of shared/reference/anchors.md:
N users, 1 000 segments (SEG_0001 ...), 8 distinct segments per user, no expiry.

Everything is set-based SQL in the database (generate_series), so seeding a million
users costs what PostgreSQL needs to write the rows, not a million round trips. The
foreign-key triggers are switched off for the seeding session only
(session_replication_role = replica): the rows are consistent by construction, and
checking 8M references one by one would double the seeding time.
"""

from __future__ import annotations

import secrets
import time
from urllib.parse import urlsplit

import psycopg

from segsvc.config import DEFAULT_MIGRATIONS_DIR
from segsvc.store.migrations import migrate

SEGMENTS = 1000
MEMBERSHIPS_PER_USER = 8

_SEGMENTS = """
INSERT INTO segments (slug, description, created_at)
SELECT format('SEG_%%s', lpad(s::text, 4, '0')), 'benchmark segment', now()
FROM generate_series(1, %(segments)s) s
"""
_USERS = """
INSERT INTO users (user_id, created_at)
SELECT u, now() FROM generate_series(1, %(users)s::bigint) u
"""
# anchors.md's statement, with the columns of this schema. Segment ids are 1..1000
# because the segments were the first rows of a fresh identity column.
_MEMBERSHIPS = """
INSERT INTO memberships (user_id, segment_id, added_at, expires_at, reason)
SELECT u, x.s, now(), NULL, 'manual'
FROM generate_series(1, %(users)s::bigint) u,
     LATERAL (SELECT DISTINCT (1 + ((u * 7919 + k * 104729) %% 1000))::int AS s
              FROM generate_series(1, %(per_user)s::bigint) k) x
"""


def database_url(admin_url: str, name: str) -> str:
    """The admin URL pointed at another database on the same server."""
    return urlsplit(admin_url)._replace(path=f"/{name}").geturl()


def create_database(admin_url: str) -> tuple[str, str]:
    """(name, URL) of a new empty database called bench_<random>."""
    name = f"bench_{secrets.token_hex(4)}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name, database_url(admin_url, name)


def drop_database(admin_url: str, name: str) -> None:
    """Remove a benchmark database, closing whatever connections are left."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def seed(url: str, users: int) -> dict[str, float]:
    """Migrate and fill the database; seconds per step (and "total")."""
    steps: dict[str, float] = {}
    started = last = time.perf_counter()

    def step(name: str) -> None:
        nonlocal last
        now = time.perf_counter()
        steps[name] = now - last
        print(f"  {name}: {now - last:.1f} s", flush=True)
        last = now

    migrate(url, DEFAULT_MIGRATIONS_DIR)
    step("migrations")
    params = {"users": users, "segments": SEGMENTS, "per_user": MEMBERSHIPS_PER_USER}
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute(_SEGMENTS, params)
        conn.execute(_USERS, params)
        step("users")
        conn.execute(_MEMBERSHIPS, params)
        step("memberships")
        # Statistics for the planner and a visibility map for index-only scans, as a
        # long-running database would have.
        conn.execute("VACUUM ANALYZE")
        step("vacuum analyze")
    steps["total"] = time.perf_counter() - started
    return steps
