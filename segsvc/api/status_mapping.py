"""The one place where exceptions become gRPC statuses.

Domain errors carry their meaning; here they get a status code, a message naming the
field or resource, and google.rpc rich error details (grpcio-status) so that clients
can read field violations without parsing text. Database trouble becomes UNAVAILABLE
(retryable, and expected: no traceback), and so do lock conflicts the server has already
retried itself (service_layer/transactions); a full bulk pool is RESOURCE_EXHAUSTED with
RetryInfo; anything unexpected becomes INTERNAL with a request id to find the traceback
in the logs - never UNKNOWN or ABORTED.

Every status is bounded in size: grpc clients refuse trailing metadata over 8-16 KiB
and report RESOURCE_EXHAUSTED instead of the real error, so a request naming 300
unknown slugs must not produce a 150 KB trailer. Lists keep their first MAX_LISTED
entries (fewer if they would pass DETAILS_BUDGET_BYTES), each text is clipped, and an
ErrorInfo (reason DETAILS_TRUNCATED) says how many were left out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import grpc
import psycopg
import psycopg.errors
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from segsvc.api.stream_watchdog import StreamCancelled
from segsvc.domain import errors

Metadata = Sequence[tuple[str, str | bytes]]

MAX_LISTED = 20
DETAILS_BUDGET_BYTES = 2048
MAX_TEXT_BYTES = 200
MAX_MESSAGE_BYTES = 512
ERROR_DOMAIN = "segsvc"

T = TypeVar("T")


@dataclass(frozen=True)
class MappedStatus:
    """A status ready for `context.abort_with_status`, plus what the logs need."""

    code: grpc.StatusCode
    message: str
    details: tuple[any_pb2.Any, ...] = ()
    expected: bool = True

    def to_grpc(self, extra_metadata: Metadata = ()) -> grpc.Status:
        """The grpc.Status (with rich details in trailing metadata)."""
        proto = status_pb2.Status(
            code=self.code.value[0],
            message=clip(self.message, MAX_MESSAGE_BYTES),
            details=list(self.details),
        )
        status = rpc_status.to_status(proto)
        return _Status(status.code, status.details, (*status.trailing_metadata, *extra_metadata))


@dataclass(frozen=True)
class _Status(grpc.Status):
    code: grpc.StatusCode
    details: str
    trailing_metadata: tuple[tuple[str, str | bytes], ...]


def _pack(message: object) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)  # type: ignore[arg-type]
    return packed


def clip(text: str, limit: int) -> str:
    """`text` cut to at most `limit` UTF-8 bytes at a character boundary, marked '...'."""
    encoded = text.encode()
    if len(encoded) <= limit:
        return text
    return encoded[: limit - 3].decode(errors="ignore") + "..."


def first_listed(items: Sequence[T], size: Callable[[T], int]) -> list[T]:
    """The leading items that fit MAX_LISTED and DETAILS_BUDGET_BYTES (at least one)."""
    kept: list[T] = []
    used = 0
    for item in items[:MAX_LISTED]:
        used += size(item)
        if kept and used > DETAILS_BUDGET_BYTES:
            break
        kept.append(item)
    return kept


def _message(head: str, entries: Sequence[str], total: int, separator: str) -> str:
    """`head` and as many whole entries as fit MAX_MESSAGE_BYTES, then a count of the rest."""
    room = MAX_MESSAGE_BYTES - len(f" (and {total} more)")
    text, shown = head, 0
    for entry in entries:
        longer = text + (separator if shown else "") + entry
        if shown and len(longer.encode()) > room:
            break
        text, shown = longer, shown + 1
    rest = f" (and {total - shown} more)" if shown < total else ""
    return clip(text, room) + rest


def _truncation(total: int, listed: int) -> tuple[any_pb2.Any, ...]:
    """An ErrorInfo saying how many entries the details leave out (none if complete)."""
    if listed == total:
        return ()
    info = error_details_pb2.ErrorInfo(
        reason="DETAILS_TRUNCATED",
        domain=ERROR_DOMAIN,
        metadata={"total": str(total), "listed": str(listed)},
    )
    return (_pack(info),)


def _invalid_argument(exc: errors.InvalidArgument) -> MappedStatus:
    violations = first_listed(
        [
            error_details_pb2.BadRequest.FieldViolation(
                field=clip(v.field, MAX_TEXT_BYTES), description=clip(v.description, MAX_TEXT_BYTES)
            )
            for v in exc.violations[:MAX_LISTED]
        ],
        lambda v: v.ByteSize(),
    )
    entries = [f"{v.field}: {v.description}" for v in violations]
    bad_request = error_details_pb2.BadRequest(field_violations=violations)
    return MappedStatus(
        grpc.StatusCode.INVALID_ARGUMENT,
        _message("", entries, len(exc.violations), "; "),
        (_pack(bad_request), *_truncation(len(exc.violations), len(violations))),
    )


def _not_found(exc: errors.NotFound) -> MappedStatus:
    names = first_listed(
        [clip(name, MAX_TEXT_BYTES) for name in exc.names[:MAX_LISTED]],
        lambda name: len(name.encode()) + 1,
    )
    plural = "s" if len(exc.names) > 1 else ""
    info = error_details_pb2.ResourceInfo(resource_type=exc.resource, resource_name=",".join(names))
    return MappedStatus(
        grpc.StatusCode.NOT_FOUND,
        _message(f"{exc.resource}{plural} not found: ", names, len(exc.names), ", "),
        (_pack(info), *_truncation(len(exc.names), len(names))),
    )


def map_exception(exc: BaseException) -> MappedStatus:
    """Translate any exception raised while serving an RPC."""
    code = grpc.StatusCode
    match exc:
        case errors.InvalidArgument():
            return _invalid_argument(exc)
        case errors.NotFound():
            return _not_found(exc)
        case errors.AlreadyExists():
            info = error_details_pb2.ResourceInfo(
                resource_type=exc.resource, resource_name=clip(exc.name, MAX_TEXT_BYTES)
            )
            return MappedStatus(code.ALREADY_EXISTS, str(exc), (_pack(info),))
        case errors.Unauthenticated():
            return MappedStatus(code.UNAUTHENTICATED, str(exc))
        case errors.PermissionDenied():
            return MappedStatus(code.PERMISSION_DENIED, str(exc))
        case errors.ResourceExhausted():
            retry = error_details_pb2.RetryInfo()
            retry.retry_delay.FromSeconds(exc.retry_after_seconds)
            return MappedStatus(code.RESOURCE_EXHAUSTED, str(exc), (_pack(retry),))
        case errors.FailedPrecondition():
            return MappedStatus(code.FAILED_PRECONDITION, str(exc))
        case errors.Cancelled() | StreamCancelled():
            return MappedStatus(code.CANCELLED, str(exc))
        case psycopg.errors.SerializationFailure() | psycopg.errors.DeadlockDetected():
            # Already retried inside the server; UNAVAILABLE is what retry policies retry.
            return MappedStatus(
                code.UNAVAILABLE, "concurrent changes kept conflicting; retry the call"
            )
        case psycopg.errors.QueryCanceled():
            return MappedStatus(code.DEADLINE_EXCEEDED, "database statement timed out")
        case psycopg.OperationalError() | psycopg.InterfaceError():
            # Expected: the health watcher logs one WARNING per outage, not one per call.
            return MappedStatus(code.UNAVAILABLE, "database unavailable; retry later")
        case _:
            return MappedStatus(code.INTERNAL, "internal error", expected=False)
