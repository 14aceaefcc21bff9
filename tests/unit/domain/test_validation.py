"""Field rules: slugs, user ids, account fields, page tokens."""

from __future__ import annotations

import pytest

from segsvc.domain import page_tokens
from segsvc.domain.accounts import (
    check_password,
    hash_password,
    validate_sign_in,
    validate_sign_up,
)
from segsvc.domain.errors import InvalidArgument
from segsvc.domain.segments import MAX_DESCRIPTION, MAX_SALT, validate_segment
from segsvc.domain.slugs import slug_violation
from segsvc.domain.user_ids import require_user_ids


@pytest.mark.parametrize("slug", ["AVITO_DISCOUNT_50", "A", "9", "_", "X" * 64])
def test_valid_slugs(slug: str) -> None:
    assert slug_violation("slug", slug) is None


@pytest.mark.parametrize("slug", ["", "X" * 65, "lower", "A-B", "A B", "ÄB", "A\n"])
def test_invalid_slugs_state_the_rule(slug: str) -> None:
    violation = slug_violation("add[2].slug", slug)
    assert violation is not None
    assert violation.field == "add[2].slug"
    assert "A-Z, 0-9 and _" in violation.description


def test_user_id_lists() -> None:
    require_user_ids([1, 2, 3], 3)
    with pytest.raises(InvalidArgument, match="at most 3"):
        require_user_ids([1, 2, 3, 4], 3)
    with pytest.raises(InvalidArgument) as err:
        require_user_ids([1, 0, -4], 10)
    assert [v.field for v in err.value.violations] == ["user_ids[1]", "user_ids[2]"]


def test_sign_up_rules() -> None:
    validate_sign_up("Ann", "ann.b-c_d", "12345678")
    with pytest.raises(InvalidArgument) as err:
        validate_sign_up(" ", "Ab", "é" * 37)  # 74 bytes
    assert [v.field for v in err.value.violations] == ["name", "username", "password"]
    with pytest.raises(InvalidArgument):
        validate_sign_in("", "")


def test_password_hashing() -> None:
    hashed = hash_password("correct horse", rounds=4)
    assert hashed.startswith("$2b$04$")
    assert check_password("correct horse", hashed)
    assert not check_password("correct horsE", hashed)


def test_page_tokens() -> None:
    assert page_tokens.page_size(0) == 50
    assert page_tokens.page_size(5000) == 1000
    assert page_tokens.page_size(7) == 7
    with pytest.raises(InvalidArgument):
        page_tokens.page_size(-1)
    assert page_tokens.decode("") == ""
    assert page_tokens.decode(page_tokens.encode("SEG_1")) == "SEG_1"
    for bad in ("%%%", "bm90LWpzb24=", page_tokens.encode("lower case")):
        with pytest.raises(InvalidArgument) as err:
            page_tokens.decode(bad)
        assert err.value.violations[0].field == "page_token"


def test_segment_fields_are_checked_together() -> None:
    validate_segment("AVITO_VOICE", "d" * MAX_DESCRIPTION, "s" * MAX_SALT)
    with pytest.raises(InvalidArgument) as err:
        validate_segment("lower", "d" * (MAX_DESCRIPTION + 1), "s" * (MAX_SALT + 1))
    assert [v.field for v in err.value.violations] == ["slug", "description", "rollout_salt"]


def test_nul_characters_are_refused_before_postgresql_sees_them() -> None:
    with pytest.raises(InvalidArgument) as err:
        validate_segment("AVITO_VOICE", "voice\x00messages", "salt\x00")
    assert [v.field for v in err.value.violations] == ["description", "rollout_salt"]
    assert all("NUL" in v.description for v in err.value.violations)
