"""segsvc_client: call segsvc from Python with only grpcio and protobuf installed.

from segsvc_client import SegsvcClient

with SegsvcClient("localhost:50051", api_key=api_key) as client:
    client.update_user_segments(42, add=["NEW_CHECKOUT"])
    assert "NEW_CHECKOUT" in client.get_user_segments(42).slugs
"""

from segsvc_client.aio import AsyncSegsvcClient
from segsvc_client.client import SegsvcClient
from segsvc_client.errors import (
    Aborted,
    AlreadyExists,
    Cancelled,
    DataLoss,
    DeadlineExceeded,
    FailedPrecondition,
    FieldViolation,
    Internal,
    InvalidArgument,
    NotFound,
    OutOfRange,
    PermissionDenied,
    ResourceExhausted,
    ResourceInfo,
    SegsvcError,
    Unauthenticated,
    Unavailable,
    Unimplemented,
)
from segsvc_client.models import (
    AccessToken,
    ApiKey,
    ImportResult,
    MembershipReason,
    NewApiKey,
    ReportLink,
    Role,
    Segment,
    SegmentAddition,
    UserSegment,
    UserSegments,
)

__all__ = [
    "Aborted",
    "AccessToken",
    "AlreadyExists",
    "ApiKey",
    "AsyncSegsvcClient",
    "Cancelled",
    "DataLoss",
    "DeadlineExceeded",
    "FailedPrecondition",
    "FieldViolation",
    "ImportResult",
    "Internal",
    "InvalidArgument",
    "MembershipReason",
    "NewApiKey",
    "NotFound",
    "OutOfRange",
    "PermissionDenied",
    "ReportLink",
    "ResourceExhausted",
    "ResourceInfo",
    "Role",
    "Segment",
    "SegmentAddition",
    "SegsvcClient",
    "SegsvcError",
    "Unauthenticated",
    "Unavailable",
    "Unimplemented",
    "UserSegment",
    "UserSegments",
]
