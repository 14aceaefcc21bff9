"""One exception class per gRPC status, carrying what the server said about the fields.

segsvc puts google.rpc rich error details in the `grpc-status-details-bin` trailer
(BadRequest field violations for INVALID_ARGUMENT, ResourceInfo for NOT_FOUND and
ALREADY_EXISTS). They are decoded here with protobuf alone, through wire-compatible
copies of those messages, so the client needs neither grpcio-status nor
googleapis-common-protos. Catch `SegsvcError` for everything, or one subclass:

    try:
        client.get_segment("NO_SUCH")
    except segsvc_client.NotFound as exc:
        print(exc.resource)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from segsvc_client._proto import rpc_status_pb2

STATUS_DETAILS_KEY = "grpc-status-details-bin"
REQUEST_ID_KEY = "x-request-id"
_BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"
_RESOURCE_INFO = "type.googleapis.com/google.rpc.ResourceInfo"


@dataclass(frozen=True)
class FieldViolation:
    """One bad field of a request, named by its path (e.g. `add[0].slug`)."""

    field: str
    description: str


@dataclass(frozen=True)
class ResourceInfo:
    """The resource a NOT_FOUND or ALREADY_EXISTS is about."""

    resource_type: str
    resource_name: str


class SegsvcError(Exception):
    """A call failed with a non-OK status; subclasses name the status."""

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(
        self,
        message: str,
        *,
        field_violations: tuple[FieldViolation, ...] = (),
        resource: ResourceInfo | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field_violations = field_violations
        self.resource = resource
        self.request_id = request_id

    def __str__(self) -> str:
        text = f"{self.code.name}: {self.message}"
        if self.request_id:
            text += f" (request id {self.request_id})"
        return text


class Cancelled(SegsvcError):
    code = grpc.StatusCode.CANCELLED


class InvalidArgument(SegsvcError):
    """The request was wrong; `field_violations` says which fields and why."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class DeadlineExceeded(SegsvcError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class NotFound(SegsvcError):
    """A named segment (or other resource) does not exist; see `resource`."""

    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(SegsvcError):
    code = grpc.StatusCode.ALREADY_EXISTS


class PermissionDenied(SegsvcError):
    """The credential is valid but its role may not make this call."""

    code = grpc.StatusCode.PERMISSION_DENIED


class ResourceExhausted(SegsvcError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class FailedPrecondition(SegsvcError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class Aborted(SegsvcError):
    """A concurrent change conflicted; the call may be repeated."""

    code = grpc.StatusCode.ABORTED


class OutOfRange(SegsvcError):
    code = grpc.StatusCode.OUT_OF_RANGE


class Unimplemented(SegsvcError):
    code = grpc.StatusCode.UNIMPLEMENTED


class Internal(SegsvcError):
    code = grpc.StatusCode.INTERNAL


class Unavailable(SegsvcError):
    """The server (or its database) could not be reached, after the channel's retries."""

    code = grpc.StatusCode.UNAVAILABLE


class DataLoss(SegsvcError):
    code = grpc.StatusCode.DATA_LOSS


class Unauthenticated(SegsvcError):
    """No credential, or one that is wrong, expired or revoked."""

    code = grpc.StatusCode.UNAUTHENTICATED


_BY_CODE: dict[grpc.StatusCode, type[SegsvcError]] = {
    cls.code: cls
    for cls in (
        Cancelled,
        InvalidArgument,
        DeadlineExceeded,
        NotFound,
        AlreadyExists,
        PermissionDenied,
        ResourceExhausted,
        FailedPrecondition,
        Aborted,
        OutOfRange,
        Unimplemented,
        Internal,
        Unavailable,
        DataLoss,
        Unauthenticated,
    )
}


def from_rpc_error(error: grpc.RpcError) -> SegsvcError:
    """The SegsvcError for a failed call (sync or grpc.aio)."""
    call: Any = error  # every RpcError raised by a call is also a grpc.Call
    code: grpc.StatusCode = call.code() if hasattr(call, "code") else grpc.StatusCode.UNKNOWN
    message: str = (call.details() if hasattr(call, "details") else None) or str(error)
    trailers: Iterable[tuple[str, str | bytes]] = (
        call.trailing_metadata() if hasattr(call, "trailing_metadata") else None
    ) or ()
    violations: tuple[FieldViolation, ...] = ()
    resource: ResourceInfo | None = None
    request_id: str | None = None
    for key, value in trailers:
        if key == REQUEST_ID_KEY and isinstance(value, str):
            request_id = value
        elif key == STATUS_DETAILS_KEY and isinstance(value, bytes):
            violations, resource = _decode_details(value)
    cls = _BY_CODE.get(code, SegsvcError)
    return cls(message, field_violations=violations, resource=resource, request_id=request_id)


def _decode_details(raw: bytes) -> tuple[tuple[FieldViolation, ...], ResourceInfo | None]:
    try:
        status = rpc_status_pb2.Status.FromString(raw)
        violations: list[FieldViolation] = []
        resource = None
        for detail in status.details:
            if detail.type_url == _BAD_REQUEST:
                bad = rpc_status_pb2.BadRequest.FromString(detail.value)
                violations += [FieldViolation(v.field, v.description) for v in bad.field_violations]
            elif detail.type_url == _RESOURCE_INFO:
                info = rpc_status_pb2.ResourceInfo.FromString(detail.value)
                resource = ResourceInfo(info.resource_type, info.resource_name)
    except DecodeError:  # details are a courtesy: never hide the status behind them
        return (), None
    return tuple(violations), resource


@contextmanager
def translated() -> Iterator[None]:
    """Turn grpc.RpcError raised inside into the matching SegsvcError."""
    try:
        yield
    except grpc.RpcError as exc:
        raise from_rpc_error(exc) from exc
