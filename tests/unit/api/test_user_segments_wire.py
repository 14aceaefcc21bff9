"""The hand-written wire bytes of the hot reads are exactly protobuf's own, and the
answers the read cache keeps serve both read RPCs unchanged."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from segmentation.v1 import user_service_pb2 as pb
from segsvc.api import messages, user_segments_wire
from segsvc.domain.models import ActiveSegment, Reason

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)

instants = st.datetimes(
    min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59, 999999)
).map(lambda d: d.replace(tzinfo=UTC))
segments = st.builds(
    ActiveSegment,
    slug=st.text(max_size=300),
    added_at=instants | st.just(datetime(1970, 1, 1, tzinfo=UTC)),
    expires_at=st.none() | instants,
    reason=st.sampled_from(Reason),
)
user_ids = st.integers(min_value=0, max_value=2**63 - 1)


@given(user_id=user_ids, user_segments=st.lists(segments, max_size=12))
def test_the_bytes_are_protobufs_own(user_id: int, user_segments: list[ActiveSegment]) -> None:
    expected = pb.GetUserSegmentsResponse(user=messages.user_segments(user_id, user_segments))
    encoded = user_segments_wire.encoded_user_segments(user_id, user_segments)
    assert encoded == expected.SerializeToString()
    assert pb.GetUserSegmentsResponse.FromString(encoded) == expected


def test_a_timestamp_before_the_epoch_and_a_long_user_id_round_trip() -> None:
    early = ActiveSegment(
        "OLD", datetime(1969, 12, 31, 23, 59, 59, 5, tzinfo=UTC), None, Reason.MANUAL
    )
    encoded = user_segments_wire.encoded_user_segments(2**62, [early])
    user = pb.GetUserSegmentsResponse.FromString(encoded).user
    assert user.user_id == 2**62
    assert user.segments[0].added_at.ToDatetime(UTC) == early.added_at


def test_a_batch_answer_is_the_concatenation_of_single_answers() -> None:
    users = {
        1: [ActiveSegment("A", T0, None, Reason.MANUAL)],
        2: [],
        3: [
            ActiveSegment("B", T0, T0 + timedelta(days=30), Reason.ROLLOUT),
            ActiveSegment("C", T0, None, Reason.MANUAL),
        ],
    }
    order = [3, 1, 2, 3]
    encoded = user_segments_wire.concatenated(
        [user_segments_wire.encoded_user_segments(uid, users[uid]) for uid in order]
    )
    expected = pb.BatchGetUserSegmentsResponse(
        users=[messages.user_segments(uid, users[uid]) for uid in order]
    )
    assert pb.BatchGetUserSegmentsResponse.FromString(encoded) == expected
