"""Access control (issue 9): every RPC declares its role in the contract, each role gets
exactly what its rule allows, API keys work and stop working, sign-up is closed, and a
removed account's credentials are refused with UNAUTHENTICATED (never INTERNAL)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import psycopg
import pytest
from google.protobuf import descriptor
from grpc_health.v1 import health_pb2

from segmentation.v1 import auth_options_pb2 as roles_pb
from segmentation.v1 import auth_service_pb2 as auth_pb
from segmentation.v1 import auth_service_pb2_grpc as auth_grpc
from segmentation.v1 import segment_service_pb2 as seg_pb
from segmentation.v1 import segment_service_pb2_grpc as seg_grpc
from segsvc.api import access_rules
from segsvc.config import DEFAULT_MIGRATIONS_DIR
from segsvc.domain.roles import Role
from segsvc.server import SegsvcServer
from segsvc.store.migrations import migrate
from tests.support.contract import call_any, contract_methods
from tests.support.names import Names
from tests.support.servers import make_settings

Metadata = tuple[tuple[str, str], ...]
DENIED = {grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED}


def bearer(credential: str) -> Metadata:
    return (("authorization", f"Bearer {credential}"),)


def code_of(call: Callable[[], Any]) -> grpc.StatusCode:
    try:
        call()
    except grpc.RpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


# --- the contract -------------------------------------------------------------------


def test_every_rpc_of_the_contract_declares_who_may_call_it() -> None:
    methods = list(contract_methods())
    assert len(methods) >= 18  # every RPC of the three services, and any added later
    missing = []
    for method in methods:
        try:
            access_rules.rule_of(method)
        except access_rules.MissingAccessRule as exc:
            missing.append(str(exc))
    assert missing == []


def test_a_method_without_the_option_is_refused() -> None:
    check = health_pb2.DESCRIPTOR.services_by_name["Health"].methods_by_name["Check"]
    with pytest.raises(access_rules.MissingAccessRule, match="Health/Check"):
        access_rules.rule_of(check)


def test_only_sign_in_is_public_and_only_sign_up_admits_anonymous_calls() -> None:
    rules = {m.name: access_rules.rule_of(m) for m in contract_methods()}
    assert {name for name, rule in rules.items() if rule.public} == {"SignIn"}
    assert {name for name, rule in rules.items() if rule.anonymous_allowed} == {"SignUp"}
    assert rules["GetUserSegments"].role is Role.READER
    assert rules["UpdateUserSegments"].role is Role.WRITER
    assert rules["CreateApiKey"].role is Role.ADMIN


def role_cases() -> Iterator[Any]:
    for method in contract_methods():
        for role in Role:
            yield pytest.param(method, role, id=f"{method.name}-{role.label}")


@pytest.mark.parametrize(("method", "role"), list(role_cases()))
def test_each_role_gets_what_the_rule_allows(
    channel: grpc.Channel,
    role_metadata: dict[Role, Metadata],
    method: descriptor.MethodDescriptor,
    role: Role,
) -> None:
    """An empty request: an allowed call fails on its arguments (or succeeds), never on
    access; a forbidden one gets PERMISSION_DENIED naming the role it needs."""
    rule = access_rules.rule_of(method)
    try:
        call_any(channel, method, role_metadata[role])
        code, details = grpc.StatusCode.OK, ""
    except grpc.RpcError as exc:
        code, details = exc.code(), exc.details() or ""
    if rule.public or (rule.role is not None and role >= rule.role):
        assert code not in DENIED, details
    else:
        assert rule.role is not None
        assert code == grpc.StatusCode.PERMISSION_DENIED
        assert details == (
            f"{method.name} needs role {rule.role.label}; this credential has role {role.label}"
        )


# --- API keys -----------------------------------------------------------------------


def test_api_key_lifecycle(
    channel: grpc.Channel,
    auth_metadata: Metadata,
    names: Names,
    db: psycopg.Connection[Any],
) -> None:
    auth = auth_grpc.AuthServiceStub(channel)
    segments = seg_grpc.SegmentServiceStub(channel)
    created = auth.CreateApiKey(
        auth_pb.CreateApiKeyRequest(name=f"svc {names.tag}", role=roles_pb.ROLE_WRITER),
        metadata=auth_metadata,
    )
    key = created.api_key
    assert key.startswith("sgk_")
    assert len(key) >= 40

    # Used directly, no sign-in; the change is recorded under the admin who made the key.
    slug = names.slug("KEYED")
    segments.CreateSegment(seg_pb.CreateSegmentRequest(slug=slug), metadata=bearer(key))
    stored = db.execute(
        "SELECT k.key_hash, k.prefix, s.created_by = k.created_by FROM api_keys k, segments s"
        " WHERE k.id = %s AND s.slug = %s AND s.deleted_at IS NULL",
        (created.key_id, slug),
    ).fetchone()
    assert stored is not None
    assert bytes(stored[0]) == hashlib.sha256(key.encode()).digest()  # only the hash is kept
    assert key.startswith(stored[1])
    assert stored[2]

    listed = auth.ListApiKeys(auth_pb.ListApiKeysRequest(), metadata=auth_metadata)
    mine = next(k for k in listed.api_keys if k.key_id == created.key_id)
    assert (mine.role, mine.HasField("revoke_time")) == (roles_pb.ROLE_WRITER, False)
    assert key not in str(listed)

    revoked = auth.RevokeApiKey(
        auth_pb.RevokeApiKeyRequest(key_id=created.key_id), metadata=auth_metadata
    )
    assert revoked.api_key.HasField("revoke_time")
    get = seg_pb.GetSegmentRequest(slug=slug)
    assert code_of(lambda: segments.GetSegment(get, metadata=bearer(key))) == (
        grpc.StatusCode.UNAUTHENTICATED
    )
    missing = auth_pb.RevokeApiKeyRequest(key_id=10**12)
    assert code_of(lambda: auth.RevokeApiKey(missing, metadata=auth_metadata)) == (
        grpc.StatusCode.NOT_FOUND
    )


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (auth_pb.CreateApiKeyRequest(name="no role"), "role"),
        (auth_pb.CreateApiKeyRequest(name=" ", role=roles_pb.ROLE_READER), "name"),
        (auth_pb.CreateApiKeyRequest(name="bad\x00", role=roles_pb.ROLE_READER), "name"),
        (auth_pb.CreateApiKeyRequest(name="odd", role=7), "role"),  # type: ignore[arg-type]
    ],
)
def test_create_api_key_validation(
    channel: grpc.Channel,
    auth_metadata: Metadata,
    request_: auth_pb.CreateApiKeyRequest,
    field: str,
) -> None:
    with pytest.raises(grpc.RpcError) as err:
        auth_grpc.AuthServiceStub(channel).CreateApiKey(request_, metadata=auth_metadata)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (err.value.details() or "").startswith(field)


def test_revocation_reaches_another_replica_within_the_cache_bound(
    database_url: str, channel: grpc.Channel, auth_metadata: Metadata, names: Names
) -> None:
    bound = 1.0
    replica = SegsvcServer(make_settings(auth_cache_seconds=bound), database_url)
    replica.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{replica.grpc_port}") as other:
            auth = auth_grpc.AuthServiceStub(channel)
            created = auth.CreateApiKey(
                auth_pb.CreateApiKeyRequest(name=f"r {names.tag}", role=roles_pb.ROLE_READER),
                metadata=auth_metadata,
            )
            listing = seg_pb.ListSegmentsRequest(page_size=1)
            stub = seg_grpc.SegmentServiceStub(other)

            def answer() -> grpc.StatusCode:
                return code_of(lambda: stub.ListSegments(listing, metadata=bearer(created.api_key)))

            assert answer() == grpc.StatusCode.OK  # now cached on the replica
            auth.RevokeApiKey(
                auth_pb.RevokeApiKeyRequest(key_id=created.key_id), metadata=auth_metadata
            )
            revoked_at = time.monotonic()
            while answer() == grpc.StatusCode.OK:
                assert time.monotonic() - revoked_at < bound + 2, "revocation never arrived"
                time.sleep(0.05)
            assert answer() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        replica.stop(grace=0)


# --- removed accounts ---------------------------------------------------------------


def sign_up_and_in(
    auth: auth_grpc.AuthServiceStub, admin: Metadata, username: str, role: int
) -> tuple[int, str]:
    account = auth.SignUp(
        auth_pb.SignUpRequest(
            name=username,
            username=username,
            password="password-1",
            role=role,  # type: ignore[arg-type]
        ),
        metadata=admin,
    )
    token = auth.SignIn(auth_pb.SignInRequest(username=username, password="password-1"))
    return account.account_id, token.access_token


def test_a_removed_account_is_unauthenticated_with_its_token_and_keys(
    channel: grpc.Channel, auth_metadata: Metadata, names: Names
) -> None:
    auth = auth_grpc.AuthServiceStub(channel)
    segments = seg_grpc.SegmentServiceStub(channel)
    account_id, token = sign_up_and_in(
        auth, auth_metadata, f"gone-{names.tag.lower()}", roles_pb.ROLE_ADMIN
    )
    key = auth.CreateApiKey(
        auth_pb.CreateApiKeyRequest(name="theirs", role=roles_pb.ROLE_WRITER),
        metadata=bearer(token),
    ).api_key
    create = seg_pb.CreateSegmentRequest(slug=names.slug("BEFORE"))
    segments.CreateSegment(create, metadata=bearer(key))  # both work, and are cached

    auth.DeleteAccount(auth_pb.DeleteAccountRequest(account_id=account_id), metadata=auth_metadata)

    after = seg_pb.CreateSegmentRequest(slug=names.slug("AFTER"))
    for credential in (token, key):
        with pytest.raises(grpc.RpcError) as err:
            segments.CreateSegment(after, metadata=bearer(credential))
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    sign_in = auth_pb.SignInRequest(username=f"gone-{names.tag.lower()}", password="password-1")
    assert code_of(lambda: auth.SignIn(sign_in)) == grpc.StatusCode.UNAUTHENTICATED
    again = auth_pb.DeleteAccountRequest(account_id=account_id)
    assert code_of(lambda: auth.DeleteAccount(again, metadata=auth_metadata)) == (
        grpc.StatusCode.NOT_FOUND
    )


def test_a_token_of_an_account_deleted_behind_the_api_is_unauthenticated_not_internal(
    channel: grpc.Channel,
    auth_metadata: Metadata,
    names: Names,
    db: psycopg.Connection[Any],
) -> None:
    """The issue's reproduction: the account row goes away (here by SQL, as on the code
    before roles); its still-valid token must not reach the foreign key."""
    auth = auth_grpc.AuthServiceStub(channel)
    account_id, token = sign_up_and_in(
        auth, auth_metadata, f"dropped-{names.tag.lower()}", roles_pb.ROLE_WRITER
    )
    db.execute("DELETE FROM accounts WHERE id = %s", (account_id,))
    create = seg_pb.CreateSegmentRequest(slug=names.slug("DEAD"))
    segments = seg_grpc.SegmentServiceStub(channel)
    assert code_of(lambda: segments.CreateSegment(create, metadata=bearer(token))) == (
        grpc.StatusCode.UNAUTHENTICATED
    )


def test_an_admin_cannot_remove_itself(
    channel: grpc.Channel, names: Names, auth_metadata: Metadata
) -> None:
    auth = auth_grpc.AuthServiceStub(channel)
    account_id, token = sign_up_and_in(
        auth, auth_metadata, f"self-{names.tag.lower()}", roles_pb.ROLE_ADMIN
    )
    request = auth_pb.DeleteAccountRequest(account_id=account_id)
    assert code_of(lambda: auth.DeleteAccount(request, metadata=bearer(token))) == (
        grpc.StatusCode.FAILED_PRECONDITION
    )


# --- sign-up ------------------------------------------------------------------------


@pytest.fixture
def empty_system(fresh_database: Callable[[], str]) -> str:
    url = fresh_database()
    migrate(url, DEFAULT_MIGRATIONS_DIR)
    return url


def serve(url: str, **settings: Any) -> SegsvcServer:
    server = SegsvcServer(make_settings(**settings), url)
    server.start()
    return server


def test_first_account_becomes_admin_once_then_sign_up_is_closed(empty_system: str) -> None:
    server = serve(empty_system, password_queue=8)  # all eight reach the race
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as ch:
            auth = auth_grpc.AuthServiceStub(ch)

            def sign_up(i: int) -> tuple[grpc.StatusCode, int]:
                request = auth_pb.SignUpRequest(
                    name="Racer", username=f"racer{i}", password="password-1"
                )
                try:
                    return grpc.StatusCode.OK, auth.SignUp(request).role
                except grpc.RpcError as exc:
                    return exc.code(), 0

            with ThreadPoolExecutor(8) as pool:
                results = list(pool.map(sign_up, range(8)))
            winners = [r for r in results if r[0] == grpc.StatusCode.OK]
            assert winners == [(grpc.StatusCode.OK, roles_pb.ROLE_ADMIN)], results
            assert {code for code, _ in results} == {
                grpc.StatusCode.OK,
                grpc.StatusCode.UNAUTHENTICATED,
            }

            winner = results.index(winners[0])
            admin_token = auth.SignIn(
                auth_pb.SignInRequest(username=f"racer{winner}", password="password-1")
            ).access_token
            _, writer_token = sign_up_and_in(
                auth, bearer(admin_token), "made-writer", roles_pb.ROLE_WRITER
            )
            by_writer = auth_pb.SignUpRequest(name="W", username="by-writer", password="password-1")
            with pytest.raises(grpc.RpcError) as err:
                auth.SignUp(by_writer, metadata=bearer(writer_token))
            assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
            assert "needs role admin" in (err.value.details() or "")
    finally:
        server.stop(grace=0)


def test_open_sign_up_gives_reader_and_writer_but_never_admin(empty_system: str) -> None:
    server = serve(empty_system, open_signup=True)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as ch:
            auth = auth_grpc.AuthServiceStub(ch)

            def sign_up(username: str, role: int) -> auth_pb.SignUpResponse:
                return auth.SignUp(
                    auth_pb.SignUpRequest(
                        name="O",
                        username=username,
                        password="password-1",
                        role=role,  # type: ignore[arg-type]
                    )
                )

            assert sign_up("first", roles_pb.ROLE_READER).role == roles_pb.ROLE_ADMIN
            assert sign_up("plain", roles_pb.ROLE_UNSPECIFIED).role == roles_pb.ROLE_READER
            assert sign_up("author", roles_pb.ROLE_WRITER).role == roles_pb.ROLE_WRITER
            with pytest.raises(grpc.RpcError) as err:
                sign_up("boss", roles_pb.ROLE_ADMIN)
            assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    finally:
        server.stop(grace=0)
