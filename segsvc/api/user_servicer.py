"""UserService: translation only; the rules are in service_layer.users."""

from __future__ import annotations

from collections.abc import Iterator

import grpc

from segmentation.v1 import user_service_pb2 as pb
from segmentation.v1 import user_service_pb2_grpc as pb_grpc
from segsvc.api import messages
from segsvc.api.call_context import current_account_id
from segsvc.service_layer.users import Users


class UserServicer(pb_grpc.UserServiceServicer):
    """gRPC face of the Users use cases."""

    def __init__(self, users: Users) -> None:
        self.users = users

    def CreateUser(
        self, request: pb.CreateUserRequest, context: grpc.ServicerContext
    ) -> pb.CreateUserResponse:
        segments = self.users.create_user(request.user_id, current_account_id())
        return pb.CreateUserResponse(user=messages.user_segments(request.user_id, segments))

    def ImportUsers(
        self, request_iterator: Iterator[pb.ImportUsersRequest], context: grpc.ServicerContext
    ) -> pb.ImportUsersResponse:
        result = self.users.import_users(
            (message.user_ids for message in request_iterator), current_account_id()
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

    def GetUserSegments(
        self, request: pb.GetUserSegmentsRequest, context: grpc.ServicerContext
    ) -> pb.GetUserSegmentsResponse:
        as_of = messages.to_datetime(request.as_of, "as_of") if request.HasField("as_of") else None
        segments = self.users.get(request.user_id, as_of)
        return pb.GetUserSegmentsResponse(user=messages.user_segments(request.user_id, segments))

    def BatchGetUserSegments(
        self, request: pb.BatchGetUserSegmentsRequest, context: grpc.ServicerContext
    ) -> pb.BatchGetUserSegmentsResponse:
        found = self.users.batch_get(list(request.user_ids))
        return pb.BatchGetUserSegmentsResponse(
            users=[messages.user_segments(uid, segments) for uid, segments in found]
        )
