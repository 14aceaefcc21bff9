"""Who is calling: set by the interceptor for the duration of one RPC.

A ContextVar rather than a servicer argument keeps servicer signatures exactly those
of the generated base classes. grpc's threaded server runs each handler (and every step
of a streaming handler) on one worker thread, where the interceptor set the value.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True)
class CallInfo:
    """Identity and correlation id of the current RPC."""

    request_id: str
    account_id: int | None = None


CURRENT_CALL: ContextVar[CallInfo] = ContextVar("segsvc_current_call")


def current_account_id() -> int | None:
    """The authenticated account of the current RPC (None for public RPCs)."""
    call = CURRENT_CALL.get(None)
    return call.account_id if call else None
