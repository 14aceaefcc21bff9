"""Segment slug rules: the one definition shared by validation and the error messages.

Upper-case ASCII only, as in AVITO_DISCOUNT_50: slugs are compared byte for byte, so
forbidding lower case removes a whole class of "DISCOUNT vs Discount" mistakes. The
database enforces the same pattern with a CHECK constraint.
"""

from __future__ import annotations

import re

from segsvc.domain.errors import FieldViolation

SLUG_PATTERN = re.compile(r"[A-Z0-9_]{1,64}")
SLUG_RULE = "must be 1-64 characters of A-Z, 0-9 and _ (e.g. AVITO_DISCOUNT_50)"


def slug_violation(field: str, slug: str) -> FieldViolation | None:
    """Return why `slug` is not a valid slug, or None when it is."""
    if SLUG_PATTERN.fullmatch(slug):
        return None
    shown = slug if len(slug) <= 80 else slug[:77] + "..."
    return FieldViolation(field, f"{shown!r} {SLUG_RULE}")
