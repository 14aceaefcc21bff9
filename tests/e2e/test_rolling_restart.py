"""A rolling restart costs a client nothing: two real `segsvc serve` replicas behind one
channel using the README's service config (round_robin, client-side health checking,
retries of UNAVAILABLE with backoff), each restarted in turn under continuous calls."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import grpc

from segmentation.v1 import auth_options_pb2
from segmentation.v1 import auth_service_pb2 as auth_pb
from segmentation.v1 import auth_service_pb2_grpc as auth_grpc
from segmentation.v1 import user_service_pb2 as pb
from segmentation.v1 import user_service_pb2_grpc as user_grpc
from tests.support.servers import JWT_SECRET, ServerProcess, child_env, start_process

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def readme_service_config() -> str:
    """The service config the README recommends, exactly as printed there."""
    section = README.split("A gRPC service config that does both", 1)[1]
    match = re.search(r"```json\n(.*?)```", section, re.DOTALL)
    assert match, "the README's service config block is missing"
    return json.dumps(json.loads(match[1]))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_restarting_each_replica_in_turn_fails_no_call(
    fresh_database: Callable[[], str],
) -> None:
    url = fresh_database()
    ports = [free_port(), free_port()]

    def start(port: int) -> ServerProcess:
        return start_process(
            child_env(
                SEGSVC_DATABASE_URL=url,
                SEGSVC_JWT_SECRET=JWT_SECRET,
                SEGSVC_GRPC_ADDR=f"127.0.0.1:{port}",
                SEGSVC_HTTP_ADDR="127.0.0.1:0",
                SEGSVC_SHUTDOWN_DRAIN="1",
                SEGSVC_SHUTDOWN_GRACE="2",
                SEGSVC_HEALTH_CHECK_INTERVAL_SECONDS="0.2",
                SEGSVC_BCRYPT_ROUNDS="4",
                SEGSVC_OPEN_SIGNUP="true",
            )
        )

    replicas = [start(ports[0]), start(ports[1])]
    options = [
        ("grpc.service_config", readme_service_config()),
        ("grpc.enable_retries", 1),
        ("grpc.initial_reconnect_backoff_ms", 200),
        ("grpc.max_reconnect_backoff_ms", 1000),
    ]
    target = f"ipv4:127.0.0.1:{ports[0]},127.0.0.1:{ports[1]}"
    failures: list[str] = []
    done = 0
    stop = threading.Event()
    try:
        with grpc.insecure_channel(target, options=options) as channel:
            auth = auth_grpc.AuthServiceStub(channel)
            auth.SignUp(
                auth_pb.SignUpRequest(
                    name="R",
                    username="rolling",
                    password="password-1",
                    role=auth_options_pb2.ROLE_WRITER,
                )
            )
            token = auth.SignIn(
                auth_pb.SignInRequest(username="rolling", password="password-1")
            ).access_token
            md = (("authorization", f"Bearer {token}"),)
            users = user_grpc.UserServiceStub(channel)

            def calls() -> None:
                nonlocal done
                deadline = time.monotonic() + 60
                while not stop.is_set() and time.monotonic() < deadline:
                    try:
                        users.GetUserSegments(
                            pb.GetUserSegmentsRequest(user_id=1 + done % 1000),
                            metadata=md,
                            timeout=10,
                        )
                        done += 1
                    except grpc.RpcError as exc:
                        failures.append(f"{exc.code().name}: {exc.details()}")
                    time.sleep(0.005)

            caller = threading.Thread(target=calls)
            caller.start()
            try:
                for index in (0, 1):
                    time.sleep(1)
                    assert replicas[index].terminate() == 0
                    replicas[index] = start(ports[index])
                    time.sleep(2)  # the client reconnects to the replica that came back
            finally:
                stop.set()
                caller.join(timeout=30)
    finally:
        for replica in replicas:
            if replica.process.poll() is None:
                replica.terminate()
    assert failures == []
    assert done > 50
