"""Request ids (AIP-155) at the edge: a request's key, and its answer, fresh or replayed.

The fingerprint is a SHA-256 of the method's request type and the request's
deterministic serialization without its request_id, so a retry of the same request
matches and anything else sent under the same id does not. A replayed answer is the
first attempt's serialized response, parsed back unchanged.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import TypeVar

from google.protobuf.message import Message

from segsvc.domain.request_ids import Replayed, RequestKey, parse_request_id
from segsvc.service_layer.transactions import Once

T = TypeVar("T")
R = TypeVar("R", bound=Message)


def fingerprint(request: Message) -> bytes:
    """What the request asks for, whatever its request_id."""
    copy = type(request)()
    copy.CopyFrom(request)
    copy.ClearField("request_id")
    digest = hashlib.sha256(copy.DESCRIPTOR.full_name.encode())
    digest.update(copy.SerializeToString(deterministic=True))
    return digest.digest()


def once(request: Message, respond: Callable[[T], Message]) -> Once[T] | None:
    """How to apply a unary request at most once (None without a request_id)."""
    request_id = parse_request_id(getattr(request, "request_id"))  # noqa: B009
    if request_id is None:
        return None
    key = RequestKey(request_id, fingerprint(request))
    return Once(lambda: key, lambda result: respond(result).SerializeToString())


def answer(result: T | Replayed, respond: Callable[[T], R], response_type: type[R]) -> R:
    """The response: built from a fresh result, or the first attempt's, replayed."""
    if isinstance(result, Replayed):
        return response_type.FromString(result.response)
    return respond(result)
