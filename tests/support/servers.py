"""Starting segsvc the ways the tests need: settings for in-process servers, and the
real `segsvc serve` console script as a child process (for signals, start-up errors and
the embedded database)."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import IO, Any

import grpc

from segmentation.v1 import auth_service_pb2 as auth_pb
from segmentation.v1 import auth_service_pb2_grpc as auth_grpc
from segmentation.v1 import segment_service_pb2_grpc as segment_grpc
from segmentation.v1 import user_service_pb2_grpc as user_grpc
from segsvc.config import Settings
from segsvc.domain.clock import Clock
from segsvc.domain.roles import Role
from segsvc.server import SegsvcServer
from segsvc.service_layer.accounts import create_account

# Random per test run: the server refuses guessable secrets.
JWT_SECRET = secrets.token_urlsafe(48)
SEGSVC = str(Path(sys.executable).parent / "segsvc")


def make_settings(**overrides: Any) -> Settings:
    """Settings for servers started by tests: loopback, ephemeral ports, cheap bcrypt."""
    values: dict[str, Any] = {
        "grpc_addr": "127.0.0.1:0",
        "http_addr": "127.0.0.1:0",
        "jwt_secret": JWT_SECRET,
        "bcrypt_rounds": 4,
        "token_ttl_seconds": int(timedelta(days=30).total_seconds()),
        # Tests run the sweeper themselves to see both sides of it.
        "expiry_sweep_interval_seconds": 3600,
        "health_check_interval_seconds": 0.2,
        "shutdown_grace": 2,
        "shutdown_drain": 0,
        "log_level": "WARNING",
    }
    values.update(overrides)
    return Settings(**values)


def sign_in(channel: grpc.Channel) -> tuple[tuple[str, str], ...]:
    """Call metadata with the token of a fresh account on the server behind `channel`."""
    auth = auth_grpc.AuthServiceStub(channel)
    username = f"tester-{secrets.token_hex(4)}"
    auth.SignUp(auth_pb.SignUpRequest(name="Test", username=username, password="password-1"))
    reply = auth.SignIn(auth_pb.SignInRequest(username=username, password="password-1"))
    return (("authorization", f"Bearer {reply.access_token}"),)


@dataclass(frozen=True)
class PrivateServer:
    """An in-process server on a database no other test uses, with stubs and a token.

    For tests that must know every user of the database: a rollout enrols all
    registered users, so exact member counts need a database of one's own.
    """

    server: SegsvcServer
    database_url: str
    users: user_grpc.UserServiceStub
    segments: segment_grpc.SegmentServiceStub
    metadata: tuple[tuple[str, str], ...]


@contextmanager
def private_server(database_url: str, clock: Clock, **settings: Any) -> Iterator[PrivateServer]:
    """Start a server on `database_url` (migrated on start), stop it afterwards."""
    server = SegsvcServer(make_settings(**settings), database_url, clock=clock)
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
            yield PrivateServer(
                server,
                database_url,
                user_grpc.UserServiceStub(channel),
                segment_grpc.SegmentServiceStub(channel),
                sign_in(channel),
            )
    finally:
        server.stop(grace=1)


@dataclass
class ServerProcess:
    """A `segsvc serve` child process and the ports it announced."""

    process: subprocess.Popen[str]
    grpc_port: int
    http_port: int
    log: list[str]

    def terminate(self, timeout: float = 30) -> int:
        """SIGTERM, wait, return the exit status."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)


@contextmanager
def server_with_admin(
    database_url: str, name: str, username: str, password: str
) -> Iterator[SegsvcServer]:
    """An in-process server of its own on `database_url` with one admin account, for
    tests that need fixed slugs and user ids free of other tests' data."""
    server = SegsvcServer(make_settings(), database_url)
    server.start()
    create_account(server.db, name, username, password, Role.ADMIN, bcrypt_rounds=4)
    try:
        yield server
    finally:
        server.stop(grace=0)


def child_env(**settings: str) -> dict[str, str]:
    """The current environment without SEGSVC_* variables, plus `settings`; one serving
    process unless SEGSVC_PROCESSES is given (the supervisor has its own tests, and a
    worker per CPU in every process test would double their cost)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEGSVC_")}
    env.update(settings)
    env.setdefault("SEGSVC_PROCESSES", "1")
    env.setdefault("SEGSVC_SHUTDOWN_DRAIN", "0")
    return env


def start_process(env: dict[str, str], timeout: float = 60) -> ServerProcess:
    """Run `segsvc serve` and wait for its JSON "serving" log line."""
    process = subprocess.Popen(
        [SEGSVC, "serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    stream: IO[str] = process.stdout  # type: ignore[assignment]
    while time.monotonic() < deadline:
        line = stream.readline()
        if not line:
            break
        lines.append(line)
        event = _parse(line)
        if event.get("event") == "serving":
            # Keep reading, or a chatty server blocks once the pipe buffer is full.
            threading.Thread(target=lambda: lines.extend(stream), daemon=True).start()
            return ServerProcess(process, int(event["grpc_port"]), int(event["http_port"]), lines)
    process.kill()
    raise AssertionError("segsvc did not start:\n" + "".join(lines))


def _parse(line: str) -> dict[str, Any]:
    try:
        parsed = json.loads(line)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}
