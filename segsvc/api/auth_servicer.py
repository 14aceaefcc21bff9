"""AuthService: translation only; the rules are in service_layer.accounts and .api_keys."""

from __future__ import annotations

import grpc

from segmentation.v1 import auth_service_pb2 as pb
from segmentation.v1 import auth_service_pb2_grpc as pb_grpc
from segsvc.api.call_context import current_principal, required_principal
from segsvc.api.messages import role, role_value, timestamp
from segsvc.domain.api_keys import ApiKey
from segsvc.domain.errors import InvalidArgument
from segsvc.service_layer.accounts import Accounts
from segsvc.service_layer.api_keys import ApiKeys


class AuthServicer(pb_grpc.AuthServiceServicer):
    """gRPC face of Accounts and ApiKeys."""

    def __init__(self, accounts: Accounts, keys: ApiKeys) -> None:
        self.accounts = accounts
        self.keys = keys

    def SignUp(self, request: pb.SignUpRequest, context: grpc.ServicerContext) -> pb.SignUpResponse:
        account_id, granted = self.accounts.sign_up(
            request.name,
            request.username,
            request.password,
            role(request.role, "role"),
            current_principal(),
        )
        return pb.SignUpResponse(account_id=account_id, role=role_value(granted))

    def SignIn(self, request: pb.SignInRequest, context: grpc.ServicerContext) -> pb.SignInResponse:
        token, expires_at = self.accounts.sign_in(request.username, request.password)
        return pb.SignInResponse(access_token=token, expires_at=timestamp(expires_at))

    def DeleteAccount(
        self, request: pb.DeleteAccountRequest, context: grpc.ServicerContext
    ) -> pb.DeleteAccountResponse:
        self.accounts.remove(request.account_id, required_principal())
        return pb.DeleteAccountResponse()

    def CreateApiKey(
        self, request: pb.CreateApiKeyRequest, context: grpc.ServicerContext
    ) -> pb.CreateApiKeyResponse:
        wanted = role(request.role, "role")
        if wanted is None:
            raise InvalidArgument.single("role", "required: ROLE_READER, ROLE_WRITER or ROLE_ADMIN")
        key, secret = self.keys.create(request.name, wanted, required_principal())
        return pb.CreateApiKeyResponse(key_id=key.key_id, api_key=secret)

    def ListApiKeys(
        self, request: pb.ListApiKeysRequest, context: grpc.ServicerContext
    ) -> pb.ListApiKeysResponse:
        return pb.ListApiKeysResponse(api_keys=[_api_key(k) for k in self.keys.list()])

    def RevokeApiKey(
        self, request: pb.RevokeApiKeyRequest, context: grpc.ServicerContext
    ) -> pb.RevokeApiKeyResponse:
        return pb.RevokeApiKeyResponse(api_key=_api_key(self.keys.revoke(request.key_id)))


def _api_key(key: ApiKey) -> pb.ApiKey:
    message = pb.ApiKey(
        key_id=key.key_id,
        name=key.name,
        role=role_value(key.role),
        prefix=key.prefix,
        created_by=key.created_by,
        create_time=timestamp(key.created_at),
    )
    if key.revoked_at is not None:
        message.revoke_time.CopyFrom(timestamp(key.revoked_at))
    return message
