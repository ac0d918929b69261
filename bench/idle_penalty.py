"""What the same pure work costs in CPU when it runs after an idle gap, on this machine.

    python3 bench/idle_penalty.py                      # gaps of 0.1, 1, 3, 10 and 33 ms, 4 s each way
    python3 bench/idle_penalty.py --gaps-ms 10 --seconds 20

Issue 29 asks why a bill costs three times the CPU at 30 % of the saturated rate that it costs
at saturation. This takes the hub out of the question: one unit of pure hub work (parse a
2301-sized envelope, hash it canonically, settle a five-line bill with the engine against a
sample policy; no I/O, no threads, no server) is timed with the thread's own CPU clock, around
the unit only, in one run:

- back to back: units run one after another (the saturated case: a group of many bills);
- after a gap: wait G ms, then run three units back to back, many times over; the first unit
  after each gap is what a lone request meets below saturation (1/G requests a second), the
  second and third show whether the cost is the gap's or the code's;
- each gap twice: the thread sleeping through it (what a hub process does: it waits in epoll
  or on a socket), and the thread spinning on the clock (the core never idles; if the first
  unit still costs more, it is not the sleep but whatever else ran meanwhile and took the
  caches: the other core, the host's other guests).

Prints a table; --json adds the rows as one JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import date
from decimal import Decimal
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "services"))

from hub.reference.catalogue import Catalogue, CatalogueItem, ItemClass  # noqa: E402
from hub.reference.policy import HospitalKind, InsuranceType, Level, load_policies  # noqa: E402
from hub.settlement.domain.engine import settle  # noqa: E402
from hub.settlement.domain.model import (Accumulators, Claim, FeeLine, Filing, FilingType, Person,  # noqa: E402
                                         VisitType)
from hub.settlement.service_layer.envelope import canonical_sha256  # noqa: E402

POOL = "440100"
CATALOGUE = Catalogue(POOL, "440100-bench", {
    code: CatalogueItem(code, name, "DRUG", cls) for code, name, cls in
    [("A", "甲", ItemClass.JIA), ("B", "乙", ItemClass.YI), ("C", "丙", ItemClass.BING)]})


def _work_item():
    policy = next(p for p in load_policies(REPO / "reference" / "policies")
                  if p.policy_version == "360400-RESIDENT-2020.3")
    person = Person("p_bench", "360400", InsuranceType.RESIDENT, date(2015, 1, 1), date(2015, 1, 1), None,
                    frozenset(), (Filing("F1", FilingType.REFERRAL, POOL, date(2015, 1, 1), None),), 3)
    lines = tuple(FeeLine(n, code, Decimal(2), 12_345 + n, 24_690 + 2 * n) for n, code in enumerate("AABBC", 1))
    claim = Claim(VisitType.INPATIENT, Level("3"), POOL, date(2026, 3, 10), date(2026, 3, 14), lines, False, (),
                  HospitalKind.GENERAL)
    body = orjson.dumps({"infno": "2301", "msgid": "H44010000001202603101200000001", "input": {"feedetail": [
        {"feedetl_sn": str(line.line_no), "mdtrt_id": "M" * 30, "psn_no": "p" * 40, "med_list_codg": line.item_code,
         "cnt": "2", "pric": "123.45", "det_item_fee_sumamt": "246.90", "fee_ocur_time": "2026-03-10 10:00:00"}
        for line in lines]}})

    def unit():
        payload = orjson.loads(body)
        canonical_sha256(payload["infno"], payload["input"])
        result = settle(claim, person, policy, CATALOGUE, Accumulators(2026))
        return orjson.dumps(getattr(result, "__dict__", None) or repr(result))
    return unit


def _back_to_back(unit, seconds: float) -> list[float]:
    """CPU microseconds of each unit run one after another (the thread's own clock)."""
    costs = []
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        t0 = time.thread_time_ns()
        unit()
        costs.append((time.thread_time_ns() - t0) / 1000)
    return costs


def _after_gaps(unit, gap_s: float, seconds: float, spin: bool, burst: int = 3) -> list[list[float]]:
    """Wait `gap_s` (sleeping, or spinning on the clock), then run `burst` units back to back;
    the CPU microseconds of the first units after each gap, of the second, and so on."""
    costs: list[list[float]] = [[] for _ in range(burst)]
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        due = time.perf_counter() + gap_s
        if spin:
            while time.perf_counter() < due:
                pass
        else:
            time.sleep(gap_s)
        for n in range(burst):
            t0 = time.thread_time_ns()
            unit()
            costs[n].append((time.thread_time_ns() - t0) / 1000)
    return costs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gaps-ms", default="0.1,1,3,10,33", help="idle gaps before each burst of three units")
    parser.add_argument("--seconds", type=float, default=4.0, help="how long each mode runs")
    parser.add_argument("--json", action="store_true", help="print the rows as one JSON line at the end")
    args = parser.parse_args()
    unit = _work_item()
    for _ in range(2000):  # warm: imports, caches, the allocator
        unit()
    base = statistics.median(_back_to_back(unit, args.seconds))
    rows = []
    for gap_ms in [float(g) for g in args.gaps_ms.split(",")]:
        for spin in (False, True):
            costs = _after_gaps(unit, gap_ms / 1000, args.seconds, spin)
            medians = [statistics.median(c) for c in costs]
            rows.append({"gap_ms": gap_ms, "waiting": "spinning" if spin else "sleeping", "bursts": len(costs[0]),
                         "cpu_us_median_by_position": [round(m, 1) for m in medians],
                         "first_vs_back_to_back": round(medians[0] / base, 2),
                         "second_vs_back_to_back": round(medians[1] / base, 2)})
    again = statistics.median(_back_to_back(unit, args.seconds))  # the machine may have changed under the run
    print(f"one unit back to back: {base:.1f} µs CPU (median); at the end of the run {again:.1f} µs")
    print(f"{'gap':>8} {'waiting':9} {'bursts':>7} {'1st µs':>8} {'2nd µs':>8} {'3rd µs':>8} {'1st ×':>6} {'2nd ×':>6}")
    for row in rows:
        first, second, third = row["cpu_us_median_by_position"]
        print(f"{row['gap_ms']:>6g}ms {row['waiting']:9} {row['bursts']:>7} {first:>8} {second:>8} {third:>8} "
              f"{row['first_vs_back_to_back']:>6} {row['second_vs_back_to_back']:>6}")
    if args.json:
        print(json.dumps({"command": " ".join(sys.argv), "back_to_back_us": round(base, 1),
                          "back_to_back_again_us": round(again, 1), "rows": rows}, ensure_ascii=False))


if __name__ == "__main__":
    main()
