"""The limits of ImportUsers: ids arrive in messages of bounded size.

Each message is checked as it arrives, so a bad id in message 7 of a million-id stream
is reported naming that message, before anything is committed.
"""

from __future__ import annotations

from collections.abc import Sequence

from segsvc.domain.errors import InvalidArgument
from segsvc.domain.user_ids import require_user_ids

MAX_IMPORT_CHUNK = 100_000


def check_chunk(number: int, chunk: Sequence[int]) -> None:
    """Raise InvalidArgument if message `number` holds too many ids or a non-positive one."""
    field = f"user_ids (message {number})"
    if len(chunk) > MAX_IMPORT_CHUNK:
        raise InvalidArgument.single(
            field, f"at most {MAX_IMPORT_CHUNK} ids per message, got {len(chunk)}"
        )
    if chunk and min(chunk) <= 0:
        require_user_ids(chunk, MAX_IMPORT_CHUNK, field)
