"""Who is calling: set by the interceptor for the duration of one RPC.

A ContextVar rather than a servicer argument keeps servicer signatures exactly those
of the generated base classes. grpc's threaded server runs each handler (and every step
of a streaming handler) on one worker thread, where the interceptor set the value.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass

from segsvc.domain.roles import Principal


@dataclass(frozen=True)
class CallInfo:
    """Identity and correlation id of the current RPC."""

    request_id: str
    principal: Principal | None = None

    @property
    def account_id(self) -> int | None:
        """The account the caller acts as (None for public and anonymous calls)."""
        return self.principal.account_id if self.principal else None


CURRENT_CALL: ContextVar[CallInfo] = ContextVar("segsvc_current_call")


def current_principal() -> Principal | None:
    """The authenticated caller of the current RPC (None for public or anonymous calls)."""
    call = CURRENT_CALL.get(None)
    return call.principal if call else None


def current_account_id() -> int | None:
    """The authenticated account of the current RPC (None for public RPCs)."""
    principal = current_principal()
    return principal.account_id if principal else None


def required_principal() -> Principal:
    """The caller of an RPC whose access rule demands a credential."""
    principal = current_principal()
    assert principal is not None, "the interceptor admits this RPC only with a credential"
    return principal
