"""Hostile and out-of-range input through the real server (issue 7, defect 6).

Each case once answered INTERNAL with a traceback in the log, or (for long lists of
problems) a status whose trailer was too large for the client to read. Every answer
here must be INVALID_ARGUMENT (or NOT_FOUND) naming the field, for validation-only and
real calls alike.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from segmentation.v1 import auth_service_pb2 as auth_pb
from segmentation.v1 import auth_service_pb2_grpc as auth_grpc
from segmentation.v1 import segment_service_pb2 as seg_pb
from segmentation.v1 import segment_service_pb2_grpc as seg_grpc
from segmentation.v1 import user_service_pb2 as pb
from segmentation.v1 import user_service_pb2_grpc as user_grpc
from tests.support.api import create_segments, update
from tests.support.names import Names

Metadata = tuple[tuple[str, str], ...]

# Timestamps the protobuf spec forbids: before 0001-01-01, after 9999-12-31, bad nanos.
YEAR_1 = -62_135_596_800
YEAR_10000 = 253_402_300_800
BAD_TIMESTAMPS = [
    Timestamp(seconds=YEAR_10000),
    Timestamp(seconds=YEAR_1 - 1),
    Timestamp(seconds=2**62),
    Timestamp(seconds=-(2**63)),
    Timestamp(seconds=2_000_000_000, nanos=-1),
    Timestamp(seconds=2_000_000_000, nanos=1_000_000_000),
]
BAD_DURATIONS = [
    Duration(seconds=10**15),
    Duration(seconds=-(10**15)),
    Duration(seconds=2**63 - 1),
    Duration(seconds=60, nanos=-1),  # mixed signs
    Duration(seconds=60, nanos=1_000_000_000),
    Duration(nanos=-(2**31)),
]


def rejected(call: Callable[[], object]) -> grpc.RpcError:
    """The error of a call that must fail."""
    with pytest.raises(grpc.RpcError) as err:
        call()
    return err.value


def field_violations(error: grpc.RpcError) -> list[tuple[str, str]]:
    """(field, description) of the BadRequest detail of an error."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    found = []
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            found += [(v.field, v.description) for v in bad_request.field_violations]
    return found


def truncation(error: grpc.RpcError) -> dict[str, str]:
    """The metadata of the ErrorInfo saying how much the details leave out."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            assert (info.domain, info.reason) == ("segsvc", "DETAILS_TRUNCATED")
            return dict(info.metadata)
    return {}


def trailer_size(error: grpc.RpcError) -> int:
    """Bytes of trailing metadata the server sent with an error."""
    trailers = error.trailing_metadata() or ()
    return sum(len(item.key) + len(item.value) for item in trailers)


@pytest.mark.parametrize(
    ("year", "month", "fields"),
    [
        (10000, 1, ["year"]),
        (9999, 12, ["year"]),  # its end would be in year 10000
        (2**31 - 1, 6, ["year"]),
        (-(2**31), 6, ["year"]),
        (10000, 13, ["month", "year"]),
        (2024, -(2**31), ["month"]),
    ],
)
def test_report_periods_out_of_range(
    segments: seg_grpc.SegmentServiceStub,
    auth_metadata: Metadata,
    year: int,
    month: int,
    fields: list[str],
) -> None:
    calls: list[Callable[[], object]] = [
        lambda: segments.GetHistoryReport(
            seg_pb.GetHistoryReportRequest(year=year, month=month), metadata=auth_metadata
        ),
        lambda: list(
            segments.StreamHistoryReport(
                seg_pb.StreamHistoryReportRequest(year=year, month=month), metadata=auth_metadata
            )
        ),
    ]
    for call in calls:
        error = rejected(call)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
        assert sorted(f for f, _ in field_violations(error)) == fields


def test_nul_in_account_names(channel: grpc.Channel, auth_metadata: Metadata, names: Names) -> None:
    auth = auth_grpc.AuthServiceStub(channel)
    username = f"nul-{names.tag.lower()}"
    error = rejected(
        lambda: auth.SignUp(
            auth_pb.SignUpRequest(name="Eve\x00", username=username, password="password-1"),
            metadata=auth_metadata,
        )
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in field_violations(error)] == ["name"]
    # Sign-in is unauthenticated: anyone on the network can send this.
    error = rejected(
        lambda: auth.SignIn(auth_pb.SignInRequest(username="ad\x00min", password="password-1"))
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in field_violations(error)] == ["username"]


@pytest.mark.parametrize("bad", BAD_TIMESTAMPS, ids=str)
def test_timestamps_out_of_range(
    users: user_grpc.UserServiceStub,
    segments: seg_grpc.SegmentServiceStub,
    auth_metadata: Metadata,
    names: Names,
    bad: Timestamp,
) -> None:
    slug, uid = names.slug(), names.user_id()
    create_segments(segments, auth_metadata, slug)
    error = rejected(
        lambda: users.UpdateUserSegments(
            pb.UpdateUserSegmentsRequest(
                user_id=uid,
                add=[pb.SegmentAddition(slug=slug), pb.SegmentAddition(slug=slug, expires_at=bad)],
            ),
            metadata=auth_metadata,
        )
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert "add[1].expires_at" in [f for f, _ in field_violations(error)]
    error = rejected(
        lambda: users.GetUserSegments(
            pb.GetUserSegmentsRequest(user_id=uid, as_of=bad), metadata=auth_metadata
        )
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert [f for f, _ in field_violations(error)] == ["as_of"]


def test_timestamps_at_the_edges_of_the_range_are_accepted(
    users: user_grpc.UserServiceStub,
    segments: seg_grpc.SegmentServiceStub,
    auth_metadata: Metadata,
    names: Names,
) -> None:
    slug, uid = names.slug(), names.user_id()
    create_segments(segments, auth_metadata, slug)
    last = Timestamp(seconds=YEAR_10000 - 1, nanos=999_999_999)
    reply = users.UpdateUserSegments(
        pb.UpdateUserSegmentsRequest(
            user_id=uid, add=[pb.SegmentAddition(slug=slug, expires_at=last)]
        ),
        metadata=auth_metadata,
    )
    assert reply.user.segments[0].expires_at.ToDatetime().year == 9999
    first = users.GetUserSegments(
        pb.GetUserSegmentsRequest(user_id=uid, as_of=Timestamp(seconds=YEAR_1)),
        metadata=auth_metadata,
    )
    assert list(first.user.segments) == []


@pytest.mark.parametrize("bad", BAD_DURATIONS, ids=str)
def test_durations_out_of_range(
    users: user_grpc.UserServiceStub,
    segments: seg_grpc.SegmentServiceStub,
    auth_metadata: Metadata,
    names: Names,
    bad: Duration,
) -> None:
    slug = names.slug()
    create_segments(segments, auth_metadata, slug)
    error = rejected(
        lambda: users.UpdateUserSegments(
            pb.UpdateUserSegmentsRequest(
                user_id=names.user_id(), add=[pb.SegmentAddition(slug=slug, ttl=bad)]
            ),
            metadata=auth_metadata,
        )
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert [f for f, _ in field_violations(error)] == ["add[0].ttl"]


@pytest.mark.parametrize(
    "percent", [1e-9, 1e-300, 5e-324, math.nan, math.inf, -math.inf, -1, 0, 100.01, 12.345]
)
def test_rollout_percentages_that_are_not_a_bucket_count(
    segments: seg_grpc.SegmentServiceStub, auth_metadata: Metadata, names: Names, percent: float
) -> None:
    """validate_only must give the answer the real creation gives, never "OK with 0 %"."""
    slug = names.slug()
    answers = []
    for validate_only in (True, False):
        request = seg_pb.CreateSegmentRequest(
            slug=slug, auto_percent=percent, validate_only=validate_only
        )
        error = rejected(partial(segments.CreateSegment, request, metadata=auth_metadata))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
        answers.append(field_violations(error))
    assert answers[0] == answers[1]
    assert [f for f, _ in answers[0]] == ["auto_percent"]


def test_smallest_rollout_is_one_bucket(
    segments: seg_grpc.SegmentServiceStub, auth_metadata: Metadata, names: Names
) -> None:
    reply = segments.CreateSegment(
        seg_pb.CreateSegmentRequest(slug=names.slug(), auto_percent=0.01, validate_only=True),
        metadata=auth_metadata,
    )
    assert reply.segment.auto_percent == 0.01


def test_many_missing_slugs_give_a_readable_not_found(
    users: user_grpc.UserServiceStub, auth_metadata: Metadata, names: Names
) -> None:
    missing = [names.slug(f"MISSING_{i:03d}_{'X' * 40}") for i in range(300)]
    error = rejected(lambda: update(users, auth_metadata, names.user_id(), add=missing))
    assert error.code() == grpc.StatusCode.NOT_FOUND, error.details()
    message = error.details() or ""
    shown = [slug for slug in missing if slug in message]
    assert shown == missing[: len(shown)]
    assert len(shown) >= 3
    assert message.endswith(f" (and {300 - len(shown)} more)")
    assert trailer_size(error) < 4096
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    infos = []
    for detail in status.details:
        if detail.Is(error_details_pb2.ResourceInfo.DESCRIPTOR):
            info = error_details_pb2.ResourceInfo()
            detail.Unpack(info)
            infos.append(info)
    assert [i.resource_name.split(",") for i in infos] == [missing[:20]]
    assert truncation(error) == {"total": "300", "listed": "20"}


def test_many_invalid_fields_give_a_readable_invalid_argument(
    users: user_grpc.UserServiceStub, auth_metadata: Metadata, names: Names
) -> None:
    bad_slugs = [f"not a slug {i} " + "\u00e4" * 200 for i in range(300)]
    error = rejected(lambda: update(users, auth_metadata, names.user_id(), remove=bad_slugs))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert trailer_size(error) < 6144
    # As many as fit the size budget, in request order, and a count of the rest.
    fields = [f for f, _ in field_violations(error)]
    assert 5 <= len(fields) <= 20
    assert fields == [f"remove[{i}]" for i in range(len(fields))]
    assert (error.details() or "").startswith("remove[0]: ")
    assert (error.details() or "").endswith(" more)")
    assert truncation(error) == {"total": "300", "listed": str(len(fields))}


CORRUPT = [
    b"\x0a\x02\xff\xfe",  # field 1, a string that is not UTF-8
    b"\xff\xff\xff",  # not protobuf wire format at all
    b"\x0a\x80\x80\x80\x80\x10",  # a length beyond the message
]


@pytest.mark.parametrize("raw", CORRUPT, ids=repr)
def test_requests_that_are_not_protobuf(
    channel: grpc.Channel, auth_metadata: Metadata, raw: bytes
) -> None:
    """Before parsing there is no field to name; the answer still says what is wrong."""

    def same(data: bytes) -> bytes:
        return data

    calls: list[Callable[[], object]] = [
        # Unauthenticated, like any caller on the network.
        lambda: channel.unary_unary("/segmentation.v1.AuthService/SignIn", same, same)(raw),
        lambda: list(
            channel.unary_stream("/segmentation.v1.SegmentService/ListSegmentUsers", same, same)(
                raw, metadata=auth_metadata
            )
        ),
        lambda: channel.stream_unary("/segmentation.v1.UserService/ImportUsers", same, same)(
            iter([b"\x0a\x01\x07", raw]), metadata=auth_metadata
        ),
    ]
    for call in calls:
        error = rejected(call)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
        assert "not a valid protobuf message" in (error.details() or "")
