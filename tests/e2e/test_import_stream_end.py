"""ImportUsers commits only when the client half-closed its stream (issue 7 defect 7): a
server stopping mid-stream, or a client cancelling, leaves none of the streamed ids, and
a cancellation is logged as what it is, not as an INTERNAL error with a traceback."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import grpc
import psycopg

from segmentation.v1 import user_service_pb2 as pb
from segmentation.v1 import user_service_pb2_grpc as user_grpc
from tests.e2e.test_write_order import wait_for_backend
from tests.support.names import Names
from tests.support.servers import JWT_SECRET, ServerProcess, child_env, start_process

Metadata = tuple[tuple[str, str], ...]


def serve(database_url: str) -> ServerProcess:
    return start_process(
        child_env(
            SEGSVC_DATABASE_URL=database_url,
            SEGSVC_JWT_SECRET=JWT_SECRET,
            SEGSVC_GRPC_ADDR="127.0.0.1:0",
            SEGSVC_HTTP_ADDR="127.0.0.1:0",
            SEGSVC_SHUTDOWN_GRACE="1",
            SEGSVC_SHUTDOWN_DRAIN="0",
            SEGSVC_BCRYPT_ROUNDS="4",
            SEGSVC_ACCESS_LOG_EVERY="1",
        )
    )


def endless_import(ids: list[int], stop: threading.Event) -> Iterator[pb.ImportUsersRequest]:
    """Sends `ids` in two messages, then never half-closes (until `stop`)."""
    yield pb.ImportUsersRequest(user_ids=ids[: len(ids) // 2])
    yield pb.ImportUsersRequest(user_ids=ids[len(ids) // 2 :])
    stop.wait(30)


def events(server: ServerProcess) -> list[dict[str, Any]]:
    return [json.loads(line) for line in list(server.log) if line.startswith("{")]


def import_calls(server: ServerProcess) -> list[dict[str, Any]]:
    return [e for e in events(server) if e.get("event") == "rpc" and "ImportUsers" in e["method"]]


def existing(db: psycopg.Connection[Any], ids: list[int]) -> int:
    row = db.execute("SELECT count(*) FROM users WHERE user_id = ANY(%s)", (ids,)).fetchone()
    assert row is not None
    return int(row[0])


def test_import_commits_only_after_the_client_half_closed(
    database_url: str, db: psycopg.Connection[Any], auth_metadata: Metadata, names: Names
) -> None:
    """One server process (starting one costs seconds): first a client cancels its
    import, then the server is stopped while another import is still streaming."""
    server = serve(database_url)
    cancelled, interrupted = names.user_ids(500), names.user_ids(500)
    stop = threading.Event()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
            stub = user_grpc.UserServiceStub(channel)
            call = stub.ImportUsers.future(
                endless_import(cancelled, stop), metadata=auth_metadata, timeout=30
            )
            wait_for_backend(db, "COPY import_user_ids", lock_wait=False)
            call.cancel()  # type: ignore[no-untyped-call]
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not import_calls(server):
                time.sleep(0.05)
            assert [e["code"] for e in import_calls(server)] == ["CANCELLED"]

            call = stub.ImportUsers.future(
                endless_import(interrupted, stop), metadata=auth_metadata, timeout=30
            )
            wait_for_backend(db, "COPY import_user_ids", lock_wait=False)
            time.sleep(0.2)  # let both messages reach the COPY
            assert server.terminate(timeout=30) == 0
            assert call.exception() is not None
    finally:
        stop.set()
        if server.process.poll() is None:
            server.process.kill()
    assert existing(db, cancelled) == 0
    assert existing(db, interrupted) == 0
    assert [e for e in events(server) if e.get("level") in ("error", "critical")] == []
