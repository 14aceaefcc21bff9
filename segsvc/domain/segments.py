"""What makes a segment valid: its slug, description and rollout salt.

The database enforces the slug pattern and the description length with CHECK
constraints; these rules answer first, naming every bad field at once. PostgreSQL text
cannot hold a NUL character, so one is refused here as a field violation instead of
failing inside the driver.
"""

from __future__ import annotations

from segsvc.domain.errors import FieldViolation, InvalidArgument
from segsvc.domain.slugs import slug_violation

MAX_DESCRIPTION = 1000
MAX_SALT = 200


def text_violation(field: str, value: str, max_length: int) -> FieldViolation | None:
    """Why a free-text field is unacceptable (too long, or a NUL), or None."""
    if len(value) > max_length:
        return FieldViolation(field, f"must be at most {max_length} characters")
    if "\x00" in value:
        return FieldViolation(field, "must not contain NUL characters")
    return None


def validate_segment(slug: str, description: str, rollout_salt: str) -> None:
    """Raise InvalidArgument listing every unacceptable field of a new segment."""
    violations = [
        v
        for v in (
            slug_violation("slug", slug),
            text_violation("description", description, MAX_DESCRIPTION),
            text_violation("rollout_salt", rollout_salt, MAX_SALT),
        )
        if v
    ]
    if violations:
        raise InvalidArgument(violations)


def require_slug(slug: str) -> None:
    """Raise InvalidArgument unless `slug` names a segment validly."""
    if violation := slug_violation("slug", slug):
        raise InvalidArgument([violation])
