"""Translation between the client's plain values (models.py) and protobuf messages.

Shared by the blocking and the asyncio client, so both build identical requests and
return identical results.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta, timezone
from typing import TypeVar

from google.protobuf import duration_pb2, timestamp_pb2
from google.protobuf.message import Message

from segsvc_client._proto.segmentation.v1 import auth_options_pb2 as options_pb
from segsvc_client._proto.segmentation.v1 import auth_service_pb2 as auth_pb
from segsvc_client._proto.segmentation.v1 import segment_service_pb2 as segment_pb
from segsvc_client._proto.segmentation.v1 import user_service_pb2 as user_pb
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

_M = TypeVar("_M", bound=Message)

_REASONS = {
    user_pb.MEMBERSHIP_REASON_UNSPECIFIED: MembershipReason.UNSPECIFIED,
    user_pb.MEMBERSHIP_REASON_MANUAL: MembershipReason.MANUAL,
    user_pb.MEMBERSHIP_REASON_ROLLOUT: MembershipReason.ROLLOUT,
}


_ROLES = {
    Role.READER: options_pb.ROLE_READER,
    Role.WRITER: options_pb.ROLE_WRITER,
    Role.ADMIN: options_pb.ROLE_ADMIN,
}


def role_value(role: Role | str | None) -> options_pb.Role.ValueType:
    """The proto enum value of a role (by member or name, e.g. "writer")."""
    if role is None:
        return options_pb.ROLE_UNSPECIFIED
    return _ROLES[role if isinstance(role, Role) else Role(role.lower())]


def role(value: options_pb.Role.ValueType) -> Role | None:
    """The role of a proto enum value; None for ROLE_UNSPECIFIED or one this client
    does not know yet."""
    return next((r for r, v in _ROLES.items() if v == value), None)


def timestamp(value: datetime) -> timestamp_pb2.Timestamp:
    """A Timestamp for an aware datetime (naive ones are taken as UTC)."""
    message = timestamp_pb2.Timestamp()
    aware = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    message.FromDatetime(aware.astimezone(timezone.utc))
    return message


def _datetime(value: timestamp_pb2.Timestamp) -> datetime:
    return value.ToDatetime(tzinfo=timezone.utc)


def _duration(value: timedelta) -> duration_pb2.Duration:
    message = duration_pb2.Duration()
    message.FromTimedelta(value)
    return message


def user_segments(message: user_pb.UserSegments) -> UserSegments:
    """UserSegments from its message."""
    return UserSegments(
        user_id=message.user_id,
        segments=tuple(
            UserSegment(
                slug=s.slug,
                added_at=_datetime(s.added_at),
                expires_at=_datetime(s.expires_at) if s.HasField("expires_at") else None,
                reason=_REASONS.get(s.reason, MembershipReason.UNSPECIFIED),
            )
            for s in message.segments
        ),
    )


def segment(message: segment_pb.Segment) -> Segment:
    """Segment from its message."""
    return Segment(
        slug=message.slug,
        description=message.description,
        auto_percent=message.auto_percent if message.HasField("auto_percent") else None,
        rollout_salt=message.rollout_salt,
        create_time=_datetime(message.create_time),
        member_count=message.member_count if message.HasField("member_count") else None,
    )


def addition(item: str | SegmentAddition, ttl: timedelta | None) -> user_pb.SegmentAddition:
    """A SegmentAddition; a bare slug gets the call-wide `ttl`."""
    spec = SegmentAddition(item, ttl=ttl) if isinstance(item, str) else item
    message = user_pb.SegmentAddition(slug=spec.slug)
    if spec.expires_at is not None:
        message.expires_at.CopyFrom(timestamp(spec.expires_at))
    elif spec.ttl is not None:
        message.ttl.CopyFrom(_duration(spec.ttl))
    return message


def with_request_id(request: _M, request_id: str | None) -> _M:
    """Set the request's `request_id` (the caller's, else a fresh UUID) when the contract
    has the field, so a retried call is applied once. Without the field a given id is
    an error rather than a silent no-op."""
    if "request_id" in request.DESCRIPTOR.fields_by_name:
        # setattr: the field exists only in contracts that have it (mypy sees the others).
        setattr(request, "request_id", request_id or str(uuid.uuid4()))  # noqa: B010
    elif request_id is not None:
        raise TypeError(f"{request.DESCRIPTOR.name} has no request_id in this contract")
    return request


def update_request(
    user_id: int,
    add: Iterable[str | SegmentAddition],
    remove: Iterable[str],
    ttl: timedelta | None,
) -> user_pb.UpdateUserSegmentsRequest:
    """An UpdateUserSegmentsRequest."""
    return user_pb.UpdateUserSegmentsRequest(
        user_id=user_id, add=[addition(a, ttl) for a in add], remove=list(remove)
    )


def get_request(user_id: int, as_of: datetime | None) -> user_pb.GetUserSegmentsRequest:
    """A GetUserSegmentsRequest, with `as_of` only when given."""
    request = user_pb.GetUserSegmentsRequest(user_id=user_id)
    if as_of is not None:
        request.as_of.CopyFrom(timestamp(as_of))
    return request


def create_segment_request(
    slug: str,
    description: str,
    auto_percent: float | None,
    rollout_salt: str,
    validate_only: bool,
) -> segment_pb.CreateSegmentRequest:
    """A CreateSegmentRequest; `auto_percent=None` means no rollout."""
    request = segment_pb.CreateSegmentRequest(
        slug=slug,
        description=description,
        rollout_salt=rollout_salt,
        validate_only=validate_only,
    )
    if auto_percent is not None:
        request.auto_percent = auto_percent
    return request


def import_chunks(user_ids: Iterable[int], chunk_size: int) -> Iterator[list[int]]:
    """Consecutive lists of at most chunk_size ids, read lazily from user_ids."""
    chunk: list[int] = []
    for user_id in user_ids:
        chunk.append(user_id)
        if len(chunk) >= chunk_size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def import_result(message: user_pb.ImportUsersResponse) -> ImportResult:
    """ImportResult from its message."""
    return ImportResult(
        received_count=message.received_count,
        created_count=message.created_count,
        rollout_membership_count=message.rollout_membership_count,
    )


def report_link(message: segment_pb.GetHistoryReportResponse) -> ReportLink:
    """ReportLink from its message."""
    return ReportLink(url=message.url, expires_at=_datetime(message.expires_at))


def access_token(message: auth_pb.SignInResponse) -> AccessToken:
    """AccessToken from its message."""
    return AccessToken(token=message.access_token, expires_at=_datetime(message.expires_at))


def new_api_key(message: auth_pb.CreateApiKeyResponse) -> NewApiKey:
    """NewApiKey from its message."""
    return NewApiKey(key_id=message.key_id, api_key=message.api_key)


def api_key(message: auth_pb.ApiKey) -> ApiKey:
    """ApiKey from its message."""
    return ApiKey(
        key_id=message.key_id,
        name=message.name,
        role=role(message.role),
        prefix=message.prefix,
        created_by=message.created_by,
        create_time=_datetime(message.create_time),
        revoke_time=_datetime(message.revoke_time) if message.HasField("revoke_time") else None,
    )
