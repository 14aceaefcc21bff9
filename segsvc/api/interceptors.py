"""The server interceptor: authentication, request ids, error mapping, metrics, logs.

One wrapper around every handler, run on the event loop (grpc.aio), so that each concern
is applied exactly once per RPC and no servicer repeats it. A handler that is a
coroutine (the hot reads) runs inside it on the loop; a blocking one runs on a worker
thread through api.blocking_calls, with the call's contextvars, so the wrapper treats
both alike:

- every method of `segmentation.v1` is allowed only as its access rule in the contract
  says (api.access_rules, read once at start-up): a bearer credential (JWT or API key)
  of at least the declared role; a method of the package without a rule is refused,
  so a newly added RPC is closed by default; health checking and reflection live
  outside the package and stay public;
- a credential is checked from memory when it was seen lately (service_layer.
  authentication), else on a worker thread, as that may take a database round trip;
- exceptions become statuses through api.status_mapping, never UNKNOWN;
- streams are watched by the stream watchdog, which cancels those whose client has
  gone quiet (api.stream_watchdog);
- a request that is not a valid protobuf message (corrupt wire data, a string field that
  is not UTF-8) is INVALID_ARGUMENT: grpcio itself would answer INTERNAL and log a
  traceback, so the deserializer is wrapped to hand the failure to the call instead;
- one set of metrics per call, with the request id returned to the caller in trailing
  metadata; an access log line only for every `access_log_every`-th call (0: none), as
  one JSON line per call cost more CPU than the rest of the bookkeeping together.

Nothing here is done per call that can be done once: the wrapped handler of each method
is built on its first call and reused, the metric children of each method are looked up
once (api.metrics), and the invocation metadata is read in one pass.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import itertools
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import grpc
import structlog
from google.protobuf.message import DecodeError

from segsvc.api.blocking_calls import AioContext, Blocking, BlockingCalls
from segsvc.api.call_context import CURRENT_CALL, CallInfo
from segsvc.api.status_mapping import MappedStatus, map_exception
from segsvc.api.stream_watchdog import StreamWatchdog
from segsvc.domain.errors import InvalidArgument, PermissionDenied, Unauthenticated
from segsvc.domain.roles import AccessRule
from segsvc.observability.metrics import Metrics
from segsvc.service_layer.authentication import Authenticator

PROTECTED_PREFIX = "/segmentation.v1."
QUIET_PREFIXES = ("/grpc.health.", "/grpc.reflection.")
REQUEST_ID_KEY = "x-request-id"
# Generated request ids: a random per-process prefix and a counter, unique without a
# system call per request (uuid4 reads the OS random source every time).
_ID_PREFIX = secrets.token_hex(8)
_ID_COUNTER = itertools.count()

log = structlog.get_logger("segsvc.rpc")

Behavior = Callable[[Any, AioContext], Awaitable[Any]]
Deserializer = Callable[[bytes], Any]


@dataclass(frozen=True)
class _Undecodable:
    """Stands in for a request message that could not be parsed (see _tolerant)."""

    reason: str


def _tolerant(deserializer: Deserializer | None) -> Deserializer | None:
    """A deserializer that returns _Undecodable instead of raising on bad input."""
    if deserializer is None:
        return None
    parse = deserializer

    def decode(data: bytes) -> Any:
        try:
            return parse(data)
        except DecodeError as exc:
            return _Undecodable(str(exc))

    return decode


def _decoded(request: Any, field: str = "request") -> Any:
    """The request, or INVALID_ARGUMENT when it could not be parsed."""
    if isinstance(request, _Undecodable):
        raise InvalidArgument.single(field, f"not a valid protobuf message: {request.reason}")
    return request


def _is_async(behavior: Any) -> bool:
    return inspect.iscoroutinefunction(behavior) or inspect.isasyncgenfunction(behavior)


def _same(requests: Any) -> Any:
    """A request stream as it is: its messages are checked as they are read."""
    return requests


def _decoded_stream(requests: Iterator[Any]) -> Iterator[Any]:
    """A client stream whose unparseable message ends the call with INVALID_ARGUMENT."""
    for number, request in enumerate(requests):
        yield _decoded(request, f"request (message {number})")


@dataclass(frozen=True)
class _Call:
    method: str
    info: CallInfo
    started: float
    authorization: str = ""


if TYPE_CHECKING:
    _Interceptor = grpc.aio.ServerInterceptor[Any, Any]
    _Handler = grpc.RpcMethodHandler[Any, Any]
else:  # grpc's runtime classes are not generic
    _Interceptor = grpc.aio.ServerInterceptor


@dataclass(frozen=True)
class ServerInterceptor(_Interceptor):
    """Wraps every RPC handler of the server; see the module docstring."""

    authenticator: Authenticator
    access: Mapping[str, AccessRule]
    metrics: Metrics
    watchdog: StreamWatchdog
    blocking: BlockingCalls
    access_log_every: int = 0
    _wrapped: dict[str, _Handler] = field(default_factory=dict, init=False, compare=False)
    _calls: Iterator[int] = field(default_factory=itertools.count, init=False, compare=False)

    async def intercept_service(  # type: ignore[override]  # None: UNIMPLEMENTED
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[_Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> _Handler | None:
        method: str = handler_call_details.method
        # grpc asks on every call; the registered handlers never change once serving,
        # so each method's wrapper is built once.
        wrapped = self._wrapped.get(method)
        if wrapped is None:
            handler = await continuation(handler_call_details)
            if handler is None:
                return None
            wrapped = self._wrap(method, handler)
            self._wrapped[method] = wrapped
        return wrapped

    def _wrap(self, method: str, handler: _Handler) -> _Handler:
        decode = _tolerant(handler.request_deserializer)
        serialize = handler.response_serializer
        if handler.unary_unary:
            if inspect.iscoroutinefunction(handler.unary_unary):
                behavior = cast(Behavior, handler.unary_unary)
            else:
                behavior = functools.partial(self.blocking.unary, handler.unary_unary)
            return grpc.unary_unary_rpc_method_handler(
                self._served(method, behavior, _decoded), decode, serialize
            )
        streaming = handler.unary_stream or handler.stream_stream or handler.stream_unary
        if not method.startswith(PROTECTED_PREFIX) and _is_async(streaming):
            return handler  # health Watch, reflection: public, grpc's own coroutines
        if handler.stream_unary:
            blocking = self._watch_requests(handler.stream_unary)
            return grpc.stream_unary_rpc_method_handler(
                self._served(method, functools.partial(self.blocking.unary, blocking), _same),
                decode,
                serialize,
            )
        if handler.unary_stream:
            blocking = self._watch_responses(handler.unary_stream)
            return grpc.unary_stream_rpc_method_handler(
                self._served(method, functools.partial(self.blocking.stream, blocking), _decoded),
                decode,
                serialize,
            )
        assert handler.stream_stream is not None
        blocking = self._watch_both(handler.stream_stream)
        return grpc.stream_stream_rpc_method_handler(
            self._served(method, functools.partial(self.blocking.stream, blocking), _same),
            decode,
            serialize,
        )

    def _served(self, method: str, behavior: Behavior, accept: Callable[[Any], Any]) -> Behavior:
        async def wrapped(request: Any, context: AioContext) -> Any:
            async with self._serving(method, context):
                return await behavior(accept(request), context)

        return wrapped

    def _watch_requests(self, behavior: Blocking) -> Blocking:
        def watched(request_iterator: Iterator[Any], context: grpc.ServicerContext) -> Any:
            with self.watchdog.watch(context) as watch:
                return behavior(watch.requests(_decoded_stream(request_iterator)), context)

        return watched

    def _watch_responses(self, behavior: Blocking) -> Blocking:
        def watched(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            with self.watchdog.watch(context) as watch:
                yield from watch.responses(behavior(request, context))

        return watched

    def _watch_both(self, behavior: Blocking) -> Blocking:
        def watched(request_iterator: Iterator[Any], context: grpc.ServicerContext) -> Any:
            with self.watchdog.watch(context) as watch:
                requests = watch.requests(_decoded_stream(request_iterator))
                yield from watch.responses(behavior(requests, context))

        return watched

    @asynccontextmanager
    async def _serving(self, method: str, context: AioContext) -> AsyncIterator[None]:
        """Everything around one call, streams included."""
        call = self._begin(method, context)
        token = CURRENT_CALL.set(call.info)
        code = grpc.StatusCode.OK
        try:
            call = await self._authenticate(call)
            CURRENT_CALL.set(call.info)
            yield
        except asyncio.CancelledError:  # the client went away, or the watchdog or a stop
            code = grpc.StatusCode.CANCELLED
            raise
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            mapped = self._map(call, exc)
            code = mapped.code
            status = mapped.to_grpc(((REQUEST_ID_KEY, call.info.request_id),))
            await context.abort(status.code, status.details, status.trailing_metadata)
        finally:
            self._end(call, code)
            CURRENT_CALL.reset(token)

    def _begin(self, method: str, context: AioContext) -> _Call:
        started = time.perf_counter()
        self.metrics.in_flight.inc()
        request_id = authorization = ""
        for key, value in context.invocation_metadata() or ():
            if key == REQUEST_ID_KEY and isinstance(value, str):
                request_id = value[:128]
            elif key == "authorization" and isinstance(value, str):
                authorization = value
        request_id = request_id or f"{_ID_PREFIX}{next(_ID_COUNTER):016x}"
        context.set_trailing_metadata(((REQUEST_ID_KEY, request_id),))
        return _Call(method, CallInfo(request_id), started, authorization)

    async def _authenticate(self, call: _Call) -> _Call:
        if not call.method.startswith(PROTECTED_PREFIX):
            return call
        rule = self.access.get(call.method)
        if rule is None:  # unreachable while the table covers the package: fail closed
            raise PermissionDenied(f"{call.method} declares no access rule")
        if rule.public:
            return call
        header = call.authorization
        scheme, _, credential = header.partition(" ")
        credential = credential.strip()
        if header and (scheme.lower() != "bearer" or not credential):
            raise Unauthenticated("malformed 'authorization' metadata: use 'Bearer <credential>'")
        principal = None
        if credential:
            principal = self.authenticator.remembered(credential)
            if principal is None:
                principal = await self.blocking.run(self.authenticator.authenticate, credential)
        rule.authorize(call.method, principal)
        return _Call(call.method, CallInfo(call.info.request_id, principal), call.started)

    def _map(self, call: _Call, exc: Exception) -> MappedStatus:
        mapped = map_exception(exc)
        if not mapped.expected:
            log.error(
                "rpc_error",
                method=call.method,
                request_id=call.info.request_id,
                code=mapped.code.name,
                exc_info=exc,
            )
        return mapped

    def _end(self, call: _Call, code: grpc.StatusCode) -> None:
        elapsed = time.perf_counter() - call.started
        self.metrics.in_flight.dec()
        self.metrics.rpc_finished(call.method, code.name, elapsed)
        every = self.access_log_every
        if not every or next(self._calls) % every:
            return
        level = "debug" if call.method.startswith(QUIET_PREFIXES) else "info"
        getattr(log, level)(
            "rpc",
            method=call.method,
            code=code.name,
            duration_ms=round(elapsed * 1000, 3),
            account_id=call.info.account_id,
            key_id=call.info.principal.key_id if call.info.principal else None,
            request_id=call.info.request_id,
        )
