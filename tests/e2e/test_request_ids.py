"""Idempotent retries (AIP-155): a repeated request_id returns the first answer and
changes nothing, even when the first response was lost; misuse is INVALID_ARGUMENT."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import grpc
import psycopg
import pytest

from segmentation.v1 import segment_service_pb2 as seg_pb
from segmentation.v1 import segment_service_pb2_grpc as seg_grpc
from segmentation.v1 import user_service_pb2 as pb
from segmentation.v1 import user_service_pb2_grpc as user_grpc
from tests.support.api import create_segments, slugs_of, update
from tests.support.clock import MovableClock
from tests.support.names import Names

Metadata = tuple[tuple[str, str], ...]


def history_rows(db: psycopg.Connection[Any], user_id: int) -> list[tuple[str, str]]:
    rows = db.execute(
        "SELECT slug, operation FROM membership_history WHERE user_id = %s ORDER BY at, id",
        (user_id,),
    ).fetchall()
    return [(r[0], r[1]) for r in rows]


def test_a_retried_update_is_applied_once_and_answered_alike(
    users: user_grpc.UserServiceStub,
    segments: seg_grpc.SegmentServiceStub,
    auth_metadata: Metadata,
    names: Names,
    db: psycopg.Connection[Any],
) -> None:
    slug = names.slug("RETRY")
    create_segments(segments, auth_metadata, slug)
    uid = names.user_id()
    request = pb.UpdateUserSegmentsRequest(
        user_id=uid, add=[pb.SegmentAddition(slug=slug)], request_id=str(uuid.uuid4())
    )
    first = users.UpdateUserSegments(request, metadata=auth_metadata)  # its answer "lost"
    update(users, auth_metadata, uid, remove=[slug])  # someone else changes the user
    again = users.UpdateUserSegments(request, metadata=auth_metadata)

    assert again == first
    assert slug in slugs_of(again.user)
    current = users.GetUserSegments(pb.GetUserSegmentsRequest(user_id=uid), metadata=auth_metadata)
    assert slug not in slugs_of(current.user)  # the repeat did not add the segment again
    assert [r for r in history_rows(db, uid) if r[0] == slug] == [(slug, "add"), (slug, "remove")]


def test_a_retried_create_and_import_answer_the_first_time(
    users: user_grpc.UserServiceStub,
    segments: seg_grpc.SegmentServiceStub,
    auth_metadata: Metadata,
    names: Names,
) -> None:
    create = seg_pb.CreateSegmentRequest(
        slug=names.slug("RETRY_CREATE"), auto_percent=100, request_id=str(uuid.uuid4())
    )
    first = segments.CreateSegment(create, metadata=auth_metadata)
    assert segments.CreateSegment(create, metadata=auth_metadata) == first  # not ALREADY_EXISTS
    segments.DeleteSegment(seg_pb.DeleteSegmentRequest(slug=create.slug), metadata=auth_metadata)

    ids = names.user_ids(50)
    request_id = str(uuid.uuid4())

    def stream() -> list[pb.ImportUsersRequest]:
        return [
            pb.ImportUsersRequest(user_ids=ids[:25], request_id=request_id),
            pb.ImportUsersRequest(user_ids=ids[25:]),
        ]

    imported = users.ImportUsers(iter(stream()), metadata=auth_metadata)
    assert imported.created_count == 50
    assert users.ImportUsers(iter(stream()), metadata=auth_metadata) == imported


def test_a_request_id_is_a_uuid_used_for_one_request(
    users: user_grpc.UserServiceStub,
    segments: seg_grpc.SegmentServiceStub,
    auth_metadata: Metadata,
    names: Names,
) -> None:
    slug = names.slug("RETRY_MISUSE")
    create_segments(segments, auth_metadata, slug)
    with pytest.raises(grpc.RpcError) as err:
        users.UpdateUserSegments(
            pb.UpdateUserSegmentsRequest(user_id=names.user_id(), remove=[slug], request_id="7"),
            metadata=auth_metadata,
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "request_id" in (err.value.details() or "")

    request_id = str(uuid.uuid4())
    uid = names.user_id()
    users.UpdateUserSegments(
        pb.UpdateUserSegmentsRequest(
            user_id=uid, add=[pb.SegmentAddition(slug=slug)], request_id=request_id
        ),
        metadata=auth_metadata,
    )
    with pytest.raises(grpc.RpcError) as err:
        users.UpdateUserSegments(
            pb.UpdateUserSegmentsRequest(user_id=uid, remove=[slug], request_id=request_id),
            metadata=auth_metadata,
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "request_id" in (err.value.details() or "")


def test_a_request_id_is_remembered_for_24_hours(
    segments: seg_grpc.SegmentServiceStub,
    auth_metadata: Metadata,
    names: Names,
    clock: MovableClock,
) -> None:
    create = seg_pb.CreateSegmentRequest(
        slug=names.slug("RETRY_LATE"), request_id=str(uuid.uuid4())
    )
    segments.CreateSegment(create, metadata=auth_metadata)
    clock.advance(timedelta(hours=23))
    segments.CreateSegment(create, metadata=auth_metadata)
    clock.advance(timedelta(hours=2))
    with pytest.raises(grpc.RpcError) as err:  # a new request now: the slug is taken
        segments.CreateSegment(create, metadata=auth_metadata)
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
