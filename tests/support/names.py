"""Unique slugs and user ids, so tests sharing one database never touch each other's data."""

from __future__ import annotations

import itertools
import secrets

_user_ids = itertools.count(secrets.randbelow(1_000_000) * 1_000_000 + 10_000_000_000)


class Names:
    """Fresh names for one test."""

    def __init__(self) -> None:
        self.tag = secrets.token_hex(4).upper()

    def slug(self, label: str = "SEG") -> str:
        """A slug unique to this test: LABEL_<tag>."""
        return f"{label}_{self.tag}"

    def user_id(self) -> int:
        """A user id no other test in this run uses."""
        return next(_user_ids)

    def user_ids(self, count: int) -> list[int]:
        """`count` fresh consecutive user ids."""
        return [self.user_id() for _ in range(count)]
