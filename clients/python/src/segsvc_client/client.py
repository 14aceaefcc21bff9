"""SegsvcClient: the blocking client, one method per RPC.

    with SegsvcClient("segsvc:50051", api_key=os.environ["SEGSVC_API_KEY"]) as client:
        client.update_user_segments(42, add=["NEW_CHECKOUT"])
        print(client.get_user_segments(42).slugs)

Every call has a deadline (`timeout`, default 5 s; streams 600 s) and raises a
`SegsvcError` subclass on failure. Reads are retried on UNAVAILABLE by the channel
itself (see channel_config). One client holds one channel: create it once and share it
between threads.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta
from types import TracebackType

import grpc

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

IMPORT_CHUNK_SIZE = 10_000
LIST_PAGE_SIZE = 200


class SegsvcClient:
    """A blocking segsvc client; see the module docstring."""

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
            grpc.secure_channel(target, secure, options)
            if secure
            else grpc.insecure_channel(target, options)
        )
        self._auth = auth_grpc.AuthServiceStub(self._channel)
        self._users = user_grpc.UserServiceStub(self._channel)
        self._segments = segment_grpc.SegmentServiceStub(self._channel)
        self._token: AccessToken | None = None
        self._token_lock = threading.Lock()

    def __enter__(self) -> SegsvcClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the channel; calls in flight are cancelled."""
        self._channel.close()

    def _metadata(self) -> tuple[tuple[str, str], ...]:
        credentials = self._credentials
        if credentials.api_key is not None:
            return bearer(credentials.api_key)
        if not credentials.signs_in:
            return ()
        with self._token_lock:
            if needs_renewal(self._token):
                assert credentials.username is not None
                assert credentials.password is not None
                self._token = self.sign_in(credentials.username, credentials.password)
            assert self._token is not None
            return bearer(self._token.token)

    # AuthService

    def sign_up(
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
            reply = self._auth.SignUp(
                request, timeout=timeout or self.timeout, metadata=self._metadata()
            )
        return reply.account_id

    def delete_account(self, account_id: int, *, timeout: float | None = None) -> None:
        """Remove an account; its tokens and API keys stop working."""
        with translated():
            self._auth.DeleteAccount(
                auth_pb.DeleteAccountRequest(account_id=account_id),
                timeout=timeout or self.timeout,
                metadata=self._metadata(),
            )

    def create_api_key(
        self, name: str, role: Role | str, *, timeout: float | None = None
    ) -> NewApiKey:
        """Create an API key for a service; the secret is in the result only."""
        with translated():
            reply = self._auth.CreateApiKey(
                auth_pb.CreateApiKeyRequest(name=name, role=messages.role_value(role)),
                timeout=timeout or self.timeout,
                metadata=self._metadata(),
            )
        return messages.new_api_key(reply)

    def list_api_keys(self, *, timeout: float | None = None) -> list[ApiKey]:
        """Every API key, revoked ones included (without their secrets)."""
        with translated():
            reply = self._auth.ListApiKeys(
                auth_pb.ListApiKeysRequest(),
                timeout=timeout or self.timeout,
                metadata=self._metadata(),
            )
        return [messages.api_key(k) for k in reply.api_keys]

    def revoke_api_key(self, key_id: int, *, timeout: float | None = None) -> ApiKey:
        """Revoke an API key; it stops working on every replica within seconds."""
        with translated():
            reply = self._auth.RevokeApiKey(
                auth_pb.RevokeApiKeyRequest(key_id=key_id),
                timeout=timeout or self.timeout,
                metadata=self._metadata(),
            )
        return messages.api_key(reply.api_key)

    def sign_in(self, username: str, password: str, *, timeout: float | None = None) -> AccessToken:
        """Exchange a password for an access token."""
        request = auth_pb.SignInRequest(username=username, password=password)
        with translated():
            reply = self._auth.SignIn(request, timeout=timeout or self.timeout)
        return messages.access_token(reply)

    # UserService

    def create_user(self, user_id: int, *, timeout: float | None = None) -> UserSegments:
        """Register an end-user id (enrolling it in rollout segments)."""
        with translated():
            reply = self._users.CreateUser(
                user_pb.CreateUserRequest(user_id=user_id),
                timeout=timeout or self.timeout,
                metadata=self._metadata(),
            )
        return messages.user_segments(reply.user)

    def get_user_segments(
        self, user_id: int, *, as_of: datetime | None = None, timeout: float | None = None
    ) -> UserSegments:
        """The user's active segments, or those it was in at `as_of`."""
        with translated():
            reply = self._users.GetUserSegments(
                messages.get_request(user_id, as_of),
                timeout=timeout or self.timeout,
                metadata=self._metadata(),
            )
        return messages.user_segments(reply.user)

    def batch_get_user_segments(
        self, user_ids: Iterable[int], *, timeout: float | None = None
    ) -> list[UserSegments]:
        """get_user_segments for up to 1000 users, in request order."""
        with translated():
            reply = self._users.BatchGetUserSegments(
                user_pb.BatchGetUserSegmentsRequest(user_ids=list(user_ids)),
                timeout=timeout or self.timeout,
                metadata=self._metadata(),
            )
        return [messages.user_segments(u) for u in reply.users]

    def update_user_segments(
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
            reply = self._users.UpdateUserSegments(
                request,
                timeout=timeout or self.timeout,
                metadata=self._metadata(),
            )
        return messages.user_segments(reply.user)

    def import_users(
        self,
        user_ids: Iterable[int],
        *,
        chunk_size: int = IMPORT_CHUNK_SIZE,
        on_chunk: Callable[[int], None] | None = None,
        timeout: float | None = None,
    ) -> ImportResult:
        """Register many ids in one stream, read lazily from `user_ids`.

        `on_chunk(n)` is called with the size of each chunk as it is handed to gRPC, for
        progress reporting.
        """

        def requests() -> Iterator[user_pb.ImportUsersRequest]:
            for chunk in messages.import_chunks(user_ids, chunk_size):
                yield user_pb.ImportUsersRequest(user_ids=chunk)
                if on_chunk is not None:
                    on_chunk(len(chunk))

        with translated():
            reply = self._users.ImportUsers(
                requests(), timeout=timeout or self.stream_timeout, metadata=self._metadata()
            )
        return messages.import_result(reply)

    # SegmentService

    def create_segment(
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
            reply = self._segments.CreateSegment(
                request, timeout=timeout or self.timeout, metadata=self._metadata()
            )
        return messages.segment(reply.segment)

    def delete_segment(self, slug: str, *, timeout: float | None = None) -> Segment:
        """Delete a segment; `member_count` of the result is the memberships ended."""
        with translated():
            reply = self._segments.DeleteSegment(
                segment_pb.DeleteSegmentRequest(slug=slug),
                timeout=timeout or self.timeout,
                metadata=self._metadata(),
            )
        return messages.segment(reply.segment)

    def get_segment(self, slug: str, *, timeout: float | None = None) -> Segment:
        """A segment with its member count."""
        with translated():
            reply = self._segments.GetSegment(
                segment_pb.GetSegmentRequest(slug=slug),
                timeout=timeout or self.timeout,
                metadata=self._metadata(),
            )
        return messages.segment(reply.segment)

    def list_segments(
        self, *, page_size: int = LIST_PAGE_SIZE, timeout: float | None = None
    ) -> Iterator[Segment]:
        """Every live segment by slug, fetching pages as the iteration needs them."""
        token = ""
        while True:
            with translated():
                reply = self._segments.ListSegments(
                    segment_pb.ListSegmentsRequest(page_size=page_size, page_token=token),
                    timeout=timeout or self.timeout,
                    metadata=self._metadata(),
                )
            yield from (messages.segment(s) for s in reply.segments)
            token = reply.next_page_token
            if not token:
                return

    def list_segment_users(self, slug: str, *, timeout: float | None = None) -> Iterator[int]:
        """The ids of the segment's members, ascending, streamed."""
        with translated():
            for reply in self._segments.ListSegmentUsers(
                segment_pb.ListSegmentUsersRequest(slug=slug),
                timeout=timeout or self.stream_timeout,
                metadata=self._metadata(),
            ):
                yield from reply.user_ids

    def get_history_report(
        self, year: int, month: int, *, user_ids: Iterable[int] = (), timeout: float | None = None
    ) -> ReportLink:
        """A signed link to the month's CSV membership history."""
        with translated():
            reply = self._segments.GetHistoryReport(
                segment_pb.GetHistoryReportRequest(year=year, month=month, user_ids=list(user_ids)),
                timeout=timeout or self.timeout,
                metadata=self._metadata(),
            )
        return messages.report_link(reply)

    def stream_history_report(
        self, year: int, month: int, *, user_ids: Iterable[int] = (), timeout: float | None = None
    ) -> Iterator[bytes]:
        """The month's CSV report as consecutive chunks of UTF-8 bytes."""
        request = segment_pb.StreamHistoryReportRequest(
            year=year, month=month, user_ids=list(user_ids)
        )
        with translated():
            for reply in self._segments.StreamHistoryReport(
                request, timeout=timeout or self.stream_timeout, metadata=self._metadata()
            ):
                yield reply.chunk
