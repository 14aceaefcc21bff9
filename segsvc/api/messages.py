"""Conversions between protobuf messages and domain values, in one place."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from segmentation.v1 import segment_service_pb2 as segment_pb
from segmentation.v1 import user_service_pb2 as user_pb
from segsvc.domain.membership_update import RequestedAddition
from segsvc.domain.models import ActiveSegment, Reason, Segment
from segsvc.domain.rollout import basis_points_to_percent

_REASONS = {
    Reason.MANUAL: user_pb.MEMBERSHIP_REASON_MANUAL,
    Reason.ROLLOUT: user_pb.MEMBERSHIP_REASON_ROLLOUT,
}


def timestamp(value: datetime) -> Timestamp:
    """A protobuf Timestamp for an aware datetime."""
    ts = Timestamp()
    ts.FromDatetime(value)
    return ts


def to_datetime(value: Timestamp) -> datetime:
    """An aware UTC datetime for a protobuf Timestamp."""
    return value.ToDatetime(tzinfo=UTC)


def to_timedelta(value: Duration) -> timedelta:
    """A timedelta for a protobuf Duration."""
    return value.ToTimedelta()


def user_segments(user_id: int, segments: Sequence[ActiveSegment]) -> user_pb.UserSegments:
    """The UserSegments message for one user."""
    return user_pb.UserSegments(
        user_id=user_id,
        segments=[
            user_pb.UserSegment(
                slug=s.slug,
                added_at=timestamp(s.added_at),
                expires_at=timestamp(s.expires_at) if s.expires_at else None,
                reason=_REASONS.get(s.reason, user_pb.MEMBERSHIP_REASON_UNSPECIFIED),
            )
            for s in segments
        ],
    )


def encoded_user_segments(user_id: int, segments: Sequence[ActiveSegment]) -> bytes:
    """The wire bytes of GetUserSegmentsResponse for one user: what the read cache keeps.

    They are also the bytes of one `users` entry of BatchGetUserSegmentsResponse: both
    messages hold the UserSegments in field 1 (length-delimited), and a repeated field
    is its entries' encodings one after another. So a batch answer is the concatenation
    of per-user answers (`concatenated`), and a cached user serves both RPCs.
    """
    response = user_pb.GetUserSegmentsResponse(user=user_segments(user_id, segments))
    return response.SerializeToString()


def concatenated(encoded_users: Sequence[bytes]) -> bytes:
    """The wire bytes of BatchGetUserSegmentsResponse from per-user answers (see above)."""
    return b"".join(encoded_users)


def additions(entries: Sequence[user_pb.SegmentAddition]) -> list[RequestedAddition]:
    """The `add` entries of UpdateUserSegments, expiry oneof resolved."""
    result = []
    for entry in entries:
        which = entry.WhichOneof("expiry")
        result.append(
            RequestedAddition(
                slug=entry.slug,
                expires_at=to_datetime(entry.expires_at) if which == "expires_at" else None,
                ttl=to_timedelta(entry.ttl) if which == "ttl" else None,
            )
        )
    return result


def segment(value: Segment) -> segment_pb.Segment:
    """The Segment message; member_count only when it was computed."""
    message = segment_pb.Segment(
        slug=value.slug,
        description=value.description,
        rollout_salt=value.rollout_salt or "",
        create_time=timestamp(value.created_at),
    )
    if value.rollout_basis_points is not None:
        message.auto_percent = basis_points_to_percent(value.rollout_basis_points)
    if value.member_count is not None:
        message.member_count = value.member_count
    return message
