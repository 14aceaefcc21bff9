"""Several serving processes on one port, behaving as one server.

One Python process serves about one core's worth of RPCs (the GIL), so `segsvc serve`
starts `SEGSVC_PROCESSES` workers (default: one per CPU) that share the gRPC port with
SO_REUSEPORT (the kernel spreads new connections over them) under this supervisor:

- the ports are resolved once here (port 0 becomes a real port) and a port taken by
  anyone else is refused here, with the same one-line error as a single process;
- worker 0 also serves the HTTP side port and runs the expiry sweeper (ProcessRole), so
  both exist once; /metrics there sums every worker's figures (prometheus-client's
  multiprocess mode, in a directory this supervisor owns);
- a worker starts serving only once every worker listens on the gRPC port
  (segsvc.start_barrier, marks in a directory this supervisor owns), so the kernel
  spreads the first connections over all of them;
- "serving" is logged once every worker serves (each says so on a pipe); a worker that
  fails before it ever served ends the start-up with its exit status, as a single
  process would; one that dies later is replaced (its live gauges dropped), with a
  growing delay if replacements keep failing;
- SIGTERM or SIGINT is passed to every worker, each drains as a single process does
  (NOT_SERVING, in-flight calls finish within the grace), and the supervisor exits 0
  when all have; a worker that outlives grace + STOP_MARGIN is killed;
- a worker whose supervisor disappears (SIGKILL) stops itself (serve_worker).

The supervisor serves nothing and opens no database connection (the embedded
development database aside): it only starts, watches and stops processes, so it
cannot itself become the bottleneck or crash in the serving code.
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

import structlog
from prometheus_client import multiprocess

from segsvc.config import Settings
from segsvc.observability.metrics import MULTIPROCESS_DIR_ENV

log = structlog.get_logger("segsvc.supervisor")

POLL_SECONDS = 0.1
STOP_MARGIN = 10.0
MAX_RESTART_DELAY = 30.0


class PortTaken(Exception):
    """The configured address cannot be bound."""


def resolve_port(setting: str, addr: str) -> str:
    """`addr` with a concrete port: binds it once without SO_REUSEPORT, which fails if
    anybody listens there (even with SO_REUSEPORT), and picks a free port for 0."""
    host, _, port = addr.rpartition(":")
    bind_host = host.strip("[]") or "0.0.0.0"  # noqa: S104 - listen address
    family = socket.AF_INET6 if ":" in bind_host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((bind_host, int(port)))
        except OSError as exc:
            raise PortTaken(f"cannot listen on {setting}={addr} ({exc.strerror})") from None
        chosen = probe.getsockname()[1]
    return f"{host}:{chosen}"


@dataclass
class _Worker:
    index: int
    process: subprocess.Popen[bytes]
    ready_fd: int
    started: float
    served: bool = False


@dataclass
class Supervisor:
    """Starts, watches, replaces and stops the workers; see the module docstring."""

    settings: Settings
    count: int
    database_url: str | None = None
    jwt_secret: str | None = None
    workers: dict[int, _Worker] = field(default_factory=dict)
    _addresses: tuple[str, str] = ("", "")
    _marks: str = ""
    _stopping: bool = False
    _failures: int = 0

    def run(self) -> int:
        """Serve until SIGTERM/SIGINT; the exit status."""
        env = self._worker_env()
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        status = 1
        self._marks = tempfile.mkdtemp(prefix="segsvc-listening-")
        try:
            for index in range(self.count):
                self._start(index, env)
            status = self._supervise(env)
        finally:
            if not self._stop_all() and status == 0:
                status = 1
            shutil.rmtree(env[MULTIPROCESS_DIR_ENV], ignore_errors=True)
            shutil.rmtree(self._marks, ignore_errors=True)
        return status

    def _worker_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["SEGSVC_GRPC_ADDR"] = resolve_port("SEGSVC_GRPC_ADDR", self.settings.grpc_addr)
        env["SEGSVC_HTTP_ADDR"] = resolve_port("SEGSVC_HTTP_ADDR", self.settings.http_addr)
        if self.database_url is not None:  # the embedded server, started here once
            env["SEGSVC_DATABASE_URL"] = self.database_url
        if self.jwt_secret is not None:  # its dev secret: with a URL, a worker needs one
            env["SEGSVC_JWT_SECRET"] = self.jwt_secret
        env[MULTIPROCESS_DIR_ENV] = tempfile.mkdtemp(prefix="segsvc-metrics-")
        self._addresses = (env["SEGSVC_GRPC_ADDR"], env["SEGSVC_HTTP_ADDR"])
        return env

    def _start(self, index: int, env: dict[str, str]) -> None:
        read_fd, write_fd = os.pipe()
        command = [
            *(sys.executable, "-m", "segsvc", "worker"),
            *(str(index), str(write_fd), str(self.count), self._marks),
        ]
        process = subprocess.Popen(command, env=env, pass_fds=(write_fd,))  # noqa: S603 - our own interpreter
        os.close(write_fd)
        self.workers[index] = _Worker(index, process, read_fd, time.monotonic())

    def _on_signal(self, signum: int, _frame: object) -> None:
        if not self._stopping:
            log.info("signal", signal=signal.Signals(signum).name)
        self._stopping = True

    def _supervise(self, env: dict[str, str]) -> int:
        announced = False
        while not self._stopping:
            self._read_ready()
            if not announced and all(w.served for w in self.workers.values()):
                announced = True
                self._failures = 0
                grpc_addr, http_addr = self._addresses
                log.info(
                    "serving",
                    grpc_port=int(grpc_addr.rpartition(":")[2]),
                    http_port=int(http_addr.rpartition(":")[2]),
                    processes=self.count,
                    tls=bool(self.settings.tls_cert),
                )
            for worker in list(self.workers.values()):
                code = worker.process.poll()
                if code is None or self._stopping:
                    continue
                self._close_pipe(worker)
                multiprocess.mark_process_dead(worker.process.pid, env[MULTIPROCESS_DIR_ENV])  # type: ignore[no-untyped-call]
                if not announced:
                    log.error("worker_failed_to_start", worker=worker.index, status=code)
                    return code or 1
                self._replace(worker, code, env)
        return 0

    def _read_ready(self) -> None:
        waiting = {w.ready_fd: w for w in self.workers.values() if not w.served}
        if not waiting:
            time.sleep(POLL_SECONDS)
            return
        try:
            readable, _, _ = select.select(list(waiting), [], [], POLL_SECONDS)
        except InterruptedError:
            return
        for fd in readable:
            if os.read(fd, 1):
                waiting[fd].served = True
                if self._failures:
                    self._failures = 0

    def _replace(self, worker: _Worker, code: int, env: dict[str, str]) -> None:
        if not worker.served:
            self._failures += 1
        delay = min(MAX_RESTART_DELAY, 0.5 * 2 ** (self._failures - 1)) if self._failures else 0
        log.warning("worker_exited", worker=worker.index, status=code, restart_in_s=delay)
        deadline = time.monotonic() + delay
        while time.monotonic() < deadline and not self._stopping:
            time.sleep(POLL_SECONDS)
        if not self._stopping:
            self._start(worker.index, env)

    @staticmethod
    def _close_pipe(worker: _Worker) -> None:
        if worker.ready_fd >= 0:
            os.close(worker.ready_fd)
            worker.ready_fd = -1

    def _stop_all(self) -> bool:
        """SIGTERM to every worker, wait for their drain; False if one had to be killed."""
        clean = True
        alive = [w for w in self.workers.values() if w.process.poll() is None]
        for worker in alive:
            worker.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.settings.shutdown_grace + STOP_MARGIN
        for worker in alive:
            try:
                worker.process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("worker_killed", worker=worker.index)
                worker.process.kill()
                worker.process.wait()
                clean = False
        for worker in self.workers.values():
            self._close_pipe(worker)
        log.info("stopped", processes=self.count)
        return clean
