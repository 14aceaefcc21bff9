"""What a committed write changed, as far as readers of users' segments are concerned.

The write path reports it, the same transaction announces it to every segsvc process
(store.change_notices), and each process's read cache forgets exactly that.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class MembershipChange:
    """Users whose active segments changed, or "everyone" for changes too wide to list
    (a segment deleted or rolled out, an import enrolling users in rollouts)."""

    user_ids: frozenset[int] = frozenset()
    everyone: bool = False

    @classmethod
    def users(cls, user_ids: Iterable[int]) -> MembershipChange:
        """A change of these users' memberships."""
        return cls(user_ids=frozenset(user_ids))

    @classmethod
    def all_users(cls) -> MembershipChange:
        """A change that may touch any user."""
        return cls(everyone=True)

    def __bool__(self) -> bool:
        return self.everyone or bool(self.user_ids)
