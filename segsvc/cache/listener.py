"""The thread that keeps this process's read cache coherent with every other process.

It holds one dedicated database connection (not from the pool, so a busy pool never
delays a notice) that LISTENs on store.change_notices.CHANNEL, and applies each notice
to the cache as it arrives. The cache is enabled only once LISTEN is in effect, and
emptied and disabled the moment the connection fails, so no entry is ever served that
a missed notice could have made wrong. The thread then reconnects with backoff (0.05 s
doubling to 5 s) and enables the cache again once it listens.
"""

from __future__ import annotations

import threading

import structlog

from segsvc.cache.read_cache import ReadCache
from segsvc.store import change_notices

log = structlog.get_logger("segsvc.cache")

FIRST_BACKOFF = 0.05
MAX_BACKOFF = 5.0
# How long one wait for notices lasts before checking whether to stop.
POLL_SECONDS = 0.5


class ChangeListener:
    """Owns the listening connection and its thread."""

    def __init__(self, conninfo: str, cache: ReadCache, own_origin: str) -> None:
        self.conninfo = conninfo
        self.own_origin = own_origin
        self.cache = cache
        self.first_backoff = FIRST_BACKOFF
        self.backend_pid: int | None = None  # of the listening session, for tests
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cache-listener", daemon=True)

    def start(self) -> None:
        """Begin listening in the background (the cache stays off until it does)."""
        self._thread.start()

    def stop(self) -> None:
        """Stop listening; the cache is emptied and off from now on."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2 * POLL_SECONDS + 1)
        self.cache.disable()

    def _run(self) -> None:
        backoff = self.first_backoff
        failing = False
        while not self._stop.is_set():
            try:
                with change_notices.listening(self.conninfo) as conn:
                    self.backend_pid = conn.info.backend_pid
                    self.cache.enable()
                    if failing:
                        log.warning("cache_listening_again")
                    failing, backoff = False, self.first_backoff
                    while not self._stop.is_set():
                        for notice in conn.notifies(timeout=POLL_SECONDS):
                            origin, change = change_notices.parse(notice.payload)
                            if origin != self.own_origin:  # own changes: applied at commit
                                self.cache.forget(change)
            except Exception as exc:  # whatever it was, a notice may have been missed
                self.cache.disable()
                if not failing:
                    log.warning("cache_listener_lost", error=type(exc).__name__)
                failing = True
                self._stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
