"""AsyncSegsvcClient: the asyncio twin of SegsvcClient, on grpc.aio.

    async with AsyncSegsvcClient("segsvc:50051", api_key=key) as client:
        user = await client.get_user_segments(42)

Same methods, arguments, results, deadlines, retries and exceptions as the blocking
client; streaming results are async iterators. Create it inside the running event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, cast

import grpc
import grpc.aio

from segsvc_client import messages
from segsvc_client._proto.segmentation.v1 import auth_service_pb2 as auth_pb
from segsvc_client._proto.segmentation.v1 import auth_service_pb2_grpc as auth_grpc
from segsvc_client._proto.segmentation.v1 import segment_service_pb2 as segment_pb
from segsvc_client._proto.segmentation.v1 import segment_service_pb2_grpc as segment_grpc
from segsvc_client._proto.segmentation.v1 import user_service_pb2 as user_pb
from segsvc_client._proto.segmentation.v1 import user_service_pb2_grpc as user_grpc
from segsvc_client.auth import Credentials, bearer, needs_renewal
from segsvc_client.channel_config import (
    DEFAULT_STREAM_TIMEOUT,
    DEFAULT_TIMEOUT,
    channel_credentials,
    channel_options,
)
from segsvc_client.client import IMPORT_CHUNK_SIZE, LIST_PAGE_SIZE
from segsvc_client.errors import translated
from segsvc_client.models import (
    AccessToken,
    ApiKey,
    ImportResult,
    NewApiKey,
    ReportLink,
    Role,
    Segment,
    SegmentAddition,
    UserSegments,
)

if TYPE_CHECKING:
    from segsvc_client._proto.segmentation.v1.auth_service_pb2_grpc import AuthServiceAsyncStub
    from segsvc_client._proto.segmentation.v1.segment_service_pb2_grpc import (
        SegmentServiceAsyncStub,
    )
    from segsvc_client._proto.segmentation.v1.user_service_pb2_grpc import UserServiceAsyncStub


class AsyncSegsvcClient:
    """An asyncio segsvc client; see the module docstring."""

    def __init__(
        self,
        target: str,
        *,
        api_key: str | None = None,
        username: str | None = None,
        password: str | None = None,
        tls: bool | grpc.ChannelCredentials = False,
        root_certificates: bytes | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        stream_timeout: float = DEFAULT_STREAM_TIMEOUT,
    ) -> None:
        self._credentials = Credentials(api_key, username, password)
        self.timeout = timeout
        self.stream_timeout = stream_timeout
        secure = channel_credentials(tls, root_certificates)
        options = channel_options()
        self._channel = (
            grpc.aio.secure_channel(target, secure, options)
            if secure
            else grpc.aio.insecure_channel(target, options)
        )
        # The runtime stubs serve both channel kinds; the *AsyncStub names type them.
        self._auth = cast("AuthServiceAsyncStub", auth_grpc.AuthServiceStub(self._channel))
        self._users = cast("UserServiceAsyncStub", user_grpc.UserServiceStub(self._channel))
        self._segments = cast(
            "SegmentServiceAsyncStub", segment_grpc.SegmentServiceStub(self._channel)
        )
        self._token: AccessToken | None = None
        self._token_lock = asyncio.Lock()

    async def __aenter__(self) -> AsyncSegsvcClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the channel; calls in flight are cancelled."""
        await self._channel.close(grace=None)

    async def _metadata(self) -> tuple[tuple[str, str], ...]:
        credentials = self._credentials
        if credentials.api_key is not None:
            return bearer(credentials.api_key)
        if not credentials.signs_in:
            return ()
        async with self._token_lock:
            if needs_renewal(self._token):
                assert credentials.username is not None
                assert credentials.password is not None
                self._token = await self.sign_in(credentials.username, credentials.password)
            assert self._token is not None
            return bearer(self._token.token)

    # AuthService

    async def sign_up(
        self,
        username: str,
        password: str,
        name: str = "",
        *,
        role: Role | str | None = None,
        timeout: float | None = None,
    ) -> int:
        """Create an account (an admin's call, except for a new system's first account);
        returns its id."""
        request = auth_pb.SignUpRequest(
            name=name or username,
            username=username,
            password=password,
            role=messages.role_value(role),
        )
        with translated():
            reply = await self._auth.SignUp(
                request, timeout=timeout or self.timeout, metadata=await self._metadata()
            )
        return reply.account_id

    async def delete_account(self, account_id: int, *, timeout: float | None = None) -> None:
        """Remove an account; its tokens and API keys stop working."""
        with translated():
            await self._auth.DeleteAccount(
                auth_pb.DeleteAccountRequest(account_id=account_id),
                timeout=timeout or self.timeout,
                metadata=await self._metadata(),
            )

    async def create_api_key(
        self, name: str, role: Role | str, *, timeout: float | None = None
    ) -> NewApiKey:
        """Create an API key for a service; the secret is in the result only."""
        with translated():
            reply = await self._auth.CreateApiKey(
                auth_pb.CreateApiKeyRequest(name=name, role=messages.role_value(role)),
                timeout=timeout or self.timeout,
                metadata=await self._metadata(),
            )
        return messages.new_api_key(reply)

    async def list_api_keys(self, *, timeout: float | None = None) -> list[ApiKey]:
        """Every API key, revoked ones included (without their secrets)."""
        with translated():
            reply = await self._auth.ListApiKeys(
                auth_pb.ListApiKeysRequest(),
                timeout=timeout or self.timeout,
                metadata=await self._metadata(),
            )
        return [messages.api_key(k) for k in reply.api_keys]

    async def revoke_api_key(self, key_id: int, *, timeout: float | None = None) -> ApiKey:
        """Revoke an API key; it stops working on every replica within seconds."""
        with translated():
            reply = await self._auth.RevokeApiKey(
                auth_pb.RevokeApiKeyRequest(key_id=key_id),
                timeout=timeout or self.timeout,
                metadata=await self._metadata(),
            )
        return messages.api_key(reply.api_key)

    async def sign_in(
        self, username: str, password: str, *, timeout: float | None = None
    ) -> AccessToken:
        """Exchange a password for an access token."""
        request = auth_pb.SignInRequest(username=username, password=password)
        with translated():
            reply = await self._auth.SignIn(request, timeout=timeout or self.timeout)
        return messages.access_token(reply)

    # UserService

    async def create_user(self, user_id: int, *, timeout: float | None = None) -> UserSegments:
        """Register an end-user id (enrolling it in rollout segments)."""
        with translated():
            reply = await self._users.CreateUser(
                user_pb.CreateUserRequest(user_id=user_id),
                timeout=timeout or self.timeout,
                metadata=await self._metadata(),
            )
        return messages.user_segments(reply.user)

    async def get_user_segments(
        self, user_id: int, *, as_of: datetime | None = None, timeout: float | None = None
    ) -> UserSegments:
        """The user's active segments, or those it was in at `as_of`."""
        with translated():
            reply = await self._users.GetUserSegments(
                messages.get_request(user_id, as_of),
                timeout=timeout or self.timeout,
                metadata=await self._metadata(),
            )
        return messages.user_segments(reply.user)

    async def batch_get_user_segments(
        self, user_ids: Iterable[int], *, timeout: float | None = None
    ) -> list[UserSegments]:
        """get_user_segments for up to 1000 users, in request order."""
        with translated():
            reply = await self._users.BatchGetUserSegments(
                user_pb.BatchGetUserSegmentsRequest(user_ids=list(user_ids)),
                timeout=timeout or self.timeout,
                metadata=await self._metadata(),
            )
        return [messages.user_segments(u) for u in reply.users]

    async def update_user_segments(
        self,
        user_id: int,
        *,
        add: Iterable[str | SegmentAddition] = (),
        remove: Iterable[str] = (),
        ttl: timedelta | None = None,
        request_id: str | None = None,
        timeout: float | None = None,
    ) -> UserSegments:
        """Add and remove segments atomically; bare slugs in `add` get `ttl`.

        Once the contract has `request_id`, every call carries one (a fresh UUID unless
        given), so the channel may retry it; pass your own to repeat a call safely."""
        request = messages.with_request_id(
            messages.update_request(user_id, add, remove, ttl), request_id
        )
        with translated():
            reply = await self._users.UpdateUserSegments(
                request,
                timeout=timeout or self.timeout,
                metadata=await self._metadata(),
            )
        return messages.user_segments(reply.user)

    async def import_users(
        self,
        user_ids: Iterable[int],
        *,
        chunk_size: int = IMPORT_CHUNK_SIZE,
        on_chunk: Callable[[int], None] | None = None,
        timeout: float | None = None,
    ) -> ImportResult:
        """Register many ids in one stream, read lazily from `user_ids`."""

        async def requests() -> AsyncIterator[user_pb.ImportUsersRequest]:
            for chunk in messages.import_chunks(user_ids, chunk_size):
                yield user_pb.ImportUsersRequest(user_ids=chunk)
                if on_chunk is not None:
                    on_chunk(len(chunk))

        with translated():
            reply = await self._users.ImportUsers(
                requests(),
                timeout=timeout or self.stream_timeout,
                metadata=await self._metadata(),
            )
        return messages.import_result(reply)

    # SegmentService

    async def create_segment(
        self,
        slug: str,
        *,
        description: str = "",
        auto_percent: float | None = None,
        rollout_salt: str = "",
        validate_only: bool = False,
        request_id: str | None = None,
        timeout: float | None = None,
    ) -> Segment:
        """Create a segment, optionally with a percentage rollout (`request_id`: as for
        update_user_segments)."""
        request = messages.with_request_id(
            messages.create_segment_request(
                slug, description, auto_percent, rollout_salt, validate_only
            ),
            request_id,
        )
        with translated():
            reply = await self._segments.CreateSegment(
                request, timeout=timeout or self.timeout, metadata=await self._metadata()
            )
        return messages.segment(reply.segment)

    async def delete_segment(self, slug: str, *, timeout: float | None = None) -> Segment:
        """Delete a segment; `member_count` of the result is the memberships ended."""
        with translated():
            reply = await self._segments.DeleteSegment(
                segment_pb.DeleteSegmentRequest(slug=slug),
                timeout=timeout or self.timeout,
                metadata=await self._metadata(),
            )
        return messages.segment(reply.segment)

    async def get_segment(self, slug: str, *, timeout: float | None = None) -> Segment:
        """A segment with its member count."""
        with translated():
            reply = await self._segments.GetSegment(
                segment_pb.GetSegmentRequest(slug=slug),
                timeout=timeout or self.timeout,
                metadata=await self._metadata(),
            )
        return messages.segment(reply.segment)

    async def list_segments(
        self, *, page_size: int = LIST_PAGE_SIZE, timeout: float | None = None
    ) -> AsyncIterator[Segment]:
        """Every live segment by slug, fetching pages as the iteration needs them."""
        token = ""
        while True:
            with translated():
                reply = await self._segments.ListSegments(
                    segment_pb.ListSegmentsRequest(page_size=page_size, page_token=token),
                    timeout=timeout or self.timeout,
                    metadata=await self._metadata(),
                )
            for item in reply.segments:
                yield messages.segment(item)
            token = reply.next_page_token
            if not token:
                return

    async def list_segment_users(
        self, slug: str, *, timeout: float | None = None
    ) -> AsyncIterator[int]:
        """The ids of the segment's members, ascending, streamed."""
        call = self._segments.ListSegmentUsers(
            segment_pb.ListSegmentUsersRequest(slug=slug),
            timeout=timeout or self.stream_timeout,
            metadata=await self._metadata(),
        )
        with translated():
            async for reply in call:
                for user_id in reply.user_ids:
                    yield user_id

    async def get_history_report(
        self, year: int, month: int, *, user_ids: Iterable[int] = (), timeout: float | None = None
    ) -> ReportLink:
        """A signed link to the month's CSV membership history."""
        with translated():
            reply = await self._segments.GetHistoryReport(
                segment_pb.GetHistoryReportRequest(year=year, month=month, user_ids=list(user_ids)),
                timeout=timeout or self.timeout,
                metadata=await self._metadata(),
            )
        return messages.report_link(reply)

    async def stream_history_report(
        self, year: int, month: int, *, user_ids: Iterable[int] = (), timeout: float | None = None
    ) -> AsyncIterator[bytes]:
        """The month's CSV report as consecutive chunks of UTF-8 bytes."""
        call = self._segments.StreamHistoryReport(
            segment_pb.StreamHistoryReportRequest(year=year, month=month, user_ids=list(user_ids)),
            timeout=timeout or self.stream_timeout,
            metadata=await self._metadata(),
        )
        with translated():
            async for reply in call:
                yield reply.chunk
