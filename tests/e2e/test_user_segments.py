"""UpdateUserSegments, GetUserSegments, BatchGetUserSegments, CreateUser, ImportUsers
through the real server: the assignment's main method and its guarantees (atomic, no
lost or invented memberships, clear errors)."""

from __future__ import annotations

from typing import Any

import grpc
import psycopg
import pytest

from segmentation.v1 import segment_service_pb2 as seg_pb
from segmentation.v1 import segment_service_pb2_grpc as seg_grpc
from segmentation.v1 import user_service_pb2 as pb
from segmentation.v1 import user_service_pb2_grpc as user_grpc
from tests.support.api import Metadata, create_segments, slugs_of, update
from tests.support.names import Names


def history_rows(db: psycopg.Connection[Any], user_id: int) -> list[tuple[str, str, str]]:
    rows = db.execute(
        "SELECT slug, operation, reason FROM membership_history WHERE user_id = %s ORDER BY id",
        (user_id,),
    ).fetchall()
    return [(r[0], r[1], r[2]) for r in rows]


def test_add_and_remove_in_one_call_returns_active_segments_sorted(
    users: user_grpc.UserServiceStub,
    segments: seg_grpc.SegmentServiceStub,
    auth_metadata: Metadata,
    names: Names,
) -> None:
    b, a, c = names.slug("B"), names.slug("A"), names.slug("C")
    create_segments(segments, auth_metadata, a, b, c)
    uid = names.user_id()
    first = update(users, auth_metadata, uid, add=[b, a, c])
    assert slugs_of(first.user) == [a, b, c]
    second = update(users, auth_metadata, uid, add=[], remove=[b])
    assert slugs_of(second.user) == [a, c]
    read = users.GetUserSegments(pb.GetUserSegmentsRequest(user_id=uid), metadata=auth_metadata)
    assert slugs_of(read.user) == [a, c]
    assert read.user.user_id == uid
    assert all(s.reason == pb.MEMBERSHIP_REASON_MANUAL for s in read.user.segments)
    assert all(s.HasField("added_at") and not s.HasField("expires_at") for s in read.user.segments)


def test_unknown_user_is_registered_implicitly_and_unknown_reads_are_empty(
    users: user_grpc.UserServiceStub,
    segments: seg_grpc.SegmentServiceStub,
    auth_metadata: Metadata,
    names: Names,
    db: psycopg.Connection[Any],
) -> None:
    slug = names.slug()
    create_segments(segments, auth_metadata, slug)
    stranger, newcomer = names.user_id(), names.user_id()
    empty = users.GetUserSegments(
        pb.GetUserSegmentsRequest(user_id=stranger), metadata=auth_metadata
    )
    assert list(empty.user.segments) == []
    update(users, auth_metadata, stranger)  # an empty update changes nothing
    update(users, auth_metadata, newcomer, add=[slug])
    assert db.execute("SELECT 1 FROM users WHERE user_id = %s", (newcomer,)).fetchone()
    assert not db.execute("SELECT 1 FROM users WHERE user_id = %s", (stranger,)).fetchone()


def test_noops_write_no_history(
    users: user_grpc.UserServiceStub,
    segments: seg_grpc.SegmentServiceStub,
    auth_metadata: Metadata,
    names: Names,
    db: psycopg.Connection[Any],
) -> None:
    kept, never = names.slug("KEPT"), names.slug("NEVER")
    create_segments(segments, auth_metadata, kept, never)
    uid = names.user_id()
    update(users, auth_metadata, uid, add=[kept])
    update(users, auth_metadata, uid, add=[kept])  # already has it
    update(users, auth_metadata, uid, remove=[never])  # never had it
    assert history_rows(db, uid) == [(kept, "add", "manual")]
    author = db.execute(
        "SELECT h.account_id = a.id FROM membership_history h, accounts a"
        " WHERE h.user_id = %s AND a.username = 'session-admin'",
        (uid,),
    ).fetchone()
    assert author is not None
    assert author[0]  # the token's account made the change


def test_unknown_slug_applies_nothing(
    users: user_grpc.UserServiceStub,
    segments: seg_grpc.SegmentServiceStub,
    auth_metadata: Metadata,
    names: Names,
    db: psycopg.Connection[Any],
) -> None:
    first, second, removed = names.slug("FIRST"), names.slug("SECOND"), names.slug("REMOVED")
    missing = names.slug("MISSING")
    create_segments(segments, auth_metadata, first, second, removed)
    uid = names.user_id()
    update(users, auth_metadata, uid, add=[removed])
    before = history_rows(db, uid)
    with pytest.raises(grpc.RpcError) as err:
        update(users, auth_metadata, uid, add=[first, second, missing], remove=[removed])
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert missing in (err.value.details() or "")
    read = users.GetUserSegments(pb.GetUserSegmentsRequest(user_id=uid), metadata=auth_metadata)
    assert slugs_of(read.user) == [removed]
    assert history_rows(db, uid) == before


def test_unknown_slug_does_not_register_a_new_user(
    users: user_grpc.UserServiceStub,
    auth_metadata: Metadata,
    names: Names,
    db: psycopg.Connection[Any],
) -> None:
    uid = names.user_id()
    with pytest.raises(grpc.RpcError) as err:
        update(users, auth_metadata, uid, remove=[names.slug("GHOST")])
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert not db.execute("SELECT 1 FROM users WHERE user_id = %s", (uid,)).fetchone()


@pytest.mark.parametrize(
    ("add", "remove", "field"),
    [
        (["X", "X"], [], "add"),
        ([], ["X", "X"], "remove"),
        (["X"], ["X"], "remove"),
        (["lower_case"], [], "add[0].slug"),
        (["A" * 65], [], "add[0].slug"),
        ([], [""], "remove[0]"),
    ],
)
def test_ambiguous_or_malformed_requests_are_invalid(
    users: user_grpc.UserServiceStub,
    auth_metadata: Metadata,
    names: Names,
    add: list[str],
    remove: list[str],
    field: str,
) -> None:
    with pytest.raises(grpc.RpcError) as err:
        update(users, auth_metadata, names.user_id(), add=add, remove=remove)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (err.value.details() or "").startswith(field)


@pytest.mark.parametrize("user_id", [0, -5])
def test_non_positive_user_ids_are_invalid(
    users: user_grpc.UserServiceStub, auth_metadata: Metadata, user_id: int
) -> None:
    for call in (
        lambda: users.GetUserSegments(
            pb.GetUserSegmentsRequest(user_id=user_id), metadata=auth_metadata
        ),
        lambda: users.CreateUser(pb.CreateUserRequest(user_id=user_id), metadata=auth_metadata),
        lambda: update(users, auth_metadata, user_id, add=["ANY"]),
    ):
        with pytest.raises(grpc.RpcError) as err:
            call()
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "user_id" in (err.value.details() or "")


def test_deleted_segment_cannot_be_added(
    users: user_grpc.UserServiceStub,
    segments: seg_grpc.SegmentServiceStub,
    auth_metadata: Metadata,
    names: Names,
) -> None:
    slug = names.slug()
    create_segments(segments, auth_metadata, slug)
    segments.DeleteSegment(seg_pb.DeleteSegmentRequest(slug=slug), metadata=auth_metadata)
    with pytest.raises(grpc.RpcError) as err:
        update(users, auth_metadata, names.user_id(), add=[slug])
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_batch_get_returns_one_entry_per_requested_id_in_order(
    users: user_grpc.UserServiceStub,
    segments: seg_grpc.SegmentServiceStub,
    auth_metadata: Metadata,
    names: Names,
) -> None:
    slug = names.slug()
    create_segments(segments, auth_metadata, slug)
    member, outsider = names.user_id(), names.user_id()
    update(users, auth_metadata, member, add=[slug])
    reply = users.BatchGetUserSegments(
        pb.BatchGetUserSegmentsRequest(user_ids=[outsider, member, outsider]),
        metadata=auth_metadata,
    )
    assert [u.user_id for u in reply.users] == [outsider, member, outsider]
    assert [slugs_of(u) for u in reply.users] == [[], [slug], []]


def test_batch_get_limits(users: user_grpc.UserServiceStub, auth_metadata: Metadata) -> None:
    with pytest.raises(grpc.RpcError) as err:
        users.BatchGetUserSegments(
            pb.BatchGetUserSegmentsRequest(user_ids=list(range(1, 1002))), metadata=auth_metadata
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "1000" in (err.value.details() or "")
    ok = users.BatchGetUserSegments(
        pb.BatchGetUserSegmentsRequest(user_ids=list(range(1, 1001))), metadata=auth_metadata
    )
    assert len(ok.users) == 1000


def test_create_user_then_duplicate(
    users: user_grpc.UserServiceStub, auth_metadata: Metadata, names: Names
) -> None:
    uid = names.user_id()
    created = users.CreateUser(pb.CreateUserRequest(user_id=uid), metadata=auth_metadata)
    assert created.user.user_id == uid
    with pytest.raises(grpc.RpcError) as err:
        users.CreateUser(pb.CreateUserRequest(user_id=uid), metadata=auth_metadata)
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert str(uid) in (err.value.details() or "")


def test_import_users_counts_and_skips_known_ids(
    users: user_grpc.UserServiceStub,
    auth_metadata: Metadata,
    names: Names,
    db: psycopg.Connection[Any],
) -> None:
    ids = names.user_ids(2500)
    known = ids[:10]
    for uid in known:
        users.CreateUser(pb.CreateUserRequest(user_id=uid), metadata=auth_metadata)
    chunks = [ids[:1000], ids[1000:2000], ids[2000:] + ids[:5]]  # 5 repeats inside the import
    reply = users.ImportUsers(
        iter(pb.ImportUsersRequest(user_ids=c) for c in chunks), metadata=auth_metadata
    )
    assert reply.received_count == 2505
    assert reply.created_count == 2490
    row = db.execute("SELECT count(*) FROM users WHERE user_id = ANY(%s)", (ids,)).fetchone()
    assert row is not None
    assert row[0] == 2500


def test_import_with_an_invalid_id_registers_nothing(
    users: user_grpc.UserServiceStub,
    auth_metadata: Metadata,
    names: Names,
    db: psycopg.Connection[Any],
) -> None:
    ids = names.user_ids(100)
    chunks = [ids[:50], [*ids[50:], -1]]
    with pytest.raises(grpc.RpcError) as err:
        users.ImportUsers(
            iter(pb.ImportUsersRequest(user_ids=c) for c in chunks), metadata=auth_metadata
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "user_ids" in (err.value.details() or "")
    row = db.execute("SELECT count(*) FROM users WHERE user_id = ANY(%s)", (ids,)).fetchone()
    assert row is not None
    assert row[0] == 0
