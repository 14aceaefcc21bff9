"""A serving process that has nothing to do spends (almost) no CPU.

Found by profiling under `make bench`: the HTTP side port's event loop was configured
with a 0.2 s select timeout, which waitress rounds to an integer - 0 - so its thread
polled without sleeping and took two thirds of a core from every process that serves
HTTP, busy or idle. This test runs in the process that hosts the in-process server
(gRPC loop, workers, health watcher, listener, sweeper, watchdog, HTTP port).
"""

from __future__ import annotations

import resource
import time

from segsvc.server import SegsvcServer

IDLE_SECONDS = 2.0
# Health checks every 0.2 s in tests, timers and pool maintenance cost milliseconds;
# one spinning thread costs most of IDLE_SECONDS.
MAX_CPU_SHARE = 0.2


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def test_an_idle_server_sleeps(server: SegsvcServer) -> None:
    assert server.http is not None  # the HTTP port is part of what must sleep
    time.sleep(0.5)  # whatever the previous test left running settles
    before = _cpu_seconds()
    time.sleep(IDLE_SECONDS)
    spent = _cpu_seconds() - before
    assert spent < MAX_CPU_SHARE * IDLE_SECONDS, f"{spent:.2f} s of CPU while idle"
