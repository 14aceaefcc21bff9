"""Starting the servers under test as child processes on ports chosen here, ready when
gRPC health checking answers SERVING (which works for every server model, whatever it
logs), and stopped with SIGTERM like an orchestrator would.

Each server runs in its own session, so a Ctrl-C in the terminal reaches only the
benchmark, which then stops the servers in order and drops its database.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

# The `segsvc` executable measured: `make bench` sets SEGSVC_BENCH_SERVER to one installed
# as production installs it (Makefile: BENCH_VENV); by default this virtualenv's.
SEGSVC = os.environ.get("SEGSVC_BENCH_SERVER") or str(Path(sys.executable).parent / "segsvc")
START_TIMEOUT = 120.0


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Server:
    """A running server process and where it listens."""

    process: subprocess.Popen[bytes]
    grpc_port: int
    http_port: int
    log: Path
    start_seconds: float = 0.0

    @property
    def pid(self) -> int:
        """The server's process id (for /proc)."""
        return self.process.pid

    @property
    def target(self) -> str:
        """host:port of its gRPC listener."""
        return f"127.0.0.1:{self.grpc_port}"

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM, wait (SIGKILL after `timeout`); the exit status. Safe to repeat."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait()


def _serving(target: str) -> bool:
    """One health check on a fresh channel (a channel that failed to connect would wait
    out grpc's reconnect backoff, which would blur the start-up time measured here)."""
    host, _, port = target.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
    except OSError:
        return False
    with grpc.insecure_channel(target) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=1
            )
        except grpc.RpcError:
            return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def launch(
    command: list[str], env: dict[str, str], grpc_port: int, http_port: int, log: Path
) -> Server:
    """Start `command` (output to `log`) and wait until it serves; `start_seconds` is the
    time from starting the process to the first SERVING answer."""
    started = time.monotonic()
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = Server(process, grpc_port, http_port, log)
    deadline = started + START_TIMEOUT
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"{command[0]} exited: {log.read_text()[-2000:]}")
            if _serving(server.target):
                server.start_seconds = time.monotonic() - started
                return server
            time.sleep(0.02)
        raise RuntimeError(f"{command[0]} did not become SERVING: {log.read_text()[-2000:]}")
    except BaseException:
        server.stop(timeout=5)
        raise
