"""Reading a running server's /metrics: the read cache's hit ratio over a round.

The cache's counters are found by name (any counter family with "cache" in it, samples
told apart by a `result` label of hit/miss or by "hit"/"miss" in the sample name), so
the benchmark keeps working whatever the cache calls them, and reports "n/a" when the
server exports none.
"""

from __future__ import annotations

import urllib.request
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families


@dataclass(frozen=True)
class CacheCounts:
    """Hits and misses counted so far."""

    hits: float
    misses: float


def scrape(http_port: int) -> str:
    """The text of GET /metrics on the loopback HTTP port."""
    url = f"http://127.0.0.1:{http_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as reply:
        return bytes(reply.read()).decode()


def cache_counts(text: str) -> CacheCounts | None:
    """Hit and miss totals of the read cache in an exposition text, or None."""
    hits = misses = 0.0
    found = False
    for family in text_string_to_metric_families(text):
        if "cache" not in family.name or family.type != "counter":
            continue
        for sample in family.samples:
            if not sample.name.endswith("_total"):
                continue
            label = " ".join(str(v) for v in sample.labels.values())
            kind = f"{sample.name} {label}"
            if "hit" in kind:
                hits += sample.value
                found = True
            elif "miss" in kind:
                misses += sample.value
                found = True
    return CacheCounts(hits, misses) if found else None


def hit_ratio(before: CacheCounts | None, after: CacheCounts | None) -> float | None:
    """Hits / (hits + misses) between two scrapes, or None without a cache."""
    if before is None or after is None:
        return None
    hits, misses = after.hits - before.hits, after.misses - before.misses
    return hits / (hits + misses) if hits + misses else None
