"""The expiry sweeper moves each expired membership to history exactly once, even with
several sweepers (replicas) running at the same moment."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from segsvc.observability.metrics import Metrics
from segsvc.service_layer.expiry_sweeper import ExpirySweeper
from segsvc.store.database import Database
from tests.support.servers import make_settings


def test_concurrent_sweepers_move_each_row_once(
    database_url: str, db: psycopg.Connection[Any]
) -> None:
    now = datetime.now(UTC)
    base = 7_000_000_000_000
    count = 3000
    with db.transaction():
        seg = db.execute(
            "INSERT INTO segments (slug, created_at) VALUES ('SWEEP_RACE', %s) RETURNING id", (now,)
        ).fetchone()
        assert seg is not None
        db.execute(
            "INSERT INTO users (user_id, created_at) SELECT g, %s FROM generate_series(%s, %s) g",
            (now, base, base + count - 1),
        )
        db.execute(
            "INSERT INTO memberships (user_id, segment_id, added_at, expires_at, reason)"
            " SELECT g, %s, %s, %s - (g - %s) * interval '1 second', 'manual'"
            " FROM generate_series(%s, %s) g",
            (seg[0], now - timedelta(days=1), now, base, base, base + count - 1),
        )
    database = Database.from_settings(database_url, make_settings())
    database.open()
    try:
        sweepers = [
            ExpirySweeper(database, lambda: now + timedelta(seconds=1), Metrics(), 3600, 200)
            for _ in range(4)
        ]
        with ThreadPoolExecutor(4) as pool:
            moved = list(pool.map(lambda s: s.sweep_once(), sweepers))
    finally:
        database.close()
    assert sum(moved) == count
    left = db.execute(
        "SELECT count(*) FROM memberships WHERE segment_id = %s", (seg[0],)
    ).fetchone()
    assert left is not None
    assert left[0] == 0
    rows = db.execute(
        "SELECT user_id, count(*), min(at), bool_and(reason = 'expired' AND account_id IS NULL)"
        " FROM membership_history WHERE segment_id = %s GROUP BY user_id",
        (seg[0],),
    ).fetchall()
    assert len(rows) == count
    assert all(r[1] == 1 and r[3] for r in rows)
    assert all(r[2] == now - timedelta(seconds=r[0] - base) for r in rows)


def test_sweeps_forget_request_ids_after_24_hours(
    database_url: str, db: psycopg.Connection[Any]
) -> None:
    now = datetime.now(UTC)
    account = 987_654_321
    for age in (timedelta(hours=25), timedelta(hours=23)):
        db.execute(
            "INSERT INTO request_ids (account_id, request_id, fingerprint, response, created_at)"
            " VALUES (%s, gen_random_uuid(), '\\x00', '\\x00', %s)",
            (account, now - age),
        )
    database = Database.from_settings(database_url, make_settings())
    database.open()
    try:
        ExpirySweeper(database, lambda: now, Metrics(), 3600, 200).sweep_once()
    finally:
        database.close()
    rows = db.execute(
        "SELECT created_at FROM request_ids WHERE account_id = %s", (account,)
    ).fetchall()
    assert [r[0] for r in rows] == [now - timedelta(hours=23)]
