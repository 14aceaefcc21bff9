"""Percentage rollout through the real server: deterministic, sticky, applied to users
known at creation and to users registered later, never undoing an explicit removal."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import psycopg
import pytest

from segmentation.v1 import segment_service_pb2 as seg_pb
from segmentation.v1 import segment_service_pb2_grpc as seg_grpc
from segmentation.v1 import user_service_pb2 as pb
from segmentation.v1 import user_service_pb2_grpc as user_grpc
from segsvc.domain.rollout import is_enrolled
from tests.support.api import members, slugs_of, update
from tests.support.names import Names

Metadata = tuple[tuple[str, str], ...]


def test_existing_users_are_enrolled_exactly_as_the_hash_says(
    users: user_grpc.UserServiceStub,
    segments: seg_grpc.SegmentServiceStub,
    auth_metadata: Metadata,
    names: Names,
    rollouts: list[str],
) -> None:
    ids = names.user_ids(20_000)
    users.ImportUsers(iter([pb.ImportUsersRequest(user_ids=ids)]), metadata=auth_metadata)
    slug = names.slug("VOICE")
    preview = segments.CreateSegment(
        seg_pb.CreateSegmentRequest(slug=slug, auto_percent=12.5, validate_only=True),
        metadata=auth_metadata,
    )
    with pytest.raises(grpc.RpcError) as err:  # validate_only created nothing
        segments.GetSegment(seg_pb.GetSegmentRequest(slug=slug), metadata=auth_metadata)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND

    created = segments.CreateSegment(
        seg_pb.CreateSegmentRequest(slug=slug, auto_percent=12.5), metadata=auth_metadata
    )
    rollouts.append(slug)
    assert created.segment.auto_percent == 12.5
    assert created.segment.rollout_salt == slug
    assert created.segment.member_count == preview.segment.member_count
    expected = {u for u in ids if is_enrolled(slug, 1250, u)}
    assert members(segments, auth_metadata, slug) & set(ids) == expected
    assert 0.10 < len(expected) / len(ids) < 0.15


def test_users_registered_later_are_enrolled_iff_the_hash_says_so(
    users: user_grpc.UserServiceStub,
    segments: seg_grpc.SegmentServiceStub,
    auth_metadata: Metadata,
    names: Names,
    rollouts: list[str],
) -> None:
    slug = names.slug("LATER")
    segments.CreateSegment(
        seg_pb.CreateSegmentRequest(slug=slug, auto_percent=30, rollout_salt=f"{slug}:v2"),
        metadata=auth_metadata,
    )
    rollouts.append(slug)
    plain = names.slug("PLAIN")
    segments.CreateSegment(seg_pb.CreateSegmentRequest(slug=plain), metadata=auth_metadata)
    created, implicit, imported = names.user_ids(200), names.user_ids(200), names.user_ids(2000)
    for uid in created:
        reply = users.CreateUser(pb.CreateUserRequest(user_id=uid), metadata=auth_metadata)
        assert (slug in [s.slug for s in reply.user.segments]) == is_enrolled(
            f"{slug}:v2", 3000, uid
        )
        if reply.user.segments:
            assert reply.user.segments[0].reason == pb.MEMBERSHIP_REASON_ROLLOUT
    for uid in implicit:
        update(users, auth_metadata, uid, add=[plain])
    users.ImportUsers(iter([pb.ImportUsersRequest(user_ids=imported)]), metadata=auth_metadata)
    everyone = created + implicit + imported
    expected = {u for u in everyone if is_enrolled(f"{slug}:v2", 3000, u)}
    assert members(segments, auth_metadata, slug) & set(everyone) == expected
    assert expected  # 2400 users at 30 %: an empty set would mean the rule never fired


def test_explicit_removal_sticks(
    users: user_grpc.UserServiceStub,
    segments: seg_grpc.SegmentServiceStub,
    auth_metadata: Metadata,
    names: Names,
    rollouts: list[str],
    db: psycopg.Connection[Any],
) -> None:
    slug = names.slug("STICKY")
    segments.CreateSegment(
        seg_pb.CreateSegmentRequest(slug=slug, auto_percent=100), metadata=auth_metadata
    )
    rollouts.append(slug)
    uid = names.user_id()
    first = users.CreateUser(pb.CreateUserRequest(user_id=uid), metadata=auth_metadata)
    assert [s.slug for s in first.user.segments] == [slug]
    update(users, auth_metadata, uid, remove=[slug])
    # Registration paths run again for this user: none may re-enrol it.
    with pytest.raises(grpc.RpcError):
        users.CreateUser(pb.CreateUserRequest(user_id=uid), metadata=auth_metadata)
    users.ImportUsers(iter([pb.ImportUsersRequest(user_ids=[uid])]), metadata=auth_metadata)
    again = users.GetUserSegments(pb.GetUserSegmentsRequest(user_id=uid), metadata=auth_metadata)
    assert list(again.user.segments) == []
    reasons = db.execute(
        "SELECT operation, reason FROM membership_history WHERE user_id = %s ORDER BY id", (uid,)
    ).fetchall()
    assert [tuple(r) for r in reasons] == [("add", "rollout"), ("remove", "manual")]


@pytest.mark.parametrize("percent", [0, -1, 100.5, 12.345])
def test_invalid_percentages(
    segments: seg_grpc.SegmentServiceStub, auth_metadata: Metadata, names: Names, percent: float
) -> None:
    with pytest.raises(grpc.RpcError) as err:
        segments.CreateSegment(
            seg_pb.CreateSegmentRequest(slug=names.slug(), auto_percent=percent),
            metadata=auth_metadata,
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "auto_percent" in (err.value.details() or "")


def test_registration_is_not_held_back_by_a_running_rollout_and_is_enrolled_once(
    users: user_grpc.UserServiceStub,
    segments: seg_grpc.SegmentServiceStub,
    auth_metadata: Metadata,
    names: Names,
    rollouts: list[str],
    database_url: str,
) -> None:
    """A rollout enrolling everyone is stopped in the middle of its enrolment (a row lock
    on one of its users, held here). Meanwhile new users register at once (they used to
    wait for the whole enrolment behind a SHARE lock on users), without seeing the
    uncommitted segment; when the rollout finishes, each of them is in it exactly once,
    with one history row."""
    known = names.user_ids(50)
    users.ImportUsers(iter([pb.ImportUsersRequest(user_ids=known)]), metadata=auth_metadata)
    slug = names.slug("NOWAIT")
    rollouts.append(slug)
    with psycopg.connect(database_url) as blocker:
        blocker.execute("SELECT 1 FROM users WHERE user_id = %s FOR UPDATE", (known[0],))
        with ThreadPoolExecutor(1) as pool:
            creating = pool.submit(
                segments.CreateSegment,
                seg_pb.CreateSegmentRequest(slug=slug, auto_percent=100),
                metadata=auth_metadata,
                timeout=60,
            )
            while not _waiting_on_lock(blocker, database_url):
                assert not creating.done(), creating.result()
                time.sleep(0.05)
            one, imported = names.user_ids(1)[0], names.user_ids(20)
            created = users.CreateUser(
                pb.CreateUserRequest(user_id=one), metadata=auth_metadata, timeout=10
            )
            users.ImportUsers(
                iter([pb.ImportUsersRequest(user_ids=imported)]), metadata=auth_metadata, timeout=10
            )
            assert slug not in slugs_of(created.user)
            assert not creating.done()
            blocker.rollback()
            created_segment = creating.result()
    newcomers = [one, *imported]
    assert created_segment.segment.member_count >= len(known) + len(newcomers)
    assert set(newcomers) | set(known) <= members(segments, auth_metadata, slug)
    with psycopg.connect(database_url) as conn:
        adds: dict[int, int] = dict(
            conn.execute(
                "SELECT h.user_id, count(*) FROM membership_history h"
                " JOIN segments s ON s.id = h.segment_id"
                " WHERE s.slug = %s AND s.deleted_at IS NULL AND h.operation = 'add'"
                " AND h.user_id = ANY(%s) GROUP BY h.user_id",
                (slug, newcomers),
            ).fetchall()
        )
    assert adds == dict.fromkeys(newcomers, 1)


def _waiting_on_lock(blocker: psycopg.Connection[Any], database_url: str) -> bool:
    """True once some session waits for a lock held by `blocker`'s session."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))",
            (blocker.info.backend_pid,),
        ).fetchone()
    return bool(row and row[0])
