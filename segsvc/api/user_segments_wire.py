"""The wire bytes of GetUserSegmentsResponse, written directly from a user's segments.

Every cache miss of the hot reads encodes a user's segments, 100 users a call for a
batch. Through the generated messages that cost about 100 us for a user of 8 segments
(a UserSegment and two Timestamp objects per segment, then serialization), which was
most of a batch read's CPU. The message is small and fixed, so it is written here
straight from the rows' values, in the order protobuf itself writes fields (by number,
defaults left out), at a fraction of that cost.

`tests/unit/api/test_user_segments_wire.py` checks, for arbitrary users and segments
(Hypothesis), that these bytes are exactly what protobuf's own serializer produces from
`messages.user_segments`, so the two can never drift apart unnoticed; a change to the
messages in user_service.proto must change both.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from functools import lru_cache

from segsvc.domain.models import ActiveSegment, Reason

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SMALL = [bytes((n,)) for n in range(0x80)]
# Tags: (field number << 3) | wire type (0 varint, 2 length-delimited).
_RESPONSE_USER = b"\x0a"  # GetUserSegmentsResponse.user = 1
_USER_ID = b"\x08"  # UserSegments.user_id = 1
_USER_SEGMENT = b"\x12"  # UserSegments.segments = 2
_ADDED_AT = b"\x12"  # UserSegment.added_at = 2
_EXPIRES_AT = b"\x1a"  # UserSegment.expires_at = 3
_SECONDS = b"\x08"  # Timestamp.seconds = 1
_NANOS = b"\x10"  # Timestamp.nanos = 2
# UserSegment.reason = 4, MembershipReason values of user_service.proto.
_REASONS = {Reason.MANUAL: b"\x20\x01", Reason.ROLLOUT: b"\x20\x02"}


def _varint(value: int) -> bytes:
    if 0 <= value < 0x80:
        return _SMALL[value]
    value &= (1 << 64) - 1  # negative int64: ten bytes of two's complement
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _length_delimited(tag: bytes, body: bytes) -> bytes:
    return tag + _varint(len(body)) + body


@lru_cache(maxsize=4096)
def _slug(slug: str) -> bytes:
    """UserSegment.slug = 1; slugs repeat across users, so each is encoded once."""
    return _length_delimited(b"\x0a", slug.encode()) if slug else b""


def _timestamp(tag: bytes, value: datetime) -> bytes:
    delta = value - _EPOCH
    seconds = delta.days * 86_400 + delta.seconds
    nanos = delta.microseconds * 1000
    body = _SECONDS + _varint(seconds) if seconds else b""
    if nanos:
        body += _NANOS + _varint(nanos)
    return _length_delimited(tag, body)


def _segment(segment: ActiveSegment) -> bytes:
    body = _slug(segment.slug) + _timestamp(_ADDED_AT, segment.added_at)
    if segment.expires_at is not None:
        body += _timestamp(_EXPIRES_AT, segment.expires_at)
    return _length_delimited(_USER_SEGMENT, body + _REASONS.get(segment.reason, b""))


def encoded_user_segments(user_id: int, segments: Sequence[ActiveSegment]) -> bytes:
    """The wire bytes of GetUserSegmentsResponse for one user: what the read cache keeps.

    They are also the bytes of one `users` entry of BatchGetUserSegmentsResponse: both
    messages hold the UserSegments in field 1 (length-delimited), and a repeated field
    is its entries' encodings one after another. So a batch answer is the concatenation
    of per-user answers (`concatenated`), and a cached user serves both RPCs.
    """
    user = (_USER_ID + _varint(user_id) if user_id else b"") + b"".join(map(_segment, segments))
    return _length_delimited(_RESPONSE_USER, user)


def concatenated(encoded_users: Sequence[bytes]) -> bytes:
    """The wire bytes of BatchGetUserSegmentsResponse from per-user answers (see above)."""
    return b"".join(encoded_users)
