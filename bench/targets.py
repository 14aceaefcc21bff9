"""The targets of issue 8, and the table that prints each measured figure beside its own.

A target is met or missed by the figure of this run; on a shared machine that figure
drifts by tens of percent, so the table also carries the machine state (load average,
CPU of the server and of the load generator) that the reader needs to judge it.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass

MIB_PER_MB = 1e6 / 2**20


@dataclass(frozen=True)
class Target:
    """A named figure, the bound it must meet, and how to compare."""

    key: str
    what: str
    bound: float
    unit: str
    at_least: bool

    def met(self, value: float) -> bool:
        """True when `value` is on the right side of the bound."""
        compare: Callable[[float, float], bool] = operator.ge if self.at_least else operator.le
        return compare(value, self.bound)

    def describe(self) -> str:
        """The bound as written in the issue, e.g. ">= 5,700 calls/s"."""
        sign = ">=" if self.at_least else "<="
        digits = 0 if float(self.bound).is_integer() else 1
        return f"{sign} {self.bound:,.{digits}f} {self.unit}"


TARGETS = (
    Target("zipf_calls", "GetUserSegments, Zipf ids, 64 callers", 5700, "calls/s", True),
    Target("zipf_p99", "  its p99 latency", 20, "ms", False),
    Target("uniform_calls", "GetUserSegments, uniform ids, 64 callers", 2500, "calls/s", True),
    Target("batch_lookups", "BatchGetUserSegments, 100 ids a call", 100_000, "look-ups/s", True),
    Target("update_calls", "UpdateUserSegments, 2 adds with TTL + 1 remove", 1500, "calls/s", True),
    Target("update_errors", "  its errors", 0, "errors", False),
    Target("mix_calls", "95/5 read/write mix (Zipf)", 4000, "calls/s", True),
    Target("import_ratio", "ImportUsers of N ids / bare COPY + INSERT...SELECT", 2.0, "x", False),
    Target("rollout_ratio", "10 % rollout / bare INSERT...SELECT", 1.2, "x", False),
    Target("idle_rss", "idle RSS per worker (largest)", 80 * MIB_PER_MB, "MiB", False),
    Target("start_seconds", "start to SERVING", 1.5, "s", False),
)


def table(figures: dict[str, float]) -> str:
    """Markdown: every target with the figure measured for it (or "not measured")."""
    lines = ["| figure | measured | target | met |", "|---|---|---|---|"]
    for target in TARGETS:
        value = figures.get(target.key)
        if value is None:
            lines.append(f"| {target.what} | not measured | {target.describe()} | |")
            continue
        verdict = "yes" if target.met(value) else "**no**"
        lines.append(
            f"| {target.what} | {value:,.1f} {target.unit} | {target.describe()} | {verdict} |"
        )
    return "\n".join(lines)
