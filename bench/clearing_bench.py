"""How fast clearing applies settlement events, as a share of how fast Kafka can be read.

    python3 bench/clearing_bench.py --events 100000
    python3 bench/clearing_bench.py --quick          # 5,000 events: a smoke run

Writes `--events` SettlementCompleted events (the project's own codec and sample record, 300
pools, business dates on one day) to a fresh topic of 6 partitions, then in the same run:
(1) a bare kafka-python consumer reads the topic end to end (no decoding): the baseline;
(2) `--members` clearing consumers (`hub clearing consume --no-auto-close`, each its own
process, one consumer group, a fresh database) apply it until every event is in.
Reported: events/s of both, their ratio, and the clearing day's totals checked against the
events written (every event applied once). Clearing's rate counts from the moment the group is
stable with every member in it (partitions assigned: the events are already waiting) to the last
applied batch; the join before it is reported apart as `join_s`.

    python3 bench/clearing_bench.py --events 100000 --members 1   # one consumer process
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import sqlalchemy as sa
from kafka import KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError

from common import REPO, cpu_seconds, cpu_ms_per

sys.path.insert(0, str(REPO))
from hub.development import local_services  # noqa: E402
from hub.clearing.adapters import database as db  # noqa: E402
from hub.clearing.bootstrap import Settings  # noqa: E402
from hub.messaging import AvroCodec, EventProducer  # noqa: E402
from tests.fixtures.avro.samples import SAMPLES  # noqa: E402


def write_events(bootstrap: str, topic: str, count: int, codec: AvroCodec) -> int:
    """The events, with their hifp amounts summed (what clearing must arrive at)."""
    rnd = random.Random(7)
    pools = [f"{n:06d}" for n in range(100100, 100100 + 300)]
    base = SAMPLES["cn.hub.settlement.SettlementCompleted"]
    total = 0
    with EventProducer(bootstrap, codec, linger_ms=20) as producer:
        for n in range(count):
            home, treat = rnd.sample(pools, 2)
            hifp = rnd.randint(100, 1_000_000)
            total += hifp
            event = {**base, "event_id": uuid.uuid4(), "settlement_id": f"S-BENCH-{n}", "home_pool": home,
                     "treatment_pool": treat, "hifp_pay_fen": hifp, "hifmi_pay_fen": 0, "maf_pay_fen": 0,
                     "psn_part_amt_fen": base["medfee_sumamt_fen"] - hifp}
            producer.send(topic, home, "SettlementCompleted", event)
        producer.flush()
    return total


def bare_read(bootstrap: str, topic: str, count: int) -> float:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                             max_poll_records=2000, fetch_max_bytes=64 * 1024 * 1024)
    tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    seen, t0 = 0, time.perf_counter()
    while seen < count:
        for records in consumer.poll(timeout_ms=500).values():
            seen += len(records)
    elapsed = time.perf_counter() - t0
    consumer.close()
    return count / elapsed


def time_downloads(env: dict, day, pools: int, sample: int = 20) -> dict:
    """Every kind of file of `sample` pools fetched from `hub clearing serve` (HTTP, the operator's
    token) after the close: the slowest and the median fetch of each kind, in milliseconds."""
    port = 18437
    server = subprocess.Popen([sys.executable, "-m", "hub.cli", "clearing", "serve", "--port", str(port),
                               "--no-consume", "--no-relay"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60,
                          headers={"authorization": f"Bearer {env.get('HUB_OPERATOR_TOKEN', 'dev-operator')}"}) as http:
            for _ in range(200):
                try:
                    if http.get("/health/live").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            step = max(1, pools // sample)
            times: dict[str, list[float]] = {}
            for pool in [f"{n:06d}" for n in range(100100, 100100 + pools, step)][:sample]:
                for suffix in ("csv", "json", "xlsx", "sha256", "sig"):
                    t0 = time.perf_counter()
                    reply = http.get(f"/v1/clearing/{day.isoformat()}/{pool}.{suffix}")
                    if reply.status_code != 200:
                        raise SystemExit(f"download {pool}.{suffix}: HTTP {reply.status_code} {reply.text[:200]}")
                    times.setdefault(suffix, []).append(1000 * (time.perf_counter() - t0))
    finally:
        server.terminate()
        server.wait(timeout=30)
    return {suffix: {"median": round(statistics.median(t), 1), "max": round(max(t), 1), "fetches": len(t)}
            for suffix, t in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--quick", action="store_true", help="5,000 events")
    ap.add_argument("--members", type=int, default=2,
                    help="clearing consumer processes in the group (the deployment runs several; 2 = cores here)")
    ap.add_argument("--close", action="store_true", help="then close the day and write every file: time and memory")
    args = ap.parse_args()
    count = 5000 if args.quick else args.events
    local = local_services.LocalSettings()
    local_services.up(local, report=lambda _l: None)
    env = local.environment()
    bootstrap = env["HUB_KAFKA_BOOTSTRAP"]
    run = uuid.uuid4().hex[:8]
    topic, database = f"bench.clearing.{run}", f"bench_clearing_{run}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic, num_partitions=6, replication_factor=1)])
    pg = sa.create_engine(env["HUB_POSTGRES_URL"], isolation_level="AUTOCOMMIT")
    with pg.connect() as conn:
        conn.execute(sa.text(f'create database "{database}"'))
    codec = AvroCodec()
    try:
        expected = write_events(bootstrap, topic, count, codec)
        baseline = bare_read(bootstrap, topic, count)
        settings = Settings(postgres_url=env["HUB_POSTGRES_URL"], kafka_bootstrap=bootstrap, database=database,
                            group_id=f"bench-{run}", topic=topic, out_dir=Path(f"/tmp/{database}"))
        engine = sa.create_engine(settings.database_url, pool_size=4)
        db.create_schema(engine)
        consumer_env = {**os.environ, **env, "HUB_CLEARING_DATABASE": database, "HUB_CLEARING_GROUP": settings.group_id,
                        "HUB_SETTLEMENT_TOPIC": topic, "HUB_CLEARING_OUT": str(settings.out_dir)}
        marks = sa.text("select count(*), coalesce(sum(next_offset), 0) from partition_marks")
        t0 = time.perf_counter()
        members = [subprocess.Popen([sys.executable, "-m", "hub.cli", "clearing", "consume", "--no-auto-close"],
                                    env=consumer_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                   for _ in range(args.members)]
        def check_members() -> None:
            if any(m.poll() is not None for m in members):
                raise SystemExit("a clearing consumer exited early")

        while True:  # the group stable with every member: from here on, their pace and its CPU
            check_members()
            try:
                group = admin.describe_groups([settings.group_id])[settings.group_id]
            except KafkaError as exc:  # a fresh broker makes its group coordinator on first use
                if not exc.retriable:
                    raise
                group = {"group_state": "", "members": []}
            if group["group_state"] == "Stable" and len(group["members"]) == args.members:
                break
            time.sleep(0.05)
        started, before = time.perf_counter(), cpu_seconds()
        with engine.connect() as conn:  # a member alone in the group may have applied some already
            applied = early = int(conn.execute(marks).one()[1])  # every partition's next offset: one event each
        while applied < count:
            time.sleep(0.05)
            check_members()
            with engine.connect() as conn:
                applied = int(conn.execute(marks).one()[1])
        elapsed = time.perf_counter() - started
        timed = count - early
        if timed < count // 2:  # a small run (--quick) mostly applied while members joined: time it all
            started, elapsed, timed = t0, time.perf_counter() - t0, count
        after = cpu_seconds()
        for m in members:
            m.terminate()
        for m in members:
            m.wait(timeout=60)
        with engine.connect() as conn:
            hifp = conn.execute(sa.text("select coalesce(sum(hifp_pay_fen), 0) from bilateral")).scalar_one()
        close = None
        if args.close:  # `hub clearing close` in a process of its own: its peak memory is the close's
            day = SAMPLES["cn.hub.settlement.SettlementCompleted"]["business_date"]
            close_env = {**os.environ, **env, "HUB_CLEARING_DATABASE": database, "HUB_CLEARING_OUT": str(settings.out_dir)}
            t1 = time.perf_counter()
            with subprocess.Popen([sys.executable, "-m", "hub.cli", "clearing", "close", "--date", day.isoformat()],
                                  env=close_env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) as done:
                stdout = done.stdout.read()
                # this process's own children's rusage would hold the consumers' peak too: the close's alone
                _, status, usage = os.wait4(done.pid, 0)
                done.returncode = os.waitstatus_to_exitcode(status)
            written = list((settings.out_dir / day.isoformat()).glob("*"))
            with engine.connect() as conn:
                nets = conn.execute(sa.text("select coalesce(sum(net_position_fen), 0), count(*) from statements")).one()
            close = {"seconds": round(time.perf_counter() - t1, 2), "exit": done.returncode, "files": len(written),
                     "bytes": sum(p.stat().st_size for p in written),
                     "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
                     "pools": nets[1], "net_positions_sum_to_zero": nets[0] == 0,
                     # where the close spent its time, as its log says (netting, advances, flags, files)
                     "phases": [line for line in stdout.splitlines() if line.startswith("closed ")][-1:]}
            close["download_ms"] = time_downloads(close_env, day, nets[1])
            shutil.rmtree(settings.out_dir, ignore_errors=True)
        engine.dispose()
    finally:
        admin.delete_topics([topic])
        admin.close()
        with pg.connect() as conn:
            conn.execute(sa.text(f'drop database if exists "{database}" with (force)'))
    report = {"command": " ".join(["python3", "bench/clearing_bench.py", *sys.argv[1:]]), "events": count,
              "bare_consumer_events_per_s": round(baseline, 1), "members": args.members,
              "clearing_events_per_s": round(timed / elapsed, 1), "timed_events": timed,
              "ratio": round(timed / elapsed / baseline, 3), "join_s": round(started - t0, 2),
              "totals_as_written": hifp == expected, "cpu_ms_per_1000_events": cpu_ms_per(before, after, max(1, timed // 1000)),
              "close_day": close, "cores": os.cpu_count()}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
