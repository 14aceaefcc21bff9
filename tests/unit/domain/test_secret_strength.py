"""Which JWT secrets the server refuses: placeholders and guessable values."""

from __future__ import annotations

import secrets

import pytest

from segsvc.domain.secret_strength import estimated_bits, weakness


@pytest.mark.parametrize(
    ("secret", "reason"),
    [
        ("CHANGE-ME-to-at-least-32-random-bytes-0000000000", "placeholder"),  # shipped before
        ("REPLACE-ME-with-openssl-rand-base64-48-output-not-a-real-secret", "placeholder"),
        ("short", "32 bytes"),
        ("x" * 64, "entropy"),
        ("test-secret-" + "x" * 60, "entropy"),
        ("abababababababababababababababababababab", "entropy"),
        ("0123456789abcdef" + "0" * 16, "entropy"),  # 32 bytes, 16 distinct, still guessable
    ],
)
def test_weak_secrets_are_refused(secret: str, reason: str) -> None:
    problem = weakness(secret)
    assert problem is not None
    assert reason in problem


@pytest.mark.parametrize(
    "secret",
    [secrets.token_urlsafe(48), secrets.token_hex(32), secrets.token_urlsafe(32)],
)
def test_generated_secrets_are_accepted(secret: str) -> None:
    assert weakness(secret) is None


def test_estimate() -> None:
    assert estimated_bits("aaaa") == 0
    assert estimated_bits("abcd") == 8
