"""CPU time and memory of a process, read from /proc (Linux), so the benchmark needs no
extra dependency (psutil) to report server CPU per 1000 calls and peak RSS."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Usage:
    """A snapshot of one process (all its threads)."""

    cpu_seconds: float
    rss_mib: float
    peak_rss_mib: float


def usage(pid: int) -> Usage:
    """CPU (user + system) so far, current and peak resident memory (VmRSS, VmHWM)."""
    # Fields after the command name, which may itself contain spaces or parentheses.
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / TICKS
    status = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )

    def mib(key: str) -> float:
        return int(status[key].split()[0]) / 1024

    return Usage(cpu, mib("VmRSS"), mib("VmHWM"))


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it (a supervisor's workers), from /proc children."""
    found = [pid]
    for current in found:
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                found += [int(child) for child in (task / "children").read_text().split()]
            except OSError:
                continue  # the thread or process ended meanwhile
    return found


def tree_usage(pid: int) -> tuple[float, list[Usage]]:
    """CPU seconds of `pid` and its descendants together, and each one's usage (a
    process that ends between listing and reading is left out)."""
    each: list[Usage] = []
    for member in descendants(pid):
        try:
            each.append(usage(member))
        except (OSError, KeyError):
            continue
    return sum(u.cpu_seconds for u in each), each


def cpu_by_process(pid: int) -> dict[int, float]:
    """CPU seconds of `pid` and of each descendant, by process id."""
    found: dict[int, float] = {}
    for member in descendants(pid):
        try:
            found[member] = usage(member).cpu_seconds
        except (OSError, KeyError):
            continue
    return found


def reset_peak(pid: int) -> bool:
    """Start VmHWM again from the current RSS (Linux >= 4.0: "5" > clear_refs), so the
    peak read after one operation belongs to that operation alone. False if not allowed,
    in which case the peak covers the process's whole life so far."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True
