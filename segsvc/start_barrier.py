"""Workers of one `segsvc serve` start serving only once every one of them listens.

The kernel spreads new connections only over the sockets listening on the shared port
at that moment (SO_REUSEPORT), and gRPC connections live long. A worker that served
before its siblings had bound the port took every connection made meanwhile (a
client's, or a load balancer's right after the first readiness answer) and kept them:
seen on the development machine in four of five starts, one worker served every call
of a benchmark while the other idled. So each worker binds the port (which listens at
once: the kernel queues connections for it even before it serves), says so here, and
waits for the others before it starts serving. A worker started later to replace one
finds the others' marks and starts at once.

The marks are files named by worker index in a directory the supervisor owns.
"""

from __future__ import annotations

import time
from pathlib import Path

import structlog

POLL_SECONDS = 0.01
# A sibling this late has usually failed, which the supervisor handles; serve anyway.
TIMEOUT_SECONDS = 30.0

log = structlog.get_logger("segsvc.start")


def listening(directory: Path, index: int) -> None:
    """Mark worker `index` as listening on the shared port."""
    (directory / str(index)).touch()


def wait_for_siblings(directory: Path, count: int, timeout: float = TIMEOUT_SECONDS) -> bool:
    """Wait until `count` workers listen; False (after a warning) if they did not in time."""
    deadline = time.monotonic() + timeout
    while sum(1 for _ in directory.iterdir()) < count:
        if time.monotonic() > deadline:
            log.warning("siblings_not_listening", waited_s=timeout, expected=count)
            return False
        time.sleep(POLL_SECONDS)
    return True
