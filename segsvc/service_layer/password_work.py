"""Password hashing and checking (bcrypt) off the RPC workers, with a bounded queue.

bcrypt is slow on purpose, so a flood of sign-ins must not decide how fast anything
else is served. The threaded gRPC server has a fixed number of workers; a worker that
submits bcrypt work waits for its result, so without a bound every worker can end up
waiting behind the password threads while reads and health checks queue (issue 7,
defect 4). Admission is therefore a non-blocking semaphore of `workers + queue` slots:
at most that many RPC workers are ever busy with passwords, and a call that finds no
slot is refused at once with RESOURCE_EXHAUSTED (the caller retries with backoff)
instead of queueing without limit.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from segsvc.domain.errors import ResourceExhausted

# A few admitted checks finish within about a second at the default cost.
RETRY_AFTER_SECONDS = 1
P = ParamSpec("P")
T = TypeVar("T")


class PasswordWork:
    """A small thread pool for bcrypt behind a fixed number of admission slots."""

    def __init__(self, workers: int, queue: int) -> None:
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="bcrypt")
        self._slots = threading.BoundedSemaphore(workers + queue)

    def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """`fn(*args)` on a password thread; ResourceExhausted when every slot is taken."""
        if not self._slots.acquire(blocking=False):
            raise ResourceExhausted("password checks", RETRY_AFTER_SECONDS)
        try:
            return self._executor.submit(fn, *args, **kwargs).result()
        finally:
            self._slots.release()

    def shutdown(self) -> None:
        """Drop queued work; running hashes finish on their own."""
        self._executor.shutdown(wait=False, cancel_futures=True)
