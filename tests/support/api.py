"""Short calls for the end-to-end tests: the request shapes most tests repeat."""

from __future__ import annotations

from collections.abc import Sequence

from segmentation.v1 import segment_service_pb2 as seg_pb
from segmentation.v1 import segment_service_pb2_grpc as seg_grpc
from segmentation.v1 import user_service_pb2 as pb
from segmentation.v1 import user_service_pb2_grpc as user_grpc

Metadata = tuple[tuple[str, str], ...]


def create_segments(segments: seg_grpc.SegmentServiceStub, md: Metadata, *slugs: str) -> None:
    """Create plain segments (no rollout)."""
    for slug in slugs:
        segments.CreateSegment(seg_pb.CreateSegmentRequest(slug=slug), metadata=md)


def update(
    users: user_grpc.UserServiceStub,
    md: Metadata,
    user_id: int,
    add: Sequence[str] = (),
    remove: Sequence[str] = (),
) -> pb.UpdateUserSegmentsResponse:
    """UpdateUserSegments without expiries."""
    return users.UpdateUserSegments(
        pb.UpdateUserSegmentsRequest(
            user_id=user_id,
            add=[pb.SegmentAddition(slug=s) for s in add],
            remove=list(remove),
        ),
        metadata=md,
    )


def slugs_of(user: pb.UserSegments) -> list[str]:
    """The slugs of a UserSegments message, in its order."""
    return [s.slug for s in user.segments]


def members(segments: seg_grpc.SegmentServiceStub, md: Metadata, slug: str) -> set[int]:
    """Every member of a segment, read back through ListSegmentUsers."""
    stream = segments.ListSegmentUsers(seg_pb.ListSegmentUsersRequest(slug=slug), metadata=md)
    return {uid for chunk in stream for uid in chunk.user_ids}
