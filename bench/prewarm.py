"""Prewarming: the benchmark measures memory, not the disk.

These machines page out memory that has sat idle for about a minute, PostgreSQL's page
cache included; a round that starts cold measures disk reads (every server model drops
to a few hundred reads/s). Before every measured round each table and index of the
benchmark database is read into the operating system's cache with `pg_prewarm`
('read' mode: shared_buffers is far smaller than the data set, the OS cache is not),
then the read path's relations are loaded into shared_buffers as far as they fit.
"""

from __future__ import annotations

import time

import psycopg

# Relations GetUserSegments touches, loaded into shared_buffers last so they stay there.
_HOT = ("segments", "memberships_pkey")
_RELATIONS = """
SELECT c.oid::regclass::text FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'i') ORDER BY pg_relation_size(c.oid) DESC
"""


def install(url: str) -> None:
    """CREATE EXTENSION pg_prewarm in the benchmark database (contrib, ships with PostgreSQL)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_prewarm")


def prewarm(url: str) -> float:
    """Read every table and index of the database into memory; the seconds it took."""
    started = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        names = [str(row[0]) for row in conn.execute(_RELATIONS)]
        for name in names:
            conn.execute("SELECT pg_prewarm(%s::regclass, 'read')", (name,))
        for name in _HOT:
            if name in names:
                conn.execute("SELECT pg_prewarm(%s::regclass, 'buffer')", (name,))
    return time.perf_counter() - started
