"""argparse types of the client commands (no client import: parsing `segsvc serve`
must not load segsvc_client)."""

from __future__ import annotations

import argparse
import re
from datetime import timedelta

_DURATION = re.compile(r"(\d+)([smhdw]?)")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_MONTH = re.compile(r"(\d{4})-(\d{1,2})")


def duration(text: str) -> timedelta:
    """--ttl: seconds, or a number with s, m, h, d or w (`90m`, `7d`)."""
    match = _DURATION.fullmatch(text.strip())
    if not match or int(match[1]) == 0:
        raise argparse.ArgumentTypeError(f"not a positive duration like 90m, 12h or 7d: {text!r}")
    return timedelta(seconds=int(match[1]) * _UNITS[match[2]])


def month(text: str) -> tuple[int, int]:
    """YEAR-MONTH (`2026-11`); the server checks the range."""
    match = _MONTH.fullmatch(text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"expected YEAR-MONTH like 2026-11, got {text!r}")
    return int(match[1]), int(match[2])
