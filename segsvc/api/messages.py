"""Conversions between protobuf messages and domain values, in one place."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from segmentation.v1 import auth_options_pb2 as auth_pb
from segmentation.v1 import segment_service_pb2 as segment_pb
from segmentation.v1 import user_service_pb2 as user_pb
from segsvc.domain.errors import FieldViolation, InvalidArgument
from segsvc.domain.membership_update import RequestedAddition
from segsvc.domain.models import ActiveSegment, Reason, Segment
from segsvc.domain.roles import Role
from segsvc.domain.rollout import basis_points_to_percent

# The ranges timestamp.proto and duration.proto define: 0001-01-01T00:00:00Z to
# 9999-12-31T23:59:59.999999999Z, and +-10 000 years.
TIMESTAMP_SECONDS_MIN = -62_135_596_800
TIMESTAMP_SECONDS_MAX = 253_402_300_799
DURATION_SECONDS_MAX = 315_576_000_000
MAX_NANOS = 999_999_999

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_REASONS = {
    Reason.MANUAL: user_pb.MEMBERSHIP_REASON_MANUAL,
    Reason.ROLLOUT: user_pb.MEMBERSHIP_REASON_ROLLOUT,
}


def timestamp(value: datetime) -> Timestamp:
    """A protobuf Timestamp for an aware datetime.

    Integer arithmetic on the offset from the epoch: exact at any instant, and a fifth
    of the cost of Timestamp.FromDatetime (which goes through calendar.timegm), which
    matters at 8 timestamps per user read.
    """
    delta = value - _EPOCH
    return Timestamp(seconds=delta.days * 86_400 + delta.seconds, nanos=delta.microseconds * 1000)


def timestamp_violation(field: str, value: Timestamp) -> FieldViolation | None:
    """Why `value` is not a Timestamp as timestamp.proto defines it, or None.

    A client library may send any int64/int32 pair; outside 0001-01-01..9999-12-31 or
    with nanos outside [0, 1e9) there is no datetime to convert to.
    """
    if not TIMESTAMP_SECONDS_MIN <= value.seconds <= TIMESTAMP_SECONDS_MAX:
        return FieldViolation(
            field, f"must be between 0001-01-01 and 9999-12-31 UTC, got {value.seconds}s"
        )
    if not 0 <= value.nanos <= MAX_NANOS:
        return FieldViolation(field, f"nanos must be 0-{MAX_NANOS}, got {value.nanos}")
    return None


def duration_violation(field: str, value: Duration) -> FieldViolation | None:
    """Why `value` is not a Duration as duration.proto defines it, or None.

    The spec's range (about 10 000 years) is narrower than int64 seconds and than what a
    timedelta can hold, so checking it here keeps every accepted value convertible.
    """
    if not -DURATION_SECONDS_MAX <= value.seconds <= DURATION_SECONDS_MAX:
        return FieldViolation(
            field, f"must be at most {DURATION_SECONDS_MAX} seconds, got {value.seconds}s"
        )
    if not -MAX_NANOS <= value.nanos <= MAX_NANOS:
        return FieldViolation(field, f"nanos must be -{MAX_NANOS}-{MAX_NANOS}, got {value.nanos}")
    if value.seconds * value.nanos < 0:
        return FieldViolation(field, "seconds and nanos must have the same sign")
    return None


def to_datetime(value: Timestamp, field: str) -> datetime:
    """An aware UTC datetime for a protobuf Timestamp (INVALID_ARGUMENT naming `field`)."""
    if violation := timestamp_violation(field, value):
        raise InvalidArgument([violation])
    return value.ToDatetime(tzinfo=UTC)


def role(value: int, field: str) -> Role | None:
    """The domain role of a proto `Role` value (None when unspecified)."""
    if value == auth_pb.ROLE_UNSPECIFIED:
        return None
    try:
        return Role(value)
    except ValueError:
        raise InvalidArgument.single(field, f"unknown role {value}") from None


def role_value(value: Role) -> auth_pb.Role.ValueType:
    """The proto `Role` value of a domain role."""
    return auth_pb.Role.ValueType(value.value)


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


def additions(entries: Sequence[user_pb.SegmentAddition]) -> list[RequestedAddition]:
    """The `add` entries of UpdateUserSegments, expiry oneof resolved.

    Every unconvertible expiry is reported at once; the domain rules (slugs, expiry in
    the future, ...) run on what converted, after this.
    """
    result = []
    violations: list[FieldViolation] = []
    for i, entry in enumerate(entries):
        addition = RequestedAddition(slug=entry.slug)
        match entry.WhichOneof("expiry"):
            case "expires_at":
                if v := timestamp_violation(f"add[{i}].expires_at", entry.expires_at):
                    violations.append(v)
                else:
                    addition = replace(addition, expires_at=entry.expires_at.ToDatetime(tzinfo=UTC))
            case "ttl":
                if v := duration_violation(f"add[{i}].ttl", entry.ttl):
                    violations.append(v)
                else:
                    addition = replace(addition, ttl=entry.ttl.ToTimedelta())
        result.append(addition)
    if violations:
        raise InvalidArgument(violations)
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
