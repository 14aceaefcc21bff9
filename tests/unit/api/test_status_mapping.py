"""The size bound of error statuses: whatever a request provokes, the trailer fits the
8 KiB of trailing metadata that gRPC clients accept by default."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from segsvc.api.status_mapping import clip, map_exception
from segsvc.domain.errors import FieldViolation, InvalidArgument, NotFound

CLIENT_LIMIT = 8 * 1024


def wire_size(exc: Exception) -> int:
    """Bytes of the trailer: grpc-status, grpc-message (percent-encoded by gRPC) and the
    base64 grpc-status-details-bin."""
    status = map_exception(exc).to_grpc()
    size = len("grpc-status") + 2 + len("grpc-message") + len(quote(status.details, safe=""))
    for key, value in status.trailing_metadata:
        size += len(key) + (len(value) * 4 + 2) // 3  # binary values travel as base64
    return size


@pytest.mark.parametrize("text", ["x" * 1000, "\u00e4" * 1000, "\U0001f600" * 1000])
def test_worst_cases_fit_what_clients_accept(text: str) -> None:
    many = [FieldViolation(f"remove[{i}]" + text[:300], text) for i in range(1000)]
    assert wire_size(InvalidArgument(many)) < CLIENT_LIMIT * 3 // 4
    assert wire_size(NotFound("segment", [text] * 1000)) < CLIENT_LIMIT * 3 // 4


def test_short_errors_are_complete() -> None:
    status = map_exception(InvalidArgument.single("slug", "bad")).to_grpc()
    assert status.details == "slug: bad"
    assert len(map_exception(NotFound("segment", ["A", "B"])).details) == 1


def test_clip_cuts_at_a_character_boundary() -> None:
    assert clip("\u00e4" * 10, 8) == "\u00e4\u00e4..."
    assert clip("short", 8) == "short"
    assert len(clip("\U0001f600" * 100, 200).encode()) <= 200
