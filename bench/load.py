"""Closed-loop load from Python: C concurrent callers, each with one call in flight,
spread over a few processes so that the GIL of one client process is not the ceiling.

It can send a different request on every call (h2load repeats one request body, which
keeps one user's rows hot in every cache): each round names a workload (bench.workloads:
uniform or Zipf ids, batches, updates, a mix). It is the fallback when Go is not
installed: the Go client (bench.go_load) sends the same workloads for about half the CPU
per call that these processes take from the server's cores (0.4-0.5 of 2 cores).
Each process has a connection per four callers (see _worker) and a thread per caller; calls
send and receive raw bytes, so the client spends no CPU parsing responses. The worker
processes are started once and stay up across rounds and workloads, so a warm-up round
and the measured one run on the same connections, without start-up noise.
"""

from __future__ import annotations

import multiprocessing as mp
import queue
import signal
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from typing import Protocol

import grpc

from bench.workloads import METHODS, Workload, calls

CALL_TIMEOUT = 10.0
START_TIMEOUT = 60.0
CALLERS_PER_CONNECTION = 4


@dataclass(frozen=True)
class LoadResult:
    """One round of load, as the client saw it."""

    calls_per_second: float
    calls: int
    errors: int
    p50_ms: float
    p99_ms: float
    seconds: float
    client_cpu_seconds: float
    first_error: str = ""


class LoadClient(Protocol):
    """A client that can drive repeated rounds of closed-loop load."""

    name: str

    def round(self, seconds: float, workload: Workload) -> LoadResult:
        """Run `workload` for `seconds` and report what the callers saw."""
        ...

    def close(self) -> None:
        """Release processes and connections."""
        ...


def summarize(
    latencies: list[float], errors: int, seconds: float, client_cpu: float, first_error: str = ""
) -> LoadResult:
    """Calls/s and latency percentiles (seconds in, milliseconds out)."""
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] if ordered else 0.0
    return LoadResult(
        calls_per_second=len(ordered) / seconds if seconds else 0.0,
        calls=len(ordered),
        errors=errors,
        p50_ms=statistics.median(ordered) * 1000 if ordered else 0.0,
        p99_ms=p99 * 1000,
        seconds=seconds,
        client_cpu_seconds=client_cpu,
        first_error=first_error,
    )


@dataclass(frozen=True)
class _Part:
    """One process's share of a round."""

    latencies: list[float]
    errors: int
    started: float
    finished: float
    cpu_seconds: float
    first_error: str


Rpcs = dict[str, "grpc.UnaryUnaryMultiCallable[bytes, bytes]"]


def _caller(
    rpcs: Rpcs,
    workload: Workload,
    metadata: tuple[tuple[str, str], ...],
    until: float,
    seed: int,
) -> tuple[list[float], int, str]:
    latencies: list[float] = []
    errors = 0
    first_error = ""
    stream = calls(workload, seed)
    while (started := time.perf_counter()) < until:
        method, body = next(stream)
        try:
            rpcs[method](body, metadata=metadata, timeout=CALL_TIMEOUT)
        except grpc.RpcError as exc:
            errors += 1
            if not first_error:
                first_error = f"{method.rsplit('/', 1)[1]}: {exc.code().name} {exc.details()}"
            continue
        latencies.append(time.perf_counter() - started)
    return latencies, errors, first_error


Command = tuple[float, Workload] | None


def _worker(
    target: str,
    token: str,
    threads: int,
    seed: int,
    commands: mp.Queue[Command],
    results: mp.Queue[_Part | str],
) -> None:
    """Entry point of one client process: wait for a round length, run, report, repeat.

    Ctrl-C is left to the parent, which ends the workers through `close()`."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    metadata = (("authorization", f"Bearer {token}"),)
    # Several connections per process, as many callers make: the server's workers share
    # their port with SO_REUSEPORT, which spreads connections, not calls, so two
    # connections (one per process) could all land on one worker and leave the other
    # idle. A local subchannel pool makes each channel its own connection.
    with ExitStack() as open_channels:
        channels = [
            open_channels.enter_context(
                grpc.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])
            )
            for _ in range(max(1, threads // CALLERS_PER_CONNECTION))
        ]
        try:
            for channel in channels:
                grpc.channel_ready_future(channel).result(timeout=START_TIMEOUT)
        except grpc.FutureTimeoutError:
            results.put(f"cannot connect to {target}")
            return
        per_channel: list[Rpcs] = [
            {
                method: channel.unary_unary(
                    method, request_serializer=None, response_deserializer=None
                )
                for method in METHODS
            }
            for channel in channels
        ]
        results.put("ready")
        with ThreadPoolExecutor(threads) as pool:
            while (command := commands.get()) is not None:
                seconds, workload = command
                next(calls(workload, seed))  # build per-process tables before the clock
                cpu, started = time.process_time(), time.perf_counter()
                until = started + seconds
                futures = [
                    pool.submit(
                        _caller,
                        per_channel[i % len(per_channel)],
                        workload,
                        metadata,
                        until,
                        seed * 1000 + i,
                    )
                    for i in range(threads)
                ]
                latencies: list[float] = []
                errors = 0
                first_error = ""
                for future in futures:
                    part, failed, first = future.result()
                    latencies += part
                    errors += failed
                    first_error = first_error or first
                seed += 1
                results.put(
                    _Part(
                        latencies,
                        errors,
                        started,
                        time.perf_counter(),
                        time.process_time() - cpu,
                        first_error,
                    )
                )


class PythonClient:
    """`concurrency` callers over `processes` processes (spawned, not forked: the parent
    already runs grpc, whose state must not be inherited)."""

    name = "python"

    def __init__(self, target: str, token: str, concurrency: int = 32, processes: int = 2) -> None:
        context = mp.get_context("spawn")
        self._results: mp.Queue[_Part | str] = context.Queue()
        self._commands: list[mp.Queue[Command]] = []
        self._processes: list[BaseProcess] = []
        processes = max(1, min(processes, concurrency))
        for index in range(processes):
            threads = concurrency // processes + (index < concurrency % processes)
            commands: mp.Queue[Command] = context.Queue()
            process = context.Process(
                target=_worker,
                args=(target, token, threads, index + 1, commands, self._results),
                daemon=True,
            )
            process.start()
            self._commands.append(commands)
            self._processes.append(process)
        try:
            for _ in self._processes:
                message = self._get(START_TIMEOUT)
                if message != "ready":
                    raise RuntimeError(f"load client: {message}")
        except BaseException:
            self.close()
            raise

    def _get(self, timeout: float) -> _Part | str:
        try:
            return self._results.get(timeout=timeout)
        except queue.Empty:
            dead = [p.pid for p in self._processes if not p.is_alive()]
            raise RuntimeError(f"load client gave no answer (dead workers: {dead})") from None

    def round(self, seconds: float, workload: Workload) -> LoadResult:
        """Every process runs its callers for `seconds`; the rate is over the span from
        the first process's start to the last one's end."""
        for commands in self._commands:
            commands.put((seconds, workload))
        parts: list[_Part] = []
        for _ in self._processes:
            part = self._get(seconds + CALL_TIMEOUT + 30)
            if isinstance(part, str):
                raise RuntimeError(f"load client: {part}")
            parts.append(part)
        span = max(p.finished for p in parts) - min(p.started for p in parts)
        return summarize(
            [latency for p in parts for latency in p.latencies],
            sum(p.errors for p in parts),
            span,
            sum(p.cpu_seconds for p in parts),
            next((p.first_error for p in parts if p.first_error), ""),
        )

    def close(self) -> None:
        """Ask every process to finish, then make sure it has."""
        for commands in self._commands:
            commands.put(None)
        for process in self._processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
                process.join()
