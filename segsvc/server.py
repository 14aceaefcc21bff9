"""Assembles a segsvc process: database, services, gRPC server, HTTP side port and
background tasks, and takes them down in the right order.

The gRPC server is grpc.aio on its own event loop thread (uvloop): the hot reads are
coroutines answered on the loop, everything else blocking code on worker threads
(api.blocking_calls). The README's "Server model" section has the measurements against
grpcio's threaded server that decided it. The rest of the process - health watcher,
sweeper, cache listener, HTTP port, stream watchdog - keeps its own threads, and the
process's main thread only starts and stops it all.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

import grpc
import structlog
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from segmentation.v1 import auth_service_pb2, segment_service_pb2, user_service_pb2
from segmentation.v1 import auth_service_pb2_grpc as auth_grpc
from segmentation.v1 import segment_service_pb2_grpc as segment_grpc
from segsvc.api import access_rules, user_segments_wire
from segsvc.api.auth_servicer import AuthServicer
from segsvc.api.blocking_calls import BlockingCalls
from segsvc.api.interceptors import ServerInterceptor
from segsvc.api.segment_servicer import SegmentServicer
from segsvc.api.stream_watchdog import StreamWatchdog
from segsvc.api.user_servicer import UserServicer, add_to_server
from segsvc.cache.listener import ChangeListener
from segsvc.cache.read_cache import ReadCache
from segsvc.config import Settings
from segsvc.domain.accounts import hash_password
from segsvc.domain.clock import Clock, system_clock
from segsvc.domain.membership_change import MembershipChange
from segsvc.domain.report_links import ReportLinkSigner
from segsvc.domain.tokens import TokenService
from segsvc.health import HealthMonitor
from segsvc.http.server import HttpEndpoints
from segsvc.loop_thread import LoopThread
from segsvc.observability.metrics import Metrics
from segsvc.service_layer.accounts import Accounts
from segsvc.service_layer.api_keys import ApiKeys
from segsvc.service_layer.authentication import Authenticator
from segsvc.service_layer.expiry_sweeper import ExpirySweeper
from segsvc.service_layer.password_work import PasswordWork
from segsvc.service_layer.reads import Reads
from segsvc.service_layer.reports import ReportService
from segsvc.service_layer.segments import Segments
from segsvc.service_layer.users import Users
from segsvc.startup import StartupError, resolve_jwt_secret
from segsvc.store import migrations
from segsvc.store.database import Database

log = structlog.get_logger("segsvc.server")

CONTRACT_FILES = [
    auth_service_pb2.DESCRIPTOR,
    user_service_pb2.DESCRIPTOR,
    segment_service_pb2.DESCRIPTOR,
]
SERVICE_NAMES = [
    auth_service_pb2.DESCRIPTOR.services_by_name["AuthService"].full_name,
    user_service_pb2.DESCRIPTOR.services_by_name["UserService"].full_name,
    segment_service_pb2.DESCRIPTOR.services_by_name["SegmentService"].full_name,
]


def _split_addr(addr: str) -> tuple[str, int]:
    host, _, port = addr.rpartition(":")
    return host.strip("[]") or "0.0.0.0", int(port)  # noqa: S104 - listen address


@dataclass(frozen=True)
class ProcessRole:
    """What this process does beside serving gRPC. A single `segsvc serve` does it all;
    behind the supervisor (segsvc.supervisor) the workers share the gRPC port with
    SO_REUSEPORT and only worker 0 serves the HTTP port and runs the expiry sweeper, so
    that the side port is served once and one sweeper runs at a time."""

    worker: int | None = None
    serve_http: bool = True
    run_sweeper: bool = True

    @property
    def reuse_port(self) -> bool:
        """True for a worker: its gRPC port is shared with its siblings."""
        return self.worker is not None

    @classmethod
    def for_worker(cls, index: int) -> ProcessRole:
        """The role of worker `index` behind the supervisor."""
        return cls(worker=index, serve_http=index == 0, run_sweeper=index == 0)


SINGLE_PROCESS = ProcessRole()


class SegsvcServer:
    """One segsvc process's serving parts."""

    def __init__(
        self,
        settings: Settings,
        database_url: str,
        clock: Clock = system_clock,
        role: ProcessRole = SINGLE_PROCESS,
    ) -> None:
        # The gRPC event loop runs first: grpc.aio binds a server to the loop it is made
        # on, and the health servicer publishes through it.
        self._loop = LoopThread()
        try:
            self._assemble(settings, database_url, clock, role)
        except BaseException:
            self._loop.close()
            raise

    def _assemble(
        self, settings: Settings, database_url: str, clock: Clock, role: ProcessRole
    ) -> None:
        self.settings = settings
        self.role = role
        self.database_url = database_url
        secret = resolve_jwt_secret(settings)
        self.metrics = Metrics()
        self.read_cache = ReadCache(settings.cache_users, self.metrics)
        self.db = Database.from_settings(database_url, settings, self._forget_committed)
        self.cache_listener = ChangeListener(database_url, self.read_cache, self.db.origin)
        self.metrics.watch_pool(self.db.pool)
        self.stream_watchdog = StreamWatchdog(settings.stream_idle_timeout_seconds)
        self._stopping = threading.Lock()
        self.blocking = BlockingCalls(settings.grpc_workers)
        self.password_work = PasswordWork(settings.password_workers, settings.password_queue)
        tokens = TokenService(secret, timedelta(seconds=settings.token_ttl_seconds), clock)
        signer = ReportLinkSigner(
            secret, timedelta(seconds=settings.report_link_ttl_seconds), clock
        )
        self.authenticator = Authenticator(self.db, tokens, settings.auth_cache_seconds)
        self.accounts = Accounts(
            self.db,
            tokens,
            self.authenticator,
            self.password_work,
            settings.bcrypt_rounds,
            hash_password(secrets.token_urlsafe(16), settings.bcrypt_rounds),
            settings.open_signup,
            clock,
        )
        self.api_keys = ApiKeys(self.db, self.authenticator, clock)
        self.users = Users(self.db, clock)
        self.reads = Reads(
            self.db, clock, self.read_cache, user_segments_wire.encoded_user_segments
        )
        self.segments = Segments(self.db, clock)
        http_host, http_port = _split_addr(settings.http_addr)
        self.http: HttpEndpoints | None = None
        self.http_port = http_port
        if role.serve_http:
            try:
                self.http = HttpEndpoints(
                    http_host,
                    http_port,
                    settings.http_threads,
                    settings.http_timeout_seconds,
                    settings.http_max_connections,
                )
            except OSError as exc:
                raise StartupError(
                    f"cannot listen on SEGSVC_HTTP_ADDR={settings.http_addr}: {exc.strerror}"
                ) from None
            self.http_port = self.http.port
        public_host = "localhost" if http_host in ("0.0.0.0", "::") else http_host  # noqa: S104
        self.reports = ReportService(
            self.db,
            clock,
            signer,
            settings.public_http_url or f"http://{public_host}:{self.http_port}",
        )
        if not migrations.discover(settings.migrations_dir):
            raise StartupError(
                f"SEGSVC_MIGRATIONS_DIR={settings.migrations_dir} holds no migrations "
                "(NNNNNN_name.up.sql): refusing to serve an empty database"
            )
        self.health = HealthMonitor(
            self.db,
            SERVICE_NAMES,
            settings.health_check_interval_seconds,
            settings.migrations_dir,
            self._loop,
        )
        if self.http is not None:
            self.http.route(
                self.metrics,
                self.reports,
                signer,
                self.health.readiness_problem,
                settings.metrics_token.get_secret_value() if settings.metrics_token else None,
            )
        self.sweeper = ExpirySweeper(
            self.db,
            clock,
            self.metrics,
            settings.expiry_sweep_interval_seconds,
            settings.expiry_sweep_batch,
        )
        try:
            self.access = access_rules.load(CONTRACT_FILES)
        except access_rules.MissingAccessRule as exc:
            raise StartupError(str(exc)) from None
        self.grpc_server = self._loop.run(self._build_grpc())
        self.grpc_port = self._loop.run(self._bind_grpc())

    async def _build_grpc(self) -> grpc.aio.Server:
        s = self.settings
        server = grpc.aio.server(
            interceptors=[
                ServerInterceptor(
                    self.authenticator,
                    self.access,
                    self.metrics,
                    self.stream_watchdog,
                    self.blocking,
                    s.access_log_every,
                )
            ],
            # Beyond this many running calls, RESOURCE_EXHAUSTED at once rather than an
            # unbounded queue. Streams cannot take every worker thread: each needs one of
            # the SEGSVC_BULK_POOL_SIZE bulk slots, fewer than the workers (config.py).
            maximum_concurrent_rpcs=s.grpc_max_concurrent_rpcs,
            options=[
                ("grpc.so_reuseport", int(self.role.reuse_port)),
                ("grpc.keepalive_time_ms", s.keepalive_time_ms),
                ("grpc.keepalive_timeout_ms", s.keepalive_timeout_ms),
                ("grpc.keepalive_permit_without_calls", 1),
                ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
                ("grpc.max_receive_message_length", s.max_message_bytes),
                ("grpc.max_send_message_length", s.max_message_bytes),
            ],
        )
        auth_grpc.add_AuthServiceServicer_to_server(
            AuthServicer(self.accounts, self.api_keys), server
        )
        add_to_server(UserServicer(self.users, self.reads, self.blocking), server)
        segment_grpc.add_SegmentServiceServicer_to_server(
            SegmentServicer(self.segments, self.reports), server
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health.servicer, server)
        reflection.enable_server_reflection(
            [
                *SERVICE_NAMES,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ],
            server,
        )
        return server

    def _forget_committed(self, changes: Sequence[MembershipChange]) -> None:
        # This process's own writes, right after their commit: its next read sees them
        # at once, without waiting for the notice to come back through the listener.
        for change in changes:
            self.read_cache.forget(change)

    async def _bind_grpc(self) -> int:
        s = self.settings
        try:
            if s.tls_cert and s.tls_key:
                client_ca = s.tls_client_ca.read_bytes() if s.tls_client_ca else None
                credentials = grpc.ssl_server_credentials(
                    [(s.tls_key.read_bytes(), s.tls_cert.read_bytes())],
                    root_certificates=client_ca,
                    require_client_auth=client_ca is not None,
                )
                port = self.grpc_server.add_secure_port(s.grpc_addr, credentials)
            elif s.tls_cert or s.tls_key:
                raise StartupError("SEGSVC_TLS_CERT and SEGSVC_TLS_KEY must be set together")
            else:
                port = self.grpc_server.add_insecure_port(s.grpc_addr)
        except OSError as exc:
            raise StartupError(f"cannot read TLS files: {exc}") from None
        except RuntimeError:
            port = 0
        if not port:
            raise StartupError(f"cannot listen on SEGSVC_GRPC_ADDR={s.grpc_addr} (port in use?)")
        return port

    def start(self) -> None:
        """Migrate the schema, open the pool, then start serving."""
        applied = migrations.migrate(self.database_url, self.settings.migrations_dir)
        if applied:
            log.info("migrations_applied", versions=applied)
        self.db.open()
        if self.settings.cache_users:
            self.cache_listener.start()
        self._loop.run(self.db.open_reads())
        assert self.db.read_pool is not None
        self.metrics.watch_pool(self.db.read_pool, "segsvc_db_read_pool")
        self.health.start()
        if self.role.run_sweeper:
            self.sweeper.start()
        self.stream_watchdog.start()
        if self.http is not None:
            self.http.start()
        self._loop.run(self.grpc_server.start())
        log.info(
            "serving" if self.role.worker is None else "worker_serving",
            grpc_port=self.grpc_port,
            http_port=self.http_port if self.http is not None else None,
            tls=bool(self.settings.tls_cert),
            **({} if self.role.worker is None else {"worker": self.role.worker}),
        )

    def stop(self, grace: float | None = None, drain: float | None = None) -> None:
        """Graceful stop, the one place that orders it (README, "Probes and lifecycle"):

        1. drain: health NOT_SERVING and /readyz 503 at once, but calls are still served
           for `drain` seconds, so load balancers, Kubernetes endpoints and clients with
           health checking move their traffic away before anything is refused;
        2. stop accepting calls; in-flight ones get `grace` seconds to finish;
        3. stop background work and close the pools.
        """
        if not self._stopping.acquire(blocking=False):
            return  # stopped or stopping already
        grace = self.settings.shutdown_grace if grace is None else grace
        drain = self.settings.shutdown_drain if drain is None else drain
        log.info("draining", drain_seconds=drain, grace_seconds=grace)
        self.health.drain()
        if drain > 0:
            time.sleep(drain)
        log.info("stopping", grace_seconds=grace)
        self.health.shutdown()
        self._loop.run(self.grpc_server.stop(grace))
        self._loop.run(self.db.close_reads())
        self._loop.close()
        self.blocking.shutdown()
        self.sweeper.stop()
        self.stream_watchdog.stop()
        self.cache_listener.stop()
        if self.http is not None:
            self.http.stop()
        self.password_work.shutdown()
        self.db.close()
        log.info("stopped")
