"""The same GetUserSegments handler on grpc.aio, for the server-model comparison only.

It uses segsvc's own pieces (the SQL of store.memberships, TokenService for the JWT,
api.messages for the response) over psycopg's AsyncConnectionPool, so the only
difference from `segsvc serve` is the server model. Health checking is served too, for
the empty-RPC ceiling. Prints a JSON "serving" line like segsvc, and its call counts on
exit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
from datetime import UTC, datetime, timedelta

import grpc
from grpc_health.v1 import _async as health_aio  # health.aio re-exports it
from grpc_health.v1 import health_pb2_grpc
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from segmentation.v1 import user_service_pb2 as pb
from segmentation.v1 import user_service_pb2_grpc as pb_grpc
from segsvc.api.messages import user_segments
from segsvc.domain.errors import Unauthenticated
from segsvc.domain.models import ActiveSegment, Reason
from segsvc.domain.tokens import TokenService
from segsvc.store.memberships import ACTIVE_FOR_USER


class AioUsers(pb_grpc.UserServiceServicer):
    """GetUserSegments only."""

    def __init__(self, pool: AsyncConnectionPool[AsyncConnection], tokens: TokenService) -> None:
        self.pool = pool
        self.tokens = tokens
        self.counts = {"ok": 0, "error": 0}

    async def GetUserSegments(  # noqa: N802
        self, request: pb.GetUserSegmentsRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> pb.GetUserSegmentsResponse:
        metadata = dict(context.invocation_metadata() or ())
        try:
            self.tokens.verify(str(metadata.get("authorization", ""))[7:])
        except Unauthenticated:
            self.counts["error"] += 1
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "bad token")
        async with self.pool.connection() as conn:
            cursor = await conn.execute(ACTIVE_FOR_USER, (request.user_id, datetime.now(UTC)))
            rows = await cursor.fetchall()
        self.counts["ok"] += 1
        segments = [ActiveSegment(r[0], r[1], r[2], Reason(r[3])) for r in rows]
        return pb.GetUserSegmentsResponse(user=user_segments(request.user_id, segments))


async def serve(port: int, database_url: str, secret: str, pool_size: int) -> None:
    pool = AsyncConnectionPool(
        database_url,
        min_size=pool_size,
        max_size=pool_size,
        open=False,
        kwargs={"autocommit": True, "options": "-c timezone=UTC"},
    )
    await pool.open(wait=True)
    tokens = TokenService(secret.encode(), timedelta(hours=1), lambda: datetime.now(UTC))
    users = AioUsers(pool, tokens)  # type: ignore[abstract]  # only GetUserSegments
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    pb_grpc.add_UserServiceServicer_to_server(users, server)
    health_pb2_grpc.add_HealthServicer_to_server(health_aio.HealthServicer(), server)
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print(json.dumps({"event": "serving", "grpc_port": bound, "http_port": 0}), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await server.stop(1)
    await pool.close()
    print(json.dumps({"event": "counts", **users.counts}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--pool-size", type=int, default=16)
    parser.add_argument("--uvloop", action="store_true")
    args = parser.parse_args()
    coroutine = serve(args.port, args.database_url, args.secret, args.pool_size)
    if args.uvloop:
        import uvloop

        uvloop.run(coroutine)
    else:
        asyncio.run(coroutine)


if __name__ == "__main__":
    main()
