"""Opaque AIP-158 page tokens for ListSegments: keyset position, not an offset.

A keyset token (the last slug returned) stays correct while segments are created and
deleted between pages, and costs an index seek instead of skipping rows.
"""

from __future__ import annotations

import base64
import binascii
import json

from segsvc.domain.errors import InvalidArgument
from segsvc.domain.slugs import SLUG_PATTERN

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


def page_size(requested: int) -> int:
    """AIP-158: 0 means the default; above the maximum is coerced to it; < 0 is an error."""
    if requested < 0:
        raise InvalidArgument.single("page_size", f"must not be negative, got {requested}")
    return min(requested or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def encode(last_slug: str) -> str:
    """Token that continues after `last_slug`."""
    return base64.urlsafe_b64encode(json.dumps({"after": last_slug}).encode()).decode()


def decode(token: str) -> str:
    """The slug a token continues after ('' for the first page)."""
    if not token:
        return ""
    try:
        after = json.loads(base64.urlsafe_b64decode(token.encode()))["after"]
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise InvalidArgument.single("page_token", "is not a token this API issued") from None
    if not isinstance(after, str) or not SLUG_PATTERN.fullmatch(after):
        raise InvalidArgument.single("page_token", "is not a token this API issued")
    return after
