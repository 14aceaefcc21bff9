"""Slow and idle clients cannot starve anybody: streams and bulk work run on their own
bounded pool, idle streams are cancelled, and dropped connections are replaced unseen.

One server with tiny pools (2 hot connections, 2 bulk slots), the default 16 workers and
a one-second stream idle timeout, on its own database holding a month of history large
enough (about 15 MB of CSV) that a reader who stops reading really blocks the sender.
"""

from __future__ import annotations

import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import grpc
import psycopg
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from segmentation.v1 import segment_service_pb2 as seg_pb
from segmentation.v1 import segment_service_pb2_grpc as seg_grpc
from segmentation.v1 import user_service_pb2 as pb
from segmentation.v1 import user_service_pb2_grpc as user_grpc
from segsvc.api.messages import timestamp
from segsvc.config import DEFAULT_MIGRATIONS_DIR
from segsvc.server import SegsvcServer
from segsvc.store.migrations import migrate
from tests.support.clients import Metadata, sign_in
from tests.support.names import Names
from tests.support.servers import make_settings

BIG_MONTH = (2002, 2)
BIG_MONTH_ROWS = 250_000
IDLE_TIMEOUT = 1.0
HTTP_TIMEOUT = 1.0


@pytest.fixture(scope="module")
def small_server(fresh_database: Any) -> Iterator[SegsvcServer]:
    url: str = fresh_database()
    migrate(url, DEFAULT_MIGRATIONS_DIR)
    with psycopg.connect(url, autocommit=True) as conn:
        start = datetime(*BIG_MONTH, 1, tzinfo=UTC)
        conn.execute(
            "INSERT INTO membership_history (user_id, segment_id, slug, operation, reason, at)"
            " SELECT g, 1, 'SEEDED_SEGMENT_FOR_A_LARGE_REPORT', 'add', 'manual',"
            " %s + g * interval '1 second' FROM generate_series(1, %s) g",
            (start, BIG_MONTH_ROWS),
        )
    settings = make_settings(
        pool_min_size=1,
        pool_size=2,
        # The production default: a reconnect after the database dropped every session
        # (test_dropped_connections_cost_no_call) may take over a second on a busy machine.
        pool_timeout_seconds=5,
        bulk_pool_size=2,
        grpc_workers=16,
        statement_timeout_seconds=0.3,
        stream_idle_timeout_seconds=IDLE_TIMEOUT,
        http_timeout_seconds=HTTP_TIMEOUT,
    )
    server = SegsvcServer(settings, url)
    server.start()
    yield server
    server.stop(grace=0)


@pytest.fixture(scope="module")
def small_channel(small_server: SegsvcServer) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(f"127.0.0.1:{small_server.grpc_port}") as channel:
        yield channel


@pytest.fixture(scope="module")
def md(small_channel: grpc.Channel) -> Metadata:
    return sign_in(small_channel)


def assert_reads_and_health_answer(channel: grpc.Channel, md: Metadata) -> None:
    """Health and a unary read both answer quickly (the deadline is the assertion)."""
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", "liveness"):
        reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=2)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    users = user_grpc.UserServiceStub(channel)
    for _ in range(5):
        users.GetUserSegments(pb.GetUserSegmentsRequest(user_id=1), metadata=md, timeout=2)


def test_idle_imports_cannot_take_every_thread(
    small_channel: grpc.Channel, md: Metadata, names: Names
) -> None:
    """Defect 11: 16 ImportUsers streams that never half-close. Beyond the bulk slots
    they are refused at once; the admitted ones are cancelled after the idle timeout and
    commit nothing; health and reads answer throughout."""
    users = user_grpc.UserServiceStub(small_channel)
    release = threading.Event()
    ids = names.user_ids(16)

    def one_message_then_silence(user_id: int) -> Iterator[pb.ImportUsersRequest]:
        yield pb.ImportUsersRequest(user_ids=[user_id])
        release.wait(20)

    calls = [
        users.ImportUsers.future(one_message_then_silence(uid), metadata=md, timeout=20)
        for uid in ids
    ]
    try:
        time.sleep(0.3)
        assert_reads_and_health_answer(small_channel, md)
        codes = [_code(call, timeout=10) for call in calls]
    finally:
        release.set()
    assert codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED) == 14, codes
    assert codes.count(grpc.StatusCode.CANCELLED) == 2, codes
    for uid in ids:  # nothing was committed: every id can still be created
        users.CreateUser(pb.CreateUserRequest(user_id=uid), metadata=md, timeout=5)
    assert_reads_and_health_answer(small_channel, md)


def test_report_readers_that_stop_reading_cannot_take_every_thread(
    small_channel: grpc.Channel, md: Metadata
) -> None:
    """Defect 11: 16 StreamHistoryReport callers that stop reading a large report."""
    segments = seg_grpc.SegmentServiceStub(small_channel)
    request = seg_pb.StreamHistoryReportRequest(year=BIG_MONTH[0], month=BIG_MONTH[1])
    calls: list[Any] = [
        segments.StreamHistoryReport(request, metadata=md, timeout=20) for _ in range(16)
    ]
    try:
        time.sleep(0.5)
        assert_reads_and_health_answer(small_channel, md)
        refused = [c for c in calls if c.done()]
        assert [c.code() for c in refused] == [grpc.StatusCode.RESOURCE_EXHAUSTED] * 14
        time.sleep(IDLE_TIMEOUT * 2)
        # The stalled streams were cancelled by the server: reading them now ends early.
        for call in (c for c in calls if c not in refused):
            with pytest.raises(grpc.RpcError) as ended:
                sum(len(m.chunk) for m in call)
            assert ended.value.code() == grpc.StatusCode.CANCELLED
    finally:
        for call in calls:
            call.cancel()
    # The slots are free again: a reader that reads gets the whole report.
    size = sum(len(m.chunk) for m in segments.StreamHistoryReport(request, metadata=md))
    assert size > 10_000_000


def test_bulk_statements_are_not_bound_by_the_read_timeout(
    small_channel: grpc.Channel, md: Metadata
) -> None:
    """Defect 3: the report's COPY is one statement for the whole stream; a reader that
    takes longer than the (0.3 s) statement timeout of reads still gets it all."""
    segments = seg_grpc.SegmentServiceStub(small_channel)
    request = seg_pb.StreamHistoryReportRequest(year=BIG_MONTH[0], month=BIG_MONTH[1])
    started = time.monotonic()
    size = 0
    for number, message in enumerate(
        segments.StreamHistoryReport(request, metadata=md, timeout=20)
    ):
        size += len(message.chunk)
        if number in (1, 50):
            time.sleep(0.5)
    assert time.monotonic() - started > 0.9
    assert size > 10_000_000


def test_unread_downloads_leave_connections_for_calls(
    small_server: SegsvcServer, small_channel: grpc.Channel, md: Metadata
) -> None:
    """Defect 2: two report downloads that are never read, with pools of two: calls and
    health still answer."""
    stalled = [_unread_download(small_server.http_port, _report_path(small_channel, md))]
    stalled.append(_unread_download(small_server.http_port, _report_path(small_channel, md)))
    try:
        time.sleep(0.5)
        assert_reads_and_health_answer(small_channel, md)
    finally:
        for sock in stalled:
            sock.close()


def test_downloads_beyond_the_bulk_slots_get_503_with_retry_after(
    small_server: SegsvcServer, small_channel: grpc.Channel, md: Metadata
) -> None:
    """Both bulk slots held by unread gRPC report streams: a download is refused at once."""
    segments = seg_grpc.SegmentServiceStub(small_channel)
    request = seg_pb.StreamHistoryReportRequest(year=BIG_MONTH[0], month=BIG_MONTH[1])
    holders: list[Any] = []
    try:
        deadline = time.monotonic() + 10
        while len(holders) < 2:  # earlier tests' downloads may still be finishing
            call = segments.StreamHistoryReport(request, metadata=md, timeout=20)
            try:
                next(call)  # type: ignore[call-overload]
                holders.append(call)
            except grpc.RpcError as exc:
                if exc.code() != grpc.StatusCode.RESOURCE_EXHAUSTED or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        url = f"http://127.0.0.1:{small_server.http_port}{_report_path(small_channel, md)}"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url, timeout=5)
        assert refused.value.code == 503
        assert refused.value.headers["Retry-After"] == "1"
    finally:
        for call in holders:
            call.cancel()


def test_half_sent_requests_take_no_threads(small_server: SegsvcServer) -> None:
    """Defect 11 (HTTP): 200 connections that never finish their request cost no thread,
    /healthz answers meanwhile, and the server closes them after the HTTP timeout."""
    threads_before = threading.active_count()
    port = small_server.http_port
    half_sent = []
    try:
        for _ in range(200):
            sock = socket.create_connection(("127.0.0.1", port))
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n")
            half_sent.append(sock)
        time.sleep(0.3)
        healthz = f"http://127.0.0.1:{port}/healthz"
        with urllib.request.urlopen(healthz, timeout=2) as reply:
            assert reply.status == 200
        assert threading.active_count() - threads_before < 10
        time.sleep(HTTP_TIMEOUT + 1)
        half_sent[0].settimeout(2)
        assert half_sent[0].recv(1) == b""  # closed by the server
    finally:
        for sock in half_sent:
            sock.close()


def test_dropped_connections_cost_no_call(
    small_server: SegsvcServer, small_channel: grpc.Channel, md: Metadata
) -> None:
    """Defect 10: after the database ends every segsvc session (a restart, a failover),
    the next calls all succeed: reads on the event loop's pool, writes and a history
    read on the blocking pool, whose connections are checked before use (without a
    query when they are alive: store.database._check_lent)."""
    users = user_grpc.UserServiceStub(small_channel)
    slug = "DROPPED_CONNECTIONS"
    seg_grpc.SegmentServiceStub(small_channel).CreateSegment(
        seg_pb.CreateSegmentRequest(slug=slug), metadata=md
    )
    request = pb.GetUserSegmentsRequest(user_id=1)
    update = pb.UpdateUserSegmentsRequest(user_id=1, add=[pb.SegmentAddition(slug=slug)])
    past = pb.GetUserSegmentsRequest(user_id=1, as_of=timestamp(datetime.now(UTC)))
    calls: list[Callable[[], object]] = [
        lambda: users.GetUserSegments(request, metadata=md, timeout=5),
        lambda: users.UpdateUserSegments(update, metadata=md, timeout=5),
        lambda: users.GetUserSegments(past, metadata=md, timeout=5),
    ]
    for call in calls * 4:  # every pooled connection has served
        call()
    with psycopg.connect(small_server.database_url, autocommit=True) as conn:
        sessions = conn.execute(
            "SELECT pid FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
        killed = [pid for (pid,) in sessions]
        conn.execute("SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) pid", (killed,))
        assert len(killed) >= 2
        # Termination is asynchronous: wait until those sessions are really gone.
        deadline = time.monotonic() + 5
        while conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", (killed,)
        ).fetchone() != (0,):
            assert time.monotonic() < deadline
            time.sleep(0.05)
    failures = []
    for call in calls * 7:
        try:
            call()
        except grpc.RpcError as exc:
            failures.append(exc.code())
    assert failures == []


def _report_path(channel: grpc.Channel, md: Metadata) -> str:
    """The path and query of a fresh link to the large month's report."""
    link = seg_grpc.SegmentServiceStub(channel).GetHistoryReport(
        seg_pb.GetHistoryReportRequest(year=BIG_MONTH[0], month=BIG_MONTH[1]), metadata=md
    )
    return "/" + link.url.split("/", 3)[3]


def _unread_download(port: int, path: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    return sock


def _code(call: Any, timeout: float) -> grpc.StatusCode:
    try:
        call.result(timeout=timeout)
    except grpc.RpcError as exc:
        code: grpc.StatusCode = exc.code()
        return code
    return grpc.StatusCode.OK
