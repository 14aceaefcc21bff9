"""Access rules decide from the caller's role alone: ordered roles, public and anonymous."""

from __future__ import annotations

import pytest

from segsvc.domain.errors import PermissionDenied, Unauthenticated
from segsvc.domain.roles import AccessRule, Principal, Role

METHOD = "/segmentation.v1.SegmentService/CreateSegment"


def caller(role: Role) -> Principal:
    return Principal(account_id=1, role=role)


def test_roles_are_ordered_and_named() -> None:
    assert Role.READER < Role.WRITER < Role.ADMIN
    assert [Role.from_label(r.label) for r in Role] == list(Role)


@pytest.mark.parametrize("role", list(Role))
def test_a_role_may_call_rules_at_or_below_it(role: Role) -> None:
    for needed in Role:
        rule = AccessRule(needed)
        if role >= needed:
            rule.authorize(METHOD, caller(role))
        else:
            with pytest.raises(PermissionDenied, match=f"CreateSegment needs role {needed.label}"):
                rule.authorize(METHOD, caller(role))


def test_no_credential() -> None:
    with pytest.raises(Unauthenticated):
        AccessRule(Role.READER).authorize(METHOD, None)
    AccessRule(None, public=True).authorize(METHOD, None)
    AccessRule(Role.ADMIN, anonymous_allowed=True).authorize(METHOD, None)
    with pytest.raises(PermissionDenied):  # a credential still needs the role
        AccessRule(Role.ADMIN, anonymous_allowed=True).authorize(METHOD, caller(Role.WRITER))
