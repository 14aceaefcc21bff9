"""The encoded answers the read cache keeps serve both read RPCs unchanged."""

from __future__ import annotations

from datetime import UTC, datetime

from segmentation.v1 import user_service_pb2 as pb
from segsvc.api import messages
from segsvc.domain.models import ActiveSegment, Reason

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def test_a_batch_answer_is_the_concatenation_of_single_answers() -> None:
    users = {
        1: [ActiveSegment("A", T0, None, Reason.MANUAL)],
        2: [],
        3: [
            ActiveSegment("B", T0, datetime(2099, 1, 1, tzinfo=UTC), Reason.ROLLOUT),
            ActiveSegment("C", T0, None, Reason.MANUAL),
        ],
    }
    order = [3, 1, 2, 3]
    encoded = messages.concatenated(
        [messages.encoded_user_segments(uid, users[uid]) for uid in order]
    )
    expected = pb.BatchGetUserSegmentsResponse(
        users=[messages.user_segments(uid, users[uid]) for uid in order]
    )
    assert pb.BatchGetUserSegmentsResponse.FromString(encoded) == expected
    single = pb.GetUserSegmentsResponse.FromString(messages.encoded_user_segments(3, users[3]))
    assert single.user == messages.user_segments(3, users[3])
