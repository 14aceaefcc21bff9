"""A clock the tests can move: real time plus an offset, or a frozen instant."""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta


@dataclass(frozen=True)
class HeldRead:
    """A clock read made to wait: `reached` is set once it has taken its value and
    waits; it returns when `release` is set."""

    module: str
    reached: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)


class MovableClock:
    """Callable like segsvc.domain.clock.system_clock; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._offset = timedelta(0)
        self._frozen: datetime | None = None
        self._held: HeldRead | None = None

    def __call__(self) -> datetime:
        with self._lock:
            value = self._frozen or datetime.now(UTC) + self._offset
            held = self._held
            if held is not None and sys._getframe(1).f_globals.get("__name__") == held.module:
                self._held = None
            else:
                held = None
        if held is not None:
            held.reached.set()
            held.release.wait(30)
        return value

    def hold_next_read(self, module: str) -> HeldRead:
        """Make the next read by code of `module` pause right after taking its value:
        a way to force the interleaving "read the clock, then someone else writes"."""
        held = HeldRead(module)
        with self._lock:
            self._held = held
        return held

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
        """Back to real time (and no read held)."""
        with self._lock:
            self._offset = timedelta(0)
            self._frozen = None
            if self._held is not None:
                self._held.release.set()
            self._held = None
