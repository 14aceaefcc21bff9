"""AuthService and the auth interceptor. Protected RPCs are enumerated from the service
descriptors, so an RPC added later is covered by these tests without editing them."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import grpc
import jwt
import pytest
from google.protobuf import descriptor

from segmentation.v1 import auth_options_pb2, segment_service_pb2, user_service_pb2
from segmentation.v1 import auth_service_pb2 as auth_pb
from segmentation.v1 import auth_service_pb2_grpc as auth_grpc
from segsvc.api.access_rules import rule_of
from tests.support.contract import call_any
from tests.support.names import Names
from tests.support.servers import JWT_SECRET

Metadata = tuple[tuple[str, str], ...]
SERVICES = [
    auth_pb.DESCRIPTOR.services_by_name["AuthService"],
    user_service_pb2.DESCRIPTOR.services_by_name["UserService"],
    segment_service_pb2.DESCRIPTOR.services_by_name["SegmentService"],
]


def protected_methods() -> Iterator[descriptor.MethodDescriptor]:
    """RPCs that need a credential (SignUp without one is decided by SignUp itself)."""
    for service in SERVICES:
        for method in service.methods:
            rule = rule_of(method)
            if not (rule.public or rule.anonymous_allowed):
                yield method


def call_with_token(
    channel: grpc.Channel, method: descriptor.MethodDescriptor, token: str | None
) -> None:
    metadata = (("authorization", f"Bearer {token}"),) if token is not None else ()
    call_any(channel, method, metadata)


def forged_tokens() -> dict[str, str]:
    now = datetime.now(UTC)
    claims = {"sub": "1", "iss": "segsvc", "iat": now, "exp": now + timedelta(hours=1)}

    def b64(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    unsigned = {
        "sub": "1",
        "iss": "segsvc",
        "iat": int(now.timestamp()),
        "exp": int(now.timestamp()) + 3600,
    }
    return {
        "empty": "",
        "garbage": "not-a-jwt",
        "wrong secret": jwt.encode(claims, "another-secret-" + "y" * 60, algorithm="HS256"),
        "alg none": f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(unsigned)}.",
        "HS512": jwt.encode(claims, JWT_SECRET, algorithm="HS512"),
        "expired": jwt.encode(
            {**claims, "iat": now - timedelta(hours=2), "exp": now - timedelta(hours=1)},
            JWT_SECRET,
            algorithm="HS256",
        ),
        "no exp": jwt.encode(
            {"sub": "1", "iss": "segsvc", "iat": now}, JWT_SECRET, algorithm="HS256"
        ),
    }


def test_there_are_protected_methods_in_every_data_service() -> None:
    names = {m.containing_service.name for m in protected_methods()}
    assert names == {"AuthService", "UserService", "SegmentService"}


@pytest.mark.parametrize("method", list(protected_methods()), ids=lambda m: m.name)
def test_every_protected_rpc_requires_a_valid_token(
    channel: grpc.Channel, method: descriptor.MethodDescriptor
) -> None:
    for label, token in [("missing", None), *forged_tokens().items()]:
        with pytest.raises(grpc.RpcError) as err:
            call_with_token(channel, method, token)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED, label


def test_a_valid_token_passes_the_interceptor(channel: grpc.Channel, token: str) -> None:
    get = next(m for m in protected_methods() if m.name == "GetUserSegments")
    with pytest.raises(grpc.RpcError) as err:
        call_with_token(channel, get, token)  # empty request: user_id 0
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_sign_up_sign_in_and_errors(
    channel: grpc.Channel, names: Names, auth_metadata: Metadata
) -> None:
    auth = auth_grpc.AuthServiceStub(channel)
    username = f"ann-{names.tag.lower()}"
    request = auth_pb.SignUpRequest(name="Ann", username=username, password="long-password")
    first = auth.SignUp(request, metadata=auth_metadata)
    assert first.account_id > 0
    assert first.role == auth_options_pb2.ROLE_READER  # the default
    with pytest.raises(grpc.RpcError) as err:
        auth.SignUp(request, metadata=auth_metadata)
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    reply = auth.SignIn(auth_pb.SignInRequest(username=username, password="long-password"))
    claims = jwt.decode(reply.access_token, JWT_SECRET, algorithms=["HS256"], issuer="segsvc")
    assert claims["sub"] == str(first.account_id)
    assert abs(reply.expires_at.seconds - claims["exp"]) <= 1
    for wrong in (
        auth_pb.SignInRequest(username=username, password="wrong-password"),
        auth_pb.SignInRequest(username=f"nobody-{names.tag.lower()}", password="long-password"),
    ):
        with pytest.raises(grpc.RpcError) as err:
            auth.SignIn(wrong)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert err.value.details() == "invalid username or password"


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (auth_pb.SignUpRequest(name="", username="okname", password="long-password"), "name"),
        (
            auth_pb.SignUpRequest(name="A", username="Bad Name", password="long-password"),
            "username",
        ),
        (auth_pb.SignUpRequest(name="A", username="okname", password="short"), "password"),
        (auth_pb.SignUpRequest(name="A", username="okname", password="é" * 40), "password"),
        (
            auth_pb.SignUpRequest(name="x" * 201, username="okname", password="long-password"),
            "name",
        ),
    ],
)
def test_sign_up_validation(
    channel: grpc.Channel, request_: auth_pb.SignUpRequest, field: str
) -> None:
    with pytest.raises(grpc.RpcError) as err:
        auth_grpc.AuthServiceStub(channel).SignUp(request_)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (err.value.details() or "").startswith(field)


def test_sign_in_rejects_empty_fields(channel: grpc.Channel) -> None:
    with pytest.raises(grpc.RpcError) as err:
        auth_grpc.AuthServiceStub(channel).SignIn(auth_pb.SignInRequest())
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "username" in (err.value.details() or "")
    assert "password" in (err.value.details() or "")


def test_password_is_stored_as_bcrypt(
    channel: grpc.Channel, names: Names, db: object, auth_metadata: Metadata
) -> None:
    import psycopg

    assert isinstance(db, psycopg.Connection)
    username = f"hash-{names.tag.lower()}"
    auth_grpc.AuthServiceStub(channel).SignUp(
        auth_pb.SignUpRequest(name="H", username=username, password="plain-text-pw"),
        metadata=auth_metadata,
    )
    row = db.execute(
        "SELECT password_hash FROM accounts WHERE username = %s", (username,)
    ).fetchone()
    assert row is not None
    assert row[0].startswith("$2b$")
    assert "plain-text-pw" not in row[0]
