"""Request ids (AIP-155): a retried mutating request is applied at most once.

A caller that may retry (a lost response, a timeout) sends the same `request_id`, a
UUID, with every attempt. The first attempt's response is kept for RETENTION with a
fingerprint of the request; a repeat by the same account gets that response back and
changes nothing. The same id with a different request is a caller bug, refused with
INVALID_ARGUMENT rather than silently answered with the other request's response.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from uuid import UUID

from segsvc.domain.errors import InvalidArgument

FIELD = "request_id"
RETENTION = timedelta(hours=24)


@dataclass(frozen=True)
class RequestKey:
    """A request id and the fingerprint of what the request asked for."""

    request_id: UUID
    fingerprint: bytes


@dataclass(frozen=True)
class Replayed:
    """The stored response of an earlier attempt (as the api layer serialized it)."""

    response: bytes


def parse_request_id(text: str) -> UUID | None:
    """The request id of a request (None when absent); INVALID_ARGUMENT unless a UUID."""
    if not text:
        return None
    try:
        return UUID(text)
    except ValueError:
        shown = text if len(text) <= 40 else text[:37] + "..."
        raise InvalidArgument.single(FIELD, f"must be a UUID, got {shown!r}") from None


def check_same_request(key: RequestKey, earlier_fingerprint: bytes) -> None:
    """Refuse a request id reused for a different request."""
    if key.fingerprint != earlier_fingerprint:
        raise InvalidArgument.single(
            FIELD, f"{key.request_id} was already used for a different request"
        )
