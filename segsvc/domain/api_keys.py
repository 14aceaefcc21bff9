"""API keys: long random bearer credentials for services.

A key is `sgk_` followed by 43 URL-safe characters (256 random bits). The prefix tells
the interceptor at a glance that the credential is a key, not a JWT. segsvc stores only
SHA-256 of the key: bcrypt's slowness protects *guessable* human passwords against
offline guessing, but a 256-bit random key cannot be guessed however fast the hash is,
so a fast hash loses nothing and keeps bcrypt off the request path (and no per-key salt
is needed: equal hashes would mean equal 256-bit random values).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from segsvc.domain.errors import InvalidArgument
from segsvc.domain.roles import Role

PREFIX = "sgk_"
RANDOM_BYTES = 32
SHOWN_PREFIX_LENGTH = len(PREFIX) + 4
MAX_NAME = 200


@dataclass(frozen=True)
class ApiKey:
    """A stored key, without its secret."""

    key_id: int
    name: str
    role: Role
    prefix: str
    created_by: int
    created_at: datetime
    revoked_at: datetime | None


def is_api_key(credential: str) -> bool:
    """True for a credential shaped like an API key (as opposed to a JWT)."""
    return credential.startswith(PREFIX)


def generate() -> str:
    """A new random key."""
    return PREFIX + secrets.token_urlsafe(RANDOM_BYTES)


def digest(key: str) -> bytes:
    """What is stored and looked up: SHA-256 of the key."""
    return hashlib.sha256(key.encode()).digest()


def validate_name(name: str) -> str:
    """The stripped name; InvalidArgument when empty, too long or with control characters."""
    stripped = name.strip()
    if not stripped or len(stripped) > MAX_NAME or not stripped.isprintable():
        raise InvalidArgument.single(
            "name", f"must be 1-{MAX_NAME} printable characters, got {len(stripped)}"
        )
    return stripped
