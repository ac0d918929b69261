"""The fault suite: the hub under a steady settle load while its processes and servers fail.

    python3 -m tests.faults.suite                      # the long form: 30,000 bills, every fault
    python3 -m tests.faults.suite --bills 1500         # the short form CI runs (tests/faults/test_faults.py)
    python3 -m tests.faults.suite --brokers 3          # on a three-broker cluster of the suite's own

Real servers (the local ones `hub services up` starts: the suite kills and restarts them, so it
refuses servers it did not start) and the real services as processes, each run with its own
databases, consumer group, hospitals and persons. Hospitals settle bills the whole time
(open, upload, settle, sometimes reverse), re-sending a request with the same msgid when it
got no answer, as a HIS does. Meanwhile, one after another:

  kill -9 of each service (the settlement service with two HTTP workers), kill -9 of the
  broker, a Redis flush, a PostgreSQL restart, a poison bill and a poison event; a second
  settlement replica settling the same persons against the same database; the clearing
  consumer group scaled 1 -> 3 -> 1; and at the end the day's cut-off reached while three
  clearing replicas run. With --brokers 3 the broker kill gives way to the cluster's faults
  (tests/faults/cluster.py): the leader of settlement.events' partition 0 killed (settlement must
  stay ready), two of the three brokers killed (settling goes on into the outbox; readiness says
  why), and a broker's data directory wiped, formatted again with the cluster's id and rejoined
  (the time it takes to catch up is in the record).

After each fault the suite waits until every service is ready again and bills are being
settled again. At the end it checks, and prints: every settlement the API acknowledged is in
clearing exactly once and nothing else is; every person's accumulators equal a replay of
their standing settlements; the day closed once, one set of files, net positions sum to zero
and equal what hospitals were told; no background loop is down; readiness was false while
the broker was down and true after every recovery. Exit 0 only with 0 mismatches.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import redis
import sqlalchemy as sa
import yaml

from hub import money
from hub.development import local_services
from hub.simulation import bills, day as sim, interface, parties

REPO = Path(__file__).resolve().parents[2]
CONVENTION_PATH = interface.CONVENTION_PATH
_visit_id = interface.visit_id
SHANGHAI = sim.SHANGHAI


class SuiteRefused(RuntimeError):
    """The suite cannot run here (servers it did not start)."""


@dataclass
class Options:
    bills: int = 30_000
    concurrency: int = 8
    pools: int = 7
    seed: int = 20261125
    out_dir: Path = REPO / "out"
    base_port: int = 8600
    brokers: int = 1  # 3: the suite's own three-node cluster, and the cluster faults instead of the broker kill


# ----------------------------------------------------------------------------- processes


class Proc:
    """One service process the suite starts, kills and restarts."""

    def __init__(self, name: str, args: list[str], port: int, env: dict[str, str], logs: Path,
                 ready_path: str = "/health/ready"):
        self.name, self.args, self.port, self.env, self.ready_path = name, args, port, env, ready_path
        self.log = logs / f"{name}.log"
        self.popen: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        out = open(self.log, "ab")
        self.popen = subprocess.Popen([sys.executable, "-m", "hub.cli", *self.args, "--port", str(self.port)],
                                      env=self.env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def kill9(self) -> None:
        assert self.popen is not None
        self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(timeout=30)

    def stop(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.popen.kill()

    def ready(self) -> int:
        try:
            return httpx.get(self.url + self.ready_path, timeout=2).status_code
        except httpx.HTTPError:
            return 0

    def wait_ready(self, limit_s: float = 180) -> float:
        t0 = time.monotonic()
        while time.monotonic() - t0 < limit_s:
            if self.popen is not None and self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited (code {self.popen.returncode}); see {self.log}")
            if self.ready() == 200:
                return time.monotonic() - t0
            time.sleep(0.25)
        raise RuntimeError(f"{self.name} was not ready within {limit_s:.0f} s; see {self.log}")


@dataclass
class Ledger:
    """What the hospitals were told."""

    settled: dict[str, tuple[str, str, int]] = field(default_factory=dict)  # setl_id -> (home, treat, fund fen)
    reversed: set[str] = field(default_factory=set)
    refused: Counter = field(default_factory=Counter)
    resent: int = 0  # requests sent again with the same msgid after no answer
    lock: threading.Lock = field(default_factory=threading.Lock)


class Load:
    """Hospitals settling bills until stopped, spread over the settlement replicas that run."""

    def __init__(self, opts: Options, rnd: random.Random, ref: Path, hospitals: list[dict], persons: list[dict],
                 pools: list[str], targets: list[str]):
        self.opts, self.ledger, self.targets = opts, Ledger(), targets  # targets: settlement URLs, changed live
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        self.catalogues = {c: parties.catalogue_codes(ref, c) for c in pools}
        self.covered = {c: parties.covered_visit_types(ref, c) for c in pools}
        self.hospitals, self.persons, self.pools = hospitals, persons, pools
        self.seed = rnd.randrange(2**32)
        self.started = 0  # bills begun; the load runs until stopped (a broker outage does not stop settling)
        self._lock = threading.Lock()

    def plan(self, n: int) -> tuple:
        """Bill n: who, where, what (the same for the same seed and n)."""
        rnd = random.Random(self.seed * 1_000_003 + n)
        person = rnd.choice(self.persons)
        treat = person.get("target") if person.get("target") and rnd.random() < 0.8 else \
            rnd.choice([c for c in self.pools if c != person["pool"]])
        hospital = rnd.choice([h for h in self.hospitals if h["pool"] == treat])
        mix = [(t, w) for t, w in bills.VISIT_MIX if t in self.covered[person["pool"]]]
        med_type = interface.weighted(rnd, [(t, w / sum(w for _, w in mix)) for t, w in mix])
        items = rnd.sample(self.catalogues[treat], rnd.randint(2, 6))
        lines = [{"med_list_codg": code, "cnt": str(rnd.randint(1, 3)), "pric": money.fen_to_yuan(price)}
                 for code, price in items]
        return n, person, hospital, med_type, lines, rnd.random() < 0.02

    def start(self) -> None:
        for _ in range(self.opts.concurrency):
            thread = threading.Thread(target=self._work, daemon=True)
            thread.start()
            self.threads.append(thread)

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=300)

    def acknowledged(self) -> int:
        with self.ledger.lock:
            return len(self.ledger.settled)

    def _work(self) -> None:
        http = httpx.Client(timeout=10)
        while not self.stop.is_set():
            with self._lock:
                n = self.started
                self.started += 1
            self._bill(http, self.plan(n))

    def _call(self, http: httpx.Client, hospital: dict, person: dict, n: int, infno: str, payload: dict) -> tuple:
        """One request, re-sent with the same msgid until it is answered (not 503, not a lost
        connection): the hub answers a re-sent request the same way, and never settles twice."""
        msgid = f"{hospital['code']}{datetime.now():%Y%m%d%H%M%S}{n:07d}{infno}"
        envelope = {"infno": infno, "msgid": msgid, "mdtrtarea_admvs": hospital["pool"],
                    "insuplc_admdvs": person["pool"], "fixmedins_code": hospital["code"], "opter": "fault",
                    "inf_time": datetime.now(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S"), "input": payload}
        deadline = time.monotonic() + 300
        attempt = 0
        while time.monotonic() < deadline:
            url = self.targets[(n + attempt) % len(self.targets)]
            attempt += 1
            try:
                r = http.post(url + CONVENTION_PATH, json=envelope,
                              headers={"Authorization": f"Bearer {hospital['token']}"})
                # 503: the hub could not complete it; hub_not_ready (in the envelope): not decided
                if r.status_code != 503 and r.json().get("err_code") != "hub_not_ready":
                    return r.status_code, r.json()
            except (httpx.HTTPError, ValueError):
                pass
            with self.ledger.lock:
                self.ledger.resent += 1
            time.sleep(min(2.0, 0.1 * attempt))
        raise RuntimeError(f"infno {infno} msgid {msgid}: no answer in 300 s")

    def _bill(self, http: httpx.Client, plan) -> None:
        n, person, hospital, med_type, lines, reverse = plan
        inpatient = med_type == "21"
        status, body = self._call(http, hospital, person, n, "2401" if inpatient else "2201", {"mdtrtinfo": {
            "psn_no": person["psn_no"], "med_type": med_type,
            "begntime": datetime.now(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S")}})
        if body.get("infcode") != "0":
            return self._refused(body, status)
        mdtrt = _visit_id(body)
        feed = [dict(line, feedetl_sn=str(i + 1), mdtrt_id=mdtrt) for i, line in enumerate(lines)]
        status, body = self._call(http, hospital, person, n, "2301" if inpatient else "2204", {"feedetail": feed})
        if body.get("infcode") != "0":
            return self._refused(body, status)
        status, body = self._call(http, hospital, person, n, "2304" if inpatient else "2207", {"data": {"mdtrt_id": mdtrt}})
        if body.get("infcode") != "0":
            return self._refused(body, status)
        info = body["output"]["setlinfo"]
        with self.ledger.lock:
            self.ledger.settled[info["setl_id"]] = (person["pool"], hospital["pool"],
                                                    money.yuan_to_fen(info["fund_pay_sumamt"]))
        if reverse:
            status, body = self._call(http, hospital, person, n, "2305" if inpatient else "2208",
                                      {"data": {"setl_id": info["setl_id"]}})
            if body.get("infcode") == "0":
                with self.ledger.lock:
                    self.ledger.reversed.add(info["setl_id"])

    def _refused(self, body: dict, status: int) -> None:
        with self.ledger.lock:
            self.ledger.refused[body.get("err_code", str(status))] += 1


class HealthWatch:
    """Samples every running service's /health/ready four times a second."""

    def __init__(self, procs: dict[str, Proc]):
        self.procs = procs
        self.samples: list[tuple[float, str, int]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.wait(0.25):
            for name, proc in list(self.procs.items()):
                if proc.popen is not None and proc.popen.poll() is None:
                    self.samples.append((time.monotonic(), name, proc.ready()))

    def not_ready_between(self, name_prefix: str, t0: float, t1: float) -> bool:
        return any(t0 <= t <= t1 and name.startswith(name_prefix) and status != 200
                   for t, name, status in self.samples)


# ----------------------------------------------------------------------------- the run


class Suite:
    def __init__(self, opts: Options, echo=print):
        self.opts, self.echo = opts, echo
        self.rnd = random.Random(opts.seed)
        self.faults: list[dict] = []
        self.mismatches: list[str] = []

    # -- set-up ------------------------------------------------------------------------------

    def setup(self) -> None:
        if any(os.environ.get(k) for k in ("HUB_KAFKA_BOOTSTRAP", "HUB_REDIS_URL", "HUB_POSTGRES_URL")):
            raise SuiteRefused("the fault suite kills and restarts servers: it runs only against the local "
                               "servers `hub services up` starts (unset HUB_KAFKA_BOOTSTRAP, HUB_REDIS_URL, "
                               "HUB_POSTGRES_URL)")
        self.local = local_services.LocalSettings()
        local_services.up(self.local, report=lambda _line: None)
        self.kafka, self.postgres, self.redis_url = (self.local.kafka_bootstrap, self.local.postgres_url,
                                                     self.local.redis_url)
        self.cluster = None
        if self.opts.brokers == 3:
            from tests.faults.cluster import Cluster

            self.cluster = Cluster(self.local)
            self.cluster.start()
            self.kafka = self.cluster.bootstrap
            self.echo(f"a cluster of three brokers on {self.kafka}")
        from hub.messaging import AvroCodec, ensure_topics
        from hub.registration.entrypoints.reference_load import load_reference

        ensure_topics(self.kafka)
        self.run_id = datetime.now(SHANGHAI).strftime("%Y%m%d%H%M%S") + secrets.token_hex(2)
        self.run_dir = self.opts.out_dir / f"faults-{self.run_id}"
        self.logs = self.run_dir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        pools = parties.choose_pools(self.opts.pools)
        self.pool_codes = [c for c, _ in pools]
        self.ref = parties.prepare_reference(self.run_dir, pools)
        self.codec = AvroCodec()
        load_reference(self.ref, self.kafka, self.codec)
        levels = ("1", "2", "3", "3P")
        self.hospitals = [{"code": f"H{code}{self.run_id[-6:]}{i:02d}", "name": f"{name} {i} (fault suite)",
                           "pool": code, "level": levels[i % 4], "token": secrets.token_urlsafe(16)}
                          for code, name in pools for i in range(2)]
        self.bureaus = [{"code": f"B{code}", "name": f"{name} (fault suite)", "pool": code,
                         "token": secrets.token_urlsafe(16)} for code, name in pools]
        import hashlib
        for path, rows in ((self.run_dir / "hospitals.yaml", self.hospitals),
                           (self.run_dir / "bureaus.yaml", self.bureaus)):
            path.write_text(yaml.safe_dump([{k: v for k, v in r.items() if k != "token"}
                                            | {"token_sha256": hashlib.sha256(r["token"].encode()).hexdigest()}
                                            for r in rows], allow_unicode=True), encoding="utf-8")
        self.databases = {k: f"hubfaults_{self.run_id}_{k}" for k in ("registration", "settlement", "clearing")}
        admin = sa.create_engine(self.postgres, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            for name in self.databases.values():
                conn.execute(sa.text(f'create database "{name}"'))
        admin.dispose()
        self.group = f"interregion-clearing-faults-{self.run_id}"
        sim.commit_end_offsets(self.kafka, self.group, "settlement.events")
        self.clearing_out = self.run_dir / "clearing"
        self.env = {**os.environ, "HUB_ENV": "development", "HUB_KAFKA_BOOTSTRAP": self.kafka, "HUB_POSTGRES_URL": self.postgres,
                    "HUB_REDIS_URL": self.redis_url, "HUB_PERSON_KEY": f"faults-{self.run_id}-{secrets.token_hex(8)}",
                    "HUB_REGISTRATION_DATABASE": self.databases["registration"],
                    "HUB_SETTLEMENT_DATABASE": self.databases["settlement"],
                    "HUB_CLEARING_DATABASE": self.databases["clearing"], "HUB_CLEARING_GROUP": self.group,
                    "HUB_CLEARING_OUT": str(self.clearing_out), "HUB_HOSPITALS_FILE": str(self.run_dir / "hospitals.yaml"),
                    "HUB_BUREAUS_FILE": str(self.run_dir / "bureaus.yaml"), "HUB_REFERENCE_DIR": str(self.ref),
                    "HUB_STATUS_INTERVAL_S": "3", "HUB_LOG_LEVEL": "INFO"}
        port = self.opts.base_port
        self.procs: dict[str, Proc] = {
            "registration": Proc("registration", ["registration", "serve"], port, self.env, self.logs),
            "settlement": Proc("settlement", ["settlement", "serve", "--workers", "2"], port + 1, self.env, self.logs),
            "clearing": Proc("clearing", ["clearing", "serve"], port + 2, self.env, self.logs),
        }
        for proc in self.procs.values():
            proc.start()
        for proc in self.procs.values():
            proc.wait_ready()
        self.echo(f"run {self.run_id}: services ready; files and logs in {self.run_dir}")
        opts = sim.DayOptions(settlements=max(300, self.opts.bills // 3), pools=self.opts.pools)
        self.persons = parties.enrol(opts, self.rnd, self.run_id, pools, self.bureaus, self.procs["registration"].url,
                                  lambda line: self.echo(line))
        parties.wait_registered(self.procs["settlement"].url, self.hospitals, self.persons, self.echo)

    # -- faults ------------------------------------------------------------------------------

    def wait_all_ready(self) -> float:
        t0 = time.monotonic()
        for proc in list(self.procs.values()):
            if proc.popen is not None and proc.popen.poll() is None:
                proc.wait_ready()
        return time.monotonic() - t0

    def wait_progress(self, bills: int, limit_s: float = 300) -> None:
        """Until `bills` more bills were acknowledged: settling goes on after the fault."""
        start = self.load.acknowledged()
        deadline = time.monotonic() + limit_s
        while self.load.acknowledged() < start + bills:
            if time.monotonic() > deadline:
                raise RuntimeError(f"settling did not resume: {self.load.acknowledged() - start} bills in {limit_s} s")
            time.sleep(0.2)

    def fault(self, name: str, inject, recover=None, expect_not_ready: str | None = None,
              expect_ready: str | None = None) -> None:
        """`inject` may return figures of its own for the record; `expect_ready`: the service must
        stay ready throughout (the fault is one it is built to ride out)."""
        t0 = time.monotonic()
        before = self.load.acknowledged()
        figures = inject() or {}
        if recover is not None:
            figures.update(recover() or {})
        recovery_s = self.wait_all_ready()
        t1 = time.monotonic()
        self.wait_progress(self.step)
        record = {"fault": name, "bills_before": before, "recovered_in_s": round(t1 - t0, 1),
                  "bills_after": self.load.acknowledged(), **figures}
        if expect_not_ready:
            seen = self.watch.not_ready_between(expect_not_ready, t0, t1)
            record["readiness_said_not_ready"] = seen
            if not seen:
                self.mismatches.append(f"{name}: {expect_not_ready} stayed ready while it could not work")
        if expect_ready and self.watch.not_ready_between(expect_ready, t0, t1):
            record["readiness_said_not_ready"] = True
            self.mismatches.append(f"{name}: {expect_ready} said it was not ready through a fault it rides out")
        self.faults.append(record)
        self.echo(f"  {name:<42} recovered in {record['recovered_in_s']:>5} s "
                  f"(ready after {recovery_s:.1f} s), {record['bills_after']} bills acknowledged")

    def restart(self, name: str) -> None:
        """Start it again once its port is free (as a process supervisor's restart would)."""
        import socket

        proc = self.procs[name]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", proc.port)) != 0:
                    break
            time.sleep(0.2)
        proc.start()

    def kill_broker(self) -> None:
        kafka = local_services.Kafka(self.local)
        pid = kafka.pid()
        assert pid is not None, "the local broker is not running"
        os.kill(pid, signal.SIGKILL)
        local_services.wait_for_exit(pid, 30)
        time.sleep(12)  # longer than the relay's flush timeout: the settlement service must say it is not ready

    def start_broker(self) -> None:
        local_services.Kafka(self.local).start()

    # -- the cluster's faults (--brokers 3) ----------------------------------------------------------

    def _settled_meanwhile(self, seconds: float) -> dict:
        """Bills acknowledged over the next `seconds` (the fault's own outage)."""
        before = self.load.acknowledged()
        time.sleep(seconds)
        return {"bills_during_fault": self.load.acknowledged() - before, "fault_lasted_s": seconds}

    def kill_leader(self) -> dict:
        victim = self.cluster.leader_of("settlement.events")
        self.cluster.kill(victim)
        return {"killed": victim.name, **self._settled_meanwhile(15)}

    def kill_two_brokers(self) -> dict:
        survivor = self.cluster.leader_of("settlement.events")
        self.cluster.kill(*[n for n in self.cluster.nodes if n is not survivor])
        return self._settled_meanwhile(20)

    def restart_brokers(self) -> dict:
        t0 = time.monotonic()
        self.cluster.restart_down()
        return {"brokers_back_in_s": round(time.monotonic() - t0, 1),
                "in_sync_after_s": round(self.cluster.wait_in_sync("settlement.events"), 1)}

    def wipe_broker(self) -> dict:
        victim = next(n for n in self.cluster.nodes if n is not self.cluster.leader_of("settlement.events"))
        t0 = time.monotonic()
        self.cluster.wipe(victim)
        return {"wiped": victim.name, "rejoined_in_s": round(time.monotonic() - t0, 1),
                "caught_up_after_s": round(self.cluster.wait_in_sync("settlement.events"), 1)}

    def flush_redis(self) -> None:
        redis.Redis.from_url(self.redis_url).flushall()

    def restart_postgres(self) -> None:
        local_services.Postgres(self.local).restart()

    def poison_bill(self) -> None:
        """A line of 9,999,999,999.99 yuan x 1,000,000: refused at the edge, nothing stored."""
        person = self.persons[0]
        hospital = next(h for h in self.hospitals if h["pool"] != person["pool"])
        http = httpx.Client(timeout=10)
        status, body = self.load._call(http, hospital, person, 9_999_999, "2201", {"mdtrtinfo": {
            "psn_no": person["psn_no"], "med_type": "11", "begntime": datetime.now(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S")}})
        if body.get("infcode") != "0":
            self.mismatches.append(f"poison bill: the visit could not be opened ({body.get('err_code')})")
            return
        mdtrt = _visit_id(body)
        status, body = self.load._call(http, hospital, person, 9_999_998, "2204", {"feedetail": [
            {"feedetl_sn": "1", "mdtrt_id": mdtrt, "med_list_codg": "XJ01CAA001A001010101001", "cnt": "1000000",
             "pric": "9999999999.99"}]})
        if (status, body.get("infcode"), body.get("err_code")) != (200, "-1", "amount_too_large"):
            self.mismatches.append(f"poison bill answered {status} {body.get('err_code')}, not amount_too_large")

    def poison_event(self) -> None:
        """An event no hospital could cause (amounts out of bounds), straight onto the topic."""
        from hub.messaging import EventProducer
        from tests.fixtures.avro.samples import SAMPLES

        now = datetime.now(timezone.utc)
        self.poison_id = uuid.uuid4()
        event = dict(SAMPLES["cn.hub.settlement.SettlementCompleted"], event_id=self.poison_id,
                     settlement_id=f"S-POISON-{self.run_id}", home_pool=self.pool_codes[0],
                     treatment_pool=self.pool_codes[1], business_date=now.astimezone(SHANGHAI).date(),
                     settled_at=now, event_time=now, hifp_pay_fen=5 * 10**17, fund_pay_sumamt_fen=5 * 10**17)
        with EventProducer(self.kafka, self.codec, client_id="fault-suite") as producer:
            producer.publish("settlement.events", event["home_pool"], "SettlementCompleted", event)
        self._clearing_sql_until("select count(*) from quarantined_events where resolved_at is null", 1,
                                 "the poison event to be quarantined")

    def scale(self, kind: str, n: int, env: dict[str, str] | None = None) -> None:
        """Run exactly `n` replicas of `kind` (settlement or clearing), starting or stopping extras."""
        names = sorted(k for k in self.procs if k.split("-")[0] == kind)
        while len(names) < n:
            index = len(names) + 1
            name = f"{kind}-{index}"
            port = self.opts.base_port + 10 * index + (1 if kind == "settlement" else 2)
            args = ["settlement", "serve", "--workers", "2"] if kind == "settlement" else ["clearing", "serve"]
            self.procs[name] = Proc(name, args, port, env or self.env, self.logs)
            self.procs[name].start()
            self.procs[name].wait_ready()
            if kind == "settlement":
                self.load.targets.append(self.procs[name].url)
            names.append(name)
        while len(names) > n:
            name = names.pop()
            proc = self.procs.pop(name)
            if kind == "settlement" and proc.url in self.load.targets:
                self.load.targets.remove(proc.url)
            proc.stop()

    # -- the run -----------------------------------------------------------------------------

    def run(self) -> dict:
        self.procs: dict[str, Proc] = {}
        try:
            return self._run()
        finally:
            if hasattr(self, "load"):
                self.load.stop.set()
            for proc in self.procs.values():
                proc.stop()
            if hasattr(self, "group"):  # a failed run's group would show as STOPPED forever
                sim.delete_group(self.kafka, self.group)
            if getattr(self, "cluster", None) is not None:
                self.cluster.stop()

    def _run(self) -> dict:
        started = time.monotonic()
        self.setup()
        self.load = Load(self.opts, self.rnd, self.ref, self.hospitals, self.persons, self.pool_codes,
                         [self.procs["settlement"].url])
        self.step = max(50, self.opts.bills // 14)
        self.watch = HealthWatch(self.procs)
        self.watch.thread.start()
        self.load.start()
        self.wait_progress(self.step)
        self.echo(f"settling under load ({self.opts.concurrency} hospitals at once); injecting faults")
        p = self.procs
        self.fault("kill -9 settlement (2 HTTP workers)", p["settlement"].kill9, lambda: self.restart("settlement"))
        self.fault("kill -9 clearing", p["clearing"].kill9, lambda: self.restart("clearing"))
        self.fault("kill -9 registration", p["registration"].kill9, lambda: self.restart("registration"))
        if self.cluster is None:
            self.fault("kill -9 the Kafka broker", self.kill_broker, self.start_broker, expect_not_ready="settlement")
        else:
            self.fault("kill -9 the leader of settlement.events/0", self.kill_leader, self.restart_brokers,
                       expect_ready="settlement")
            self.fault("kill -9 two of the three brokers", self.kill_two_brokers, self.restart_brokers,
                       expect_not_ready="settlement")
            self.fault("a broker's data wiped; reformatted, rejoined", self.wipe_broker)
        self.fault("Redis flushed", self.flush_redis)
        self.fault("PostgreSQL restarted (pg_ctl restart -m fast)", self.restart_postgres)
        self.fault("poison bill (a line over every limit)", self.poison_bill)
        self.fault("poison event (amounts out of bounds)", self.poison_event)
        self.fault("second settlement replica, same persons", lambda: self.scale("settlement", 2))
        self.fault("clearing group scaled 1 -> 3", lambda: self.scale("clearing", 3))
        self.fault("clearing group scaled 3 -> 1", lambda: self.scale("clearing", 1))
        self.fault("second settlement replica stopped", lambda: self.scale("settlement", 1))
        while self.load.acknowledged() < self.opts.bills:
            self.wait_progress(min(self.step, self.opts.bills - self.load.acknowledged()))
        self.load.finish()
        self.echo(f"load stopped: {self.load.acknowledged()} bills acknowledged; waiting for clearing")
        self._wait_cleared()
        self._close_with_three_replicas()
        self.watch.stop.set()
        summary = self._check()
        if self.cluster is not None:
            messages, distinct = self.cluster.deliveries("settlement.events")
            summary["settlement_events"] = {"messages": messages, "distinct": distinct,
                                            "published_again": messages - distinct}
        summary["elapsed_s"] = round(time.monotonic() - started, 1)
        for proc in self.procs.values():
            proc.stop()
        (self.run_dir / "faults.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False), encoding="utf-8")
        return summary

    def _engine(self, service: str) -> sa.Engine:
        return sa.create_engine(sa.make_url(self.postgres).set(database=self.databases[service]))

    def _clearing_sql_until(self, sql: str, want: int, what: str, limit_s: float = 300) -> None:
        engine = self._engine("clearing")
        deadline = time.monotonic() + limit_s
        got = None
        try:
            while time.monotonic() < deadline:
                with engine.connect() as conn:
                    got = conn.execute(sa.text(sql)).scalar_one()
                if got >= want:
                    return
                time.sleep(0.3)
        finally:
            engine.dispose()
        raise RuntimeError(f"timed out waiting for {what} ({got} of {want})")

    def _wait_cleared(self) -> None:
        ledger = self.load.ledger
        want = len(ledger.settled) + len(ledger.reversed)
        self._clearing_sql_until("select count(*) from applied_events", want, "clearing to apply every event")

    def _close_with_three_replicas(self) -> None:
        """The day's cut-off passes while three clearing replicas run: exactly one closes it.
        (The cut-off is brought to now by a negative grace: the day's end minus the time left.)"""
        today = datetime.now(SHANGHAI).date()
        # Closing is blocked while the poison event is quarantined: the operator resolves it.
        blocked = subprocess.run([sys.executable, "-m", "hub.cli", "clearing", "close", "--date", today.isoformat()],
                                 env=self.env, capture_output=True, text=True, timeout=300)
        if blocked.returncode == 0 or "quarantined" not in blocked.stderr:
            self.mismatches.append(f"closing with a quarantined event was not refused: {blocked.stderr[-300:]}")
        listed = subprocess.run([sys.executable, "-m", "hub.cli", "clearing", "quarantine", "list", "--json"],
                                env=self.env, capture_output=True, text=True, timeout=120)
        sources = [q["source"] for q in json.loads(listed.stdout)]
        if len(sources) != 1:
            self.mismatches.append(f"quarantine holds {len(sources)} events, not the one poison event")
        for source in sources:
            subprocess.run([sys.executable, "-m", "hub.cli", "clearing", "quarantine", "resolve", source, "--discard",
                            "--note", "fault suite: injected poison event", "--operator", "fault-suite"],
                           env=self.env, check=True, capture_output=True, timeout=120)
        tomorrow = datetime.combine(today + timedelta(days=1), datetime.min.time(), tzinfo=SHANGHAI)
        grace = -int((tomorrow - datetime.now(timezone.utc)).total_seconds()) - 5
        env = {**self.env, "HUB_CLEARING_GRACE_S": str(grace)}
        for name in [k for k in self.procs if k.startswith("clearing")]:
            self.procs.pop(name).stop()
        for index in range(1, 4):
            name = f"clearing-cutoff-{index}"
            self.procs[name] = Proc(name, ["clearing", "serve"], self.opts.base_port + 40 + index, env, self.logs)
            self.procs[name].start()
        self._clearing_sql_until(f"select count(*) from days where clearing_date = '{today}' and status = 'CLOSED'",
                                 1, "the three replicas to close the day at its cut-off", limit_s=180)
        time.sleep(6)  # every replica has looked at least once more
        self.closed_day = today

    # -- the checks ---------------------------------------------------------------------------

    def _check(self) -> dict:
        ledger = self.load.ledger
        day = self.closed_day
        with self._engine("clearing").connect() as conn:
            applied = conn.execute(sa.text("select kind, settlement_id, count(*) from applied_events"
                                           " group by kind, settlement_id")).all()
            statements = conn.execute(sa.text("select pool_code, net_position_fen, cycle_id from statements"
                                              " where clearing_date = :d"), {"d": day}).all()
            closes = conn.execute(sa.text("select count(*) from days where status = 'CLOSED'")).scalar_one()
        settled_in_clearing = Counter(s for kind, s, n in applied if kind == "SETTLED" for _ in range(n))
        reversed_in_clearing = Counter(s for kind, s, n in applied if kind == "REVERSED" for _ in range(n))
        for setl_id in ledger.settled:
            if settled_in_clearing[setl_id] != 1:
                self.mismatches.append(f"{setl_id}: acknowledged, in clearing {settled_in_clearing[setl_id]} times")
        ours = tuple(h["code"] for h in self.hospitals)
        for setl_id in set(settled_in_clearing) - set(ledger.settled):
            if setl_id.startswith(tuple("S" + code for code in ours)):
                self.mismatches.append(f"{setl_id}: in clearing, never acknowledged to a hospital")
            else:  # the run shares settlement.events with whatever else uses the broker
                self.mismatches.append(f"{setl_id}: from outside this run — something else settled on this broker "
                                       "during the run; run the suite alone")
        if set(reversed_in_clearing) != ledger.reversed or any(n != 1 for n in reversed_in_clearing.values()):
            self.mismatches.append("reversals in clearing differ from the reversals acknowledged")
        nets: dict[str, int] = defaultdict(int)
        for setl_id, (home, treat, fund) in ledger.settled.items():
            if setl_id not in ledger.reversed:
                nets[treat] += fund
                nets[home] -= fund
        file_nets = {pool: net for pool, net, _ in statements}
        if sum(file_nets.values()) != 0:
            self.mismatches.append(f"net positions sum to {sum(file_nets.values())} fen, not 0")
        if {p: v for p, v in nets.items() if v} != {p: v for p, v in file_nets.items() if v}:
            self.mismatches.append("net positions differ from what hospitals were told")
        if closes != 1 or len({cycle for _, _, cycle in statements}) != 1:
            self.mismatches.append(f"{closes} closed days, cycles {sorted({c for _, _, c in statements})}")
        closing_lines = sum(path.read_text(errors="replace").count("closed clearing day")
                            for path in self.logs.glob("clearing-cutoff-*.log"))
        if closing_lines != 1:
            self.mismatches.append(f"{closing_lines} replicas logged closing the day, not exactly one")
        files = sorted((self.clearing_out / day.isoformat()).glob("clearing_*.json"))
        if len(files) != len(statements):
            self.mismatches.append(f"{len(files)} clearing files for {len(statements)} statements")
        # Accumulators: each person-year equals a replay of its standing settlements.
        with self._engine("settlement").connect() as conn:
            from hub.settlement.domain.model import ACCUMULATOR_FIELDS
            stored = {(r[0], r[1]): tuple(r[2:]) for r in conn.execute(sa.text(
                f"select person_ref, policy_year, {', '.join(ACCUMULATOR_FIELDS)} from accumulators"))}
            replay: dict[tuple, list[int]] = defaultdict(lambda: [0] * len(ACCUMULATOR_FIELDS))
            for ref, year, delta in conn.execute(sa.text(
                    "select person_ref, policy_year, accumulators_delta from settlements where status = 'SETTLED'")):
                for i, f in enumerate(ACCUMULATOR_FIELDS):
                    replay[(ref, year)][i] += int(delta.get(f, 0))
        for key in set(stored) | set(replay):
            if tuple(replay.get(key, [0] * len(ACCUMULATOR_FIELDS))) != stored.get(key, tuple([0] * len(ACCUMULATOR_FIELDS))):
                self.mismatches.append(f"accumulators of {key[0][:8]}… {key[1]} differ from a replay of its settlements")
        if ledger.refused.get("internal_error"):
            self.mismatches.append(f"{ledger.refused['internal_error']} requests failed with internal_error")
        # No loop is left down; every service ready.
        for name, proc in self.procs.items():
            if proc.popen is None or proc.popen.poll() is not None:
                continue
            if proc.ready() != 200:
                self.mismatches.append(f"{name} is not ready at the end")
            metrics = httpx.get(proc.url + "/metrics", timeout=5).text
            down = [line for line in metrics.splitlines() if line.startswith("hub_loop_up{") and line.endswith(" 0.0")]
            if down:
                self.mismatches.append(f"{name}: loops down at the end: {down}")
        return {"run_id": self.run_id, "faults_injected": len(self.faults), "faults": self.faults,
                "bills_acknowledged": len(ledger.settled), "reversals": len(ledger.reversed),
                "refused": dict(ledger.refused), "requests_resent": ledger.resent,
                "mismatches": len(self.mismatches), "mismatch_details": self.mismatches[:50],
                "run_dir": str(self.run_dir)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m tests.faults.suite", description=__doc__.split("\n\n")[0])
    parser.add_argument("--bills", type=int, default=30_000, help="bills to settle under faults (at least)")
    parser.add_argument("--concurrency", type=int, default=8, help="hospitals' requests in flight at once")
    parser.add_argument("--rounds", type=int, default=1, help="runs in a row (each with every fault)")
    parser.add_argument("--base-port", type=int, default=8600)
    parser.add_argument("--brokers", type=int, choices=(1, 3), default=1,
                        help="3: a cluster of three brokers of the suite's own, with the cluster faults "
                             "(the leader killed, two brokers killed, a broker's data wiped)")
    args = parser.parse_args(argv)
    failed = 0
    for n in range(args.rounds):
        print(f"round {n + 1} of {args.rounds}")
        summary = Suite(Options(bills=args.bills, concurrency=args.concurrency, base_port=args.base_port,
                                brokers=args.brokers)).run()
        print(f"faults injected {summary['faults_injected']}, bills {summary['bills_acknowledged']}, "
              f"reversals {summary['reversals']}, re-sent requests {summary['requests_resent']}, "
              f"mismatches {summary['mismatches']}  ({summary['elapsed_s']} s; {summary['run_dir']})")
        if "settlement_events" in summary:
            print("settlement.events: {messages} messages, {distinct} distinct events, {published_again} published "
                  "again".format(**summary["settlement_events"]))
        for line in summary["mismatch_details"]:
            print("  MISMATCH", line)
        failed += summary["mismatches"] > 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
