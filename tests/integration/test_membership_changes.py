"""The one write path on the real database: one history row per real change, none for a
change that changes nothing, and a change report naming what changed; conflicts are
retried in the server and end as UNAVAILABLE, never ABORTED."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import psycopg
import psycopg.errors
import pytest

from segsvc.api.status_mapping import map_exception
from segsvc.domain.membership_change import MembershipChange
from segsvc.domain.membership_update import UpdatePlan
from segsvc.service_layer import transactions
from segsvc.store.membership_changes import MembershipChanges
from tests.support.names import Names


def history(db: psycopg.Connection[Any], user_id: int) -> list[tuple[str, str]]:
    rows = db.execute(
        "SELECT operation, reason FROM membership_history WHERE user_id = %s ORDER BY at, id",
        (user_id,),
    ).fetchall()
    return [(r[0], r[1]) for r in rows]


def test_one_history_row_per_real_change(db: psycopg.Connection[Any], names: Names) -> None:
    now = datetime.now(UTC)
    uid = names.user_id()
    seg = db.execute(
        "INSERT INTO segments (slug, created_at) VALUES (%s, %s) RETURNING id",
        (names.slug("ONE_PATH"), now),
    ).fetchone()
    assert seg is not None
    db.execute("INSERT INTO users (user_id, created_at) VALUES (%s, %s)", (uid, now))
    later = now + timedelta(days=1)

    with db.transaction():
        changes = MembershipChanges(db, now, None)
        changes.update_user(uid, UpdatePlan(insert={seg[0]: None}))
        changes.update_user(uid, UpdatePlan(insert={seg[0]: None}))  # present: no-op
        changes.update_user(uid, UpdatePlan(change_expiry={seg[0]: later}))
        changes.update_user(uid, UpdatePlan(change_expiry={seg[0]: later}))  # same: no-op
        assert changes.report == MembershipChange.users([uid])
    with db.transaction():
        changes = MembershipChanges(db, now + timedelta(seconds=1), None)
        changes.update_user(uid, UpdatePlan(delete=[seg[0]]))
        changes.update_user(uid, UpdatePlan(delete=[seg[0]]))  # gone: no-op
        assert changes.end_segment(seg[0]) == 0  # no members: changes nobody
        assert changes.report == MembershipChange.users([uid])
    assert history(db, uid) == [("add", "manual"), ("update", "manual"), ("remove", "manual")]


def test_nothing_changed_reports_nothing(db: psycopg.Connection[Any], names: Names) -> None:
    with db.transaction():
        changes = MembershipChanges(db, datetime.now(UTC), None)
        changes.purge_expired_of_user(names.user_id())
        changes.update_user(names.user_id(), UpdatePlan())
        assert not changes.report


def test_conflicts_are_retried_then_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transactions, "BACKOFF_SECONDS", 0.0)
    failures = [psycopg.errors.DeadlockDetected(), psycopg.errors.SerializationFailure()]

    def flaky() -> str:
        if failures:
            raise failures.pop()
        return "done"

    assert transactions.retrying(flaky) == "done"

    calls = 0

    def hopeless() -> None:
        nonlocal calls
        calls += 1
        raise psycopg.errors.DeadlockDetected()

    with pytest.raises(psycopg.errors.DeadlockDetected) as err:
        transactions.retrying(hopeless)
    assert calls == transactions.ATTEMPTS
    assert map_exception(err.value).code == grpc.StatusCode.UNAVAILABLE
