"""The one place where exceptions become gRPC statuses.

Domain errors carry their meaning; here they get a status code, a message naming the
field or resource, and google.rpc rich error details (grpcio-status) so that clients
can read field violations without parsing text. Database trouble becomes UNAVAILABLE
(retryable, and expected: no traceback), a full bulk pool RESOURCE_EXHAUSTED with
RetryInfo, lock conflicts ABORTED, and anything unexpected INTERNAL with a request id
to find the traceback in the logs - never UNKNOWN.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import grpc
import psycopg
import psycopg.errors
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from segsvc.api.stream_watchdog import StreamCancelled
from segsvc.domain import errors

Metadata = Sequence[tuple[str, str | bytes]]


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
            code=self.code.value[0], message=self.message, details=list(self.details)
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


def map_exception(exc: BaseException) -> MappedStatus:
    """Translate any exception raised while serving an RPC."""
    code = grpc.StatusCode
    match exc:
        case errors.InvalidArgument():
            bad_request = error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(
                        field=v.field, description=v.description
                    )
                    for v in exc.violations
                ]
            )
            return MappedStatus(code.INVALID_ARGUMENT, str(exc), (_pack(bad_request),))
        case errors.NotFound():
            info = error_details_pb2.ResourceInfo(
                resource_type=exc.resource, resource_name=",".join(exc.names)
            )
            return MappedStatus(code.NOT_FOUND, str(exc), (_pack(info),))
        case errors.AlreadyExists():
            info = error_details_pb2.ResourceInfo(
                resource_type=exc.resource, resource_name=exc.name
            )
            return MappedStatus(code.ALREADY_EXISTS, str(exc), (_pack(info),))
        case errors.Unauthenticated():
            return MappedStatus(code.UNAUTHENTICATED, str(exc))
        case errors.PermissionDenied():
            return MappedStatus(code.PERMISSION_DENIED, str(exc))
        case errors.FailedPrecondition():
            return MappedStatus(code.FAILED_PRECONDITION, str(exc))
        case errors.ResourceExhausted():
            retry = error_details_pb2.RetryInfo()
            retry.retry_delay.FromSeconds(exc.retry_after_seconds)
            return MappedStatus(code.RESOURCE_EXHAUSTED, str(exc), (_pack(retry),))
        case StreamCancelled():
            return MappedStatus(code.CANCELLED, str(exc))
        case psycopg.errors.SerializationFailure() | psycopg.errors.DeadlockDetected():
            return MappedStatus(code.ABORTED, "concurrent change conflicted; retry the call")
        case psycopg.errors.QueryCanceled():
            return MappedStatus(code.DEADLINE_EXCEEDED, "database statement timed out")
        case psycopg.OperationalError() | psycopg.InterfaceError():
            # Expected: the health watcher logs one WARNING per outage, not one per call.
            return MappedStatus(code.UNAVAILABLE, "database unavailable; retry later")
        case _:
            return MappedStatus(code.INTERNAL, "internal error", expected=False)
