"""End-user ids: caller-chosen positive int64 values."""

from __future__ import annotations

from collections.abc import Sequence

from segsvc.domain.errors import FieldViolation, InvalidArgument

MAX_BATCH = 1000


def user_id_violation(field: str, user_id: int) -> FieldViolation | None:
    """Why `user_id` is unacceptable, or None. Zero is proto3's "unset", hence > 0."""
    if user_id > 0:
        return None
    return FieldViolation(field, f"must be a positive integer, got {user_id}")


def require_user_id(user_id: int, field: str = "user_id") -> None:
    """Raise InvalidArgument unless `user_id` is valid."""
    violation = user_id_violation(field, user_id)
    if violation:
        raise InvalidArgument([violation])


def require_user_ids(user_ids: Sequence[int], limit: int, field: str = "user_ids") -> None:
    """Validate a list of ids with an upper bound on its length."""
    if len(user_ids) > limit:
        raise InvalidArgument.single(field, f"at most {limit} ids allowed, got {len(user_ids)}")
    violations = [
        v for i, uid in enumerate(user_ids) if (v := user_id_violation(f"{field}[{i}]", uid))
    ]
    if violations:
        raise InvalidArgument(violations[:10])
