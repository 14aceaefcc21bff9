"""A clock the tests can move: real time plus an offset, or a frozen instant."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta


class MovableClock:
    """Callable like segsvc.domain.clock.system_clock; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._offset = timedelta(0)
        self._frozen: datetime | None = None

    def __call__(self) -> datetime:
        with self._lock:
            return self._frozen or datetime.now(UTC) + self._offset

    def freeze(self, instant: datetime) -> None:
        """Stop time at `instant` until reset."""
        with self._lock:
            self._frozen = instant

    def advance(self, delta: timedelta) -> None:
        """Move the clock forward (or back, with a negative delta)."""
        with self._lock:
            self._offset += delta

    def travel_to(self, instant: datetime) -> None:
        """Make `now` equal `instant` (time keeps running from there)."""
        with self._lock:
            self._offset = instant - datetime.now(UTC)

    def reset(self) -> None:
        """Back to real time."""
        with self._lock:
            self._offset = timedelta(0)
            self._frozen = None
