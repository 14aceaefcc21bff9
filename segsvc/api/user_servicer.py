"""UserService: translation only; the rules are in service_layer.users and .reads.

GetUserSegments and BatchGetUserSegments answer with already-encoded response bytes
(from the read cache, or encoded once on a miss), registered by `add_to_server` with an
identity response serializer, so a cache hit goes to the wire without protobuf work.
Errors still travel as exceptions through the interceptor's status mapping.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, cast

import grpc

from segmentation.v1 import user_service_pb2 as pb
from segmentation.v1 import user_service_pb2_grpc as pb_grpc
from segsvc.api import messages
from segsvc.api.call_context import current_account_id
from segsvc.domain.errors import Cancelled
from segsvc.service_layer.reads import Reads
from segsvc.service_layer.users import Users

ENCODED_RESPONSES = ("GetUserSegments", "BatchGetUserSegments")

if TYPE_CHECKING:
    _Handler = grpc.RpcMethodHandler[Any, Any]
else:  # grpc's runtime classes are not generic
    _Handler = grpc.RpcMethodHandler


class UserServicer(pb_grpc.UserServiceServicer):
    """gRPC face of the Users use cases."""

    def __init__(self, users: Users, reads: Reads) -> None:
        self.users = users
        self.reads = reads

    def CreateUser(
        self, request: pb.CreateUserRequest, context: grpc.ServicerContext
    ) -> pb.CreateUserResponse:
        segments = self.users.create_user(request.user_id, current_account_id())
        return pb.CreateUserResponse(user=messages.user_segments(request.user_id, segments))

    def ImportUsers(
        self, request_iterator: Iterator[pb.ImportUsersRequest], context: grpc.ServicerContext
    ) -> pb.ImportUsersResponse:
        result = self.users.import_users(
            _client_stream(request_iterator), current_account_id(), context.is_active
        )
        return pb.ImportUsersResponse(
            received_count=result.received,
            created_count=result.created,
            rollout_membership_count=result.rollout_memberships,
        )

    def UpdateUserSegments(
        self, request: pb.UpdateUserSegmentsRequest, context: grpc.ServicerContext
    ) -> pb.UpdateUserSegmentsResponse:
        segments = self.users.update(
            request.user_id,
            messages.additions(request.add),
            list(request.remove),
            current_account_id(),
        )
        return pb.UpdateUserSegmentsResponse(user=messages.user_segments(request.user_id, segments))

    # These two return encoded bytes: the override is deliberate (see add_to_server).
    def GetUserSegments(  # type: ignore[override]
        self, request: pb.GetUserSegmentsRequest, context: grpc.ServicerContext
    ) -> bytes:
        if not request.HasField("as_of"):
            return self.reads.user(request.user_id)
        segments = self.users.get(request.user_id, messages.to_datetime(request.as_of, "as_of"))
        return messages.encoded_user_segments(request.user_id, segments)

    def BatchGetUserSegments(  # type: ignore[override]
        self, request: pb.BatchGetUserSegmentsRequest, context: grpc.ServicerContext
    ) -> bytes:
        return messages.concatenated(self.reads.users(request.user_ids))


def _identity(response: bytes) -> bytes:
    return response


class _Registrar:
    """Stands in for the server while the generated code registers UserService, so the
    two read methods' handlers can be given the identity serializer on the way."""

    def __init__(self, server: grpc.Server) -> None:
        self.server = server

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        pass  # registered below from the same handlers, serializers replaced

    def add_registered_method_handlers(self, service: str, handlers: dict[str, _Handler]) -> None:
        for name in ENCODED_RESPONSES:
            handlers[name] = handlers[name]._replace(response_serializer=_identity)  # type: ignore[attr-defined]
        self.server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(service, handlers),)
        )
        self.server.add_registered_method_handlers(service, handlers)  # type: ignore[attr-defined]


def add_to_server(servicer: UserServicer, server: grpc.Server) -> None:
    """Register UserService like the generated function, the reads sending bytes as is."""
    # grpc-stubs predates add_registered_method_handlers: the registrar has both methods
    pb_grpc.add_UserServiceServicer_to_server(servicer, cast(grpc.Server, _Registrar(server)))


def _client_stream(requests: Iterator[pb.ImportUsersRequest]) -> Iterator[Sequence[int]]:
    """The ids of each message; a client that cancels makes grpcio's iterator raise a
    bare RpcError, which here becomes what it means rather than an INTERNAL."""
    try:
        for message in requests:
            yield message.user_ids
    except grpc.RpcError:
        raise Cancelled("the client cancelled the stream; nothing was imported") from None
