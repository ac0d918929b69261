"""Benchmark of the hospital interface's write calls over HTTP, with wrk: 2304 settle (the
default), 2301 upload of five fee lines (`--call upload`) or 2401 opening a stay (`--call open`).

    python3 bench/settle_bench.py --visits 20000 --connections 16 --workers 2 --seconds 10
    python3 bench/settle_bench.py --call upload --visits 20000 --connections 16 --seconds 15

Sets up its own database and persons on the local servers (`hub services up` first): persons
go through registration.events into the read model as in production; the open visits and
their fee lines are written straight into the service's tables (setting up is not what is
measured). Then `hub settlement serve --workers N` runs and wrk (Debian's package) settles a
different visit with every request for `--seconds`, and, in the same run, requests
GET /health/live the same way: the HTTP stack's own ceiling on this machine. Reported: bills/s,
latency percentiles, errors, settle throughput as a ratio of the baseline, and the CPU time
each part of the system spent per settlement during the settle run (from /proc): on a
saturated machine that is steadier than the throughput. wrk, the server,
PostgreSQL, Redis and Kafka all share the same 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import sqlalchemy as sa

from common import PATH, REPO, cpu_ms_per, cpu_seconds, run_wrk, scratch, settle_service
from hub.privacy import person_ref

# call -> the rows that count what the call committed (bench/calls.lua makes the requests)
CALLS = {"settle": "select count(*) from settlements",
         "upload": "select count(*) / 5 from fee_details where feedetl_sn like 'U%'",
         "open": "select count(*) from visits where mdtrt_id not like 'MBENCH%'"}
KEY = b"bench-person-key"
HOSPITAL = "H44010000001"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--visits", type=int, default=20000, help="prepared visits (settled at most once each)")
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--port", type=int, default=8610)
    ap.add_argument("--call", choices=sorted(CALLS), default="settle", help="which write call is measured")
    args = ap.parse_args()

    with scratch(args.visits, filed_to="440100") as (env_base, database, persons), settle_service(
            env_base, database, args.port, args.workers, max(8, args.connections // args.workers + 2),
            persons[-1], HOSPITAL) as base:
        run = database.removeprefix("bench_")
        engine = sa.create_engine(sa.make_url(env_base["HUB_POSTGRES_URL"]).set(database=database))
        visits = [f"MBENCH{run}{i:07d}" for i in range(len(persons))]
        lines = [("XJ01CAA001A001010101001", 12050), ("110001000020000", 5800), ("XJ01DDA004A006060101004", 3500), ("210013000010000", 24000)]
        with engine.begin() as conn:
            conn.execute(sa.text(
                "insert into visits (mdtrt_id, hospital_code, person_ref, person_id_masked, med_type, insutype, begntime, status)"
                " values (:m, :h, :r, '3604****', '21', '390', '2026-03-10', 'OPEN')"),
                [{"m": v, "h": HOSPITAL, "r": person_ref(KEY, p)} for v, p in zip(visits, persons)])
            conn.execute(sa.text(
                "insert into fee_details (mdtrt_id, feedetl_sn, med_list_codg, cnt, pric_fen, amount_fen)"
                " values (:m, :sn, :c, 2, :p, :a)"),
                [{"m": v, "sn": str(k), "c": c, "p": p, "a": 2 * p} for v in visits for k, (c, p) in enumerate(lines, 1)])
            # A live database has current statistics (autovacuum); give the fresh tables theirs.
            conn.execute(sa.text("analyze visits; analyze fee_details"))
        visit_file, person_file = Path(f"/tmp/bench-visits-{run}.txt"), Path(f"/tmp/bench-persons-{run}.txt")
        visit_file.write_text("\n".join(visits) + "\n")
        person_file.write_text("\n".join(persons) + "\n")
        wrk_env = {**os.environ, "VISITS": str(visit_file), "PERSONS": str(person_file), "HOSPITAL": HOSPITAL,
                   "WRK_THREADS": "2", "CALL": args.call}
        baseline = run_wrk(base + "/health/live", args.connections, args.seconds, None, wrk_env)
        cpu_before = cpu_seconds()
        result = run_wrk(base + PATH, args.connections, args.seconds, REPO / "bench" / "calls.lua", wrk_env)
        cpu_after = cpu_seconds()
        with engine.connect() as conn:
            settled = conn.execute(sa.text(CALLS[args.call])).scalar_one()
        engine.dispose()
        if result.get("requests", 0) > len(visits):
            print("warning: more requests than prepared visits; raise --visits", file=sys.stderr)
        if settled < 0.99 * result.get("requests", 0):  # refusals are HTTP 200 too: count what committed
            print(f"warning: {settled} committed of {result.get('requests', 0)} answered: refusals?", file=sys.stderr)
    cpu_ms = cpu_ms_per(cpu_before, cpu_after, result.get("requests", 0))
    report = {"command": " ".join(["python3", "bench/settle_bench.py", *sys.argv[1:]]),
              "cores": os.cpu_count(), "workers": args.workers, "connections": args.connections, "call": args.call,
              args.call: result, "settlements_committed" if args.call == "settle" else f"{args.call}s_committed": settled,
              "baseline_health": baseline,
              "settle_vs_baseline_throughput": round(result["per_s"] / baseline["per_s"], 3),
              "cpu_ms_per_settlement": cpu_ms}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
