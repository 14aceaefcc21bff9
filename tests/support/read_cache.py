"""Observing a server's read cache from tests: its counters and its listening state."""

from __future__ import annotations

import time

from segsvc.server import SegsvcServer


def lookups(server: SegsvcServer, result: str) -> float:
    """How many lookups had `result` (hit, miss, bypass) so far."""
    value = server.metrics.registry.get_sample_value(
        "segsvc_cache_lookups_total", {"result": result}
    )
    return value or 0.0


def wait_listening(server: SegsvcServer, listening: bool = True, timeout: float = 5) -> None:
    """Wait until the server's cache listens for changes (or, with False, has stopped)."""
    deadline = time.monotonic() + timeout
    while server.read_cache.enabled != listening:
        assert time.monotonic() < deadline, f"cache listening never became {listening}"
        time.sleep(0.01)
