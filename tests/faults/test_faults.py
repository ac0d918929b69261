"""The fault suite's short form, on the local broker and on a three-broker cluster of the suite's own
(the long form: `python3 -m tests.faults.suite [--brokers 3]`, see suite.py)."""

from __future__ import annotations

import os

import pytest

from tests.faults.suite import Options, Suite, SuiteRefused


@pytest.mark.integration
@pytest.mark.parametrize("brokers", [1, 3])
def test_the_hub_loses_nothing_and_counts_nothing_twice_under_every_fault(servers, tmp_path, brokers):
    if servers.source != "deploy/local":
        pytest.skip("the fault suite kills and restarts servers: it runs only on the local servers it can restart")
    bills = int(os.environ.get("HUB_FAULT_BILLS", "1500"))
    try:
        summary = Suite(Options(bills=bills, concurrency=8, out_dir=tmp_path, brokers=brokers)).run()
    except SuiteRefused as exc:
        pytest.skip(str(exc))
    print(f"faults injected {summary['faults_injected']}, bills {summary['bills_acknowledged']}, "
          f"mismatches {summary['mismatches']}")
    assert summary["faults_injected"] == (12 if brokers == 1 else 14)  # the broker kill, or the cluster's three
    assert summary["bills_acknowledged"] >= bills
    assert summary["mismatches"] == 0, summary["mismatch_details"]
