"""The hot reads are served on the event loop, not by the worker threads.

A server with two worker threads; both are held by UpdateUserSegments calls waiting for
a row lock the test holds. Under the threaded server every read then queued behind
them; now GetUserSegments and BatchGetUserSegments, cache hits and misses alike, answer
at once, and the held writes complete once the lock is released.
"""

from __future__ import annotations

from typing import Any

import grpc
import psycopg

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
