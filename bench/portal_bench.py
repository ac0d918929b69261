"""How fast the bureau portal's pages answer on a day of many settlements, against the HTTP
stack's own floor measured in the same run.

    python3 bench/portal_bench.py --events 1000000
    python3 bench/portal_bench.py --quick            # 20,000 events: a smoke run

Builds a closed clearing day as clearing_bench does (`--events` SettlementCompleted events over
300 pools on one day, applied by two `hub clearing consume` processes, closed by `hub clearing
close`), issues its month's statements, then serves `hub clearing serve` and `hub portal serve`
(development mode) with a bureau of the first pool and an operator. Timed, signed in, one request
at a time (`--requests` each after two to warm): every page a clerk opens (day, month, advance,
fund risk, claims-free pages only: the settlement service is not running) and a file download, the
operator's overview, and as baselines the portal's /health/live (the HTTP stack's floor: FastAPI,
uvicorn, one process) and clearing's own day summary the day page reads. Reported: p50, p95 and
max per page in milliseconds, and each page's p50 as a multiple of the floor's.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import sqlalchemy as sa
import yaml
from kafka.admin import KafkaAdminClient, NewTopic

from common import REPO

sys.path.insert(0, str(REPO))
from clearing_bench import write_events  # noqa: E402
from hub.development import local_services  # noqa: E402
from hub.clearing.adapters import database as db  # noqa: E402
from hub.clearing.bootstrap import Settings  # noqa: E402
from hub.messaging import AvroCodec  # noqa: E402
from tests.fixtures.avro.samples import SAMPLES  # noqa: E402

POOL = "100100"  # the first of clearing_bench's 300 pools
PASSWORD = "bench-portal-password"


def run(command: list[str], env: dict, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "hub.cli", *command], env=env, capture_output=True, text=True,
                          timeout=3600, **kwargs)
    if done.returncode != 0:
        raise SystemExit(f"hub {' '.join(command)}: exit {done.returncode}\n{done.stderr[-2000:]}")
    return done


def apply_all(env: dict, database: str, count: int, members: int = 2) -> float:
    """Every event applied by `members` clearing consumers; seconds taken."""
    started = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-m", "hub.cli", "clearing", "consume", "--no-auto-close"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(members)]
    engine = sa.create_engine(sa.make_url(env["HUB_POSTGRES_URL"]).set(database=database))
    try:
        while True:
            if any(p.poll() is not None for p in procs):
                raise SystemExit("a clearing consumer exited early")
            try:
                with engine.connect() as conn:
                    applied = int(conn.execute(sa.text("select coalesce(sum(next_offset), 0) from partition_marks"))
                                  .scalar_one())
            except sa.exc.ProgrammingError:  # the tables are being made
                applied = 0
            if applied >= count:
                return time.perf_counter() - started
            time.sleep(0.2)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=60)
        engine.dispose()


def serve(command: list[str], env: dict, port: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "hub.cli", *command, "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(600):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health/live", timeout=2).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        if proc.poll() is not None:
            raise SystemExit(f"hub {' '.join(command)} exited during start-up")
        time.sleep(0.2)
    raise SystemExit(f"hub {' '.join(command)} did not answer")


def timed(http: httpx.Client, path: str, requests: int, headers: dict | None = None) -> dict:
    for _ in range(2):
        http.get(path, headers=headers)
    times = []
    for _ in range(requests):
        t0 = time.perf_counter()
        answer = http.get(path, headers=headers)
        times.append(1000 * (time.perf_counter() - t0))
        if answer.status_code != 200:
            raise SystemExit(f"GET {path}: {answer.status_code} {answer.text[:300]}")
    times.sort()
    return {"p50_ms": round(statistics.median(times), 1), "p95_ms": round(times[int(0.95 * (len(times) - 1))], 1),
            "max_ms": round(times[-1], 1), "bytes": len(answer.content)}


def sign_in(base: str, username: str) -> httpx.Client:
    http = httpx.Client(base_url=base, timeout=120)
    answer = http.post("/login", data={"username": username, "password": PASSWORD})
    if answer.status_code != 303 or "hub_portal" not in http.cookies:
        raise SystemExit(f"signing {username} in: {answer.status_code}")
    return http


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--quick", action="store_true", help="20,000 events")
    ap.add_argument("--requests", type=int, default=30, help="timed requests per page")
    args = ap.parse_args()
    count = 20_000 if args.quick else args.events
    local = local_services.LocalSettings()
    local_services.up(local, report=lambda _l: None)
    env = {**os.environ, **local.environment(), "HUB_ENV": "development"}
    run_id = uuid.uuid4().hex[:8]
    topic, database, portal_db = f"bench.portal.{run_id}", f"bench_portal_{run_id}", f"bench_portal_ui_{run_id}"
    out = Path(f"/tmp/{database}")
    bureaus = out / "bureaus.yaml"
    out.mkdir(parents=True, exist_ok=True)
    import hashlib

    bureaus.write_text(yaml.safe_dump([{"code": f"B{POOL}", "name": f"bench bureau {POOL}", "pool": POOL,
                                        "token_sha256": hashlib.sha256(f"dev-bureau-{POOL}".encode()).hexdigest()}]))
    env |= {"HUB_CLEARING_DATABASE": database, "HUB_CLEARING_GROUP": f"bench-{run_id}", "HUB_SETTLEMENT_TOPIC": topic,
            "HUB_CLEARING_OUT": str(out / "clearing"), "HUB_BUREAUS_FILE": str(bureaus), "HUB_PORTAL_DATABASE": portal_db,
            "HUB_PORTAL_CLEARING_URL": "http://127.0.0.1:18531", "HUB_LOG_LEVEL": "WARNING"}
    admin = KafkaAdminClient(bootstrap_servers=env["HUB_KAFKA_BOOTSTRAP"])
    admin.create_topics([NewTopic(topic, num_partitions=6, replication_factor=1)])
    pg = sa.create_engine(env["HUB_POSTGRES_URL"], isolation_level="AUTOCOMMIT")
    with pg.connect() as conn:
        conn.execute(sa.text(f'create database "{database}"'))
    procs: list[subprocess.Popen] = []
    try:
        db.create_schema(sa.create_engine(Settings(postgres_url=env["HUB_POSTGRES_URL"], database=database).database_url))
        t0 = time.perf_counter()
        write_events(env["HUB_KAFKA_BOOTSTRAP"], topic, count, AvroCodec())
        written_s = time.perf_counter() - t0
        applied_s = apply_all(env, database, count)
        day = SAMPLES["cn.hub.settlement.SettlementCompleted"]["business_date"]
        t1 = time.perf_counter()
        run(["clearing", "close", "--date", day.isoformat()], env)
        closed_s = time.perf_counter() - t1
        procs.append(serve(["clearing", "serve", "--no-consume", "--no-relay"], env, 18531))
        operator = {"authorization": "Bearer dev-operator"}
        month = day.isoformat()[:7]
        issued = httpx.post(f"http://127.0.0.1:18531/v1/statements/{month}/issue", headers=operator, timeout=600)
        if issued.status_code != 200:
            raise SystemExit(f"issuing {month}: {issued.status_code} {issued.text[:300]}")
        for username, role, pool in (("bench-clerk", "clerk", POOL), ("bench-ops", "operator", "")):
            run(["portal", "user", "add", username, "--role", role, *(["--pool", pool] if pool else []),
                 "--password-stdin"], env, input=PASSWORD + "\n")
        procs.append(serve(["portal", "serve"], env, 18540))
        base = "http://127.0.0.1:18540"
        plain, clerk, ops = httpx.Client(base_url=base, timeout=60), sign_in(base, "bench-clerk"), sign_in(base, "bench-ops")
        clearing = httpx.Client(base_url="http://127.0.0.1:18531", timeout=60,
                                headers={"authorization": f"Bearer dev-bureau-{POOL}"})
        try:
            floor = timed(plain, "/health/live", args.requests)
            pages = {
                "clearing day summary (API)": timed(clearing, f"/v1/clearing-days/{POOL}/{day.isoformat()}", args.requests),
                "clearing status.json (API, operator)": timed(clearing, "/status.json", args.requests, operator),
                "/day": timed(clerk, "/day", args.requests),
                "/month": timed(clerk, f"/month?month={month}", args.requests),
                "/advance": timed(clerk, "/advance", args.requests),
                "/risk": timed(clerk, "/risk", args.requests),
                "/audit": timed(clerk, "/audit", args.requests),
                "/operator": timed(ops, "/operator", args.requests),
                "download .csv (checked against the signed manifest)":
                    timed(clerk, f"/files/{day.isoformat()}/{POOL}.csv", max(5, args.requests // 3)),
            }
        finally:
            for client in (plain, clerk, ops, clearing):
                client.close()
        lines = json.loads(httpx.get(f"http://127.0.0.1:18531/v1/statements/{month}/{POOL}", headers=operator,
                                     timeout=120).text)["line_count"]
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=30)
        admin.delete_topics([topic])
        admin.close()
        with pg.connect() as conn:
            for name in (database, portal_db):
                conn.execute(sa.text(f'drop database if exists "{name}" with (force)'))
    report = {"command": " ".join(["python3", "bench/portal_bench.py", *sys.argv[1:]]), "events": count,
              "pool_statement_lines": lines, "build_s": {"write": round(written_s, 1), "apply": round(applied_s, 1),
                                                         "close": round(closed_s, 1)},
              "floor_health_live": floor, "pages": pages,
              "p50_over_floor": {k: round(v["p50_ms"] / max(floor["p50_ms"], 0.1), 1) for k, v in pages.items()},
              "cores": os.cpu_count()}
    print(json.dumps(report, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
