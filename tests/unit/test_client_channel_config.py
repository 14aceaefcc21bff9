"""The client's retry policy covers exactly the calls that are safe to repeat: reads, and
writes whose request carries a request_id the client always fills in."""

from __future__ import annotations

import json

import pytest
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message

from segsvc_client import channel_config, messages
from segsvc_client._proto.segmentation.v1 import (
    auth_service_pb2,
    segment_service_pb2,
    user_service_pb2,
)

FILES = (auth_service_pb2.DESCRIPTOR, segment_service_pb2.DESCRIPTOR, user_service_pb2.DESCRIPTOR)


def _methods() -> dict[tuple[str, str], MethodDescriptor]:
    return {
        (service.name, method.name): method
        for file in FILES
        for service in file.services_by_name.values()
        for method in service.methods
    }


def test_every_retried_method_is_a_read_or_carries_a_request_id() -> None:
    config = json.loads(channel_config.service_config())
    (method_config,) = config["methodConfig"]
    retried = {
        (n["service"].removeprefix("segmentation.v1."), n["method"]) for n in method_config["name"]
    }
    methods = _methods()
    assert retried <= set(methods)
    for name in retried - set(channel_config.IDEMPOTENT_METHODS):
        assert "request_id" in methods[name].input_type.fields_by_name, name
    assert method_config["retryPolicy"]["retryableStatusCodes"] == ["UNAVAILABLE"]
    for read in ("GetUserSegments", "BatchGetUserSegments", "GetSegment", "ListSegments"):
        assert any(method == read for _, method in retried), read


@pytest.mark.parametrize(
    ("service", "method"),
    [("UserService", "UpdateUserSegments"), ("SegmentService", "CreateSegment")],
)
def test_a_write_is_retried_exactly_when_its_request_has_a_request_id(
    service: str, method: str
) -> None:
    has_field = "request_id" in _methods()[(service, method)].input_type.fields_by_name
    assert ((service, method) in channel_config.retried_methods()) is has_field


def _request_id(message: Message) -> object:
    return {field.name: value for field, value in message.ListFields()}.get("request_id")


def test_request_ids_are_filled_in_when_the_contract_has_them() -> None:
    request = messages.update_request(1, ["A"], [], None)
    if "request_id" in request.DESCRIPTOR.fields_by_name:
        assert _request_id(messages.with_request_id(request, None))
        assert _request_id(messages.with_request_id(request, "mine")) == "mine"
    else:
        assert messages.with_request_id(request, None) == request
        with pytest.raises(TypeError):
            messages.with_request_id(request, "mine")
