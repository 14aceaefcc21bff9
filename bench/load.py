"""Closed-loop load from Python: C concurrent callers, each with one call in flight,
spread over a few processes so that the GIL of one client process is not the ceiling.

This is the default client because it can send a different random user id on every
call (h2load repeats one request body, which keeps one user's rows hot in every cache).
Each process has its own channel (one HTTP/2 connection) and a thread per caller; calls
send and receive raw bytes, so the client spends no CPU parsing responses. The worker
processes are started once and stay up across rounds, so the first round warms caches
and connections and the second is measured without start-up noise.
"""

from __future__ import annotations

import multiprocessing as mp
import queue
import random
import signal
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from typing import Protocol

import grpc

from segmentation.v1 import user_service_pb2 as pb

CALL_TIMEOUT = 10.0
START_TIMEOUT = 60.0


@dataclass(frozen=True)
class Call:
    """What every caller sends: `method` with `body`, or, with `max_user_id`, a
    GetUserSegmentsRequest for a random user id in 1..max_user_id."""

    method: str
    body: bytes = b""
    max_user_id: int = 0


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


class LoadClient(Protocol):
    """A client that can drive repeated rounds of closed-loop load."""

    name: str

    def round(self, seconds: float) -> LoadResult:
        """Run for `seconds` and report what the callers saw."""
        ...

    def close(self) -> None:
        """Release processes and connections."""
        ...


def summarize(latencies: list[float], errors: int, seconds: float, client_cpu: float) -> LoadResult:
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
    )


@dataclass(frozen=True)
class _Part:
    """One process's share of a round."""

    latencies: list[float]
    errors: int
    started: float
    finished: float
    cpu_seconds: float


def _caller(
    rpc: grpc.UnaryUnaryMultiCallable[bytes, bytes],
    call: Call,
    metadata: tuple[tuple[str, str], ...],
    until: float,
    seed: int,
) -> tuple[list[float], int]:
    rng = random.Random(seed)
    latencies: list[float] = []
    errors = 0
    while (started := time.perf_counter()) < until:
        body = (
            pb.GetUserSegmentsRequest(user_id=rng.randint(1, call.max_user_id)).SerializeToString()
            if call.max_user_id
            else call.body
        )
        try:
            rpc(body, metadata=metadata, timeout=CALL_TIMEOUT)
        except grpc.RpcError:
            errors += 1
            continue
        latencies.append(time.perf_counter() - started)
    return latencies, errors


def _worker(
    target: str,
    token: str,
    call: Call,
    threads: int,
    seed: int,
    commands: mp.Queue[float | None],
    results: mp.Queue[_Part | str],
) -> None:
    """Entry point of one client process: wait for a round length, run, report, repeat.

    Ctrl-C is left to the parent, which ends the workers through `close()`."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    metadata = (("authorization", f"Bearer {token}"),)
    with grpc.insecure_channel(target) as channel:
        try:
            grpc.channel_ready_future(channel).result(timeout=START_TIMEOUT)
        except grpc.FutureTimeoutError:
            results.put(f"cannot connect to {target}")
            return
        rpc: grpc.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(
            call.method, request_serializer=None, response_deserializer=None
        )
        results.put("ready")
        with ThreadPoolExecutor(threads) as pool:
            while (seconds := commands.get()) is not None:
                cpu, started = time.process_time(), time.perf_counter()
                until = started + seconds
                futures = [
                    pool.submit(_caller, rpc, call, metadata, until, seed * 1000 + i)
                    for i in range(threads)
                ]
                latencies: list[float] = []
                errors = 0
                for future in futures:
                    part, failed = future.result()
                    latencies += part
                    errors += failed
                seed += 1
                results.put(
                    _Part(
                        latencies,
                        errors,
                        started,
                        time.perf_counter(),
                        time.process_time() - cpu,
                    )
                )


class PythonClient:
    """`concurrency` callers over `processes` processes (spawned, not forked: the parent
    already runs grpc, whose state must not be inherited)."""

    name = "python"

    def __init__(
        self, target: str, token: str, call: Call, concurrency: int = 32, processes: int = 2
    ) -> None:
        context = mp.get_context("spawn")
        self._results: mp.Queue[_Part | str] = context.Queue()
        self._commands: list[mp.Queue[float | None]] = []
        self._processes: list[BaseProcess] = []
        processes = max(1, min(processes, concurrency))
        for index in range(processes):
            threads = concurrency // processes + (index < concurrency % processes)
            commands: mp.Queue[float | None] = context.Queue()
            process = context.Process(
                target=_worker,
                args=(target, token, call, threads, index + 1, commands, self._results),
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

    def round(self, seconds: float) -> LoadResult:
        """Every process runs its callers for `seconds`; the rate is over the span from
        the first process's start to the last one's end."""
        for commands in self._commands:
            commands.put(seconds)
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
