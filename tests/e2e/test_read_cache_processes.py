"""Two real `segsvc serve` processes on one database: a write through one reaches the
other's read cache through LISTEN/NOTIFY, within a bound measured here."""

from __future__ import annotations

import os
from collections.abc import Iterator

import grpc
import pytest

from segmentation.v1 import segment_service_pb2 as seg_pb
from segmentation.v1 import segment_service_pb2_grpc as seg_grpc
from segmentation.v1 import user_service_pb2_grpc as user_grpc
from tests.support.api import create_segments, update
from tests.support.names import Names
from tests.support.servers import JWT_SECRET, ServerProcess, child_env, start_process
from tests.support.staleness import (
    metric,
    read,
    staleness,
    summary,
    wait_for,
    wait_until_listening,
)

Metadata = tuple[tuple[str, str], ...]
HITS = 'segsvc_cache_lookups_total{result="hit"}'
# Generous: the measured bound is a few milliseconds (README, "Read cache").
BOUND_SECONDS = 2.0


@pytest.fixture
def two_processes(database_url: str) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    env = child_env(
        SEGSVC_DATABASE_URL=database_url,
        SEGSVC_JWT_SECRET=JWT_SECRET,
        SEGSVC_GRPC_ADDR="127.0.0.1:0",
        SEGSVC_HTTP_ADDR="127.0.0.1:0",
        SEGSVC_BCRYPT_ROUNDS="4",
        SEGSVC_SHUTDOWN_GRACE="0",
    )
    first = start_process(env)
    try:
        second = start_process(env)
        try:
            yield first, second
        finally:
            second.terminate()
    finally:
        first.terminate()


def test_a_write_through_one_process_reaches_the_others_cache(
    two_processes: tuple[ServerProcess, ServerProcess],
    auth_metadata: Metadata,
    names: Names,
) -> None:
    writer_process, reader_process = two_processes
    wait_until_listening(reader_process.http_port)
    slug, kept = names.slug("SEEN"), names.slug("KEPT")
    rounds = int(os.environ.get("STALENESS_ROUNDS", "20"))
    with (
        grpc.insecure_channel(f"127.0.0.1:{writer_process.grpc_port}") as w,
        grpc.insecure_channel(f"127.0.0.1:{reader_process.grpc_port}") as r,
    ):
        writer, reader = user_grpc.UserServiceStub(w), user_grpc.UserServiceStub(r)
        create_segments(seg_grpc.SegmentServiceStub(w), auth_metadata, slug, kept)
        hits = metric(reader_process.http_port, HITS)

        delays = staleness(writer, reader, auth_metadata, slug, names.user_ids(rounds), 2.0)
        print(f"\ncross-process staleness, {summary(delays)}")
        assert metric(reader_process.http_port, HITS) >= hits + rounds  # entries were cached
        assert max(delays) < BOUND_SECONDS

        # A segment deleted through the writer: every cached member forgets it.
        uid = names.user_id()
        update(writer, auth_metadata, uid, add=[slug, kept])
        wait_for(reader, auth_metadata, uid, [kept, slug], BOUND_SECONDS)
        assert read(reader, auth_metadata, uid) == [kept, slug]
        seg_grpc.SegmentServiceStub(w).DeleteSegment(
            seg_pb.DeleteSegmentRequest(slug=slug), metadata=auth_metadata
        )
        wait_for(reader, auth_metadata, uid, [kept], BOUND_SECONDS)
