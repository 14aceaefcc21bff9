"""Time-limited memberships: exact at read time, swept into history at the expiry
instant, re-addable after expiry. The server's clock is moved instead of sleeping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import psycopg
import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from segmentation.v1 import segment_service_pb2 as seg_pb
from segmentation.v1 import segment_service_pb2_grpc as seg_grpc
from segmentation.v1 import user_service_pb2 as pb
from segmentation.v1 import user_service_pb2_grpc as user_grpc
from segsvc.server import SegsvcServer
from tests.support.api import update
from tests.support.clock import MovableClock
from tests.support.names import Names
from tests.support.servers import make_settings

Metadata = tuple[tuple[str, str], ...]


def ts(value: datetime) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(value)
    return out


def add_with_ttl(
    users: user_grpc.UserServiceStub, md: Metadata, uid: int, slug: str, ttl: timedelta
) -> pb.UpdateUserSegmentsResponse:
    duration = Duration()
    duration.FromTimedelta(ttl)
    return users.UpdateUserSegments(
        pb.UpdateUserSegmentsRequest(
            user_id=uid, add=[pb.SegmentAddition(slug=slug, ttl=duration)]
        ),
        metadata=md,
    )


def active(users: user_grpc.UserServiceStub, md: Metadata, uid: int) -> list[str]:
    reply = users.GetUserSegments(pb.GetUserSegmentsRequest(user_id=uid), metadata=md)
    return [s.slug for s in reply.user.segments]


@pytest.fixture
def segment(segments: seg_grpc.SegmentServiceStub, auth_metadata: Metadata, names: Names) -> str:
    slug = names.slug("DISCOUNT")
    segments.CreateSegment(seg_pb.CreateSegmentRequest(slug=slug), metadata=auth_metadata)
    return slug


def test_expiry_is_exact_at_read_time_everywhere(
    users: user_grpc.UserServiceStub,
    segments: seg_grpc.SegmentServiceStub,
    auth_metadata: Metadata,
    names: Names,
    clock: MovableClock,
    segment: str,
) -> None:
    uid = names.user_id()
    reply = add_with_ttl(users, auth_metadata, uid, segment, timedelta(days=2))
    expires = reply.user.segments[0].expires_at.ToDatetime(tzinfo=UTC)
    assert abs(expires - (clock() + timedelta(days=2))) < timedelta(seconds=5)

    clock.freeze(expires - timedelta(microseconds=1))
    assert active(users, auth_metadata, uid) == [segment]
    got = segments.GetSegment(seg_pb.GetSegmentRequest(slug=segment), metadata=auth_metadata)
    assert got.segment.member_count == 1

    clock.freeze(expires)
    assert active(users, auth_metadata, uid) == []
    batch = users.BatchGetUserSegments(
        pb.BatchGetUserSegmentsRequest(user_ids=[uid]), metadata=auth_metadata
    )
    assert list(batch.users[0].segments) == []
    got = segments.GetSegment(seg_pb.GetSegmentRequest(slug=segment), metadata=auth_metadata)
    assert got.segment.member_count == 0
    members = segments.ListSegmentUsers(
        seg_pb.ListSegmentUsersRequest(slug=segment), metadata=auth_metadata
    )
    assert [u for chunk in members for u in chunk.user_ids] == []


def test_sweeper_records_removal_at_the_expiry_time(
    users: user_grpc.UserServiceStub,
    auth_metadata: Metadata,
    names: Names,
    clock: MovableClock,
    server: SegsvcServer,
    db: psycopg.Connection[Any],
    segment: str,
) -> None:
    uid = names.user_id()
    reply = add_with_ttl(users, auth_metadata, uid, segment, timedelta(hours=1))
    expires = reply.user.segments[0].expires_at.ToDatetime(tzinfo=UTC)
    clock.advance(timedelta(hours=3))
    assert server.sweeper.sweep_once() >= 1
    assert not db.execute("SELECT 1 FROM memberships WHERE user_id = %s", (uid,)).fetchone()
    rows = db.execute(
        "SELECT operation, reason, at, account_id FROM membership_history"
        " WHERE user_id = %s ORDER BY id",
        (uid,),
    ).fetchall()
    assert [(r[0], r[1]) for r in rows] == [("add", "manual"), ("remove", "expired")]
    assert rows[1][2] == expires
    assert rows[1][3] is None  # the system, not an account


def test_readd_after_expiry_starts_a_new_membership(
    users: user_grpc.UserServiceStub,
    auth_metadata: Metadata,
    names: Names,
    clock: MovableClock,
    db: psycopg.Connection[Any],
    segment: str,
) -> None:
    uid = names.user_id()
    add_with_ttl(users, auth_metadata, uid, segment, timedelta(minutes=5))
    clock.advance(timedelta(minutes=10))  # expired, not swept
    again = update(users, auth_metadata, uid, add=[segment])
    assert [s.slug for s in again.user.segments] == [segment]
    assert not again.user.segments[0].HasField("expires_at")
    rows = db.execute(
        "SELECT operation, reason FROM membership_history WHERE user_id = %s ORDER BY at, id",
        (uid,),
    ).fetchall()
    assert [tuple(r) for r in rows] == [
        ("add", "manual"),
        ("remove", "expired"),
        ("add", "manual"),
    ]


def test_readding_changes_or_clears_the_expiry(
    users: user_grpc.UserServiceStub,
    auth_metadata: Metadata,
    names: Names,
    clock: MovableClock,
    db: psycopg.Connection[Any],
    segment: str,
) -> None:
    uid = names.user_id()
    add_with_ttl(users, auth_metadata, uid, segment, timedelta(days=1))
    at = (clock() + timedelta(days=7)).replace(microsecond=0)
    longer = users.UpdateUserSegments(
        pb.UpdateUserSegmentsRequest(
            user_id=uid, add=[pb.SegmentAddition(slug=segment, expires_at=ts(at))]
        ),
        metadata=auth_metadata,
    )
    assert longer.user.segments[0].expires_at.ToDatetime(tzinfo=UTC) == at
    cleared = update(users, auth_metadata, uid, add=[segment])
    assert not cleared.user.segments[0].HasField("expires_at")
    ops = db.execute(
        "SELECT operation FROM membership_history WHERE user_id = %s ORDER BY id", (uid,)
    ).fetchall()
    assert [o[0] for o in ops] == ["add", "update", "update"]


@pytest.mark.parametrize(
    ("addition", "field"),
    [
        (pb.SegmentAddition(ttl=Duration(seconds=0)), "add[0].ttl"),
        (pb.SegmentAddition(ttl=Duration(seconds=-60)), "add[0].ttl"),
        (pb.SegmentAddition(expires_at=Timestamp(seconds=1_000_000_000)), "add[0].expires_at"),
    ],
)
def test_past_or_non_positive_expiry_is_invalid(
    users: user_grpc.UserServiceStub,
    auth_metadata: Metadata,
    names: Names,
    segment: str,
    addition: pb.SegmentAddition,
    field: str,
) -> None:
    addition.slug = segment
    with pytest.raises(grpc.RpcError) as err:
        users.UpdateUserSegments(
            pb.UpdateUserSegmentsRequest(user_id=names.user_id(), add=[addition]),
            metadata=auth_metadata,
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in (err.value.details() or "")


def test_expiry_survives_a_restart(
    users: user_grpc.UserServiceStub,
    auth_metadata: Metadata,
    names: Names,
    database_url: str,
    clock: MovableClock,
    segment: str,
) -> None:
    """No in-memory timers: a second server over the same database sees the expiry."""
    uid = names.user_id()
    add_with_ttl(users, auth_metadata, uid, segment, timedelta(hours=1))
    other = SegsvcServer(make_settings(), database_url, clock=clock)
    other.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{other.grpc_port}") as ch:
            stub = user_grpc.UserServiceStub(ch)
            assert active(stub, auth_metadata, uid) == [segment]
            clock.advance(timedelta(hours=2))
            assert active(stub, auth_metadata, uid) == []
            assert other.sweeper.sweep_once() >= 1
    finally:
        other.stop(grace=0)
