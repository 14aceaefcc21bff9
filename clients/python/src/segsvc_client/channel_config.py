"""How the client's channel behaves: retries, keepalive, reconnects, TLS.

Retries are gRPC's own (a service config), so they happen below the Python code, with
backoff and a retry budget shared by all calls of the channel. Only calls that are safe
to repeat are retried, and only on UNAVAILABLE (the server or its database could not
serve the call, so nothing was done): every read, and the writes that carry a
request_id the server deduplicates on. A plain write is never repeated by the client;
the caller decides (it may have been applied before the connection dropped).

Keepalive suits a sidecar or a shared service on a local network: the server already
pings every 60 s, so the client pings only while calls are in flight and no more often
than gRPC servers accept by default (5 minutes), which never earns a GOAWAY for
"too many pings". Reconnect backoff is short (at most 5 s) so a restarted sidecar is
picked up quickly.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import grpc
from google.protobuf.descriptor import FileDescriptor

from segsvc_client._proto.segmentation.v1 import (
    auth_service_pb2,
    segment_service_pb2,
    user_service_pb2,
)

SERVICE = "segmentation.v1."
# Safe to repeat on UNAVAILABLE: reads, and sign-in (it only issues a token).
IDEMPOTENT_METHODS: tuple[tuple[str, str], ...] = (
    ("AuthService", "SignIn"),
    ("AuthService", "ListApiKeys"),
    ("UserService", "GetUserSegments"),
    ("UserService", "BatchGetUserSegments"),
    ("SegmentService", "GetSegment"),
    ("SegmentService", "ListSegments"),
    ("SegmentService", "ListSegmentUsers"),
    ("SegmentService", "GetHistoryReport"),
    ("SegmentService", "StreamHistoryReport"),
)
REQUEST_ID_FIELD = "request_id"


def deduplicated_writes(
    files: Sequence[FileDescriptor] = (
        auth_service_pb2.DESCRIPTOR,
        segment_service_pb2.DESCRIPTOR,
        user_service_pb2.DESCRIPTOR,
    ),
) -> tuple[tuple[str, str], ...]:
    """Unary writes whose request carries a `request_id` the server deduplicates on: the
    client always sets one, so repeating such a call cannot apply it twice. Read from the
    contract, so a write gains retries as soon as its request gains the field."""
    return tuple(
        (service.name, method.name)
        for file in files
        for service in file.services_by_name.values()
        for method in service.methods
        if REQUEST_ID_FIELD in method.input_type.fields_by_name
        and not method.client_streaming
        and (service.name, method.name) not in IDEMPOTENT_METHODS
    )


RETRY_POLICY: dict[str, Any] = {
    "maxAttempts": 4,
    "initialBackoff": "0.1s",
    "maxBackoff": "2s",
    "backoffMultiplier": 2,
    "retryableStatusCodes": ["UNAVAILABLE"],
}
# A failing server gets no retry storm: retries stop while more than half fail.
RETRY_THROTTLING = {"maxTokens": 10, "tokenRatio": 0.1}
DEFAULT_TIMEOUT = 5.0
"""Seconds a unary call may take, unless the call says otherwise."""
DEFAULT_STREAM_TIMEOUT = 600.0
"""Seconds a streaming call (imports, member lists, reports) may take."""


def retried_methods() -> tuple[tuple[str, str], ...]:
    """Every method the channel repeats on UNAVAILABLE."""
    return IDEMPOTENT_METHODS + deduplicated_writes()


def service_config(methods: Sequence[tuple[str, str]] | None = None) -> str:
    """The JSON service config that retries `methods` on UNAVAILABLE."""
    return json.dumps(
        {
            "methodConfig": [
                {
                    "name": [
                        {"service": SERVICE + service, "method": method}
                        for service, method in (retried_methods() if methods is None else methods)
                    ],
                    "retryPolicy": RETRY_POLICY,
                }
            ],
            "retryThrottling": RETRY_THROTTLING,
        }
    )


def channel_options(max_message_bytes: int = 16 * 1024 * 1024) -> list[tuple[str, Any]]:
    """Channel arguments: the service config, keepalive and reconnect backoff."""
    return [
        ("grpc.service_config", service_config()),
        ("grpc.enable_retries", 1),
        ("grpc.keepalive_time_ms", 300_000),
        ("grpc.keepalive_timeout_ms", 20_000),
        ("grpc.keepalive_permit_without_calls", 0),
        ("grpc.initial_reconnect_backoff_ms", 200),
        ("grpc.max_reconnect_backoff_ms", 5_000),
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
    ]


def channel_credentials(
    tls: bool | grpc.ChannelCredentials, root_certificates: bytes | None
) -> grpc.ChannelCredentials | None:
    """None for plaintext, else TLS credentials (system roots unless given)."""
    if isinstance(tls, grpc.ChannelCredentials):
        return tls
    if tls or root_certificates is not None:
        return grpc.ssl_channel_credentials(root_certificates=root_certificates)
    return None
