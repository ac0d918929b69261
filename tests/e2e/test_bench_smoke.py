"""The benchmark suite runs end to end (`bench/suite.py --quick`): every part produces numbers.
A smoke run only: speed is reported by the benchmarks, never asserted in tests."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_benchmark_suite_runs_and_produces_numbers(servers):
    out = subprocess.run([sys.executable, "bench/suite.py", "--quick"], cwd=REPO, capture_output=True, text=True,
                         timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    report = json.loads(out.stdout)
    ran = {part: r for part, r in report["parts"].items() if "skipped" not in r}
    assert {"settle", "clearing"} <= set(ran), report["parts"].keys()
    assert all(r["per_s"] > 0 for r in ran.values()), {p: r.get("per_s") for p, r in ran.items()}
    assert report["parts"]["clearing"]["report"]["totals_as_written"] is True
    if "bills" in ran:
        assert all(run["stored_as_answered"] for run in ran["bills"]["report"]["runs"])
