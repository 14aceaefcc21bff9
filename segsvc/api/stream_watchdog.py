"""Cancels streams whose client has gone quiet.

A streaming RPC holds a worker thread (and a bulk database connection) for as long as it
lasts, and its length is up to the client: an `ImportUsers` that never sends its next
message or half-closes, a `StreamHistoryReport` whose reader stops reading (the server's
send then blocks on HTTP/2 flow control). Each stream records when it started waiting on
its client and stops when the client moves; one watchdog thread cancels every stream that
has waited longer than the idle timeout, which frees its thread and connection.

Time the server spends producing a message (a database fetch) is not waiting on the
client and never counts. A client stream that ends because it was cancelled (by the
watchdog, by the client or by a shutdown) raises `StreamCancelled` instead of ending
normally, so a half-received import is rolled back, never committed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeVar

import grpc
import structlog

T = TypeVar("T")

log = structlog.get_logger("segsvc.streams")


class StreamCancelled(Exception):
    """The stream ended because the call was cancelled, not because the client finished."""


class StreamWatch:
    """One stream's record of when it began waiting on its client."""

    def __init__(self, context: grpc.ServicerContext) -> None:
        self.context = context
        self.waiting_since: float | None = None
        self.expired = False

    def requests(self, iterator: Iterator[T]) -> Iterator[T]:
        """The client's messages; ends normally only when the client half-closed."""
        while True:
            self.waiting_since = time.monotonic()
            try:
                message = next(iterator)
            except StopIteration:
                if self.expired or not self.context.is_active():
                    raise StreamCancelled("the request stream was cancelled") from None
                return
            except grpc.RpcError:
                raise StreamCancelled("the request stream was cancelled") from None
            finally:
                self.waiting_since = None
            yield message

    def responses(self, items: Iterator[T]) -> Iterator[T]:
        """The server's messages; the time grpcio takes to send each one is waiting."""
        for item in items:
            self.waiting_since = time.monotonic()
            yield item
            self.waiting_since = None


class StreamWatchdog:
    """One thread that cancels every watched stream idle longer than `idle_timeout`."""

    def __init__(self, idle_timeout: float) -> None:
        self.idle_timeout = idle_timeout
        self._watches: set[StreamWatch] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stream-watchdog", daemon=True)

    def start(self) -> None:
        """Begin watching."""
        self._thread.start()

    def stop(self) -> None:
        """Stop watching (streams still running are left to the server's shutdown)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    @contextmanager
    def watch(self, context: grpc.ServicerContext) -> Iterator[StreamWatch]:
        """Watch one stream for as long as the block runs."""
        watch = StreamWatch(context)
        with self._lock:
            self._watches.add(watch)
        try:
            yield watch
        finally:
            with self._lock:
                self._watches.discard(watch)

    def cancel_idle(self) -> int:
        """Cancel every stream idle too long; return how many."""
        now = time.monotonic()
        with self._lock:
            idle = [
                w
                for w in self._watches
                if not w.expired
                and (since := w.waiting_since) is not None
                and now - since > self.idle_timeout
            ]
        for watch in idle:
            watch.expired = True
            watch.context.cancel()  # type: ignore[no-untyped-call]
        if idle:
            log.warning("idle_streams_cancelled", count=len(idle), idle_seconds=self.idle_timeout)
        return len(idle)

    def _run(self) -> None:
        period = min(1.0, self.idle_timeout / 4)
        while not self._stop.wait(period):
            self.cancel_idle()
