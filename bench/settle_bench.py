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
import signal
import subprocess
import sys
import time
import uuid
from datetime import date, datetime, timezone
from pathlib import Path

import httpx
import redis
import sqlalchemy as sa

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hub import local_services  # noqa: E402
from hub.messaging import AvroCodec, EventProducer, ensure_topics  # noqa: E402
from hub.messaging.topics import REGISTRATION_EVENTS  # noqa: E402
from hub.privacy import person_ref  # noqa: E402
from hub.registration.entrypoints.reference_load import load_reference  # noqa: E402

PATH = "/fsi/api/rsfComIntfaceService/commInterface"
# call -> the rows that count what the call committed (bench/calls.lua makes the requests)
CALLS = {"settle": "select count(*) from settlements",
         "upload": "select count(*) / 5 from fee_details where feedetl_sn like 'U%'",
         "open": "select count(*) from visits where mdtrt_id not like 'MBENCH%'"}
KEY = b"bench-person-key"
HOSPITAL = "H44010000001"


def cpu_seconds() -> dict[str, float]:
    """CPU seconds used so far by each part of the system on this machine (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    parts: dict[str, float] = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat.rpartition(")")[2].split()
        part = ("postgres" if "postgres" in cmd else "redis" if "redis-server" in cmd else "wrk" if cmd.startswith("wrk")
                else "kafka" if "java" in cmd else "hub (HTTP workers)" if "multiprocessing" in cmd
                else "hub (relay, read model)" if "settlement serve" in cmd else None)
        if part:
            parts[part] = parts.get(part, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return parts


def run_wrk(url: str, connections: int, seconds: int, script: Path | None, env: dict) -> dict:
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency"]
    if script:
        cmd += ["-s", str(script)]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, env=env, timeout=seconds + 60).stdout
    result = {"raw": out}
    for line in out.splitlines():
        parts = line.split()
        if line.startswith("Requests/sec:"):
            result["per_s"] = float(parts[1])
        elif parts and parts[0] in ("50%", "90%", "99%"):
            value = parts[1]
            ms = float(value[:-2]) if value.endswith("ms") else float(value[:-2]) / 1000 if value.endswith("us") else float(value[:-1]) * 1000
            result[f"p{parts[0][:-1]}_ms"] = ms
        elif "Non-2xx" in line:
            result["errors"] = int(parts[-1])
        elif "requests in" in line:
            result["requests"] = int(parts[0])
    result.setdefault("errors", 0)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--visits", type=int, default=20000, help="prepared visits (settled at most once each)")
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--port", type=int, default=8610)
    ap.add_argument("--call", choices=sorted(CALLS), default="settle", help="which write call is measured")
    args = ap.parse_args()

    local = local_services.LocalSettings()
    local_services.up(local, report=lambda _l: None)
    env_base = local.environment()
    ensure_topics(env_base["HUB_KAFKA_BOOTSTRAP"])
    codec = AvroCodec()
    load_reference(REPO / "reference", env_base["HUB_KAFKA_BOOTSTRAP"], codec)
    run = uuid.uuid4().hex[:8]
    database = f"bench_{run}"
    admin = sa.create_engine(env_base["HUB_POSTGRES_URL"], isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'create database "{database}"'))

    persons = [f"3604{run}{i:06d}" for i in range(args.visits)]
    now = datetime.now(timezone.utc)
    with EventProducer(env_base["HUB_KAFKA_BOOTSTRAP"], codec) as producer:
        for psn in persons:
            ref = person_ref(KEY, psn)
            producer.send(REGISTRATION_EVENTS.name, ref, "RegistrationChanged", {
                "event_id": uuid.uuid4(), "event_time": now, "producer": "bench", "schema_version": 1,
                "person_ref": ref, "person_id_masked": psn[:4] + "****" + psn[-4:], "home_pool": "360400",
                "registration_version": 1, "change_kind": "ENROLLED",
                "enrolment": {"insurance_type": "RESIDENT", "enrolled_from": date(2015, 1, 1), "enrolled_to": None,
                              "benefits_from": date(2015, 1, 1), "special_populations": []},
                "filings": []})
        producer.flush()

    env = {**os.environ, **env_base, "HUB_SETTLEMENT_DATABASE": database, "HUB_PERSON_KEY": KEY.decode(),
           "HUB_LOG_LEVEL": "WARNING", "HUB_SETTLEMENT_DB_POOL": str(max(8, args.connections // args.workers + 2))}
    server = subprocess.Popen([sys.executable, "-m", "hub.cli", "settlement", "serve", "--port", str(args.port),
                               "--workers", str(args.workers)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{args.port}"
    headers = {"Authorization": f"Bearer dev-{HOSPITAL}"}
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(base + "/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit(f"server did not start: {server.stderr.read().decode()[-2000:] if server.poll() is not None else ''}")
            time.sleep(0.3)
        # Wait until the last person reached the read model.
        while httpx.post(base + PATH, headers=headers, json={"infno": "1101", "msgid": uuid.uuid4().hex,
                         "input": {"data": {"psn_no": persons[-1]}}}).json().get("infcode") != 0:
            time.sleep(0.3)
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
        engine.dispose()
        visit_file, person_file = Path(f"/tmp/bench-visits-{run}.txt"), Path(f"/tmp/bench-persons-{run}.txt")
        visit_file.write_text("\n".join(visits) + "\n")
        person_file.write_text("\n".join(persons) + "\n")
        wrk_env = {**os.environ, "VISITS": str(visit_file), "PERSONS": str(person_file), "HOSPITAL": HOSPITAL,
                   "WRK_THREADS": "2", "CALL": args.call}
        counted = CALLS[args.call]
        baseline = run_wrk(base + "/health/live", args.connections, args.seconds, None, wrk_env)
        cpu_before = cpu_seconds()
        result = run_wrk(base + PATH, args.connections, args.seconds, REPO / "bench" / "calls.lua", wrk_env)
        cpu_after = cpu_seconds()
        with sa.create_engine(sa.make_url(env_base["HUB_POSTGRES_URL"]).set(database=database)).connect() as conn:
            settled = conn.execute(sa.text(counted)).scalar_one()
        if result.get("requests", 0) > len(visits):
            print("warning: more requests than prepared visits; raise --visits", file=sys.stderr)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        with admin.connect() as conn:
            conn.execute(sa.text(f'drop database "{database}" with (force)'))
        redis.Redis.from_url(env_base["HUB_REDIS_URL"])  # nothing to clean: registrations are keyed per run
    for r in (result, baseline):
        r.pop("raw", None)
    done = max(1, result.get("requests", 0))
    cpu_ms = {part: round(1000 * (cpu_after[part] - cpu_before.get(part, 0.0)) / done, 3) for part in cpu_after}
    cpu_ms["total"] = round(sum(cpu_ms.values()), 3)
    report = {"command": " ".join(["python3", "bench/settle_bench.py", *sys.argv[1:]]),
              "cores": os.cpu_count(), "workers": args.workers, "connections": args.connections, "call": args.call,
              args.call: result, "settlements_committed" if args.call == "settle" else f"{args.call}s_committed": settled,
              "baseline_health": baseline,
              "settle_vs_baseline_throughput": round(result["per_s"] / baseline["per_s"], 3),
              "cpu_ms_per_settlement": cpu_ms}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
