"""Client-side set-up for tests that run their own server: an account and its token."""

from __future__ import annotations

import secrets

import grpc

from segmentation.v1 import auth_service_pb2 as auth_pb
from segmentation.v1 import auth_service_pb2_grpc as auth_grpc

Metadata = tuple[tuple[str, str], ...]


def sign_in(channel: grpc.Channel) -> Metadata:
    """Sign up a fresh account on the server behind `channel`; its bearer metadata."""
    auth = auth_grpc.AuthServiceStub(channel)
    username = f"tester-{secrets.token_hex(4)}"
    auth.SignUp(auth_pb.SignUpRequest(name="Test", username=username, password="password-1"))
    reply = auth.SignIn(auth_pb.SignInRequest(username=username, password="password-1"))
    return (("authorization", f"Bearer {reply.access_token}"),)
