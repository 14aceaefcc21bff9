"""Database-level guarantees: constraints that hold even if Python had a bug, indexes
behind every read-path query, and the SQL rollout bucket agreeing with Python's."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import psycopg
import psycopg.errors
import pytest

from segsvc.domain.rollout import bucket
from segsvc.store import history, membership_changes, memberships


def test_sql_and_python_buckets_agree(db: psycopg.Connection[Any]) -> None:
    for salt in ("AVITO_VOICE_MESSAGES", "exp:v2", "ÜNICODE salt"):
        rows = db.execute(
            "SELECT u, segsvc_rollout_bucket(%s, u) FROM generate_series(1, 10000) u", (salt,)
        ).fetchall()
        assert len(rows) == 10_000
        mismatches = [(u, b) for u, b in rows if bucket(salt, u) != b]
        assert mismatches == []
    big = 9_000_000_000_000_000_000
    row = db.execute("SELECT segsvc_rollout_bucket('x', %s)", (big,)).fetchone()
    assert row is not None
    assert row[0] == bucket("x", big)


@pytest.mark.parametrize(
    ("statement", "params"),
    [
        ("INSERT INTO segments (slug, created_at) VALUES ('lower', now())", ()),
        ("INSERT INTO users (user_id, created_at) VALUES (0, now())", ()),
        ("INSERT INTO segments (slug, created_at, rollout_bp) VALUES ('X_BP', now(), 10)", ()),
        (
            "INSERT INTO memberships (user_id, segment_id, added_at, reason)"
            " VALUES (-1, -1, now(), 'manual')",
            (),
        ),
        ("INSERT INTO accounts (name, username, password_hash) VALUES ('n', 'UPPER', 'h')", ()),
    ],
)
def test_constraints_reject_bad_rows(
    db: psycopg.Connection[Any], statement: str, params: tuple[()]
) -> None:
    with pytest.raises(psycopg.errors.IntegrityError):
        db.execute(statement, params)


def test_one_live_segment_per_slug_and_one_membership_per_pair(db: psycopg.Connection[Any]) -> None:
    with db.transaction(force_rollback=True):
        db.execute("INSERT INTO segments (slug, created_at) VALUES ('UNIQ_CHECK', now())")
        with pytest.raises(psycopg.errors.UniqueViolation), db.transaction():
            db.execute("INSERT INTO segments (slug, created_at) VALUES ('UNIQ_CHECK', now())")
        db.execute("UPDATE segments SET deleted_at = now() WHERE slug = 'UNIQ_CHECK'")
        db.execute("INSERT INTO segments (slug, created_at) VALUES ('UNIQ_CHECK', now())")
        db.execute("INSERT INTO users (user_id, created_at) VALUES (987654321987, now())")
        seg = db.execute(
            "SELECT id FROM segments WHERE slug = 'UNIQ_CHECK' AND deleted_at IS NULL"
        ).fetchone()
        assert seg is not None
        insert = (
            "INSERT INTO memberships (user_id, segment_id, added_at, reason)"
            " VALUES (987654321987, %s, now(), 'manual')"
        )
        db.execute(insert, (seg[0],))
        with pytest.raises(psycopg.errors.UniqueViolation), db.transaction():
            db.execute(insert, (seg[0],))


Params = Any


def plan(db: psycopg.Connection[Any], query: str, params: Params) -> str:
    with db.transaction(force_rollback=True):
        db.execute("SET LOCAL enable_seqscan = off")
        rows = db.execute(f"EXPLAIN {query}", params).fetchall()
    return "\n".join(r[0] for r in rows)


def test_read_path_queries_use_indexes(db: psycopg.Connection[Any]) -> None:
    """With sequential scans disabled, each hot query must still find an index: proof
    that one exists for it (on tiny test tables the planner would otherwise scan)."""
    now = datetime.now(UTC)
    cases = {
        "active_for_user": (memberships.ACTIVE_FOR_USER, (1, now)),
        "active_for_users": (memberships.ACTIVE_FOR_USERS, ([1, 2], now)),
        "member_count": (memberships.MEMBER_COUNT, (1, now)),
        "expiry sweep": (membership_changes.SWEEP_DUE, {"now": now, "batch": 100}),
        "history as-of": (history.EVENTS_FOR_USER, (1, now)),
        "history month": (
            history.REPORT_EVENTS,
            {"start": now, "end": now, "now": now, "all_users": True, "user_ids": []},
        ),
    }
    for name, (query, params) in cases.items():
        text = plan(db, query, params)
        assert "Seq Scan on memberships" not in text, (name, text)
        assert "Seq Scan on membership_history" not in text, (name, text)
        assert "Index" in text or "Bitmap" in text, (name, text)
