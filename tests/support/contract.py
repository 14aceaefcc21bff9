"""The contract's RPCs, enumerated from the generated descriptors, and a way to call any
of them with an empty request: tests that must cover every RPC use these, so an RPC
added later is covered without editing them."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator, Sequence

import grpc
from google.protobuf import descriptor, message_factory

import segmentation.v1


def contract_methods() -> Iterator[descriptor.MethodDescriptor]:
    """Every RPC of every service in every generated module of segmentation.v1."""
    for module_info in sorted(pkgutil.iter_modules(segmentation.v1.__path__), key=str):
        if not module_info.name.endswith("_pb2"):
            continue
        module = importlib.import_module(f"segmentation.v1.{module_info.name}")
        for service in module.DESCRIPTOR.services_by_name.values():
            yield from service.methods


def call_any(
    channel: grpc.Channel,
    method: descriptor.MethodDescriptor,
    metadata: Sequence[tuple[str, str]] = (),
) -> None:
    """Invoke `method` with an empty request, whatever its streaming shape."""
    path = f"/{method.containing_service.full_name}/{method.name}"
    request_cls = message_factory.GetMessageClass(method.input_type)
    response_cls = message_factory.GetMessageClass(method.output_type)
    encode, decode = request_cls.SerializeToString, response_cls.FromString
    request = request_cls()
    md = tuple(metadata)
    if method.client_streaming and method.server_streaming:
        list(channel.stream_stream(path, encode, decode)(iter([request]), metadata=md))
    elif method.client_streaming:
        channel.stream_unary(path, encode, decode)(iter([request]), metadata=md)
    elif method.server_streaming:
        list(channel.unary_stream(path, encode, decode)(request, metadata=md))
    else:
        channel.unary_unary(path, encode, decode)(request, metadata=md)
