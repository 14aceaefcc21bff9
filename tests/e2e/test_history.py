"""History: the monthly CSV report (signed HTTP link and gRPC stream) and answering
"which segments did user U have at instant T" from history."""

from __future__ import annotations

import csv
import io
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

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

Metadata = tuple[tuple[str, str], ...]


def ts(value: datetime) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(value)
    return out


def download(url: str) -> tuple[int, str, dict[str, str]]:
    try:
        with urllib.request.urlopen(url, timeout=30) as reply:  # noqa: S310 - loopback
            return reply.status, reply.read().decode(), dict(reply.headers)
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(), dict(err.headers)


def test_month_report_shows_every_event_at_its_true_time(
    users: user_grpc.UserServiceStub,
    segments: seg_grpc.SegmentServiceStub,
    auth_metadata: Metadata,
    names: Names,
    clock: MovableClock,
) -> None:
    """Adds, a manual remove, a swept-style expiry that nobody swept, a deleted segment,
    and events just outside the month on both sides."""
    kept, gone, brief = names.slug("KEPT"), names.slug("GONE"), names.slug("BRIEF")
    alice, bob = names.user_id(), names.user_id()
    upd = users.UpdateUserSegments

    def add(uid: int, slug: str, ttl: timedelta | None = None) -> None:
        addition = pb.SegmentAddition(slug=slug)
        if ttl:
            addition.ttl.CopyFrom(Duration(seconds=int(ttl.total_seconds())))
        upd(pb.UpdateUserSegmentsRequest(user_id=uid, add=[addition]), metadata=auth_metadata)

    march = datetime(2021, 3, 1, tzinfo=UTC)
    clock.freeze(march - timedelta(seconds=1))  # February: outside the report
    for slug in (kept, gone, brief):
        segments.CreateSegment(seg_pb.CreateSegmentRequest(slug=slug), metadata=auth_metadata)
    add(alice, kept)
    clock.freeze(march)  # first instant of March: inside
    add(bob, kept)
    clock.freeze(march + timedelta(days=3))
    add(alice, gone)
    add(bob, brief, ttl=timedelta(hours=2))  # expires inside March, never swept
    clock.freeze(march + timedelta(days=4))
    upd(pb.UpdateUserSegmentsRequest(user_id=bob, remove=[kept]), metadata=auth_metadata)
    clock.freeze(march + timedelta(days=10))
    segments.DeleteSegment(seg_pb.DeleteSegmentRequest(slug=gone), metadata=auth_metadata)
    clock.freeze(datetime(2021, 4, 1, tzinfo=UTC))  # April: outside
    add(alice, brief)

    clock.freeze(datetime(2021, 5, 15, tzinfo=UTC))
    link = segments.GetHistoryReport(
        seg_pb.GetHistoryReportRequest(year=2021, month=3, user_ids=[alice, bob]),
        metadata=auth_metadata,
    )
    assert link.expires_at.ToDatetime(tzinfo=UTC) > clock()
    status, body, headers = download(link.url)
    assert status == 200, body
    assert headers["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(body), delimiter=";"))
    assert rows[0] == ["user_id", "segment", "operation", "timestamp"]
    d = "2021-03-0"
    assert rows[1:] == [
        [str(bob), kept, "add", "2021-03-01T00:00:00.000000Z"],
        [str(alice), gone, "add", f"{d}4T00:00:00.000000Z"],
        [str(bob), brief, "add", f"{d}4T00:00:00.000000Z"],
        [str(bob), brief, "remove", f"{d}4T02:00:00.000000Z"],
        [str(bob), kept, "remove", f"{d}5T00:00:00.000000Z"],
        [str(alice), gone, "remove", "2021-03-11T00:00:00.000000Z"],
    ]
    streamed = b"".join(
        m.chunk
        for m in segments.StreamHistoryReport(
            seg_pb.StreamHistoryReportRequest(year=2021, month=3, user_ids=[alice, bob]),
            metadata=auth_metadata,
        )
    )
    assert streamed.decode() == body


def test_report_link_tampered_or_expired(
    segments: seg_grpc.SegmentServiceStub,
    auth_metadata: Metadata,
    server: SegsvcServer,
    clock: MovableClock,
) -> None:
    link = segments.GetHistoryReport(
        seg_pb.GetHistoryReportRequest(year=2024, month=1), metadata=auth_metadata
    )
    token = parse_qs(urlsplit(link.url).query)["token"][0]
    header, payload, signature = token.split(".")
    tampered = (
        f"{header}.{payload[:-2]}{'A' if payload[-2] != 'A' else 'B'}{payload[-1]}.{signature}"
    )
    base = f"http://127.0.0.1:{server.http_port}/reports/history.csv?token="
    status, body, _ = download(base + tampered)
    assert status == 403
    assert "invalid" in body
    status, body, _ = download(base + "nonsense")
    assert status == 403
    clock.advance(timedelta(hours=2))  # links live one hour by default
    status, body, _ = download(link.url)
    assert status == 410
    assert "expired" in body


@pytest.mark.parametrize(
    ("year", "month", "field"),
    [(2024, 0, "month"), (2024, 13, "month"), (1999, 5, "year"), (2999, 1, "month")],
)
def test_invalid_report_periods(
    segments: seg_grpc.SegmentServiceStub,
    auth_metadata: Metadata,
    year: int,
    month: int,
    field: str,
) -> None:
    for call in (
        lambda: segments.GetHistoryReport(
            seg_pb.GetHistoryReportRequest(year=year, month=month), metadata=auth_metadata
        ),
        lambda: list(
            segments.StreamHistoryReport(
                seg_pb.StreamHistoryReportRequest(year=year, month=month), metadata=auth_metadata
            )
        ),
    ):
        with pytest.raises(grpc.RpcError) as err:
            call()
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert (err.value.details() or "").startswith(field)


def test_segments_as_of_a_past_instant(
    users: user_grpc.UserServiceStub,
    segments: seg_grpc.SegmentServiceStub,
    auth_metadata: Metadata,
    names: Names,
    clock: MovableClock,
) -> None:
    """ "Why did this feature disappear for me last Tuesday?" """
    voice, promo = names.slug("VOICE"), names.slug("PROMO")
    uid = names.user_id()
    start = datetime(2022, 6, 1, tzinfo=UTC)
    clock.freeze(start)
    for slug in (voice, promo):
        segments.CreateSegment(seg_pb.CreateSegmentRequest(slug=slug), metadata=auth_metadata)
    users.UpdateUserSegments(
        pb.UpdateUserSegmentsRequest(
            user_id=uid,
            add=[
                pb.SegmentAddition(slug=voice),
                pb.SegmentAddition(slug=promo, ttl=Duration(seconds=86400)),
            ],
        ),
        metadata=auth_metadata,
    )
    clock.freeze(start + timedelta(days=5))
    update(users, auth_metadata, uid, remove=[voice])
    clock.freeze(start + timedelta(days=30))

    def at(instant: datetime) -> list[tuple[str, datetime]]:
        reply = users.GetUserSegments(
            pb.GetUserSegmentsRequest(user_id=uid, as_of=ts(instant)), metadata=auth_metadata
        )
        return [(s.slug, s.added_at.ToDatetime(tzinfo=UTC)) for s in reply.user.segments]

    assert at(start - timedelta(seconds=1)) == []
    assert at(start + timedelta(hours=1)) == sorted([(voice, start), (promo, start)])
    assert at(start + timedelta(days=2)) == [(voice, start)]  # promo expired, never swept
    assert at(start + timedelta(days=6)) == []
    with pytest.raises(grpc.RpcError) as err:
        at(start + timedelta(days=31))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "as_of" in (err.value.details() or "")


def test_whole_month_report_without_filter_is_ordered(
    users: user_grpc.UserServiceStub,
    segments: seg_grpc.SegmentServiceStub,
    auth_metadata: Metadata,
    names: Names,
    clock: MovableClock,
    db: psycopg.Connection[Any],
) -> None:
    slug = names.slug("ORDER")
    clock.freeze(datetime(2019, 7, 10, tzinfo=UTC))
    segments.CreateSegment(seg_pb.CreateSegmentRequest(slug=slug), metadata=auth_metadata)
    ids = names.user_ids(5)
    for uid in reversed(ids):  # same instant, inserted in descending id order
        update(users, auth_metadata, uid, add=[slug])
    clock.reset()
    link = segments.GetHistoryReport(
        seg_pb.GetHistoryReportRequest(year=2019, month=7), metadata=auth_metadata
    )
    _, body, _ = download(link.url)
    rows = [r for r in csv.reader(io.StringIO(body), delimiter=";")][1:]
    mine = [r for r in rows if r[1] == slug]
    assert [int(r[0]) for r in mine] == sorted(ids)
    keys = [(r[3], int(r[0])) for r in rows]
    assert keys == sorted(keys)
    expected = db.execute(
        "SELECT count(*) FROM membership_history WHERE at >= '2019-07-01' AND at < '2019-08-01'"
        " AND operation IN ('add', 'remove')"
    ).fetchone()
    assert expected is not None
    assert len(rows) >= expected[0]
