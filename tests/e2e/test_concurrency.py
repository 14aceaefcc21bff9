"""Many concurrent UpdateUserSegments calls for one user never lose or duplicate a
membership, and history stays a strict add/remove alternation per segment."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from itertools import groupby
from typing import Any

import grpc
import psycopg

from segmentation.v1 import segment_service_pb2 as seg_pb
from segmentation.v1 import segment_service_pb2_grpc as seg_grpc
from segmentation.v1 import user_service_pb2 as pb
from segmentation.v1 import user_service_pb2_grpc as user_grpc
from tests.support.api import update
from tests.support.names import Names

Metadata = tuple[tuple[str, str], ...]
WORKERS = 12
ROUNDS = 15


def test_concurrent_adds_and_removes_of_one_user(
    users: user_grpc.UserServiceStub,
    segments: seg_grpc.SegmentServiceStub,
    auth_metadata: Metadata,
    names: Names,
    db: psycopg.Connection[Any],
) -> None:
    slugs = [names.slug(f"C{i:02d}") for i in range(WORKERS)]
    for slug in slugs:
        segments.CreateSegment(seg_pb.CreateSegmentRequest(slug=slug), metadata=auth_metadata)
    uid = names.user_id()

    def worker(slug: str) -> None:
        for _ in range(ROUNDS):
            update(users, auth_metadata, uid, add=[slug])
            update(users, auth_metadata, uid, remove=[slug])
        update(users, auth_metadata, uid, add=[slug])

    with ThreadPoolExecutor(WORKERS) as pool:
        list(pool.map(worker, slugs))

    final = users.GetUserSegments(pb.GetUserSegmentsRequest(user_id=uid), metadata=auth_metadata)
    assert [s.slug for s in final.user.segments] == sorted(slugs)
    rows = db.execute(
        "SELECT slug, operation FROM membership_history WHERE user_id = %s ORDER BY slug, id",
        (uid,),
    ).fetchall()
    for slug, events in groupby(rows, key=lambda r: r[0]):
        operations = [e[1] for e in events]
        assert operations == ["add", "remove"] * ROUNDS + ["add"], slug


def test_concurrent_identical_adds_create_one_membership(
    users: user_grpc.UserServiceStub,
    segments: seg_grpc.SegmentServiceStub,
    auth_metadata: Metadata,
    names: Names,
    db: psycopg.Connection[Any],
) -> None:
    slug = names.slug("SAME")
    segments.CreateSegment(seg_pb.CreateSegmentRequest(slug=slug), metadata=auth_metadata)
    uid = names.user_id()  # not registered yet: registration races too

    def add(_: int) -> list[str]:
        reply = update(users, auth_metadata, uid, add=[slug])
        return [s.slug for s in reply.user.segments]

    with ThreadPoolExecutor(WORKERS) as pool:
        results = list(pool.map(add, range(WORKERS * 2)))
    assert all(r == [slug] for r in results)
    history = db.execute(
        "SELECT operation FROM membership_history WHERE user_id = %s", (uid,)
    ).fetchall()
    assert [h[0] for h in history] == ["add"]
    count = db.execute("SELECT count(*) FROM users WHERE user_id = %s", (uid,)).fetchone()
    assert count is not None
    assert count[0] == 1


def test_delete_racing_with_adds_leaves_no_orphans(
    users: user_grpc.UserServiceStub,
    segments: seg_grpc.SegmentServiceStub,
    auth_metadata: Metadata,
    names: Names,
    db: psycopg.Connection[Any],
) -> None:
    slug = names.slug("RACE")
    segments.CreateSegment(seg_pb.CreateSegmentRequest(slug=slug), metadata=auth_metadata)
    ids = names.user_ids(60)

    def add(uid: int) -> grpc.StatusCode:
        try:
            update(users, auth_metadata, uid, add=[slug])
        except grpc.RpcError as err:  # NOT_FOUND once the delete has won
            return err.code()
        return grpc.StatusCode.OK

    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(add, uid) for uid in ids]
        segments.DeleteSegment(seg_pb.DeleteSegmentRequest(slug=slug), metadata=auth_metadata)
        codes = {f.result() for f in futures}
    assert codes <= {grpc.StatusCode.OK, grpc.StatusCode.NOT_FOUND}
    orphans = db.execute(
        "SELECT count(*) FROM memberships m JOIN segments s ON s.id = m.segment_id"
        " WHERE s.slug = %s AND s.deleted_at IS NOT NULL",
        (slug,),
    ).fetchone()
    assert orphans is not None
    assert orphans[0] == 0
    balance = db.execute(
        "SELECT count(*) FILTER (WHERE operation = 'add')"
        " - count(*) FILTER (WHERE operation = 'remove')"
        " FROM membership_history WHERE slug = %s",
        (slug,),
    ).fetchone()
    assert balance is not None
    assert balance[0] == 0
