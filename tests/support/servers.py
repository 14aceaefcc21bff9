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
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import IO, Any

from segsvc.config import Settings

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
        "log_level": "WARNING",
    }
    values.update(overrides)
    return Settings(**values)


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


def child_env(**settings: str) -> dict[str, str]:
    """The current environment without SEGSVC_* variables, plus `settings`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEGSVC_")}
    env.update(settings)
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
