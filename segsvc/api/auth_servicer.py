"""AuthService: translation only; the rules are in service_layer.accounts."""

from __future__ import annotations

import grpc

from segmentation.v1 import auth_service_pb2 as pb
from segmentation.v1 import auth_service_pb2_grpc as pb_grpc
from segsvc.api.messages import timestamp
from segsvc.service_layer.accounts import AccountService


class AuthServicer(pb_grpc.AuthServiceServicer):
    """gRPC face of AccountService."""

    def __init__(self, accounts: AccountService) -> None:
        self.accounts = accounts

    def SignUp(self, request: pb.SignUpRequest, context: grpc.ServicerContext) -> pb.SignUpResponse:
        account_id = self.accounts.sign_up(request.name, request.username, request.password)
        return pb.SignUpResponse(account_id=account_id)

    def SignIn(self, request: pb.SignInRequest, context: grpc.ServicerContext) -> pb.SignInResponse:
        token, expires_at = self.accounts.sign_in(request.username, request.password)
        return pb.SignInResponse(access_token=token, expires_at=timestamp(expires_at))
