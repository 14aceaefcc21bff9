"""Fuzz every RPC of segmentation.v1 with messages generated from its descriptors.

Whatever arrives, a caller with a valid token must get a status that says what is wrong
(or OK): never UNKNOWN or INTERNAL, and the server must still answer afterwards. RPCs
are enumerated from the generated modules' service descriptors, so a new RPC or field
is fuzzed without editing this file; streams are sent in several messages and read to
the end. Some requests are raw bytes, which may not parse as the request type.

Profiles: `ci` (the default) runs SEGSVC_FUZZ_EXAMPLES examples per RPC, 20 unless
set; the deep run is e.g. `SEGSVC_FUZZ_EXAMPLES=2000 pytest tests/e2e/test_fuzz.py`.
The fuzz gets its own database and server: it creates rollout segments, which would
enrol the users of every other test.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor, message_factory
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import segmentation.v1
from segmentation.v1 import auth_service_pb2 as auth_pb
from segmentation.v1 import auth_service_pb2_grpc as auth_grpc
from segsvc.config import DEFAULT_MIGRATIONS_DIR as MIGRATIONS
from segsvc.domain.roles import Role
from segsvc.server import SegsvcServer
from segsvc.service_layer.accounts import create_account
from segsvc.store.migrations import migrate
from tests.support.proto_strategies import messages
from tests.support.servers import make_settings

EXAMPLES = int(os.environ.get("SEGSVC_FUZZ_EXAMPLES", "20"))
FORBIDDEN = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL}
CALL_TIMEOUT = 30.0
MAX_STREAM_MESSAGES = 3
FUZZ_ADMIN = ("fuzz-admin", "fuzz-password")
# The suite's 300 s per test fits the CI profile; a deep run gets a second per example.
pytestmark = pytest.mark.timeout(max(300, EXAMPLES))

settings.register_profile(
    "fuzz",
    max_examples=EXAMPLES,
    deadline=None,  # one call may meet a cold cache or a busy core; the timeout bounds it
    database=None,  # nothing written to the work tree
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def methods() -> Iterator[descriptor.MethodDescriptor]:
    """Every method of every service in the generated segmentation.v1 package."""
    for module in pkgutil.iter_modules(segmentation.v1.__path__):
        if module.name.endswith("_pb2"):
            generated = importlib.import_module(f"segmentation.v1.{module.name}")
            for service in generated.DESCRIPTOR.services_by_name.values():
                yield from service.methods


METHODS = list(methods())


def test_every_rpc_is_fuzzed() -> None:
    """The enumeration finds the RPCs of all three services (and any added later)."""
    names = {m.full_name for m in METHODS}
    assert {
        "segmentation.v1.AuthService.SignIn",
        "segmentation.v1.UserService.ImportUsers",
        "segmentation.v1.SegmentService.StreamHistoryReport",
    } <= names


@pytest.fixture(scope="module")
def fuzz_channel(fresh_database: Any) -> Iterator[grpc.Channel]:
    """A server of its own on a database of its own, with an admin account (who may call
    every RPC)."""
    url = fresh_database()
    migrate(url, MIGRATIONS)
    instance = SegsvcServer(make_settings(), url)
    instance.start()
    create_account(instance.db, "Fuzz", *FUZZ_ADMIN, Role.ADMIN, bcrypt_rounds=4)
    with grpc.insecure_channel(f"127.0.0.1:{instance.grpc_port}") as channel:
        yield channel
    instance.stop(grace=1)


@pytest.fixture(scope="module")
def fuzz_metadata(fuzz_channel: grpc.Channel) -> tuple[tuple[str, str], ...]:
    """An admin's token on the fuzz server."""
    username, password = FUZZ_ADMIN
    reply = auth_grpc.AuthServiceStub(fuzz_channel).SignIn(
        auth_pb.SignInRequest(username=username, password=password)
    )
    return (("authorization", f"Bearer {reply.access_token}"),)


def invoker(
    channel: grpc.Channel, method: descriptor.MethodDescriptor
) -> Callable[[list[Message | bytes], tuple[tuple[str, str], ...]], None]:
    """A function sending requests to `method` in its streaming shape, reading all replies."""
    path = f"/{method.containing_service.full_name}/{method.name}"
    response_cls = message_factory.GetMessageClass(method.output_type)
    decode = response_cls.FromString
    timeout = CALL_TIMEOUT

    def encode(request: Message | bytes) -> bytes:
        return request if isinstance(request, bytes) else request.SerializeToString()

    def call(requests: list[Message | bytes], metadata: tuple[tuple[str, str], ...]) -> None:
        if method.client_streaming and method.server_streaming:
            stub: Any = channel.stream_stream(path, encode, decode)
            list(stub(iter(requests), metadata=metadata, timeout=timeout))
        elif method.client_streaming:
            channel.stream_unary(path, encode, decode)(
                iter(requests), metadata=metadata, timeout=timeout
            )
        elif method.server_streaming:
            replies = channel.unary_stream(path, encode, decode)
            list(replies(requests[0], metadata=metadata, timeout=timeout))
        else:
            channel.unary_unary(path, encode, decode)(
                requests[0], metadata=metadata, timeout=timeout
            )

    return call


def requests_for(method: descriptor.MethodDescriptor) -> st.SearchStrategy[list[Message | bytes]]:
    """One request, or for a client stream 0-3 of them; now and then raw bytes that may
    not parse as the request type at all."""
    request: st.SearchStrategy[Message | bytes] = st.one_of(
        messages(method.input_type), messages(method.input_type), st.binary(max_size=32)
    )
    if method.client_streaming:
        return st.lists(request, max_size=MAX_STREAM_MESSAGES)
    return request.map(lambda message: [message])


def status_of(call: Callable[[], None]) -> tuple[grpc.StatusCode, str]:
    """The status a call ended with, and its message."""
    try:
        call()
    except grpc.RpcError as error:
        return error.code(), error.details() or ""
    return grpc.StatusCode.OK, ""


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.full_name)
def test_fuzzed_requests_never_answer_unknown_or_internal(
    fuzz_channel: grpc.Channel,
    fuzz_metadata: tuple[tuple[str, str], ...],
    method: descriptor.MethodDescriptor,
) -> None:
    call = invoker(fuzz_channel, method)
    seen: dict[grpc.StatusCode, int] = {}
    first_message: dict[grpc.StatusCode, str] = {}

    @settings(settings.get_profile("fuzz"))
    @given(requests_for(method))
    def fuzz(requests: list[Message | bytes]) -> None:
        code, details = status_of(lambda: call(requests, fuzz_metadata))
        assert code not in FORBIDDEN, f"{code.name}: {details}"
        assert code != grpc.StatusCode.DEADLINE_EXCEEDED, "the call timed out"
        seen[code] = seen.get(code, 0) + 1
        first_message.setdefault(code, details[:200])

    fuzz()
    if os.environ.get("SEGSVC_FUZZ_REPORT"):
        print(f"\n{method.full_name}: {sorted((c.name, n) for c, n in seen.items())}")
        for code, message in sorted(first_message.items(), key=lambda item: item[0].name):
            print(f"  first {code.name}: {message}")
    health = health_pb2_grpc.HealthStub(fuzz_channel)
    reply = health.Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
