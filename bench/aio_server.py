"""GetUserSegments on a minimal grpc.aio server, for the server-model comparison only.

The read itself is segsvc's own: service_layer.Reads, with the same read cache (kept
coherent by the same ChangeListener thread, SEGSVC_CACHE_USERS entries), the same read
pool, SQL and wire encoding. Around it there is nothing of segsvc's server - no other
service, no blocking-call layer, no health watcher, no HTTP port - so the comparison
shows what segsvc's whole stack costs on top of the least a grpc.aio server can do for
this read. By default an aio interceptor repeats the per-call work of segsvc's
ServerInterceptor (the token check, a request id in trailing metadata, the same
Prometheus metrics; like segsvc by default, no access log line); `--bare` drops it (the
token is checked in the handler) to show what that bookkeeping costs.

Settings come from the same SEGSVC_* variables as segsvc (database URL, JWT secret, pool
size, log level and format); the flags override them. Ready when gRPC health checking
answers SERVING, like segsvc.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import secrets
import signal
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import grpc
from grpc_health.v1 import _async as health_aio  # what grpc_health.v1.health.aio names
from grpc_health.v1 import health_pb2_grpc

from segmentation.v1 import user_service_pb2 as pb
from segsvc.api import access_rules
from segsvc.api.interceptors import PROTECTED_PREFIX, REQUEST_ID_KEY
from segsvc.api.user_segments_wire import encoded_user_segments
from segsvc.cache.listener import ChangeListener
from segsvc.cache.read_cache import ReadCache
from segsvc.domain.clock import system_clock
from segsvc.domain.errors import Unauthenticated
from segsvc.domain.tokens import TokenService
from segsvc.observability.logs import configure_logging
from segsvc.observability.metrics import Metrics
from segsvc.server import CONTRACT_FILES
from segsvc.service_layer.reads import Reads
from segsvc.store.database import Database, SessionLimits

PUBLIC_METHODS = frozenset(
    path for path, rule in access_rules.load(CONTRACT_FILES).items() if rule.public
)
_ID_PREFIX = secrets.token_hex(8)
_ID_COUNTER = itertools.count()


if TYPE_CHECKING:
    _Interceptor = grpc.aio.ServerInterceptor[Any, Any]
    _Context = grpc.aio.ServicerContext[Any, Any]
else:
    _Interceptor = grpc.aio.ServerInterceptor
    _Context = grpc.aio.ServicerContext
Behavior = Callable[[Any, _Context], Awaitable[Any]]


def _header(context: _Context, name: str) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == name and isinstance(value, str):
            return value
    return ""


def _bearer(context: _Context) -> str:
    """The token of `authorization: Bearer <token>`, or UNAUTHENTICATED."""
    scheme, _, token = _header(context, "authorization").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("missing 'authorization: Bearer <token>' metadata")
    return token.strip()


class Bookkeeping(_Interceptor):
    """segsvc's ServerInterceptor, unary RPCs only, on the event loop."""

    def __init__(self, tokens: TokenService, metrics: Metrics) -> None:
        self.tokens = tokens
        self.metrics = metrics

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Any:
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        return grpc.unary_unary_rpc_method_handler(
            self._wrap(handler_call_details.method, handler.unary_unary),
            handler.request_deserializer,
            handler.response_serializer,
        )

    def _wrap(self, method: str, behavior: Behavior) -> Behavior:
        protected = method.startswith(PROTECTED_PREFIX) and method not in PUBLIC_METHODS

        async def wrapped(request: Any, context: _Context) -> Any:
            started = time.perf_counter()
            self.metrics.in_flight.inc()
            request_id = _header(context, REQUEST_ID_KEY)[:128]
            request_id = request_id or f"{_ID_PREFIX}{next(_ID_COUNTER):016x}"
            context.set_trailing_metadata(((REQUEST_ID_KEY, request_id),))
            code = grpc.StatusCode.OK
            try:
                if protected:
                    self.tokens.verify(_bearer(context))
                return await behavior(request, context)
            except Unauthenticated as exc:
                code = grpc.StatusCode.UNAUTHENTICATED
                await context.abort(code, str(exc))
            finally:
                self.metrics.in_flight.dec()
                self.metrics.rpc_finished(method, code.name, time.perf_counter() - started)

        return wrapped


class AioUsers:
    """GetUserSegments only, answered by segsvc's own Reads (cache, read pool, encoding);
    with `tokens`, it checks the token itself (bare mode)."""

    def __init__(self, reads: Reads, tokens: TokenService | None) -> None:
        self.reads = reads
        self.tokens = tokens

    async def get_user_segments(
        self, request: pb.GetUserSegmentsRequest, context: _Context
    ) -> bytes:
        """segsvc's read, without the rest of segsvc's server around it."""
        if self.tokens is not None:
            try:
                self.tokens.verify(_bearer(context))
            except Unauthenticated as exc:
                await context.abort(grpc.StatusCode.UNAUTHENTICATED, str(exc))
        return await self.reads.user(request.user_id)

    def handler(self) -> grpc.GenericRpcHandler[Any, Any]:
        """The UserService handler: request parsed, response bytes sent as they are."""
        return grpc.method_handlers_generic_handler(
            "segmentation.v1.UserService",
            {
                "GetUserSegments": grpc.unary_unary_rpc_method_handler(
                    self.get_user_segments,
                    request_deserializer=pb.GetUserSegmentsRequest.FromString,
                )
            },
        )


async def serve(
    port: int, database_url: str, secret: str, pool_size: int, bare: bool, cache_users: int
) -> None:
    """Serve until SIGTERM or SIGINT."""
    limits = SessionLimits(60, 60)
    db = Database(
        database_url,
        min_size=pool_size,
        max_size=pool_size,
        timeout=30,
        bulk_size=1,
        hot_limits=limits,
        bulk_limits=limits,
    )
    await db.open_reads()  # only the read pool: the twin serves nothing else
    clock = system_clock
    tokens = TokenService(secret.encode(), timedelta(hours=1), clock)
    metrics = Metrics()
    cache = ReadCache(cache_users, metrics)
    listener = ChangeListener(database_url, cache, own_origin="")
    if cache_users:
        listener.start()
    reads = Reads(db, clock, cache, encoded_user_segments)
    interceptors = [] if bare else [Bookkeeping(tokens, metrics)]
    server = grpc.aio.server(interceptors=interceptors, options=[("grpc.so_reuseport", 0)])
    server.add_generic_rpc_handlers((AioUsers(reads, tokens if bare else None).handler(),))
    health_pb2_grpc.add_HealthServicer_to_server(health_aio.HealthServicer(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await server.stop(1)
    listener.stop()
    await db.close_reads()


def main() -> None:
    """`python -m bench.aio_server --port P [--bare] [--uvloop]`."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--database-url", default=os.environ.get("SEGSVC_DATABASE_URL"))
    parser.add_argument("--secret", default=os.environ.get("SEGSVC_JWT_SECRET"))
    parser.add_argument(
        "--pool-size", type=int, default=int(os.environ.get("SEGSVC_POOL_SIZE", "16"))
    )
    parser.add_argument(
        "--cache-users", type=int, default=int(os.environ.get("SEGSVC_CACHE_USERS", "100000"))
    )
    parser.add_argument("--bare", action="store_true", help="no interceptor")
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop")
    args = parser.parse_args()
    if not args.database_url or not args.secret:
        parser.error("needs SEGSVC_DATABASE_URL and SEGSVC_JWT_SECRET (or the flags)")
    configure_logging(
        os.environ.get("SEGSVC_LOG_FORMAT", "json"), os.environ.get("SEGSVC_LOG_LEVEL", "INFO")
    )
    coroutine = serve(
        args.port, args.database_url, args.secret, args.pool_size, args.bare, args.cache_users
    )
    if args.uvloop:
        import uvloop

        uvloop.run(coroutine)
    else:
        asyncio.run(coroutine)


if __name__ == "__main__":
    main()
