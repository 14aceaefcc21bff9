"""Is a signing secret fit to protect tokens? Refuse placeholders and guessable values.

Anyone who knows the JWT secret can mint an admin token, so a shipped placeholder or a
low-entropy value must stop the start, not merely warn. Two checks:
- placeholders: the values this repository ships (and words they are made of), since
  a cluster deployed as shipped would otherwise accept tokens anyone can forge;
- an entropy estimate: length times the Shannon entropy of the character frequencies
  must reach MIN_ESTIMATED_BITS, with at least MIN_DISTINCT characters. The estimate
  is generous to real random strings (`openssl rand -base64 48` scores ~350 bits,
  `-hex 32` ~250) and refuses repetitive ones like "xxxx...".
"""

from __future__ import annotations

import math
from collections import Counter

MIN_SECRET_BYTES = 32

MIN_DISTINCT = 10
MIN_ESTIMATED_BITS = 128
# Values shipped in this repository's examples and manifests, and words a placeholder is
# made of (compared case-insensitively).
KNOWN_PLACEHOLDERS = frozenset(
    {
        "change-me-to-at-least-32-random-bytes-0000000000",
        "replace-me-with-openssl-rand-base64-48-output-not-a-real-secret",
    }
)
PLACEHOLDER_WORDS = ("change-me", "changeme", "replace-me", "placeholder", "not-a-real")


def estimated_bits(secret: str) -> float:
    """Length times the Shannon entropy per character of `secret`."""
    counts = Counter(secret)
    total = len(secret)
    per_char = -sum(n / total * math.log2(n / total) for n in counts.values())
    return per_char * total


def weakness(secret: str) -> str | None:
    """Why `secret` must not sign tokens, or None when it is acceptable."""
    lowered = secret.lower()
    if lowered in KNOWN_PLACEHOLDERS or any(w in lowered for w in PLACEHOLDER_WORDS):
        return "is a placeholder"
    if len(secret.encode()) < MIN_SECRET_BYTES:
        return f"must be at least {MIN_SECRET_BYTES} bytes"
    if len(set(secret)) < MIN_DISTINCT or estimated_bits(secret) < MIN_ESTIMATED_BITS:
        return "has too little entropy"
    return None
