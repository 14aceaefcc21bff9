"""Rules for accounts (the API's callers): field limits and password hashing.

bcrypt is slow on purpose (~240 ms at cost 12); callers run it on a small dedicated
thread pool so that sign-ins never take the RPC workers' CPU from the read path.
"""

from __future__ import annotations

import re

import bcrypt

from segsvc.domain.errors import FieldViolation, InvalidArgument

USERNAME_PATTERN = re.compile(r"[a-z0-9._-]{3,64}")
MAX_NAME = 200
MIN_PASSWORD = 8
MAX_PASSWORD_BYTES = 72  # bcrypt ignores anything longer; refuse rather than truncate
# PostgreSQL text cannot hold U+0000: refuse it here rather than fail in the driver.
NUL = "\x00"
NUL_RULE = "must not contain NUL characters"


def validate_sign_up(name: str, username: str, password: str) -> None:
    """Raise InvalidArgument listing every unacceptable field."""
    violations: list[FieldViolation] = []
    if not name.strip() or len(name) > MAX_NAME:
        violations.append(FieldViolation("name", f"must be 1-{MAX_NAME} characters"))
    elif NUL in name:
        violations.append(FieldViolation("name", NUL_RULE))
    if not USERNAME_PATTERN.fullmatch(username):
        violations.append(
            FieldViolation("username", "must be 3-64 characters of a-z, 0-9, '.', '_', '-'")
        )
    size = len(password.encode())
    if len(password) < MIN_PASSWORD or size > MAX_PASSWORD_BYTES:
        violations.append(
            FieldViolation(
                "password",
                f"must be at least {MIN_PASSWORD} characters and at most "
                f"{MAX_PASSWORD_BYTES} bytes",
            )
        )
    if violations:
        raise InvalidArgument(violations)


def validate_sign_in(username: str, password: str) -> None:
    """Reject empty or oversized credentials before any database or bcrypt work."""
    violations: list[FieldViolation] = []
    if not username or len(username) > 64:
        violations.append(FieldViolation("username", "must be 1-64 characters"))
    elif NUL in username:
        violations.append(FieldViolation("username", NUL_RULE))
    if not password or len(password.encode()) > MAX_PASSWORD_BYTES:
        violations.append(FieldViolation("password", "must be 1-72 bytes"))
    if violations:
        raise InvalidArgument(violations)


def hash_password(password: str, rounds: int) -> str:
    """A bcrypt hash (salt included) of `password`."""
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds)).decode()


def check_password(password: str, password_hash: str) -> bool:
    """Constant-time comparison of `password` with a stored bcrypt hash; False for a
    stored value that is no bcrypt hash (an account disabled by a migration)."""
    try:
        return bcrypt.checkpw(password.encode(), password_hash.encode())
    except ValueError:
        return False
