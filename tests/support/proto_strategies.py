"""Hypothesis strategies that build any protobuf message from its descriptor.

Field by field, from the type alone, so a field or RPC added to the contract is fuzzed
without editing the tests. Values lean to what breaks servers: the extremes of each
integer type, NaN and infinities, NUL and control characters, strings far beyond any
limit, unknown enum numbers, repeated fields just over the server's limits (a repeated
value, so a huge list costs the database nothing), Timestamps and Durations outside
their ranges. Plausible values (valid slugs, ids, instants near now) are mixed in so
that calls also get past validation into the use cases.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor, message_factory
from google.protobuf.message import Message
from hypothesis import strategies as st

FD = descriptor.FieldDescriptor
MAX_DEPTH = 3
# Around the server's list limits (1000 slugs/ids, 100 000 ids per import message).
HUGE_LENGTHS = (1_000, 1_001, 100_001)
NOW_SECONDS = 1_800_000_000

_INT_RANGES = {
    FD.TYPE_INT32: (-(2**31), 2**31 - 1),
    FD.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FD.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FD.TYPE_INT64: (-(2**63), 2**63 - 1),
    FD.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FD.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FD.TYPE_UINT32: (0, 2**32 - 1),
    FD.TYPE_FIXED32: (0, 2**32 - 1),
    FD.TYPE_UINT64: (0, 2**64 - 1),
    FD.TYPE_FIXED64: (0, 2**64 - 1),
}


def integers(low: int, high: int) -> st.SearchStrategy[int]:
    """Edges of the type, small and calendar numbers, instants near now, anything in range."""
    edges = sorted({v for v in (low, low + 1, -1, 0, 1, 2, high - 1, high) if low <= v <= high})
    return st.one_of(
        st.sampled_from(edges),
        st.integers(max(low, -10), min(high, 10_000)),
        st.integers(max(low, -1), 13),  # months
        st.integers(max(low, 1999), min(high, 2031)),  # report years
        st.integers(max(low, NOW_SECONDS - 10**8), min(high, NOW_SECONDS + 10**8)),
        st.integers(low, high),
    )


def texts(long: bool) -> st.SearchStrategy[str]:
    """Valid-looking slugs and names, control characters, and (if `long`) huge strings."""
    choices = [
        st.from_regex(r"[A-Z0-9_]{1,64}", fullmatch=True),
        st.from_regex(r"[a-z0-9._-]{3,64}", fullmatch=True),
        st.text(max_size=40),
        st.text(st.characters(codec="utf-8", max_codepoint=0x1F), max_size=10),
    ]
    if long:
        choices.append(
            st.builds(lambda c, n: c * n, st.characters(codec="utf-8"), st.integers(60, 200_000))
        )
    return st.one_of(choices)


def floats(width: int) -> st.SearchStrategy[float]:
    """NaN, infinities, denormals, negatives, and ordinary percentages."""
    return st.one_of(
        st.floats(width=width),  # type: ignore[arg-type]
        st.sampled_from([0.0, -0.0, 1e-9, 5e-324, 0.01, 12.5, 100.0, 100.01]),
        st.integers(0, 10_000).map(lambda bp: bp / 100),
    )


def scalar(field: FD, small: bool) -> st.SearchStrategy[Any]:
    """Values for one element of a non-message field (short strings if `small`)."""
    if field.type in _INT_RANGES:
        return integers(*_INT_RANGES[field.type])
    if field.type == FD.TYPE_ENUM:  # proto3 enums are open: any int32 may arrive
        assert field.enum_type is not None
        known = [v.number for v in field.enum_type.values]
        return st.one_of(st.sampled_from(known), integers(-(2**31), 2**31 - 1))
    if field.type == FD.TYPE_BOOL:
        return st.booleans()
    if field.type == FD.TYPE_DOUBLE:
        return floats(64)
    if field.type == FD.TYPE_FLOAT:
        return floats(32)
    if field.type == FD.TYPE_STRING:
        return texts(long=not small)
    if field.type == FD.TYPE_BYTES:
        return st.binary(max_size=64)
    raise NotImplementedError(f"no strategy for {field.full_name} (type {field.type})")


def messages(
    message_type: descriptor.Descriptor, depth: int = 0, small: bool = False
) -> st.SearchStrategy[Message]:
    """Messages of `message_type`, each field set or left unset (oneofs: one member).

    Short lists take any element; a huge list (top level only) repeats one `small`
    element, which keeps every request within a few megabytes.
    """
    cls = message_factory.GetMessageClass(message_type)
    fields = {}
    for field in message_type.fields:
        if field.type == FD.TYPE_MESSAGE and depth >= MAX_DEPTH:
            continue
        values = element(field, depth, small)
        if field.is_repeated:
            lists = st.lists(values, max_size=6)
            if depth == 0 and not small:
                huge = st.builds(
                    lambda x, n: [x] * n, element(field, depth, True), st.sampled_from(HUGE_LENGTHS)
                )
                lists = st.one_of(lists, huge)
            values = lists
        fields[field.name] = st.one_of(st.none(), values)

    def build(values: dict[str, Any]) -> Message:
        message = cls()
        for name, value in values.items():
            if value is None:
                continue
            field = message_type.fields_by_name[name]
            if field.is_repeated:
                getattr(message, name).extend(value)
            elif field.type == FD.TYPE_MESSAGE:
                getattr(message, name).CopyFrom(value)
            else:
                setattr(message, name, value)  # a later oneof member replaces an earlier
        return message

    return st.fixed_dictionaries(fields).map(build)


def element(field: FD, depth: int, small: bool) -> st.SearchStrategy[Any]:
    """Values for one element of `field`: a scalar, or a nested message."""
    if field.type == FD.TYPE_MESSAGE:
        nested = field.message_type
        assert nested is not None
        return st.deferred(lambda: messages(nested, depth + 1, small))
    return scalar(field, small)
