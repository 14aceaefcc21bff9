"""GetUserSegments and BatchGetUserSegments (without `as_of`): the hot reads, through the
per-process read cache, answered as encoded bytes so that a hit does no conversion.

They are coroutines, run on the server's event loop: a hit is answered there without a
thread hand-off, and a miss waits for PostgreSQL on the read pool (Database.read)
without holding a worker thread.

The encoding is the api layer's, injected as `encode`; this module only knows that an
answer is bytes, that it is true from the instant it was read until the earliest expiry
among its segments, and that the cache's ticket must be taken before the database is.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from segsvc.cache.read_cache import FOREVER, ReadCache
from segsvc.domain.clock import Clock
from segsvc.domain.models import ActiveSegment
from segsvc.domain.user_ids import MAX_BATCH, require_user_id, require_user_ids
from segsvc.store import memberships
from segsvc.store.database import Database

Encoder = Callable[[int, Sequence[ActiveSegment]], bytes]


def valid_until(segments: Sequence[ActiveSegment]) -> datetime:
    """When a read of these segments stops being true: the earliest expiry among them."""
    return min((s.expires_at for s in segments if s.expires_at is not None), default=FOREVER)


@dataclass(frozen=True)
class Reads:
    """Current segments of users, cached."""

    db: Database
    clock: Clock
    cache: ReadCache
    encode: Encoder

    async def user(self, user_id: int) -> bytes:
        """The encoded active segments of one user."""
        require_user_id(user_id)
        now = self.clock()
        cached = self.cache.get(user_id, now)
        if cached is not None:
            return cached
        ticket = self.cache.ticket()
        segments = await self.db.read(
            lambda conn: memberships.read_active_for_user(conn, user_id, now)
        )
        encoded = self.encode(user_id, segments)
        self.cache.fill(user_id, ticket, encoded, now, valid_until(segments))
        return encoded

    async def users(self, user_ids: Sequence[int]) -> list[bytes]:
        """The encoded active segments of up to 1000 users, one per requested id, in
        request order (duplicates included); the misses cost one query together."""
        require_user_ids(user_ids, MAX_BATCH)
        now = self.clock()
        found: dict[int, bytes] = {}
        for user_id in dict.fromkeys(user_ids):
            if (cached := self.cache.get(user_id, now)) is not None:
                found[user_id] = cached
        missing = sorted(set(user_ids) - found.keys())
        if missing:
            ticket = self.cache.ticket()
            rows = await self.db.read(
                lambda conn: memberships.read_active_for_users(conn, missing, now)
            )
            for user_id in missing:
                segments = rows.get(user_id, [])
                found[user_id] = encoded = self.encode(user_id, segments)
                self.cache.fill(user_id, ticket, encoded, now, valid_until(segments))
        return [found[user_id] for user_id in user_ids]
