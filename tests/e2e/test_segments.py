"""SegmentService through the real server: create, get, list (AIP-158), delete, members."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
import psycopg
import pytest

from segmentation.v1 import segment_service_pb2 as pb
from segmentation.v1 import segment_service_pb2_grpc as seg_grpc
from segmentation.v1 import user_service_pb2 as user_pb
from segmentation.v1 import user_service_pb2_grpc as user_grpc
from tests.support.names import Names

Metadata = tuple[tuple[str, str], ...]


def test_create_get_and_duplicate(
    segments: seg_grpc.SegmentServiceStub, auth_metadata: Metadata, names: Names
) -> None:
    slug = names.slug("AVITO_DISCOUNT_50")
    created = segments.CreateSegment(
        pb.CreateSegmentRequest(slug=slug, description="half price"), metadata=auth_metadata
    )
    assert created.segment.slug == slug
    assert created.segment.description == "half price"
    assert not created.segment.HasField("auto_percent")
    got = segments.GetSegment(pb.GetSegmentRequest(slug=slug), metadata=auth_metadata)
    assert got.segment.member_count == 0
    assert got.segment.create_time == created.segment.create_time
    with pytest.raises(grpc.RpcError) as err:
        segments.CreateSegment(pb.CreateSegmentRequest(slug=slug), metadata=auth_metadata)
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert slug in (err.value.details() or "")


@pytest.mark.parametrize("slug", ["", "avito", "WITH SPACE", "DASH-ED", "A" * 65, "ÄBC"])
def test_invalid_slugs_say_what_is_allowed(
    segments: seg_grpc.SegmentServiceStub, auth_metadata: Metadata, slug: str
) -> None:
    with pytest.raises(grpc.RpcError) as err:
        segments.CreateSegment(pb.CreateSegmentRequest(slug=slug), metadata=auth_metadata)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "A-Z, 0-9 and _" in (err.value.details() or "")


def test_description_limit(
    segments: seg_grpc.SegmentServiceStub, auth_metadata: Metadata, names: Names
) -> None:
    with pytest.raises(grpc.RpcError) as err:
        segments.CreateSegment(
            pb.CreateSegmentRequest(slug=names.slug(), description="x" * 1001),
            metadata=auth_metadata,
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "description" in (err.value.details() or "")


@pytest.mark.parametrize("field", ["description", "rollout_salt"])
def test_nul_in_text_fields_is_invalid_argument_not_internal(
    segments: seg_grpc.SegmentServiceStub, auth_metadata: Metadata, names: Names, field: str
) -> None:
    request = pb.CreateSegmentRequest(slug=names.slug(), auto_percent=50)
    setattr(request, field, "a\x00b")
    with pytest.raises(grpc.RpcError) as err:
        segments.CreateSegment(request, metadata=auth_metadata)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in (err.value.details() or "")


def test_missing_segment_is_not_found_everywhere(
    segments: seg_grpc.SegmentServiceStub, auth_metadata: Metadata, names: Names
) -> None:
    slug = names.slug("NOWHERE")
    calls: list[Callable[[], object]] = [
        lambda: segments.GetSegment(pb.GetSegmentRequest(slug=slug), metadata=auth_metadata),
        lambda: segments.DeleteSegment(pb.DeleteSegmentRequest(slug=slug), metadata=auth_metadata),
        lambda: list(
            segments.ListSegmentUsers(pb.ListSegmentUsersRequest(slug=slug), metadata=auth_metadata)
        ),
    ]
    for call in calls:
        with pytest.raises(grpc.RpcError) as err:
            call()
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        assert slug in (err.value.details() or "")


def test_delete_removes_memberships_with_history_and_frees_the_slug(
    segments: seg_grpc.SegmentServiceStub,
    users: user_grpc.UserServiceStub,
    auth_metadata: Metadata,
    names: Names,
    db: psycopg.Connection[Any],
) -> None:
    slug, other = names.slug("GONE"), names.slug("STAYS")
    for s in (slug, other):
        segments.CreateSegment(pb.CreateSegmentRequest(slug=s), metadata=auth_metadata)
    members = names.user_ids(3)
    for uid in members:
        users.UpdateUserSegments(
            user_pb.UpdateUserSegmentsRequest(
                user_id=uid,
                add=[user_pb.SegmentAddition(slug=slug), user_pb.SegmentAddition(slug=other)],
            ),
            metadata=auth_metadata,
        )
    deleted = segments.DeleteSegment(pb.DeleteSegmentRequest(slug=slug), metadata=auth_metadata)
    assert deleted.segment.member_count == 3
    for uid in members:
        read = users.GetUserSegments(
            user_pb.GetUserSegmentsRequest(user_id=uid), metadata=auth_metadata
        )
        assert [s.slug for s in read.user.segments] == [other]
    rows = db.execute(
        "SELECT user_id, operation, reason FROM membership_history"
        " WHERE slug = %s AND operation = 'remove' ORDER BY user_id",
        (slug,),
    ).fetchall()
    assert [tuple(r) for r in rows] == [(uid, "remove", "segment_deleted") for uid in members]
    recreated = segments.CreateSegment(pb.CreateSegmentRequest(slug=slug), metadata=auth_metadata)
    assert recreated.segment.slug == slug
    got = segments.GetSegment(pb.GetSegmentRequest(slug=slug), metadata=auth_metadata)
    assert got.segment.member_count == 0


def test_list_segments_pages_through_everything_once(
    segments: seg_grpc.SegmentServiceStub, auth_metadata: Metadata, names: Names
) -> None:
    mine = sorted(names.slug(f"PAGE{i:02d}") for i in range(7))
    for slug in mine:
        segments.CreateSegment(pb.CreateSegmentRequest(slug=slug), metadata=auth_metadata)
    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        page = segments.ListSegments(
            pb.ListSegmentsRequest(page_size=3, page_token=token), metadata=auth_metadata
        )
        pages += 1
        assert len(page.segments) <= 3
        assert all(not s.HasField("member_count") for s in page.segments)
        seen.extend(s.slug for s in page.segments)
        token = page.next_page_token
        if not token:
            break
    assert seen == sorted(seen)
    assert len(seen) == len(set(seen))
    assert set(mine) <= set(seen)
    assert pages >= 3


def test_list_segments_rejects_bad_paging(
    segments: seg_grpc.SegmentServiceStub, auth_metadata: Metadata
) -> None:
    for request, field in (
        (pb.ListSegmentsRequest(page_size=-1), "page_size"),
        (pb.ListSegmentsRequest(page_token="not-a-token"), "page_token"),
    ):
        with pytest.raises(grpc.RpcError) as err:
            segments.ListSegments(request, metadata=auth_metadata)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field in (err.value.details() or "")


def test_list_segment_users_streams_all_members_ascending(
    segments: seg_grpc.SegmentServiceStub,
    users: user_grpc.UserServiceStub,
    auth_metadata: Metadata,
    names: Names,
) -> None:
    slug = names.slug("BIG")
    segments.CreateSegment(pb.CreateSegmentRequest(slug=slug), metadata=auth_metadata)
    members = names.user_ids(12_345)
    users.ImportUsers(iter([user_pb.ImportUsersRequest(user_ids=members)]), metadata=auth_metadata)
    # Give them the segment in bulk through the API, a few at a time would be slow.
    for uid in members[:30]:
        users.UpdateUserSegments(
            user_pb.UpdateUserSegmentsRequest(
                user_id=uid, add=[user_pb.SegmentAddition(slug=slug)]
            ),
            metadata=auth_metadata,
        )
    chunks = list(
        segments.ListSegmentUsers(pb.ListSegmentUsersRequest(slug=slug), metadata=auth_metadata)
    )
    streamed = [uid for chunk in chunks for uid in chunk.user_ids]
    assert streamed == sorted(members[:30])


def test_list_segment_users_chunks_large_segments(
    segments: seg_grpc.SegmentServiceStub,
    users: user_grpc.UserServiceStub,
    auth_metadata: Metadata,
    names: Names,
) -> None:
    slug = names.slug("ALL")
    members = names.user_ids(25_000)
    users.ImportUsers(iter([user_pb.ImportUsersRequest(user_ids=members)]), metadata=auth_metadata)
    segments.CreateSegment(
        pb.CreateSegmentRequest(slug=slug, auto_percent=100), metadata=auth_metadata
    )
    try:
        chunks = list(
            segments.ListSegmentUsers(pb.ListSegmentUsersRequest(slug=slug), metadata=auth_metadata)
        )
    finally:  # a 100 % rollout would enrol every user the later tests register
        segments.DeleteSegment(pb.DeleteSegmentRequest(slug=slug), metadata=auth_metadata)
    streamed = [uid for chunk in chunks for uid in chunk.user_ids]
    assert len(chunks) >= 3
    assert set(members) <= set(streamed)
    assert streamed == sorted(streamed)
