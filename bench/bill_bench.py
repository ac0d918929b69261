"""Whole bills at a fixed arrival rate (open loop): how many a second the hub carries with p99 under
50 ms per call.

    python3 bench/bill_bench.py --rates 400,700,1000,1200 --seconds 60
    python3 bench/bill_bench.py --quick        # a smoke run: a few seconds at a low rate

Each bill is what a hospital's system sends, in the national envelope, signed with the gateway's
x-tif-* headers: 2401 admit, 2301 upload five fee lines, 2303 pre-settle (half the bills), 2304
settle, the same 2304 again for 2 % (a lost answer retried with its msgid), 2305 reverse for 1 %.
The load generator is `bench/billgen` (Go, standard library, built here with `go build`): bills
start on schedule whatever the server does, and a bill's first call counts its latency from when
it was due, so a saturated server shows as latency, not as a lower arrival rate.

Set up as `settle_bench.py` does: a scratch database, persons through registration.events (九江
residents filed to 广州), `hub settlement serve --workers N`. In the same run, GET /health/live
with wrk at 16 connections is the baseline. After each rate the database is checked against what
the generator was told: every settlement answered is stored once, every reversal answered is a
reversed settlement. Reported per rate: bills/s done, per call and per bill p50/p95/p99/p99.9,
answers by reason, CPU ms per bill by part of the system (the generator's own included: it runs
on the same 2 cores). And the ratios (issue 29): each rate's throughput and CPU per bill against the
highest rate's (give one above what the machine carries: that run is the saturation), and the
saturated rate against the HTTP stack's ceiling for a four-call bill (GET /health/live ÷ 4).
And where a bill's CPU goes when bills arrive alone: each part's wake-ups a bill (its threads'
voluntary context switches), what each part spends a second with no load (`--idle`), and a fit of
CPU a bill = work + cost × wake-ups over the rates (`wakeup_model`).

    python3 bench/bill_bench.py --rates 190,315,500,1000 --seconds 20   # 30 / 50 / 80 % of ~627, saturated
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import sqlalchemy as sa

from common import PATH, REPO, cpu_ms_per, cpu_seconds, run_wrk, scratch, settle_service, wakeups

HOSPITALS = ("H44010000001", "H44010000002")  # 广州's sample hospitals: paasid = code, paas token dev-<code>
GOAL_P99_MS = 50.0


def build_generator() -> Path:
    """bench/billgen built once per source version (Go's standard library only: no download)."""
    source = REPO / "bench" / "billgen"
    digest = hashlib.sha256((source / "main.go").read_bytes()).hexdigest()[:12]
    binary = Path(f"/tmp/billgen-{digest}")
    if not binary.exists():
        subprocess.run(["go", "build", "-o", str(binary), "."], cwd=source, check=True,
                       env={**os.environ, "CGO_ENABLED": "0"})
    return binary


def committed(engine: sa.Engine) -> tuple[int, int]:
    with engine.connect() as conn:
        return conn.execute(sa.text("select count(*), count(*) filter (where status = 'REVERSED') from settlements")).one()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rates", default="400,700,1000,1200", help="bills a second to start, one run each, rising")
    ap.add_argument("--seconds", type=int, default=60, help="how long bills keep starting at each rate")
    ap.add_argument("--persons", type=int, default=20000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--port", type=int, default=8611)
    ap.add_argument("--warmup", type=int, default=5, help="seconds of bills at the first rate before measuring")
    ap.add_argument("--idle", type=int, default=10, help="seconds measured with no load after the warm-up: what "
                    "each part costs a second on its own (0: not measured)")
    ap.add_argument("--quick", action="store_true", help="a smoke run: 100 bills/s for 5 s")
    ap.add_argument("--record", action="store_true", help="append the rows to bench/RESULTS.md")
    ap.add_argument("--profile", metavar="DIR", help="py-spy every hub process during the first rate; "
                    "collapsed stacks (flamegraph input) in DIR")
    args = ap.parse_args()
    if args.profile and shutil.which("py-spy") is None:
        ap.error("--profile needs py-spy: python3 -m pip install py-spy")
    if args.quick:
        args.rates, args.seconds, args.persons, args.warmup, args.idle = "100", 5, 500, 1, 2
    rates = [float(r) for r in args.rates.split(",")]
    generator = build_generator()
    credentials = ",".join(f"{h}:{h}:dev-{h}" for h in HOSPITALS)
    runs = []
    with scratch(args.persons, filed_to="440100") as (env, database, persons), settle_service(
            env, database, args.port, args.workers, 32, persons[-1], HOSPITALS[0]) as base:
        person_file = Path(f"/tmp/bench-persons-{database}.txt")
        person_file.write_text("\n".join(persons) + "\n")
        baseline = run_wrk(base + "/health/live", 16, min(10, args.seconds), None, dict(os.environ))
        engine = sa.create_engine(sa.make_url(env["HUB_POSTGRES_URL"]).set(database=database))
        answered = [0, 0]

        def bills(rate: float, seconds: int) -> dict:
            out = subprocess.run([str(generator), "-url", base + PATH, "-rate", str(rate), "-seconds",
                                  str(seconds), "-persons", str(person_file), "-hospitals", credentials],
                                 capture_output=True, text=True, timeout=seconds * 4 + 300)
            if out.returncode != 0:
                raise SystemExit(f"billgen failed: {out.stderr[-2000:]}")
            report = json.loads(out.stdout)
            answered[0] += report["settlements_answered"]
            answered[1] += report["reversals_answered"]
            return report

        if args.warmup:  # connections opened, caches filled, statements prepared: not measured
            bills(rates[0], args.warmup)
        idle = _idle(args.idle) if args.idle else None
        for n, rate in enumerate(rates):
            spies = _spy(Path(args.profile), args.seconds) if args.profile and n == 0 else []
            before, woken = cpu_seconds(), wakeups()
            report = bills(rate, args.seconds)
            after, woken_after = cpu_seconds(), wakeups()
            for spy in spies:
                spy.wait(timeout=120)
            stored, reversed_ = committed(engine)
            report["stored_as_answered"] = (stored, reversed_) == tuple(answered)
            report["cpu_ms_per_bill"] = cpu_ms_per(before, after, report["bills_done"])
            # the generator has exited by now: its CPU is its own count
            report["cpu_ms_per_bill"]["load generator"] = round(1000 * report["generator_cpu_s"]
                                                                / max(1, report["bills_done"]), 3)
            report["cpu_ms_per_bill"]["total"] = round(report["cpu_ms_per_bill"]["total"]
                                                       + report["cpu_ms_per_bill"]["load generator"], 3)
            report["wakeups_per_bill"] = _per(woken, woken_after, report["bills_done"])
            report["worst_call_p99_ms"] = max(v["p99_ms"] for k, v in report["calls"].items() if k != "bill")
            runs.append(report)
            print(f"{rate:,.0f}/s: {report['bills_per_s']:,.1f} bills/s done, worst call p99 "
                  f"{report['worst_call_p99_ms']} ms, failed {report['bills_failed']}, not started "
                  f"{report['bills_not_started']}, stored as answered: {report['stored_as_answered']}", file=sys.stderr)
        engine.dispose()
        person_file.unlink()
    held = [r for r in runs if r["worst_call_p99_ms"] <= GOAL_P99_MS and not r["bills_failed"]
            and not r["bills_not_started"] and r["stored_as_answered"]]
    summary = {"command": " ".join(["python3", "bench/bill_bench.py", *sys.argv[1:]]),
               "commit": _commit(), "cores": os.cpu_count(), "workers": args.workers,
               "baseline_health": baseline, "idle": idle, "runs": runs,
               "highest_rate_held": max((r["target_bills_per_s"] for r in held), default=None),
               **ratios(runs, baseline), "wakeup_model": wakeup_model(runs, idle)}
    print(json.dumps(summary, indent=2, ensure_ascii=False))
    for r in runs:
        print(f"{r['target_bills_per_s']:,.0f}/s: {r['bills_per_s']:,.1f} done ({r['of_saturated']:.0%} of the "
              f"saturated rate), CPU {r['cpu_ms_per_bill']['total']} ms a bill = {r['cpu_vs_saturated']:.2f}x "
              f"saturated, worst call p99 {r['worst_call_p99_ms']} ms", file=sys.stderr)
    print(f"saturated: {summary['saturated_bills_per_s']:,.1f} bills/s = {summary['saturated_of_ceiling']:.2f} of "
          f"the four-call ceiling ({summary['ceiling_bills_per_s']:,.0f}/s: GET /health/live / 4)", file=sys.stderr)
    model = summary["wakeup_model"]
    if model:
        print(f"wake-ups: {model['cpu_us_per_wakeup']} µs of CPU each and {model['cpu_ms_per_bill_of_work']} ms a bill "
              f"besides (least squares over the rates, idle cost taken out first)", file=sys.stderr)
        for row in model["rates"]:
            print(f"  {row['target_bills_per_s']:,.0f}/s: {row['wakeups_per_bill']} wake-ups a bill, "
                  f"{row['cpu_ms_per_bill']} ms measured, {row['cpu_ms_fitted']} ms fitted", file=sys.stderr)
    if args.record:
        _record(summary)


def ratios(runs: list[dict], baseline: dict) -> dict:
    """Each rate against the run's own saturation — the highest rate's throughput and CPU per
    bill (give a last rate above what the machine carries) — and that against the HTTP stack's
    ceiling for a four-call bill, measured in the same run."""
    top = max(runs, key=lambda r: r["target_bills_per_s"])
    for r in runs:
        r["of_saturated"] = round(r["bills_per_s"] / top["bills_per_s"], 3)
        r["cpu_vs_saturated"] = round(r["cpu_ms_per_bill"]["total"] / top["cpu_ms_per_bill"]["total"], 3)
    ceiling = baseline.get("per_s", 0) / 4
    return {"saturated_bills_per_s": top["bills_per_s"], "saturated": top["bills_per_s"] < 0.95 * top["target_bills_per_s"],
            "ceiling_bills_per_s": round(ceiling, 1),
            "saturated_of_ceiling": round(top["bills_per_s"] / ceiling, 3) if ceiling else None}


def _per(before: dict[str, float], after: dict[str, float], count: int) -> dict[str, float]:
    per = {part: round((after[part] - before.get(part, 0)) / max(1, count), 2) for part in after}
    per["total"] = round(sum(per.values()), 2)
    return per


def _idle(seconds: int) -> dict:
    """What each part spends a second with no bills arriving: CPU and wake-ups (its timers and polls)."""
    cpu, woken = cpu_seconds(), wakeups()
    time.sleep(seconds)
    cpu_after, woken_after = cpu_seconds(), wakeups()
    return {"seconds": seconds, "cpu_ms_per_s": cpu_ms_per(cpu, cpu_after, seconds),
            "wakeups_per_s": _per(woken, woken_after, seconds)}


def wakeup_model(runs: list[dict], idle: dict | None) -> dict | None:
    """CPU a bill against wake-ups a bill, over the rates: with what every part spends a second on
    its own taken out (idle CPU and wake-ups ÷ the rate), fit cpu = work + cost × wake-ups by least
    squares. `cost` is what a wake-up brings with it (the switch, cold caches, the per-group or
    per-round-trip work it carries); `work` is what a bill costs however it arrives. The load
    generator is left out (its wake-ups are not counted)."""
    if idle is None or len(runs) < 2:
        return None
    points = []
    for r in runs:
        rate = max(r["bills_per_s"], 1e-9)
        cpu = (r["cpu_ms_per_bill"]["total"] - r["cpu_ms_per_bill"].get("load generator", 0)
               - idle["cpu_ms_per_s"]["total"] / rate)
        woken = r["wakeups_per_bill"]["total"] - idle["wakeups_per_s"]["total"] / rate
        points.append((r["target_bills_per_s"], r["wakeups_per_bill"]["total"], woken, cpu))
    n = len(points)
    mean_x, mean_y = sum(p[2] for p in points) / n, sum(p[3] for p in points) / n
    spread = sum((p[2] - mean_x) ** 2 for p in points)
    if not spread:
        return None
    cost = sum((p[2] - mean_x) * (p[3] - mean_y) for p in points) / spread
    work = mean_y - cost * mean_x
    return {"cpu_us_per_wakeup": round(1000 * cost, 1), "cpu_ms_per_bill_of_work": round(work, 3),
            "rates": [{"target_bills_per_s": rate, "wakeups_per_bill": total, "busy_wakeups_per_bill": round(x, 2),
                       "cpu_ms_per_bill": round(y, 3), "cpu_ms_fitted": round(work + cost * x, 3)}
                      for rate, total, x, y in points]}


def _spy(out: Path, seconds: int) -> list[subprocess.Popen]:
    """py-spy record on every process of the settle service (the HTTP workers and the parent with
    the relay and the read model), sampling `seconds` of the run: collapsed stacks per process."""
    out.mkdir(parents=True, exist_ok=True)
    pids = subprocess.run(["pgrep", "-f", "settlement serve|multiprocessing"], capture_output=True,
                          text=True).stdout.split()
    return [subprocess.Popen(["py-spy", "record", "--pid", pid, "--duration", str(max(5, seconds - 5)), "--rate", "200",
                              "--format", "raw", "--nonblocking", "--gil", "--output", str(out / f"{pid}.txt")],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for pid in pids]


def _commit() -> str:
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()


def _record(summary: dict) -> None:
    """Rows in bench/RESULTS.md's whole-bill table (old rows stay as history)."""
    path = REPO / "bench" / "RESULTS.md"
    text = path.read_text(encoding="utf-8")
    marker = "<!-- bill_bench rows -->"
    if marker not in text:
        text += ("\n## Whole bills, open loop — `bench/bill_bench.py`\n\n"
                 "| date | commit | command | target bills/s | done bills/s | 2401 p99 | 2301 p99 | 2303 p99 | 2304 p99 "
                 "| bill p50 / p99 / p99.9 | failed / not started | stored = answered | CPU ms a bill (generator) "
                 "| baseline req/s |\n"
                 "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n" + marker + "\n")
    rows = []
    day = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    for r in summary["runs"]:
        calls = r["calls"]
        p99 = {k.split()[0]: calls[k]["p99_ms"] for k in calls if k != "bill"}
        bill = calls.get("bill", {})
        cpu = r["cpu_ms_per_bill"]
        rows.append(f"| {day} | {summary['commit']} | `{summary['command']}` | {r['target_bills_per_s']:,.0f} "
                    f"| {r['bills_per_s']:,.1f} | {p99.get('2401', '—')} | {p99.get('2301', '—')} | {p99.get('2303', '—')} "
                    f"| {p99.get('2304', '—')} | {bill.get('p50_ms', '—')} / {bill.get('p99_ms', '—')} / "
                    f"{bill.get('p99_9_ms', '—')} | {r['bills_failed']} / {r['bills_not_started']} "
                    f"| {'yes' if r['stored_as_answered'] else 'NO'} | {cpu['total']} ({cpu.get('load generator', 0)}) "
                    f"| {summary['baseline_health'].get('per_s', 0):,.0f} |")
    path.write_text(text.replace(marker, "\n".join(rows) + "\n" + marker), encoding="utf-8")


if __name__ == "__main__":
    main()
