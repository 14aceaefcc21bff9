"""The import's shortcuts compute exactly what the plain definitions do: the rollout
decision unrolled for speed (store.users) agrees with domain.rollout.bucket, and the
stream's fingerprint packed in one call is the per-id encoding it replaced (request
ids stored before the change still match their retries)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest

from segmentation.v1 import user_service_pb2 as pb
from segsvc.api.user_servicer import _ImportStream
from segsvc.domain.rollout import bucket
from segsvc.store.membership_changes import Rollout
from segsvc.store.users import HeldIds, _selected

IDS = [1, 2, 9, 10, 99, 12_345, 999_999, 1_000_001, 2**31, 2**53 + 1, 2**63 - 1]


@pytest.mark.parametrize(
    ("salt", "basis_points"),
    [("BENCH_ROLLOUT", 1000), ("exp:v2", 1), ("ÜNICODE·salt", 5000), ("", 9999), ("S", 10_000)],
)
def test_unrolled_rollout_decision_is_the_bucket_rule(salt: str, basis_points: int) -> None:
    ids = [*IDS, *range(100_000, 105_000)]
    expected = [u for u in ids if bucket(salt, u) < basis_points]
    assert _selected(ids, Rollout(7, salt, basis_points)) == expected


def _old_fingerprint(chunks: list[list[int]]) -> bytes:
    digest = hashlib.sha256(pb.ImportUsersRequest.DESCRIPTOR.full_name.encode())
    for ids in chunks:
        digest.update(len(ids).to_bytes(4, "big"))
        digest.update(b"".join(i.to_bytes(8, "big", signed=True) for i in ids))
    return digest.digest()


def test_packed_fingerprint_is_the_per_id_encoding() -> None:
    chunks = [IDS, [], [-5, 0, -(2**63)], list(range(1, 10_001))]

    def requests() -> Iterator[pb.ImportUsersRequest]:
        yield pb.ImportUsersRequest(
            user_ids=chunks[0], request_id="3f0c1a52-8d7e-4a51-9f5e-0b8e4b1c2d3e"
        )
        for chunk in chunks[1:]:
            yield pb.ImportUsersRequest(user_ids=chunk)

    stream = _ImportStream(requests())
    assert [list(c) for c in stream.chunks()] == chunks
    key = stream.key()
    assert key is not None
    assert key.fingerprint == _old_fingerprint(chunks)


def test_held_ids_come_back_as_they_were_held_until_released() -> None:
    held = HeldIds(25)
    assert not held
    assert held.add([3, 1, 2**63 - 1])
    assert held.add(list(range(10, 30)))
    assert not held.add([7, 8, 9])  # past the limit: not held, decided elsewhere
    assert held.add([-4, 5])
    assert [list(chunk) for chunk in held.chunks()] == [
        [3, 1, 2**63 - 1],
        list(range(10, 30)),
        [-4, 5],
    ]
    held.release()
    assert not held
    assert list(held.chunks()) == []
    held.release()  # twice is harmless
