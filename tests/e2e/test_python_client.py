"""segsvc_client (clients/python) against the real server: API keys and password sign-in,
every method, plain results, one exception per status with the server's field
violations, and the channel's retry policy (reads repeated on UNAVAILABLE, plain writes
never)."""

from __future__ import annotations

import asyncio
import secrets
import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from datetime import UTC, date, datetime, timedelta
from typing import Any

import grpc
import pytest

import segsvc_client
from segsvc.server import SegsvcServer
from segsvc_client import (
    AsyncSegsvcClient,
    MembershipReason,
    Role,
    SegmentAddition,
    SegsvcClient,
)
from segsvc_client._proto.segmentation.v1 import user_service_pb2 as client_user_pb
from tests.conftest import ADMIN_CREDENTIALS
from tests.support.names import Names

PASSWORD = "password-1"


@pytest.fixture(scope="session")
def target(server: SegsvcServer) -> str:
    return f"127.0.0.1:{server.grpc_port}"


@pytest.fixture(scope="session")
def admin(target: str) -> Iterator[SegsvcClient]:
    """The session admin, signing in with a password (the client renews the token)."""
    username, password = ADMIN_CREDENTIALS
    with SegsvcClient(target, username=username, password=password) as instance:
        yield instance


@pytest.fixture(scope="session")
def writer_key(admin: SegsvcClient) -> str:
    return admin.create_api_key("client tests", Role.WRITER).api_key


@pytest.fixture(scope="session")
def client(target: str, writer_key: str) -> Iterator[SegsvcClient]:
    """What a service uses: a writer API key."""
    with SegsvcClient(target, api_key=writer_key) as instance:
        yield instance


def test_api_keys_roles_and_revocation(admin: SegsvcClient, target: str, names: Names) -> None:
    created = admin.create_api_key(f"reader {names.tag}", "reader")
    listed = {k.key_id: k for k in admin.list_api_keys()}
    assert listed[created.key_id].role is Role.READER
    assert listed[created.key_id].revoke_time is None
    assert created.api_key.startswith(listed[created.key_id].prefix)

    with SegsvcClient(target, api_key=created.api_key) as reader:
        assert reader.get_user_segments(names.user_id()).segments == ()
        with pytest.raises(segsvc_client.PermissionDenied) as denied:
            reader.update_user_segments(names.user_id(), add=[names.slug()])
        assert "writer" in denied.value.message
        with pytest.raises(segsvc_client.PermissionDenied):
            reader.create_api_key("escalate", Role.ADMIN)

        revoked = admin.revoke_api_key(created.key_id)
        assert revoked.revoke_time is not None
        with pytest.raises(segsvc_client.Unauthenticated):
            reader.get_user_segments(names.user_id())


def test_deleted_account_can_no_longer_call(admin: SegsvcClient, target: str) -> None:
    username = f"gone-{secrets.token_hex(4)}"
    account_id = admin.sign_up(username, PASSWORD, role=Role.WRITER)
    with SegsvcClient(target, username=username, password=PASSWORD) as person:
        person.get_user_segments(1)
        admin.delete_account(account_id)
        with pytest.raises(segsvc_client.Unauthenticated):
            person.get_user_segments(1)


def test_update_and_read_back_plain_values(client: SegsvcClient, names: Names) -> None:
    keep, temporary = names.slug("KEEP"), names.slug("TMP")
    client.create_segment(keep, description="kept")
    client.create_segment(temporary)
    user_id = names.user_id()

    updated = client.update_user_segments(
        user_id, add=[keep, SegmentAddition(temporary, ttl=timedelta(hours=1))]
    )

    assert updated == client.get_user_segments(user_id)
    assert updated.user_id == user_id
    assert updated.slugs == (keep, temporary)
    kept, expiring = updated.segments
    assert kept.expires_at is None
    assert kept.reason is MembershipReason.MANUAL
    assert expiring.expires_at is not None
    assert expiring.expires_at.tzinfo is not None
    assert timedelta(minutes=59) < expiring.expires_at - expiring.added_at <= timedelta(hours=1)
    after = client.update_user_segments(user_id, remove=[temporary])
    assert after.slugs == (keep,)
    assert [u.slugs for u in client.batch_get_user_segments([user_id, names.user_id()])] == [
        (keep,),
        (),
    ]


def test_segments_pages_members_import_and_delete(client: SegsvcClient, names: Names) -> None:
    slugs = [names.slug(f"PAGE{i}") for i in range(3)]
    for slug in slugs:
        client.create_segment(slug)
    listed = [s.slug for s in client.list_segments(page_size=1)]
    assert [s for s in listed if s in slugs] == slugs
    assert len(listed) == len(set(listed))

    ids = names.user_ids(25)
    chunks: list[int] = []
    result = client.import_users(iter(ids), chunk_size=10, on_chunk=chunks.append)
    assert chunks == [10, 10, 5]
    assert (result.received_count, result.created_count) == (25, 25)
    for user_id in ids[:3]:
        client.update_user_segments(user_id, add=[slugs[0]])
    assert list(client.list_segment_users(slugs[0])) == ids[:3]
    assert client.get_segment(slugs[0]).member_count == 3

    deleted = client.delete_segment(slugs[0])
    assert deleted.member_count == 3
    with pytest.raises(segsvc_client.NotFound) as caught:
        client.get_segment(slugs[0])
    assert caught.value.resource is not None
    assert caught.value.resource.resource_name == slugs[0]


def test_rollout_and_validate_only(client: SegsvcClient, names: Names) -> None:
    slug = names.slug("ROLL")
    preview = client.create_segment(slug, auto_percent=50, validate_only=True)
    assert preview.auto_percent == 50
    with pytest.raises(segsvc_client.NotFound):
        client.get_segment(slug)
    created = client.create_segment(slug, auto_percent=12.5, rollout_salt="s1")
    # A live rollout would enrol the users of later tests.
    client.delete_segment(slug)
    assert (created.auto_percent, created.rollout_salt) == (12.5, "s1")
    assert created.create_time <= datetime.now(UTC)


def test_history_report_link_and_stream(client: SegsvcClient, names: Names) -> None:
    slug, user_id = names.slug("REPORT"), names.user_id()
    client.create_segment(slug)
    client.update_user_segments(user_id, add=[slug])
    today = date.today()
    link = client.get_history_report(today.year, today.month, user_ids=[user_id])
    assert link.url.startswith("http")
    assert link.expires_at > datetime.now(UTC)
    csv = b"".join(client.stream_history_report(today.year, today.month, user_ids=[user_id]))
    header, *rows = csv.decode().splitlines()
    assert header == "user_id;segment;operation;timestamp"
    # Other tests' rollout segments may enrol the user too.
    assert [r.rsplit(";", 1)[0] for r in rows if slug in r] == [f"{user_id};{slug};add"]


def test_invalid_argument_carries_field_violations(client: SegsvcClient, names: Names) -> None:
    with pytest.raises(segsvc_client.InvalidArgument) as caught:
        client.update_user_segments(0, add=["not a slug"])
    fields = {v.field for v in caught.value.field_violations}
    assert {"user_id", "add[0].slug"} <= fields
    assert caught.value.request_id
    assert isinstance(caught.value, segsvc_client.SegsvcError)


def test_missing_or_wrong_credentials_are_unauthenticated(target: str) -> None:
    with (
        SegsvcClient(target, api_key="not-a-key") as forged,
        pytest.raises(segsvc_client.Unauthenticated),
    ):
        forged.get_user_segments(1)
    with SegsvcClient(target) as anonymous, pytest.raises(segsvc_client.Unauthenticated):
        anonymous.get_user_segments(1)
    with (
        SegsvcClient(target, username="nobody-here", password="wrong-password") as stranger,
        pytest.raises(segsvc_client.Unauthenticated),
    ):
        stranger.get_user_segments(1)


def test_unreachable_server_is_unavailable() -> None:
    with SegsvcClient("127.0.0.1:1", api_key="k", timeout=2) as client:
        with pytest.raises(segsvc_client.Unavailable):
            client.get_user_segments(1)
        with pytest.raises(segsvc_client.Unavailable):
            client.update_user_segments(1, add=["A"])


def test_async_client_matches_the_blocking_one(
    client: SegsvcClient, target: str, writer_key: str, names: Names
) -> None:
    slug, user_id = names.slug("ASYNC"), names.user_id()
    username, password = ADMIN_CREDENTIALS

    async def scenario() -> None:
        async with AsyncSegsvcClient(target, username=username, password=password) as admin:
            created = await admin.create_api_key(f"async {names.tag}", Role.READER)
            assert created.key_id in [k.key_id for k in await admin.list_api_keys()]
            await admin.revoke_api_key(created.key_id)
        async with AsyncSegsvcClient(target, api_key=writer_key) as aio:
            await aio.create_segment(slug)
            updated = await aio.update_user_segments(user_id, add=[slug])
            assert updated == await aio.get_user_segments(user_id)
            assert updated == client.get_user_segments(user_id)
            assert [u async for u in aio.list_segment_users(slug)] == [user_id]
            assert slug in [s.slug async for s in aio.list_segments(page_size=2)]
            result = await aio.import_users(names.user_ids(3), chunk_size=2)
            assert result.created_count == 3
            with pytest.raises(segsvc_client.NotFound):
                await aio.get_segment(names.slug("MISSING"))
            with pytest.raises(segsvc_client.InvalidArgument) as caught:
                await aio.update_user_segments(-1)
            assert [v.field for v in caught.value.field_violations] == ["user_id"]

    asyncio.run(scenario())


class _FlakyUserService:
    """A gRPC server whose UserService answers UNAVAILABLE a set number of times, to see
    which calls the client's channel repeats."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.attempts: dict[str, int] = {}
        self.lock = threading.Lock()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        handlers: dict[str, tuple[Any, Any]] = {
            "GetUserSegments": (
                client_user_pb.GetUserSegmentsRequest,
                client_user_pb.GetUserSegmentsResponse,
            ),
            "UpdateUserSegments": (
                client_user_pb.UpdateUserSegmentsRequest,
                client_user_pb.UpdateUserSegmentsResponse,
            ),
            "CreateUser": (
                client_user_pb.CreateUserRequest,
                client_user_pb.CreateUserResponse,
            ),
        }
        self.request_ids: list[str] = []
        self.server.add_generic_rpc_handlers(
            (
                grpc.method_handlers_generic_handler(
                    "segmentation.v1.UserService",
                    {
                        name: grpc.unary_unary_rpc_method_handler(
                            self._answer(name, response),
                            request_deserializer=request.FromString,
                            response_serializer=response.SerializeToString,
                        )
                        for name, (request, response) in handlers.items()
                    },
                ),
            )
        )
        self.port = self.server.add_insecure_port("127.0.0.1:0")

    def _answer(self, name: str, response: Any) -> Callable[[Any, grpc.ServicerContext], Any]:
        def handle(request: Any, context: grpc.ServicerContext) -> Any:
            with self.lock:
                self.attempts[name] = self.attempts.get(name, 0) + 1
                if name == "UpdateUserSegments":
                    self.request_ids.append(request.request_id)
                failing = self.attempts[name] <= self.failures
            if failing:
                context.abort(grpc.StatusCode.UNAVAILABLE, "try again")
            return response()

        return handle


def test_reads_and_request_id_writes_are_retried_plain_writes_are_not() -> None:
    flaky = _FlakyUserService(failures=2)
    flaky.server.start()
    try:
        with SegsvcClient(f"127.0.0.1:{flaky.port}", api_key="k") as client:
            client.get_user_segments(7)
            client.update_user_segments(7, add=["A"])
            with pytest.raises(segsvc_client.Unavailable):
                client.create_user(7)
    finally:
        flaky.server.stop(grace=None)
    assert flaky.attempts == {"GetUserSegments": 3, "UpdateUserSegments": 3, "CreateUser": 1}
    # Every attempt of the write carried the same request id, so the server applies it once.
    assert len(set(flaky.request_ids)) == 1
    assert flaky.request_ids[0]
