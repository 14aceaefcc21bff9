"""The one write path under forced interleavings: a change that waited for another is
dated after it, so history ordered by time replays to the current state (issue 7 defect
1), and overlapping imports neither deadlock nor fail (defect 5)."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

import grpc
import psycopg

from segmentation.v1 import segment_service_pb2 as seg_pb
from segmentation.v1 import segment_service_pb2_grpc as seg_grpc
from segmentation.v1 import user_service_pb2 as pb
from segmentation.v1 import user_service_pb2_grpc as user_grpc
from segsvc.api.messages import timestamp
from tests.support.api import create_segments, slugs_of, update
from tests.support.clock import MovableClock
from tests.support.names import Names

Metadata = tuple[tuple[str, str], ...]


def wait_for_backend(db: psycopg.Connection[Any], query_start: str, lock_wait: bool) -> None:
    """Until a server session runs a statement starting with `query_start` (and, with
    `lock_wait`, is blocked on a lock): the interleaving is then certain, not timed."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        row = db.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND ltrim(query) LIKE %s AND (NOT %s OR wait_event_type = 'Lock')",
            (query_start + "%", lock_wait),
        ).fetchone()
        if row and row[0]:
            return
        time.sleep(0.01)
    raise AssertionError(f"no server session reached {query_start!r}")


def month_events(
    segments: seg_grpc.SegmentServiceStub, md: Metadata, user_id: int, instant: datetime
) -> list[tuple[str, str, str]]:
    """(timestamp, slug, operation) of the user's events in the report of `instant`'s
    month, in the report's (time) order."""
    request = seg_pb.StreamHistoryReportRequest(
        year=instant.year, month=instant.month, user_ids=[user_id]
    )
    text = b"".join(m.chunk for m in segments.StreamHistoryReport(request, metadata=md))
    rows = [line.split(";") for line in text.decode().splitlines()[1:]]
    return [(at, slug, operation) for _, slug, operation, at in rows]


def test_delete_that_waited_behind_an_add_is_dated_after_it(
    users: user_grpc.UserServiceStub,
    segments: seg_grpc.SegmentServiceStub,
    auth_metadata: Metadata,
    names: Names,
    database_url: str,
    db: psycopg.Connection[Any],
    clock: MovableClock,
) -> None:
    slug = names.slug("RACE")
    create_segments(segments, auth_metadata, slug)
    uid = names.user_id()
    users.CreateUser(pb.CreateUserRequest(user_id=uid), metadata=auth_metadata)

    with (
        psycopg.connect(database_url) as blocker,
        ThreadPoolExecutor(1) as pool,
    ):
        # A key-share lock, like a membership writer's: DeleteSegment has to wait for it,
        # while an add (also key share) can still go ahead.
        blocker.execute(
            "SELECT 1 FROM segments WHERE slug = %s AND deleted_at IS NULL FOR KEY SHARE",
            (slug,),
        )
        deleting = pool.submit(
            segments.DeleteSegment,
            seg_pb.DeleteSegmentRequest(slug=slug),
            metadata=auth_metadata,
            timeout=30,
        )
        wait_for_backend(db, "SELECT id, slug", lock_wait=True)
        clock.advance(timedelta(minutes=1))
        added = update(users, auth_metadata, uid, add=[slug])
        assert slug in slugs_of(added.user)
        blocker.rollback()
        deleted = deleting.result()
    assert deleted.segment.member_count == 1

    now = clock()
    current = users.GetUserSegments(pb.GetUserSegmentsRequest(user_id=uid), metadata=auth_metadata)
    as_of = users.GetUserSegments(
        pb.GetUserSegmentsRequest(user_id=uid, as_of=timestamp(now)), metadata=auth_metadata
    )
    assert slug not in slugs_of(current.user)
    assert slug not in slugs_of(as_of.user)
    events = month_events(segments, auth_metadata, uid, now)
    events = [e for e in events if e[1] == slug]  # live rollouts of other tests aside
    assert [op for _, _, op in events] == ["add", "remove"]
    assert events[0][0] < events[1][0]


def test_import_rollout_rows_are_never_dated_before_their_segment(
    users: user_grpc.UserServiceStub,
    segments: seg_grpc.SegmentServiceStub,
    auth_metadata: Metadata,
    names: Names,
    db: psycopg.Connection[Any],
    clock: MovableClock,
) -> None:
    ids = names.user_ids(200)
    release = threading.Event()

    def stream() -> Iterator[pb.ImportUsersRequest]:
        yield pb.ImportUsersRequest(user_ids=ids[:100])
        release.wait(10)
        yield pb.ImportUsersRequest(user_ids=ids[100:])

    importing = users.ImportUsers.future(stream(), metadata=auth_metadata, timeout=30)
    try:
        wait_for_backend(db, "COPY import_user_ids", lock_wait=False)
        clock.advance(timedelta(minutes=1))
        slug = names.slug("LATE_ROLLOUT")
        created = segments.CreateSegment(
            seg_pb.CreateSegmentRequest(slug=slug, auto_percent=100), metadata=auth_metadata
        )
    finally:
        release.set()
    assert importing.result().created_count == 200

    create_time = created.segment.create_time.ToDatetime()
    found = users.BatchGetUserSegments(
        pb.BatchGetUserSegmentsRequest(user_ids=ids), metadata=auth_metadata
    )
    # A live 100 % rollout would enrol every user the rest of the session registers.
    segments.DeleteSegment(seg_pb.DeleteSegmentRequest(slug=slug), metadata=auth_metadata)
    added_at = [s.added_at.ToDatetime() for u in found.users for s in u.segments if s.slug == slug]
    assert len(added_at) == 200
    assert min(added_at) >= create_time


def test_overlapping_imports_all_succeed(
    users: user_grpc.UserServiceStub,
    auth_metadata: Metadata,
    names: Names,
) -> None:
    """Four imports of overlapping ids in different orders, at once, a few times: the
    rows are inserted in id order, so they wait for each other instead of deadlocking."""
    rng = random.Random(7)
    for _ in range(3):
        ids = names.user_ids(6000)
        batches = [rng.sample(ids, size) for size in (6000, 4500, 3000, 1500)]

        def run(batch: list[int]) -> pb.ImportUsersResponse:
            chunks = [batch[i : i + 1000] for i in range(0, len(batch), 1000)]
            requests = iter([pb.ImportUsersRequest(user_ids=c) for c in chunks])
            response: pb.ImportUsersResponse = users.ImportUsers(
                requests, metadata=auth_metadata, timeout=60
            )
            return response

        with ThreadPoolExecutor(len(batches)) as pool:
            results = list(pool.map(run, batches))
        assert [r.received_count for r in results] == [len(b) for b in batches]
        assert sum(r.created_count for r in results) == len(ids)


def test_create_that_read_the_clock_before_a_delete_of_its_slug_is_not_dated_before_it(
    users: user_grpc.UserServiceStub,
    segments: seg_grpc.SegmentServiceStub,
    auth_metadata: Metadata,
    names: Names,
    clock: MovableClock,
) -> None:
    """Re-creating a slug while it is being deleted: found by the soak
    (tests/e2e/test_soak.py). A create that read its clock before the deletion of the
    old segment committed must not insert after it with that older instant, or the
    history of (user, slug) reads add, add, remove."""
    slug = names.slug("RECREATE")
    create_segments(segments, auth_metadata, slug)
    uid = names.user_id()
    update(users, auth_metadata, uid, add=[slug])

    held = clock.hold_next_read("segsvc.service_layer.transactions")
    creating = segments.CreateSegment.future(
        seg_pb.CreateSegmentRequest(slug=slug, auto_percent=100),
        metadata=auth_metadata,
        timeout=30,
    )
    try:
        # Either the create has read its clock and waits, or it has already answered
        # (then nothing may stay held: the delete below reads the clock too).
        while not (held.reached.wait(0.01) or creating.done()):
            pass
        if not held.reached.is_set():
            clock.reset()
        clock.advance(timedelta(minutes=1))
        segments.DeleteSegment(seg_pb.DeleteSegmentRequest(slug=slug), metadata=auth_metadata)
    finally:
        held.release.set()
        clock.reset()
    failure = creating.exception()
    if failure is not None:
        assert isinstance(failure, grpc.RpcError)
        assert failure.code() == grpc.StatusCode.ALREADY_EXISTS, failure
    recreated = failure is None

    current = slugs_of(
        users.GetUserSegments(pb.GetUserSegmentsRequest(user_id=uid), metadata=auth_metadata).user
    )
    # (Rollouts of other tests may enrol the user too: only this slug matters.)
    assert [s for s in current if s == slug] == ([slug] if recreated else [])
    events = month_events(segments, auth_metadata, uid, clock() + timedelta(minutes=1))
    operations = [op for _, slug_, op in sorted(events) if slug_ == slug]
    assert operations == ["add", "remove", "add"][: len(operations)]
    assert (operations[-1] == "add") == recreated
