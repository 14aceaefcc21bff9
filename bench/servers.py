"""Starting the servers under test as child processes on ports chosen here, ready when
gRPC health checking answers SERVING (which works for every server model, whatever it
logs), and stopped with SIGTERM like an orchestrator would."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

SEGSVC = str(Path(sys.executable).parent / "segsvc")


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Server:
    """A running server process."""

    process: subprocess.Popen[bytes]
    grpc_port: int
    http_port: int
    log: Path

    def stop(self) -> int:
        """SIGTERM and wait; the exit status."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)


def launch(
    command: list[str], env: dict[str, str], grpc_port: int, http_port: int, log: Path
) -> Server:
    """Start `command` and wait until it serves."""
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"{command[0]} exited: {log.read_text()[-2000:]}")
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return Server(process, grpc_port, http_port, log)
            except grpc.RpcError:
                pass
            time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"{command[0]} did not become SERVING: {log.read_text()[-2000:]}")
