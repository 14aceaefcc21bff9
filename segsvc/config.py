"""Every setting of segsvc, typed, read from `SEGSVC_*` environment variables.

One pydantic-settings model so that a bad value fails at start-up with the variable's
name, and so that the README's settings table, docker-compose and the Kubernetes
manifests can be checked against a single source (see tests/unit/test_deploy_files.py).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATA_DIR = Path.home() / ".local" / "share" / "segsvc"
# The migrations inside the package: in a checkout a link to the repository's migrations/
# (the source), in an installed wheel a copy, so every installation migrates by itself.
DEFAULT_MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


class Settings(BaseSettings):
    """Runtime configuration; field `foo_bar` is read from `SEGSVC_FOO_BAR`."""

    model_config = SettingsConfigDict(env_prefix="SEGSVC_", extra="ignore", frozen=True)

    database_url: SecretStr | None = Field(
        default=None,
        description="PostgreSQL URL (postgresql://user:pass@host:5432/db). "
        "Unset: start an embedded PostgreSQL in data_dir (development only).",
    )
    data_dir: Path = Field(
        default=DEFAULT_DATA_DIR,
        description="Where the embedded PostgreSQL and the generated dev JWT secret live.",
    )
    migrations_dir: Path = Field(
        default=DEFAULT_MIGRATIONS_DIR,
        description="Directory of NNNNNN_name.up.sql/.down.sql files applied at start.",
    )
    grpc_addr: str = Field(default="0.0.0.0:50051", description="gRPC listen address.")
    http_addr: str = Field(
        default=":8081", description="HTTP listen address: /metrics, /healthz, /readyz, reports."
    )
    http_threads: int = Field(
        default=4, ge=1, description="Threads answering HTTP requests (probes, metrics, reports)."
    )
    http_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        description="An HTTP connection on which nothing is sent or read this long is closed.",
    )
    http_max_connections: int = Field(
        default=1000, ge=1, description="Open HTTP connections; beyond it new ones wait."
    )
    public_http_url: str | None = Field(
        default=None,
        description="Base URL put into report links; default http://<host>:<http port>.",
    )
    jwt_secret: SecretStr | None = Field(
        default=None,
        description="HS256 signing secret (>= 32 bytes). Required unless running embedded.",
    )
    token_ttl_seconds: int = Field(default=3600, gt=0, description="Access token lifetime.")
    open_signup: bool = Field(
        default=False,
        description="Let anyone sign up reader and writer accounts without a credential.",
    )
    auth_cache_seconds: float = Field(
        default=5.0,
        ge=0,
        le=10,
        description="How long a verified API key or account is trusted without asking the "
        "database: the bound within which revocation and removal reach every replica.",
    )
    metrics_token: SecretStr | None = Field(
        default=None,
        description="When set, GET /metrics needs 'Authorization: Bearer <this token>'.",
    )
    report_link_ttl_seconds: int = Field(default=3600, gt=0, description="Report link lifetime.")
    pool_min_size: int = Field(
        default=2, ge=1, description="Database connections each unary pool keeps open."
    )
    pool_size: int = Field(
        default=16,
        ge=1,
        description=(
            "Maximum database connections of each unary pool: the hot reads' (on the event"
            " loop) and everything else's."
        ),
    )
    pool_timeout_seconds: float = Field(
        default=5.0, gt=0, description="Wait for a free connection before UNAVAILABLE."
    )
    bulk_pool_size: int = Field(
        default=4,
        ge=1,
        description="Streams and bulk work (ListSegmentUsers, StreamHistoryReport, report "
        "downloads, ImportUsers) that may run at once, each with its own connection from a "
        "separate pool; beyond it RESOURCE_EXHAUSTED / HTTP 503 at once.",
    )
    statement_timeout_seconds: float = Field(
        default=5.0, gt=0, description="Longest a statement of a unary RPC may run."
    )
    bulk_statement_timeout_seconds: float = Field(
        default=1800.0,
        gt=0,
        description="Longest one bulk statement may run: a whole import or report COPY.",
    )
    idle_in_transaction_timeout_seconds: float = Field(
        default=60.0,
        gt=0,
        description="PostgreSQL ends a session left idle inside a transaction this long.",
    )
    stream_idle_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        description="A stream whose client sends or reads nothing this long is cancelled.",
    )
    grpc_workers: int = Field(
        default=16,
        ge=2,
        description=(
            "Threads running the blocking RPCs"
            " (all but the hot reads, which the event loop serves)."
        ),
    )
    grpc_max_concurrent_rpcs: int = Field(
        default=1000,
        ge=1,
        description="RPCs running or queued for a thread; beyond it RESOURCE_EXHAUSTED.",
    )
    processes: int = Field(
        default=0,
        ge=0,
        description="Worker processes sharing the gRPC port under one supervisor; "
        "0: one per CPU; 1: a single process, no supervisor.",
    )
    bcrypt_rounds: int = Field(default=12, ge=4, le=16, description="bcrypt cost factor.")
    password_workers: int = Field(
        default=2, ge=1, description="Threads that hash and check passwords (CPU-bound)."
    )
    cache_users: int = Field(
        default=100_000,
        ge=0,
        description="Users whose current segments each process keeps in its read cache "
        "(LRU); 0 turns the cache off.",
    )
    password_queue: int = Field(
        default=2,
        ge=0,
        description="Password checks that may wait for a password thread; beyond "
        "password_workers + this, SignUp/SignIn answer RESOURCE_EXHAUSTED at once.",
    )
    expiry_sweep_interval_seconds: float = Field(
        default=10.0, gt=0, description="How often expired memberships are moved to history."
    )
    expiry_sweep_batch: int = Field(default=5000, ge=1, description="Rows per sweep batch.")
    health_check_interval_seconds: float = Field(
        default=2.0, gt=0, description="How often the database is pinged for health status."
    )
    shutdown_drain: float = Field(
        default=5.0,
        ge=0,
        description="Seconds between SIGTERM (health NOT_SERVING at once) and refusing "
        "new calls, so balancers and clients move away first.",
    )
    shutdown_grace: float = Field(
        default=10.0, ge=0, description="Seconds in-flight RPCs get to finish on SIGTERM."
    )
    log_format: Literal["json", "console"] = Field(default="json", description="Log format.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(default="INFO")
    access_log_every: int = Field(
        default=0,
        ge=0,
        description="Log one line for every Nth RPC (1: every call, 100: one in a hundred; "
        "0: none). Metrics count every call either way.",
    )
    tls_cert: Path | None = Field(default=None, description="PEM certificate: enables TLS.")
    tls_key: Path | None = Field(default=None, description="PEM private key for tls_cert.")
    tls_client_ca: Path | None = Field(
        default=None, description="PEM CA bundle: require client certificates (mTLS)."
    )
    keepalive_time_ms: int = Field(default=60_000, gt=0, description="Server keepalive ping.")
    keepalive_timeout_ms: int = Field(default=20_000, gt=0, description="Keepalive ack wait.")
    max_message_bytes: int = Field(
        default=16 * 1024 * 1024, gt=0, description="Largest gRPC message accepted or sent."
    )

    @field_validator("database_url")
    @classmethod
    def _check_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        url = value.get_secret_value()
        if not url.startswith(("postgresql://", "postgres://")):
            raise ValueError("must start with postgresql:// or postgres://")
        return value

    @field_validator("grpc_addr", "http_addr")
    @classmethod
    def _check_addr(cls, value: str) -> str:
        _host, sep, port = value.rpartition(":")
        if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(f"{value!r} is not host:port (host may be empty)")
        return value

    @model_validator(mode="after")
    def _check_capacity(self) -> Settings:
        # Streams hold a worker thread for their whole life: they must never be able to
        # take every thread, or health checks and writes would queue behind them.
        if self.bulk_pool_size >= self.grpc_workers:
            raise ValueError(
                "SEGSVC_BULK_POOL_SIZE must be below SEGSVC_GRPC_WORKERS "
                f"({self.bulk_pool_size} >= {self.grpc_workers}): "
                "streams would leave no thread for writes and health checks"
            )
        if self.idle_in_transaction_timeout_seconds <= self.stream_idle_timeout_seconds:
            raise ValueError(
                "SEGSVC_IDLE_IN_TRANSACTION_TIMEOUT_SECONDS must exceed "
                "SEGSVC_STREAM_IDLE_TIMEOUT_SECONDS, or a paused stream loses its session "
                "before it is cancelled cleanly"
            )
        return self

    @property
    def process_count(self) -> int:
        """How many serving processes `segsvc serve` runs (`processes`; 0: the CPUs this
        process may run on, which respects a cpuset, unlike os.cpu_count())."""
        return self.processes or len(os.sched_getaffinity(0)) or 1

    @property
    def embedded(self) -> bool:
        """True when segsvc runs its own PostgreSQL: the development mode."""
        return self.database_url is None
