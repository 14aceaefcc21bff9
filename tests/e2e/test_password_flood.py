"""A flood of sign-ins cannot take the RPC workers from reads and health checks
(issue 7, defect 4): password work is admitted through a fixed number of slots, and a
call that finds none is refused at once with RESOURCE_EXHAUSTED."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from segmentation.v1 import auth_service_pb2 as auth_pb
from segmentation.v1 import auth_service_pb2_grpc as auth_grpc
from segmentation.v1 import user_service_pb2 as pb
from segmentation.v1 import user_service_pb2_grpc as user_grpc
from segsvc.config import DEFAULT_MIGRATIONS_DIR
from segsvc.server import SegsvcServer
from segsvc.store.migrations import migrate
from tests.support.servers import make_settings

FLOOD = 32
WORKERS, QUEUE = 2, 2
# High enough that each admitted check takes a visible while (~120 ms on these machines).
ROUNDS = 11


def test_sign_in_flood_is_bounded_and_reads_stay_served(fresh_database: Callable[[], str]) -> None:
    url = fresh_database()
    migrate(url, DEFAULT_MIGRATIONS_DIR)
    settings = make_settings(
        bcrypt_rounds=ROUNDS, password_workers=WORKERS, password_queue=QUEUE, grpc_workers=16
    )
    server = SegsvcServer(settings, url)
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
            outcomes, reads_done = _flood_while_reading(channel)
    finally:
        server.stop(grace=0)

    codes = [code for code, _ in outcomes]
    refused = codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED)
    assert set(codes) <= {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED}
    # Only the admitted few ran bcrypt (a slot freed mid-flood may admit a straggler).
    assert refused >= FLOOD - 2 * (WORKERS + QUEUE), codes
    # The reads did not wait for the flood: they were done while admitted sign-ins ran.
    last_sign_in = max(at for code, at in outcomes if code == grpc.StatusCode.OK)
    assert reads_done < last_sign_in


def _flood_while_reading(
    channel: grpc.Channel,
) -> tuple[list[tuple[grpc.StatusCode, float]], float]:
    """Sign-ins from FLOOD threads at once while reads and health checks are made (each
    must answer SERVING); the sign-ins' outcomes with when each ended, and when the
    reads were done."""
    auth = auth_grpc.AuthServiceStub(channel)
    credentials: dict[str, Any] = {"username": "flood", "password": "flood-password"}
    auth.SignUp(auth_pb.SignUpRequest(name="Flood", **credentials))
    token = auth.SignIn(auth_pb.SignInRequest(**credentials)).access_token
    metadata = (("authorization", f"Bearer {token}"),)
    users = user_grpc.UserServiceStub(channel)
    health = health_pb2_grpc.HealthStub(channel)

    go = threading.Event()
    outcomes: list[tuple[grpc.StatusCode, float]] = []

    def sign_in(_: int) -> None:
        go.wait()
        try:
            auth.SignIn(auth_pb.SignInRequest(**credentials), timeout=30)
            code = grpc.StatusCode.OK
        except grpc.RpcError as exc:
            code = exc.code()
        outcomes.append((code, time.monotonic()))

    with ThreadPoolExecutor(FLOOD) as pool:
        futures = [pool.submit(sign_in, i) for i in range(FLOOD)]
        go.set()
        time.sleep(0.05)  # let the flood reach the server first
        for _ in range(5):
            users.GetUserSegments(pb.GetUserSegmentsRequest(user_id=1), metadata=metadata)
            reply = health.Check(health_pb2.HealthCheckRequest(service="liveness"), timeout=30)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        reads_done = time.monotonic()
        for future in futures:
            future.result()
    return outcomes, reads_done
