"""UserService: translation only; the rules are in service_layer.users and .reads.

GetUserSegments and BatchGetUserSegments are coroutines served on the event loop (the
other methods block and run on worker threads, api.blocking_calls); they answer with
already-encoded response bytes
(from the read cache, or encoded once on a miss), registered by `add_to_server` with an
identity response serializer, so a cache hit goes to the wire without protobuf work.
Errors still travel as exceptions through the interceptor's status mapping.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, cast
from uuid import UUID

import grpc

from segmentation.v1 import user_service_pb2 as pb
from segmentation.v1 import user_service_pb2_grpc as pb_grpc
from segsvc.api import messages, request_ids, user_segments_wire
from segsvc.api.blocking_calls import BlockingCalls
from segsvc.api.call_context import current_account_id
from segsvc.domain.models import ActiveSegment
from segsvc.domain.request_ids import RequestKey, parse_request_id
from segsvc.service_layer.reads import Reads
from segsvc.service_layer.transactions import Once
from segsvc.service_layer.users import ImportResult, Users

ENCODED_RESPONSES = ("GetUserSegments", "BatchGetUserSegments")

if TYPE_CHECKING:
    _Handler = grpc.RpcMethodHandler[Any, Any]
else:  # grpc's runtime classes are not generic
    _Handler = grpc.RpcMethodHandler


class UserServicer(pb_grpc.UserServiceServicer):
    """gRPC face of the Users use cases."""

    def __init__(self, users: Users, reads: Reads, blocking: BlockingCalls) -> None:
        self.users = users
        self.reads = reads
        self.blocking = blocking

    def CreateUser(
        self, request: pb.CreateUserRequest, context: grpc.ServicerContext
    ) -> pb.CreateUserResponse:
        segments = self.users.create_user(request.user_id, current_account_id())
        return pb.CreateUserResponse(user=messages.user_segments(request.user_id, segments))

    def ImportUsers(
        self, request_iterator: Iterator[pb.ImportUsersRequest], context: grpc.ServicerContext
    ) -> pb.ImportUsersResponse:
        stream = _ImportStream(request_iterator)
        result = self.users.import_users(
            stream.chunks(),
            current_account_id(),
            context.is_active,
            Once(stream.key, lambda r: _import_response(r).SerializeToString()),
        )
        return request_ids.answer(result, _import_response, pb.ImportUsersResponse)

    def UpdateUserSegments(
        self, request: pb.UpdateUserSegmentsRequest, context: grpc.ServicerContext
    ) -> pb.UpdateUserSegmentsResponse:
        def respond(segments: list[ActiveSegment]) -> pb.UpdateUserSegmentsResponse:
            return pb.UpdateUserSegmentsResponse(
                user=messages.user_segments(request.user_id, segments)
            )

        result = self.users.update(
            request.user_id,
            messages.additions(request.add),
            list(request.remove),
            current_account_id(),
            request_ids.once(request, respond),
        )
        return request_ids.answer(result, respond, pb.UpdateUserSegmentsResponse)

    # These two are coroutines, served on the event loop, and return encoded bytes: the
    # overrides are deliberate (see add_to_server).
    async def GetUserSegments(  # type: ignore[override]
        self, request: pb.GetUserSegmentsRequest, context: grpc.ServicerContext
    ) -> bytes:
        if not request.HasField("as_of"):
            return await self.reads.user(request.user_id)
        return await self.blocking.run(self._segments_as_of, request)

    async def BatchGetUserSegments(  # type: ignore[override]
        self, request: pb.BatchGetUserSegmentsRequest, context: grpc.ServicerContext
    ) -> bytes:
        return user_segments_wire.concatenated(await self.reads.users(request.user_ids))

    def _segments_as_of(self, request: pb.GetUserSegmentsRequest) -> bytes:
        # A read of the history, rare and not cached: blocking, on a worker thread.
        segments = self.users.get(request.user_id, messages.to_datetime(request.as_of, "as_of"))
        return user_segments_wire.encoded_user_segments(request.user_id, segments)


def _identity(response: bytes) -> bytes:
    return response


class _Registrar:
    """Stands in for the server while the generated code registers UserService, so the
    two read methods' handlers can be given the identity serializer on the way."""

    def __init__(self, server: grpc.aio.Server) -> None:
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


def add_to_server(servicer: UserServicer, server: grpc.aio.Server) -> None:
    """Register UserService like the generated function, the reads sending bytes as is."""
    # grpc-stubs predates add_registered_method_handlers: the registrar has both methods
    pb_grpc.add_UserServiceServicer_to_server(servicer, cast(grpc.Server, _Registrar(server)))


def _import_response(result: ImportResult) -> pb.ImportUsersResponse:
    return pb.ImportUsersResponse(
        received_count=result.received,
        created_count=result.created,
        rollout_membership_count=result.rollout_memberships,
    )


class _ImportStream:
    """The ids of an ImportUsers stream, its request id (from the first message) and
    its fingerprint (known once the stream has ended)."""

    def __init__(self, requests: Iterator[pb.ImportUsersRequest]) -> None:
        self._requests = requests
        self._request_id: UUID | None = None
        self._digest = hashlib.sha256(pb.ImportUsersRequest.DESCRIPTOR.full_name.encode())

    def chunks(self) -> Iterator[Sequence[int]]:
        """Each message's ids. (A cancelled stream raises StreamCancelled from the
        interceptor's watch of the request iterator.)"""
        for number, message in enumerate(self._requests):
            if number == 0:
                self._request_id = parse_request_id(message.request_id)
            # A list once: the import passes over each message's ids several times
            # (check, fingerprint, copy, rollout), each pass over a list a third of
            # one over the protobuf container.
            ids = list(message.user_ids)
            self._digest.update(len(ids).to_bytes(4, "big"))
            # The same bytes as each id's 8-byte big-endian two's complement, packed in
            # one call: a per-id to_bytes cost a tenth of a 1M-id import's time.
            self._digest.update(struct.pack(f">{len(ids)}q", *ids))
            yield ids

    def key(self) -> RequestKey | None:
        """The stream's request key, once it has been read to its end."""
        if self._request_id is None:
            return None
        return RequestKey(self._request_id, self._digest.digest())
