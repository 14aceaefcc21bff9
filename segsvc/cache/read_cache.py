"""A bounded, per-process LRU of users' encoded active segments that is never wrong.

What it holds: for a user id, the encoded answer to GetUserSegments (opaque bytes to
this module), the instant it was read at, and the instant it stops being true (the
earliest `expires_at` among its segments). A hit is one dict lookup and two
comparisons against the injected clock's "now": an entry is served only while
`read_at <= now < valid_until`, so expiry is exact and a clock moved backwards (tests)
never revives a row that had already expired when the entry was read.

Coherence: every committed membership change reaches `forget` (this process's writes
synchronously after their commit, other processes' through LISTEN/NOTIFY). And the
classic race is closed: a read that started before an invalidation must not store what
it read after the invalidation has been applied, or the cache would keep pre-change
data forever. Every invalidation takes the next number of one sequence and stamps it
on the users it names (on one of STRIPES slots, by user id) or on everyone; a read
takes a ticket (the sequence number) before its database query, and `fill` refuses
when anything stamped after the ticket could concern its user. Two users sharing a
stripe only cost a refused fill, never a stale one.

Until the process listens for other processes' changes (`enable`), and again from the
moment it stops listening (`disable`), the cache is empty and refuses every fill: a
process that may have missed a notice serves from the database only.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from datetime import UTC, datetime

from segsvc.domain.membership_change import MembershipChange
from segsvc.observability.metrics import Metrics

STRIPES = 4096
FOREVER = datetime.max.replace(tzinfo=UTC)

_Entry = tuple[bytes, datetime, datetime]  # encoded answer, read at, valid until


class ReadCache:
    """Thread-safe; `capacity` 0 turns it off (every read goes to the database)."""

    def __init__(self, capacity: int, metrics: Metrics) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[int, _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self._sequence = 0
        self._everyone_at = 0
        self._stripes = [0] * STRIPES
        self._enabled = False
        self._hits = metrics.cache_lookups.labels("hit")
        self._misses = metrics.cache_lookups.labels("miss")
        self._bypasses = metrics.cache_lookups.labels("bypass")
        self._refused = metrics.cache_fills_refused
        self._forgot_users = metrics.cache_invalidations.labels("users")
        self._forgot_everyone = metrics.cache_invalidations.labels("everyone")
        self._listening = metrics.cache_listening

    @property
    def enabled(self) -> bool:
        """True while entries may be served and stored."""
        return self._enabled

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, user_id: int, now: datetime) -> bytes | None:
        """The cached answer for `user_id` if it is true at `now`, else None."""
        entry = self._entries.get(user_id)
        if entry is not None and entry[1] <= now < entry[2]:
            try:  # noqa: SIM105 - the hit path; suppress() costs a context manager
                self._entries.move_to_end(user_id)
            except KeyError:  # forgotten meanwhile: the read was concurrent with it
                pass
            self._hits.inc()
            return entry[0]
        (self._misses if self._enabled else self._bypasses).inc()
        return None

    def ticket(self) -> int:
        """Take before reading the database; give to `fill` with what was read."""
        return self._sequence

    def fill(
        self, user_id: int, ticket: int, encoded: bytes, read_at: datetime, valid_until: datetime
    ) -> bool:
        """Store what a read found, unless an invalidation that may concern `user_id`
        was applied after `ticket` was taken (or the cache is off). True if stored."""
        with self._lock:
            if not self._enabled or self.capacity == 0:
                return False
            if self._everyone_at > ticket or self._stripes[user_id % STRIPES] > ticket:
                self._refused.inc()
                return False
            self._entries[user_id] = (encoded, read_at, valid_until)
            self._entries.move_to_end(user_id)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)
            return True

    def forget(self, change: MembershipChange) -> None:
        """Apply a committed change: drop what it makes wrong, refuse older fills."""
        with self._lock:
            self._sequence += 1
            if change.everyone:
                self._forget_everyone()
                return
            for user_id in change.user_ids:
                self._stripes[user_id % STRIPES] = self._sequence
                self._entries.pop(user_id, None)
        self._forgot_users.inc()

    def enable(self) -> None:
        """Start serving and storing: called once this process listens for changes."""
        with self._lock:
            self._sequence += 1
            self._forget_everyone()
            self._enabled = self.capacity > 0
        self._listening.set(1)

    def disable(self) -> None:
        """Empty the cache and stop using it: this process may miss changes from now on."""
        with self._lock:
            self._enabled = False
            self._sequence += 1
            self._forget_everyone()
        self._listening.set(0)

    def _forget_everyone(self) -> None:
        self._everyone_at = self._sequence
        self._entries.clear()
        self._forgot_everyone.inc()
