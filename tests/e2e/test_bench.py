"""`make bench --quick` works: every workload runs against a real server without errors
and every target of issue 8 gets a figure. No figure is asserted (CI machines are not
the benchmark machine); what is checked is that the benchmark measures what it claims."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from bench.targets import TARGETS
from bench.traffic import WORKLOADS

ROOT = Path(__file__).resolve().parents[2]


def test_quick_bench_measures_every_workload_and_target(admin_url: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEGSVC_")}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.run",
            "--quick",
            "--seconds",
            "0.3",
            "--only",
            "traffic,bulk",
            "--client-processes",
            "1",
            "--results",
            str(tmp_path),
        ],
        env={**env, "SEGSVC_BENCH_DATABASE_URL": admin_url},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (saved,) = tmp_path.glob("*.json")
    report = json.loads(saved.read_text())
    assert [row["workload"] for row in report["traffic"]] == list(WORKLOADS)
    # The default client: Go's whenever Go is installed (make test installs it).
    expected_client = "go" if shutil.which("go") else "python"
    assert {row["client"] for row in report["traffic"]} == {expected_client}
    assert f"callers of the {expected_client} client" in result.stdout
    for row in report["traffic"]:
        assert row["calls_per_second"] > 0, row
        assert row["errors"] == 0, row
        assert row["client_cores"] > 0, row
        assert 0 < row["busiest_process_share"] <= 1, row
    assert set(report["figures"]) == {target.key for target in TARGETS}
    for target in TARGETS:
        assert target.what in result.stdout
    assert "load average" in result.stdout
    assert "dropped database" in result.stdout
