"""The per-process read cache through the real server: reads are served from it, and it
is never wrong: not after a write (here or in another process), not at an expiry, not
when a read races an invalidation, not while the listening connection is lost."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import psycopg
import pytest
from google.protobuf.duration_pb2 import Duration

from segmentation.v1 import segment_service_pb2 as seg_pb
from segmentation.v1 import segment_service_pb2_grpc as seg_grpc
from segmentation.v1 import user_service_pb2 as pb
from segmentation.v1 import user_service_pb2_grpc as user_grpc
from segsvc.cache.read_cache import ReadCache
from segsvc.domain.models import ActiveSegment
from segsvc.server import SegsvcServer
from segsvc.store import change_notices, memberships
from tests.support.api import create_segments, slugs_of, update
from tests.support.clock import MovableClock
from tests.support.names import Names
from tests.support.read_cache import lookups, wait_listening
from tests.support.servers import make_settings

Metadata = tuple[tuple[str, str], ...]


def read(users: user_grpc.UserServiceStub, md: Metadata, uid: int) -> list[str]:
    return slugs_of(users.GetUserSegments(pb.GetUserSegmentsRequest(user_id=uid), metadata=md).user)


def batch(users: user_grpc.UserServiceStub, md: Metadata, ids: list[int]) -> list[list[str]]:
    reply = users.BatchGetUserSegments(pb.BatchGetUserSegmentsRequest(user_ids=ids), metadata=md)
    return [slugs_of(user) for user in reply.users]


@pytest.fixture
def listening(server: SegsvcServer) -> SegsvcServer:
    """The session server, once its cache is in use."""
    wait_listening(server)
    return server


def test_a_repeated_read_is_a_hit_and_a_write_shows_at_once(
    listening: SegsvcServer,
    users: user_grpc.UserServiceStub,
    segments: seg_grpc.SegmentServiceStub,
    auth_metadata: Metadata,
    names: Names,
) -> None:
    uid, a, b = names.user_id(), names.slug("A"), names.slug("B")
    create_segments(segments, auth_metadata, a, b)
    update(users, auth_metadata, uid, add=[a])
    assert read(users, auth_metadata, uid) == [a]
    hits = lookups(listening, "hit")
    assert read(users, auth_metadata, uid) == [a]
    assert batch(users, auth_metadata, [uid, uid]) == [[a], [a]]
    assert lookups(listening, "hit") == hits + 2  # the batch looks each id up once

    update(users, auth_metadata, uid, add=[b], remove=[a])
    assert read(users, auth_metadata, uid) == [b]
    assert batch(users, auth_metadata, [uid]) == [[b]]


def remove_elsewhere(db: psycopg.Connection[Any], cache: ReadCache, uid: int) -> None:
    """End the user's memberships as another process would: in one transaction with its
    notice (no history rows: the test's own user), then wait for the notice to arrive."""
    before = cache.ticket()
    with db.transaction():
        db.execute("DELETE FROM memberships WHERE user_id = %s", (uid,))
        db.execute("SELECT pg_notify(%s, %s)", (change_notices.CHANNEL, f"elsewhere u:{uid}"))
    deadline = time.monotonic() + 5
    while cache.ticket() == before:
        assert time.monotonic() < deadline, "the notice never arrived"
        time.sleep(0.001)


@pytest.mark.parametrize("writer", ["this process", "another process"])
def test_a_read_overtaken_by_an_invalidation_is_not_stored(
    listening: SegsvcServer,
    users: user_grpc.UserServiceStub,
    segments: seg_grpc.SegmentServiceStub,
    auth_metadata: Metadata,
    names: Names,
    monkeypatch: pytest.MonkeyPatch,
    db: psycopg.Connection[Any],
    writer: str,
) -> None:
    """The classic race, forced: a read queries the database, the user's membership
    changes and the invalidation is applied (after this process's own commit, or from
    another process's notice), and only then does the read try to fill the cache with
    what it saw before. The fill must be refused."""
    uid, slug = names.user_id(), names.slug("RACE")
    create_segments(segments, auth_metadata, slug)
    update(users, auth_metadata, uid, add=[slug])

    cache = listening.read_cache
    original_fill, original_query = cache.fill, memberships.read_active_for_user
    queried, released = threading.Event(), threading.Event()
    stored: list[bool] = []

    async def query_then_wait_for_the_change(
        conn: Any, user_id: int, now: datetime
    ) -> list[ActiveSegment]:
        segments = await original_query(conn, user_id, now)
        if user_id == uid:
            queried.set()  # the database has answered: the user is in the segment
            assert await asyncio.to_thread(released.wait, 10)  # the loop serves on
        return segments

    def recording_fill(user_id: int, *args: Any) -> bool:
        stored_now = original_fill(user_id, *args)
        if user_id == uid:
            stored.append(stored_now)
        return stored_now

    monkeypatch.setattr(memberships, "read_active_for_user", query_then_wait_for_the_change)
    monkeypatch.setattr(cache, "fill", recording_fill)
    answers: list[list[str]] = []
    racing = threading.Thread(target=lambda: answers.append(read(users, auth_metadata, uid)))
    racing.start()
    assert queried.wait(10)
    if writer == "this process":
        update(users, auth_metadata, uid, remove=[slug])  # commits, invalidates
    else:
        remove_elsewhere(db, cache, uid)
    released.set()
    racing.join(10)

    assert answers == [[slug]]  # the racing read answered what it saw: fine, it was first
    assert stored == [False]
    assert read(users, auth_metadata, uid) == []


def test_an_entry_stops_being_served_exactly_at_its_expiry(
    listening: SegsvcServer,
    users: user_grpc.UserServiceStub,
    segments: seg_grpc.SegmentServiceStub,
    auth_metadata: Metadata,
    names: Names,
    clock: MovableClock,
) -> None:
    uid, short, forever = names.user_id(), names.slug("SHORT"), names.slug("FOREVER")
    create_segments(segments, auth_metadata, short, forever)
    ttl = Duration()
    ttl.FromTimedelta(timedelta(days=2))
    reply = users.UpdateUserSegments(
        pb.UpdateUserSegmentsRequest(
            user_id=uid,
            add=[pb.SegmentAddition(slug=short, ttl=ttl), pb.SegmentAddition(slug=forever)],
        ),
        metadata=auth_metadata,
    )
    expires = next(s for s in reply.user.segments if s.slug == short).expires_at
    expires_at = expires.ToDatetime(tzinfo=UTC)
    assert read(users, auth_metadata, uid) == sorted([short, forever])  # fills

    hits = lookups(listening, "hit")
    clock.freeze(expires_at - timedelta(microseconds=1))
    assert read(users, auth_metadata, uid) == sorted([short, forever])
    assert lookups(listening, "hit") == hits + 1
    clock.freeze(expires_at)
    assert read(users, auth_metadata, uid) == [forever]
    assert lookups(listening, "hit") == hits + 1  # the entry was not served: a miss
    assert batch(users, auth_metadata, [uid]) == [[forever]]  # the new entry


def test_segment_rollout_import_and_delete_reach_cached_users(
    listening: SegsvcServer,
    users: user_grpc.UserServiceStub,
    segments: seg_grpc.SegmentServiceStub,
    auth_metadata: Metadata,
    names: Names,
) -> None:
    known, newcomer = names.user_id(), names.user_id()
    plain, rollout = names.slug("PLAIN"), names.slug("EVERYONE")
    create_segments(segments, auth_metadata, plain)
    update(users, auth_metadata, known, add=[plain])
    assert read(users, auth_metadata, known) == [plain]
    assert read(users, auth_metadata, newcomer) == []  # unknown yet: cached as empty
    try:
        segments.CreateSegment(
            seg_pb.CreateSegmentRequest(slug=rollout, auto_percent=100), metadata=auth_metadata
        )
        assert read(users, auth_metadata, known) == sorted([plain, rollout])
        assert read(users, auth_metadata, newcomer) == []  # cached again, still true

        chunks = iter([pb.ImportUsersRequest(user_ids=[newcomer])])
        users.ImportUsers(chunks, metadata=auth_metadata)
        assert read(users, auth_metadata, newcomer) == [rollout]
    finally:
        segments.DeleteSegment(seg_pb.DeleteSegmentRequest(slug=rollout), metadata=auth_metadata)
    assert batch(users, auth_metadata, [known, newcomer]) == [[plain], []]
    segments.DeleteSegment(seg_pb.DeleteSegmentRequest(slug=plain), metadata=auth_metadata)
    assert read(users, auth_metadata, known) == []


@pytest.fixture
def own_server(database_url: str, clock: MovableClock) -> Iterator[SegsvcServer]:
    """A server of this test alone, whose listening connection the test may kill."""
    instance = SegsvcServer(make_settings(), database_url, clock=clock)
    instance.start()
    yield instance
    instance.stop(grace=0)


def test_a_lost_listener_turns_the_cache_off_until_it_listens_again(
    own_server: SegsvcServer,
    segments: seg_grpc.SegmentServiceStub,
    auth_metadata: Metadata,
    names: Names,
    db: psycopg.Connection[Any],
) -> None:
    uid, slug = names.user_id(), names.slug("LOST")
    create_segments(segments, auth_metadata, slug)
    with grpc.insecure_channel(f"127.0.0.1:{own_server.grpc_port}") as channel:
        users = user_grpc.UserServiceStub(channel)
        update(users, auth_metadata, uid, add=[slug])
        wait_listening(own_server)
        read(users, auth_metadata, uid)
        hits = lookups(own_server, "hit")
        assert read(users, auth_metadata, uid) == [slug]
        assert lookups(own_server, "hit") == hits + 1

        # Reconnect slowly this time, so the test sees the gap.
        own_server.cache_listener.first_backoff = 2.0
        db.execute("SELECT pg_terminate_backend(%s)", (own_server.cache_listener.backend_pid,))
        wait_listening(own_server, False)
        # A change no notice announces (made behind segsvc's back): seen at once, because
        # nothing is served from, or stored in, the cache while nobody listens.
        db.execute("DELETE FROM memberships WHERE user_id = %s", (uid,))
        bypasses = lookups(own_server, "bypass")
        assert read(users, auth_metadata, uid) == []
        assert read(users, auth_metadata, uid) == []
        assert lookups(own_server, "bypass") == bypasses + 2
        assert len(own_server.read_cache) == 0

        wait_listening(own_server, timeout=10)
        update(users, auth_metadata, uid, add=[slug])
        read(users, auth_metadata, uid)
        hits = lookups(own_server, "hit")
        assert read(users, auth_metadata, uid) == [slug]
        assert lookups(own_server, "hit") == hits + 1


def test_reads_with_as_of_bypass_the_cache(
    listening: SegsvcServer,
    users: user_grpc.UserServiceStub,
    segments: seg_grpc.SegmentServiceStub,
    auth_metadata: Metadata,
    names: Names,
) -> None:
    uid, slug = names.user_id(), names.slug("ASOF")
    create_segments(segments, auth_metadata, slug)
    before = datetime.now(UTC)
    update(users, auth_metadata, uid, add=[slug])
    read(users, auth_metadata, uid)
    request = pb.GetUserSegmentsRequest(user_id=uid)
    request.as_of.FromDatetime(before)
    assert slugs_of(users.GetUserSegments(request, metadata=auth_metadata).user) == []
