"""`segsvc accounts create` bootstraps an account straight in the database."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

import grpc

from segmentation.v1 import auth_options_pb2 as roles_pb
from segmentation.v1 import auth_service_pb2 as auth_pb
from segmentation.v1 import auth_service_pb2_grpc as auth_grpc
from segsvc.server import SegsvcServer
from tests.support.servers import JWT_SECRET, SEGSVC, child_env, make_settings


def accounts_create(url: str, *args: str, password: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SEGSVC, "accounts", "create", *args],
        input=password + "\n",
        env=child_env(
            SEGSVC_DATABASE_URL=url, SEGSVC_JWT_SECRET=JWT_SECRET, SEGSVC_BCRYPT_ROUNDS="4"
        ),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_accounts_create_makes_an_admin_who_can_sign_in(
    fresh_database: Callable[[], str],
) -> None:
    url = fresh_database()  # not even migrated: the command migrates first
    created = accounts_create(url, "--username", "ops", "--role", "admin", password="ops-password")
    assert created.returncode == 0, created.stderr
    assert "role admin" in created.stdout
    assert "ops-password" not in created.stdout + created.stderr
    taken = accounts_create(url, "--username", "ops", password="ops-password")
    assert taken.returncode == 2
    assert "already exists" in taken.stderr

    server = SegsvcServer(make_settings(), url)
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as ch:
            auth = auth_grpc.AuthServiceStub(ch)
            token = auth.SignIn(
                auth_pb.SignInRequest(username="ops", password="ops-password")
            ).access_token
            key = auth.CreateApiKey(  # an admin-only RPC
                auth_pb.CreateApiKeyRequest(name="first service", role=roles_pb.ROLE_READER),
                metadata=(("authorization", f"Bearer {token}"),),
            )
            assert key.api_key.startswith("sgk_")
    finally:
        server.stop(grace=0)
