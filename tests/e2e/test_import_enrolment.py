"""Rollout enrolment of imported users, on each of the import's paths: decided while
the users are inserted (held ids) or while the ids stream in (beyond the held limit),
for a plain insert of all-new ids or for ids around registered ones, and for a rollout
created while the import streams. Every created user selected by a rollout is enrolled
once, with one history row; a known user is never enrolled by an import."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from segmentation.v1 import segment_service_pb2 as seg_pb
from segmentation.v1 import segment_service_pb2_grpc as seg_grpc
from segmentation.v1 import user_service_pb2 as pb
from segmentation.v1 import user_service_pb2_grpc as user_grpc
from segsvc.domain.rollout import is_enrolled
from segsvc.store import users as user_store
from tests.support.api import members, update
from tests.support.names import Names

Metadata = tuple[tuple[str, str], ...]


def _rollout(
    segments: seg_grpc.SegmentServiceStub, md: Metadata, rollouts: list[str], slug: str, pct: float
) -> None:
    rollouts.append(slug)
    segments.CreateSegment(seg_pb.CreateSegmentRequest(slug=slug, auto_percent=pct), metadata=md)


def _adds(database_url: str, slug: str, user_ids: list[int]) -> dict[int, int]:
    """History 'add' rows per user in the live segment `slug`."""
    with psycopg.connect(database_url) as conn:
        rows: list[Any] = conn.execute(
            "SELECT h.user_id, count(*) FROM membership_history h"
            " JOIN segments s ON s.id = h.segment_id"
            " WHERE s.slug = %s AND s.deleted_at IS NULL AND h.operation = 'add'"
            " AND h.user_id = ANY(%s) GROUP BY h.user_id",
            (slug, user_ids),
        ).fetchall()
    return {int(r[0]): int(r[1]) for r in rows}


def test_held_and_streamed_decisions_enrol_exactly_as_the_hash_says(
    users: user_grpc.UserServiceStub,
    segments: seg_grpc.SegmentServiceStub,
    auth_metadata: Metadata,
    names: Names,
    rollouts: list[str],
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The first message's ids are held and decided during the insert, the others
    (past the lowered limit) as they stream in; two rollouts, so rows of both kinds."""
    half, all_ = names.slug("IMP_HALF"), names.slug("IMP_ALL")
    _rollout(segments, auth_metadata, rollouts, half, 50)
    _rollout(segments, auth_metadata, rollouts, all_, 100)
    monkeypatch.setattr(user_store, "HELD_IDS_LIMIT", 150)
    ids = names.user_ids(400)
    chunks = [ids[:100], ids[100:250], ids[250:]]
    reply = users.ImportUsers(
        iter([pb.ImportUsersRequest(user_ids=c) for c in chunks]), metadata=auth_metadata
    )
    salt = half  # a rollout's salt defaults to its slug
    expected_half = {u for u in ids if is_enrolled(salt, 5000, u)}
    assert 0 < len(expected_half) < len(ids)
    assert reply.created_count == len(ids)
    # At least: a rollout another test left live would enrol some of them too.
    assert reply.rollout_membership_count >= len(ids) + len(expected_half)
    assert members(segments, auth_metadata, half) >= expected_half
    assert not (members(segments, auth_metadata, half) & (set(ids) - expected_half))
    assert set(ids) <= members(segments, auth_metadata, all_)
    assert _adds(database_url, half, ids) == dict.fromkeys(expected_half, 1)
    assert _adds(database_url, all_, ids) == dict.fromkeys(ids, 1)


def test_ids_around_a_known_user_enrol_only_the_created_ones(
    users: user_grpc.UserServiceStub,
    segments: seg_grpc.SegmentServiceStub,
    auth_metadata: Metadata,
    names: Names,
    rollouts: list[str],
    database_url: str,
) -> None:
    """A registered id inside the imported range takes the anti-join path; the known
    user, removed from the rollout by hand, stays out of it."""
    slug = names.slug("IMP_KNOWN")
    _rollout(segments, auth_metadata, rollouts, slug, 100)
    ids = names.user_ids(50)
    known = ids[20]
    users.CreateUser(pb.CreateUserRequest(user_id=known), metadata=auth_metadata)
    update(users, auth_metadata, known, remove=[slug])
    reply = users.ImportUsers(iter([pb.ImportUsersRequest(user_ids=ids)]), metadata=auth_metadata)
    new = [u for u in ids if u != known]
    assert (reply.received_count, reply.created_count) == (len(ids), len(new))
    assert reply.rollout_membership_count >= len(new)
    in_segment = members(segments, auth_metadata, slug)
    assert set(new) <= in_segment
    assert known not in in_segment
    assert _adds(database_url, slug, new) == dict.fromkeys(new, 1)


def test_a_rollout_created_while_an_import_streams_enrols_its_users(
    users: user_grpc.UserServiceStub,
    segments: seg_grpc.SegmentServiceStub,
    auth_metadata: Metadata,
    names: Names,
    rollouts: list[str],
    database_url: str,
) -> None:
    """The import read the live rollouts before its stream; the one created between two
    of its messages is decided in SQL once the users are registered."""
    slug = names.slug("IMP_LATE")
    ids = names.user_ids(60)

    def requests() -> Iterator[pb.ImportUsersRequest]:
        yield pb.ImportUsersRequest(user_ids=ids[:30])
        _rollout(segments, auth_metadata, rollouts, slug, 100)
        yield pb.ImportUsersRequest(user_ids=ids[30:])

    reply = users.ImportUsers(requests(), metadata=auth_metadata, timeout=30)
    assert reply.created_count == len(ids)
    assert reply.rollout_membership_count >= len(ids)
    assert set(ids) <= members(segments, auth_metadata, slug)
    assert _adds(database_url, slug, ids) == dict.fromkeys(ids, 1)


def test_an_id_sent_twice_is_registered_and_enrolled_once(
    users: user_grpc.UserServiceStub,
    segments: seg_grpc.SegmentServiceStub,
    auth_metadata: Metadata,
    names: Names,
    rollouts: list[str],
    database_url: str,
) -> None:
    slug = names.slug("IMP_TWICE")
    _rollout(segments, auth_metadata, rollouts, slug, 100)
    ids = names.user_ids(10)
    chunks = [ids[:6], [ids[3], *ids[6:], ids[0]]]
    reply = users.ImportUsers(
        iter([pb.ImportUsersRequest(user_ids=c) for c in chunks]), metadata=auth_metadata
    )
    assert (reply.received_count, reply.created_count) == (12, 10)
    assert set(ids) <= members(segments, auth_metadata, slug)
    assert _adds(database_url, slug, ids) == dict.fromkeys(ids, 1)
