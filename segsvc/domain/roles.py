"""Who may call what: roles, the authenticated caller, and the access rule of an RPC.

Roles are ordered: each includes everything the one before it may do, so a rule names
the least role it needs. The rules themselves are declared per RPC in the contract
(proto/segmentation/v1/auth_options.proto) and read once at start-up by the api layer;
this module only decides, with no I/O, so it costs a comparison per call.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from segsvc.domain.errors import PermissionDenied, Unauthenticated


class Role(enum.IntEnum):
    """Account and API key roles; the values are those of the proto enum `Role`."""

    READER = 1
    WRITER = 2
    ADMIN = 3

    @property
    def label(self) -> str:
        """The lower-case name used in the database, the CLI and messages."""
        return self.name.lower()

    @classmethod
    def from_label(cls, label: str) -> Role:
        """The role called `label` ('reader', 'writer', 'admin')."""
        return cls[label.upper()]


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: the account it acts as, with the role it has.

    For an API key, `account_id` is the admin account that created the key (history
    records changes under it) and `role` is the key's own role.
    """

    account_id: int
    role: Role
    key_id: int | None = None


@dataclass(frozen=True)
class AccessRule:
    """Who may call one RPC (the `access` method option of the contract)."""

    role: Role | None
    public: bool = False
    anonymous_allowed: bool = False

    def authorize(self, method: str, principal: Principal | None) -> None:
        """Return if `principal` (None: no credential sent) may call `method`; raise
        Unauthenticated or PermissionDenied naming the role needed otherwise."""
        if self.public:
            return
        if principal is None:
            if self.anonymous_allowed:
                return
            raise Unauthenticated("missing 'authorization: Bearer <token or API key>' metadata")
        if self.role is None or principal.role < self.role:
            needed = self.role.label if self.role else "a declared role"
            raise PermissionDenied(
                f"{method.rsplit('/', 1)[-1]} needs role {needed}; "
                f"this credential has role {principal.role.label}"
            )
