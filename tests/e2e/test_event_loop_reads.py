"""The hot reads and health checking are served on the event loop, not by the worker
threads.

A server with two worker threads; both are held by UpdateUserSegments calls waiting for
a row lock the test holds. Under the threaded server every read then queued behind
them; now GetUserSegments and BatchGetUserSegments, cache hits and misses alike, answer
at once, and the held writes complete once the lock is released.
"""

from __future__ import annotations

from typing import Any

import grpc
import psycopg
from grpc_health.v1 import health_pb2, health_pb2_grpc

from segmentation.v1 import user_service_pb2 as pb
from tests.support.api import create_segments, slugs_of
from tests.support.clock import MovableClock
from tests.support.names import Names
from tests.support.servers import private_server

WORKERS = 2


def test_reads_answer_while_every_worker_thread_is_held(
    fresh_database: Any, clock: MovableClock, names: Names
) -> None:
    url: str = fresh_database()
    with private_server(
        url, clock, grpc_workers=WORKERS, bulk_pool_size=1, auth_cache_seconds=10
    ) as server:
        users, md = server.users, server.metadata
        slug = names.slug("LOOP")
        create_segments(server.segments, md, slug)
        locked, *readers = names.user_ids(4)
        for uid in (locked, *readers):
            users.UpdateUserSegments(
                pb.UpdateUserSegmentsRequest(user_id=uid, add=[pb.SegmentAddition(slug=slug)]),
                metadata=md,
                timeout=5,
            )
        cached = readers[0]
        users.GetUserSegments(pb.GetUserSegmentsRequest(user_id=cached), metadata=md)

        with psycopg.connect(url) as holder:  # a transaction: the lock lasts until commit
            holder.execute("SELECT 1 FROM users WHERE user_id = %s FOR UPDATE", (locked,))
            held = [
                users.UpdateUserSegments.future(
                    pb.UpdateUserSegmentsRequest(user_id=locked, remove=[slug]),
                    metadata=md,
                    timeout=30,
                )
                for _ in range(WORKERS)
            ]
            try:
                for uid in readers:  # the first a cache hit, the others misses
                    reply = users.GetUserSegments(
                        pb.GetUserSegmentsRequest(user_id=uid), metadata=md, timeout=2
                    )
                    assert slugs_of(reply.user) == [slug]
                batch = users.BatchGetUserSegments(
                    pb.BatchGetUserSegmentsRequest(user_ids=readers), metadata=md, timeout=2
                )
                assert [slugs_of(u) for u in batch.users] == [[slug]] * len(readers)
                assert not any(call.done() for call in held)  # still waiting for the lock
            finally:
                holder.commit()
        codes = [_code(call) for call in held]
        assert codes == [grpc.StatusCode.OK] * WORKERS
        reply = users.GetUserSegments(pb.GetUserSegmentsRequest(user_id=locked), metadata=md)
        assert slugs_of(reply.user) == []


def _code(call: Any) -> grpc.StatusCode:
    try:
        call.result(timeout=10)
    except grpc.RpcError as exc:
        code: grpc.StatusCode = exc.code()
        return code
    return grpc.StatusCode.OK


def test_health_watchers_hold_no_thread(
    fresh_database: Any, clock: MovableClock, names: Names
) -> None:
    """Clients that balance with health checking keep a Watch stream open per connection
    for as long as they run; more of them than worker threads must not stop writes."""
    url: str = fresh_database()
    with (
        private_server(url, clock, grpc_workers=WORKERS, bulk_pool_size=1) as server,
        grpc.insecure_channel(f"127.0.0.1:{server.server.grpc_port}") as channel,
    ):
        health = health_pb2_grpc.HealthStub(channel)
        watches = [
            health.Watch(health_pb2.HealthCheckRequest(service=""), timeout=30)
            for _ in range(2 * WORKERS)
        ]
        try:
            for watch in watches:
                assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
            slug = names.slug("WATCHED")
            create_segments(server.segments, server.metadata, slug)
            reply = server.users.UpdateUserSegments(
                pb.UpdateUserSegmentsRequest(
                    user_id=names.user_id(), add=[pb.SegmentAddition(slug=slug)]
                ),
                metadata=server.metadata,
                timeout=2,
            )
            assert slugs_of(reply.user) == [slug]
        finally:
            for watch in watches:
                watch.cancel()
