"""The real server, driven through a real channel by random sequences of every mutating
RPC, agrees after every step with an in-memory model (tests/support/membership_model.py).

Hypothesis chooses the calls: CreateSegment (plain, with a rollout, validate_only,
invalid percentages), DeleteSegment, re-creating a deleted slug, UpdateUserSegments
(adds with and without ttl / expires_at, removes, unknown slugs, duplicates, a slug in
both lists, invalid expiries), CreateUser, ImportUsers (with and without invalid ids),
moving the server's clock so that memberships expire, and running the expiry sweeper.
After every step it compares GetUserSegments, BatchGetUserSegments, `as_of` reads at
earlier step instants, GetSegment member counts, ListSegmentUsers and the history
report, whose rows must equal the model's to the microsecond.

The server's clock is frozen at the model's `now`, which moves 1 ms per step (so every
step has its own instant) and by larger jumps in the `advance_clock` rule.

The server has a database of its own (a rollout enrols every registered user, so exact
member counts need a database whose every user the model knows); each test case still
takes fresh slugs and user ids, and learns the users and live rollouts that earlier
cases left behind.

Profiles: CI runs MODEL_STEPS steps (default 200). The deep profile is
`SEGSVC_MODEL_STEPS=10000 pytest tests/e2e/test_model.py -s` (optionally bounded by
`SEGSVC_MODEL_SECONDS`); it prints how many steps and cases it ran.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from segmentation.v1 import segment_service_pb2 as seg_pb
from segmentation.v1 import user_service_pb2 as pb
from segsvc.server import SegsvcServer
from tests.support.clock import MovableClock
from tests.support.history_replay import history_differences, read_report, replay_problems
from tests.support.membership_model import (
    Addition,
    MembershipModel,
    Refused,
    SegmentState,
    UserView,
    view_of,
)
from tests.support.names import Names
from tests.support.servers import PrivateServer, private_server

MODEL_STEPS = int(os.environ.get("SEGSVC_MODEL_STEPS", "200"))
MODEL_SECONDS = float(os.environ.get("SEGSVC_MODEL_SECONDS", "0"))
DEEP = MODEL_STEPS > 1000
STEPS_PER_CASE = 50 if DEEP else 30
USERS_PER_CASE = 5
# Labels of the case's slugs: rules create and delete the first four; the fifth is
# never created, so it stays unknown.
SLUG_LABELS = ("A", "B", "C", "D", "NEVER")
CREATABLE = range(4)
ALL_LABELS = range(len(SLUG_LABELS))
TICK = timedelta(milliseconds=1)
MAX_CASE_SPAN = timedelta(days=10)  # keeps the session's tokens (30 days) valid
TIMEOUT = 10

# Shrinking a failure re-runs hundreds of server cases (minutes): only on request,
# with SEGSVC_MODEL_SHRINK=1; without it the failing case is printed as it ran.
SHRINK = os.environ.get("SEGSVC_MODEL_SHRINK") == "1"
CASES = settings(
    max_examples=10,
    stateful_step_count=STEPS_PER_CASE,
    deadline=None,
    database=None,
    phases=[Phase.generate, Phase.shrink] if SHRINK else [Phase.generate],
    suppress_health_check=list(HealthCheck),
)

Reply = TypeVar("Reply", bound=Message)

# ---- strategies ----------------------------------------------------------------------

percents = st.one_of(
    st.none(),
    st.none(),
    st.integers(1, 10_000).map(lambda bp: bp / 100),
    st.sampled_from([50.0, 100.0]),
    st.sampled_from([0.0, -5.0, 100.01, 12.345]),  # refused: INVALID_ARGUMENT
)
# An expiry as (kind, milliseconds): kind "none", "ttl" or "at" (expires_at = now + ms).
Expiry = tuple[str, int]
valid_expiries = st.one_of(
    st.just(("none", 0)),
    st.tuples(st.sampled_from(["ttl", "at"]), st.integers(1, 5_000)),
    st.tuples(st.sampled_from(["ttl", "at"]), st.integers(1, 3 * 86_400_000)),
)
expiries = st.one_of(
    valid_expiries,
    st.tuples(st.sampled_from(["ttl", "at"]), st.integers(-1_000, 0)),  # not in the future
    st.just(("ttl", 3651 * 86_400_000)),  # beyond ten years
)
clock_jumps = st.one_of(
    st.integers(1, 5_000),
    st.integers(1, 5_000),
    st.integers(1, 3 * 3_600_000),
    st.integers(1, 2 * 86_400_000),
)


def duration(ms: int) -> Duration:
    out = Duration()
    out.FromTimedelta(timedelta(milliseconds=ms))
    return out


def timestamp(value: datetime) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(value)
    return out


def when(value: Timestamp) -> datetime:
    return value.ToDatetime(tzinfo=UTC)


class StepCount:
    """Steps and cases run so far, across every run of the machine."""

    def __init__(self) -> None:
        self.steps = 0
        self.cases = 0


def rest_of_database(server: SegsvcServer) -> tuple[frozenset[int], dict[str, SegmentState]]:
    """Users registered by earlier cases, and the live rollouts they left (read through
    the server's pool: no connection of our own per case)."""
    with server.db.connection() as conn:
        users = frozenset(r[0] for r in conn.execute("SELECT user_id FROM users"))
        rollouts = {
            r[0]: SegmentState(r[0], r[1], r[2], r[3], r[4])
            for r in conn.execute(
                "SELECT slug, description, rollout_bp, rollout_salt, created_at FROM segments"
                " WHERE deleted_at IS NULL AND rollout_bp IS NOT NULL"
            )
        }
    return users, rollouts


def machine_for(
    env: PrivateServer, clock: MovableClock, count: StepCount
) -> type[RuleBasedStateMachine]:
    """The state machine, bound to one server and its clock."""
    md = env.metadata

    def call(method: Callable[..., Reply], request: Any) -> Reply | grpc.RpcError:
        try:
            return method(request, metadata=md, timeout=TIMEOUT)
        except grpc.RpcError as exc:
            return exc

    def expect_refused(outcome: Message | grpc.RpcError, refused: Refused) -> None:
        assert isinstance(outcome, grpc.RpcError), f"expected {refused.code}, got {outcome}"
        assert outcome.code() == refused.code, outcome

    def expect_ok(outcome: Reply | grpc.RpcError) -> Reply:
        assert not isinstance(outcome, grpc.RpcError), (outcome.code(), outcome.details())
        return outcome

    class ServerAgainstModel(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            names = Names()
            self.slugs = [names.slug(label) for label in SLUG_LABELS]
            self.user_ids = names.user_ids(USERS_PER_CASE)
            foreign_users, foreign_rollouts = rest_of_database(env.server)
            now = datetime.now(UTC)
            self.start = now.replace(microsecond=now.microsecond // 1000 * 1000)
            self.model = MembershipModel(self.start, foreign_users, segments=foreign_rollouts)
            self.checks = 0
            clock.freeze(self.start)
            self.model.snapshot()
            count.cases += 1

        def tick(self, by: timedelta = TICK) -> None:
            self.model.now += by
            clock.freeze(self.model.now)
            count.steps += 1

        # ---- rules ---------------------------------------------------------------

        @rule(
            label=st.sampled_from(CREATABLE),
            percent=percents,
            salt=st.sampled_from(["", "", "salt-1", "salt-2"]),
            validate_only=st.booleans(),
            description=st.sampled_from(["", "a segment"]),
        )
        def create_segment(
            self,
            label: int,
            percent: float | None,
            salt: str,
            validate_only: bool,
            description: str,
        ) -> None:
            self.tick()
            slug = self.slugs[label]
            expected = self.model.create_segment(slug, description, percent, salt, validate_only)
            request = seg_pb.CreateSegmentRequest(
                slug=slug,
                description=description,
                rollout_salt=salt,
                validate_only=validate_only,
                auto_percent=percent,
            )
            outcome = call(env.segments.CreateSegment, request)
            if isinstance(expected, Refused):
                expect_refused(outcome, expected)
                return
            segment, members = expected
            got = expect_ok(outcome).segment
            assert (got.slug, got.description) == (slug, description)
            assert when(got.create_time) == self.model.now
            assert got.member_count == members
            assert got.HasField("auto_percent") == (segment.basis_points is not None)
            if segment.basis_points is not None:
                assert round(got.auto_percent * 100) == segment.basis_points
                assert got.rollout_salt == segment.salt

        @rule(label=st.sampled_from(CREATABLE))
        def delete_segment(self, label: int) -> None:
            self.tick()
            slug = self.slugs[label]
            expected = self.model.delete_segment(slug)
            outcome = call(env.segments.DeleteSegment, seg_pb.DeleteSegmentRequest(slug=slug))
            if isinstance(expected, Refused):
                expect_refused(outcome, expected)
                return
            got = expect_ok(outcome).segment
            assert got.slug == slug
            assert got.member_count == expected[1]

        @initialize(first=percents, second=percents)
        def create_first_segments(self, first: float | None, second: float | None) -> None:
            # Most interesting steps need live segments: start every case with two.
            self.create_segment(0, first, "", False, "")
            self.create_segment(1, second, "", False, "")

        @rule(
            user=st.sampled_from(range(USERS_PER_CASE)),
            adds=st.lists(st.tuples(st.sampled_from(ALL_LABELS), expiries), max_size=3),
            removes=st.one_of(
                st.lists(st.sampled_from(ALL_LABELS), max_size=3, unique=True),
                st.lists(st.sampled_from(ALL_LABELS), max_size=3),
            ),
        )
        def update_user_segments(
            self, user: int, adds: list[tuple[int, Expiry]], removes: list[int]
        ) -> None:
            """Any mix, valid or not: unknown slugs, duplicates, a slug in both lists."""
            self.update(
                self.user_ids[user],
                [(self.slugs[label], expiry) for label, expiry in adds],
                [self.slugs[label] for label in removes],
            )

        @rule(data=st.data(), user=st.sampled_from(range(USERS_PER_CASE)))
        def add_live_segments(self, data: st.DataObject, user: int) -> None:
            """Valid adds of live segments, often with an expiry: memberships to compare."""
            live = self.live_slugs()
            if not live:
                return self.tick()
            chosen = data.draw(st.lists(st.sampled_from(live), min_size=1, max_size=2, unique=True))
            adds = [(slug, data.draw(valid_expiries)) for slug in chosen]
            self.update(self.user_ids[user], adds, [])

        @rule(
            data=st.data(),
            user=st.sampled_from(range(USERS_PER_CASE)),
            ttl=st.integers(1, 3_000),
            kind=st.sampled_from(["ttl", "at"]),
        )
        def add_live_segment_briefly(
            self, data: st.DataObject, user: int, ttl: int, kind: str
        ) -> None:
            """A membership that the next clock moves are likely to end."""
            live = self.live_slugs()
            if not live:
                return self.tick()
            self.update(self.user_ids[user], [(data.draw(st.sampled_from(live)), (kind, ttl))], [])

        @rule(data=st.data(), user=st.sampled_from(range(USERS_PER_CASE)))
        def remove_segments_of_user(self, data: st.DataObject, user: int) -> None:
            """Removes of segments the user has (or had, before it expired)."""
            uid = self.user_ids[user]
            had = sorted(set(self.model.memberships.get(uid, {})) & set(self.slugs))
            if not had:
                return self.tick()
            removes = data.draw(st.lists(st.sampled_from(had), min_size=1, max_size=2, unique=True))
            self.update(uid, [], removes)

        def update(self, uid: int, adds: list[tuple[str, Expiry]], removals: list[str]) -> None:
            self.tick()
            additions, messages = [], []
            for slug, (kind, ms) in adds:
                if kind == "ttl":
                    additions.append(Addition(slug, ttl=timedelta(milliseconds=ms)))
                    messages.append(pb.SegmentAddition(slug=slug, ttl=duration(ms)))
                elif kind == "at":
                    at = self.model.now + timedelta(milliseconds=ms)
                    additions.append(Addition(slug, expires_at=at))
                    messages.append(pb.SegmentAddition(slug=slug, expires_at=timestamp(at)))
                else:
                    additions.append(Addition(slug))
                    messages.append(pb.SegmentAddition(slug=slug))
            expected = self.model.update(uid, additions, removals)
            request = pb.UpdateUserSegmentsRequest(user_id=uid, add=messages, remove=removals)
            outcome = call(env.users.UpdateUserSegments, request)
            if isinstance(expected, Refused):
                expect_refused(outcome, expected)
                return
            got = expect_ok(outcome).user
            assert got.user_id == uid
            assert view_of(got.segments) == expected

        def live_slugs(self) -> list[str]:
            return [slug for slug in self.slugs if slug in self.model.segments]

        @precondition(lambda self: len(self.model.registered) < USERS_PER_CASE)
        @rule(user=st.sampled_from(range(USERS_PER_CASE)))
        def create_user(self, user: int) -> None:
            self.tick()
            uid = self.user_ids[user]
            expected = self.model.create_user(uid)
            outcome = call(env.users.CreateUser, pb.CreateUserRequest(user_id=uid))
            if isinstance(expected, Refused):
                expect_refused(outcome, expected)
                return
            assert view_of(expect_ok(outcome).user.segments) == expected

        @rule(
            chunks=st.lists(
                st.lists(st.sampled_from(range(USERS_PER_CASE)), max_size=4), max_size=3
            ),
            bad=st.sampled_from([None, None, None, None, 0, -7]),
        )
        def import_users(self, chunks: list[list[int]], bad: int | None) -> None:
            self.tick()
            ids = [[self.user_ids[i] for i in chunk] for chunk in chunks]
            if bad is not None:
                ids.append([*ids[-1], bad] if ids else [bad])
            expected = self.model.import_users(ids)
            requests = iter([pb.ImportUsersRequest(user_ids=chunk) for chunk in ids])
            outcome = call(env.users.ImportUsers, requests)
            if isinstance(expected, Refused):
                expect_refused(outcome, expected)
                return
            reply = expect_ok(outcome)
            got = (reply.received_count, reply.created_count, reply.rollout_membership_count)
            assert got == (expected.received, expected.created, expected.rollout_memberships)

        @precondition(lambda self: self.model.now - self.start < MAX_CASE_SPAN)
        @rule(ms=clock_jumps, sweep=st.booleans())
        def advance_clock(self, ms: int, sweep: bool) -> None:
            """Let time pass (memberships expire), then maybe run the expiry sweeper:
            nothing a caller sees may change when it does."""
            self.tick(timedelta(milliseconds=ms))
            if sweep:
                env.server.sweeper.sweep_once()

        # ---- the comparison after every step -------------------------------------

        @invariant()
        def reads_match_the_model(self) -> None:
            self.model.snapshot()
            self.checks += 1
            model = self.model
            batch = env.users.BatchGetUserSegments(
                pb.BatchGetUserSegmentsRequest(user_ids=self.user_ids), metadata=md
            )
            assert [u.user_id for u in batch.users] == self.user_ids
            for got in batch.users:
                assert view_of(got.segments) == model.active(got.user_id), got.user_id

            uid = self.user_ids[self.checks % USERS_PER_CASE]
            assert self.get(uid) == model.active(uid)
            # as_of: now, one earlier step instant, and an instant between two steps.
            earlier, _ = model.snapshots[(self.checks * 7919) % len(model.snapshots)]
            for instant in (model.now, earlier, earlier + TICK / 2):
                if instant <= model.now:
                    assert self.get(uid, instant) == model.as_of(uid, instant), instant

        @invariant()
        def segments_match_the_model(self) -> None:
            live = []
            for slug in self.slugs[: len(CREATABLE)]:
                if slug not in self.model.segments:
                    outcome = call(env.segments.GetSegment, seg_pb.GetSegmentRequest(slug=slug))
                    expect_refused(outcome, Refused(grpc.StatusCode.NOT_FOUND))
                    continue
                live.append(slug)
                got = env.segments.GetSegment(seg_pb.GetSegmentRequest(slug=slug), metadata=md)
                assert got.segment.member_count == self.model.member_count(slug), slug
            if not live:
                return
            # The member list of one live segment per step, in turn: a stream each.
            slug = live[self.checks % len(live)]
            members = [
                uid
                for chunk in env.segments.ListSegmentUsers(
                    seg_pb.ListSegmentUsersRequest(slug=slug), metadata=md, timeout=TIMEOUT
                )
                for uid in chunk.user_ids
            ]
            assert members == sorted(self.model.members(slug)), slug

        @invariant()
        def history_matches_the_model(self) -> None:
            rows = read_report(env.segments, md, self.user_ids, self.start, self.model.now)
            assert history_differences(rows, self.model.expected_history()) == []
            current = {(uid, slug) for uid in self.user_ids for slug in self.model.active(uid)}
            assert replay_problems(rows, current) == []

        def get(self, uid: int, as_of: datetime | None = None) -> UserView:
            request = pb.GetUserSegmentsRequest(user_id=uid)
            if as_of is not None:
                request.as_of.CopyFrom(timestamp(as_of))
            reply = env.users.GetUserSegments(request, metadata=md, timeout=TIMEOUT)
            return view_of(reply.user.segments)

        def teardown(self) -> None:
            # Live rollouts of this case would enrol the next case's users: delete them.
            for slug in self.slugs[: len(CREATABLE)]:
                call(env.segments.DeleteSegment, seg_pb.DeleteSegmentRequest(slug=slug))
            clock.reset()

    return ServerAgainstModel


@pytest.fixture(scope="module")
def model_server(fresh_database: Callable[[], str], clock: MovableClock) -> Iterator[Any]:
    """A server whose database holds only what the model test put there."""
    # One call at a time: a small pool leaves the shared PostgreSQL's connections to others.
    with private_server(fresh_database(), clock, pool_min_size=1, pool_size=4) as env:
        yield env


def run_cases(machine: type[RuleBasedStateMachine], count: StepCount, steps: int) -> None:
    """Run test cases until `steps` steps have run (or SEGSVC_MODEL_SECONDS passed)."""
    deadline = time.monotonic() + MODEL_SECONDS if MODEL_SECONDS else None
    while count.steps < steps and (deadline is None or time.monotonic() < deadline):
        run_state_machine_as_test(machine, settings=CASES)


def test_server_matches_the_model(model_server: PrivateServer, clock: MovableClock) -> None:
    count = StepCount()
    started = time.monotonic()
    run_cases(machine_for(model_server, clock, count), count, MODEL_STEPS)
    print(
        f"\nmodel: {count.steps} steps in {count.cases} cases, {time.monotonic() - started:.1f} s"
    )
    assert count.steps >= min(MODEL_STEPS, 1)
