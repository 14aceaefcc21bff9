"""The gRPC event loop of a segsvc process, in a thread of its own.

grpc.aio binds a server to the loop it is made on, and the rest of the process (its
main thread, the health watcher) is blocking code; so the loop runs in one thread
("grpc-loop", uvloop: less CPU per call than asyncio's own loop), and the other threads
hand it coroutines with `run` and wait for their result.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import TypeVar

import uvloop

T = TypeVar("T")


class LoopThread:
    """A running event loop and its thread, from construction until `close`."""

    def __init__(self) -> None:
        self.loop = uvloop.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="grpc-loop", daemon=True)
        self._thread.start()

    def run(self, work: Coroutine[object, object, T]) -> T:
        """Run `work` on the loop and wait for its result (from any other thread)."""
        return asyncio.run_coroutine_threadsafe(work, self.loop).result()

    def close(self) -> None:
        """Stop the loop, wait for its thread, and close it."""
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        self.loop.close()
