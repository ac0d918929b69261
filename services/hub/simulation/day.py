"""The hub's main job: a simulated day of out-of-region settlements, then clearing and its files.

Everything goes through the real services over their real interfaces: bureaus import
enrolments and file registrations over the registration API; hospitals in other regions open
visits, upload fees and settle over the national-convention API (with some retries and
reversals); the clearing service consumes the settlement events; the day is closed and every
bureau's clearing file written. The run ends with a summary checked against the files.

Each run gets its own databases, consumer group, hospitals and insured persons, so runs never
see each other's data; the Kafka topics and the Redis read model are shared, keyed so that
nothing collides.
"""

from __future__ import annotations

import json
import math
import os
import random
import secrets
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, replace
from datetime import date, datetime
from pathlib import Path
from typing import Callable

import httpx
import sqlalchemy as sa

from hub.business_day import SHANGHAI
from hub.simulation.bills import ANOMALY_KINDS, DAY_MANY_BILLS, Ledger, anomaly_plans, settle_bills
from hub.simulation.claims import manual_claims
from hub.simulation.interface import CONVENTION_PATH
from hub.simulation.parties import choose_pools, enrol, make_parties, prepare_reference, wait_registered

REPO_ROOT = Path(__file__).resolve().parents[3]


@dataclass
class DayOptions:
    settlements: int = 2000
    pools: int = 7
    hospitals_per_pool: int = 3
    concurrency: int = 8
    reversal_share: float = 0.02
    retry_share: float = 0.03
    seed: int = 20261124
    out_dir: Path = REPO_ROOT / "out"
    existing_servers: bool = False
    ports: tuple[int, int, int, int] = (8510, 8520, 8530, 8521)  # the last: the settlement a day behind
    portal_port: int = 8540  # the bureau portal, started for the sandbox (`hub day --keep`)


class Services:
    """The services as child processes, each on its own port, logging into the run's `logs`."""

    def __init__(self, run_dir: Path, env: dict[str, str]):
        self.run_dir, self.env = run_dir, env
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, *services: tuple[str, list[str], str, dict[str, str]]) -> None:
        """(name, `hub` arguments, health URL, extra environment) each; returns once all answer."""
        logs = self.run_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        for name, args, _, extra in services:
            out = open(logs / f"{name}.log", "ab")
            self.procs[name] = subprocess.Popen([sys.executable, "-m", "hub.cli", *args], env={**self.env, **extra},
                                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        for _, _, url, _ in services:
            self._wait(url)

    def _wait(self, url: str, limit_s: float = 180) -> None:
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            for p in self.procs.values():
                if p.poll() is not None:
                    raise RuntimeError(f"a service exited during start-up; see {self.run_dir / 'logs'}")
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"{url} did not become ready within {limit_s:.0f} s; see {self.run_dir / 'logs'}")

    def stop(self, *names: str) -> None:
        """The named services (all without names): SIGTERM, then SIGKILL after 30 s."""
        procs = [self.procs.pop(n) for n in (names or list(self.procs))]
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()


def sandbox(urls: dict[str, str], hospitals: list[dict], bureaus: list[dict], persons: list[dict],
            per_pool: int = 2) -> dict:
    """What a HIS vendor needs to point a real HIS at the day's hub (`hub day --keep`): the
    addresses, each hospital's code, region, level and paas token, and a few enrolled persons
    per region filed to another region (psn_no, resident id, where they are filed). Shown on the
    terminal only: none of it is written to a file or a log."""
    chosen: dict[str, list[dict]] = {}
    for p in persons:
        if p.get("target") and len(chosen.setdefault(p["pool"], [])) < per_pool:
            chosen[p["pool"]].append({k: p[k] for k in ("psn_no", "certno", "pool", "filing", "target")})
    return {**urls, "convention_path": CONVENTION_PATH,
            "hospitals": [{k: h[k] for k in ("code", "pool", "level", "token")} for h in hospitals],
            "bureaus": [{k: b[k] for k in ("pool", "token")} for b in bureaus],
            "persons": [p for rows in chosen.values() for p in rows]}


def run_day(opts: DayOptions, echo: Callable[[str], None] = print, progress=None,
            hold: Callable[[dict, dict], None] | None = None) -> dict:
    """The day; `hold`, when given, is called with the summary and the sandbox (see `sandbox`)
    before the services stop, and they stop when it returns (`hub day --keep`)."""
    return SimulatedDay(opts, echo, progress).run(hold)


class SimulatedDay:
    """The day, one step per route: the servers and reference data, the run's parties and databases,
    the services, enrolment, yesterday's bills, today's bills and manual claims, the close, and the
    summary checked against the files."""

    def __init__(self, opts: DayOptions, echo: Callable[[str], None] = print, progress=None):
        self.opts, self.echo, self.progress = opts, echo, progress
        self.started = time.monotonic()
        self.rnd = random.Random(opts.seed)
        self.run_id = datetime.now(SHANGHAI).strftime("%Y%m%d%H%M%S") + secrets.token_hex(2)
        self.run_dir = opts.out_dir / f"day-{self.run_id}"
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.urls = dict(zip(("registration", "settlement", "clearing", "yesterday"),
                             (f"http://127.0.0.1:{p}" for p in opts.ports)))

    def run(self, hold: Callable[[dict, dict], None] | None = None) -> dict:
        self.servers()
        self.reference()
        self.parties()
        self.databases()
        services = self.services = Services(self.run_dir, self.environment())
        try:
            self.start_services()
            self.enrol()
            history = self.yesterday()
            ledger, claims = self.today()
            summary = self.close(ledger, claims, history)
            if hold is not None:
                self._write(summary)
                hold(summary, self.sandbox())
        finally:
            services.stop()
            delete_group(self.kafka, self.group)  # the run's consumer group would otherwise show as STOPPED forever
        self._write(summary)
        return summary

    def servers(self) -> None:
        """The local servers (started unless the options say they run already), the topics."""
        from hub.development import local_services
        from hub.messaging import ensure_topics

        local = local_services.LocalSettings()
        if not self.opts.existing_servers:
            local_services.up(local, report=lambda line: self.echo("  " + line))
        self.kafka = os.environ.get("HUB_KAFKA_BOOTSTRAP", local.kafka_bootstrap)
        self.postgres = os.environ.get("HUB_POSTGRES_URL", local.postgres_url)
        self.redis_url = os.environ.get("HUB_REDIS_URL", local.redis_url)
        ensure_topics(self.kafka)

    def reference(self) -> None:
        """The run's pools, their policies and catalogues, published on the reference topic."""
        from hub.messaging import AvroCodec
        from hub.registration.entrypoints.reference_load import load_reference

        self.pools = choose_pools(self.opts.pools)
        self.pool_codes = [c for c, _ in self.pools]
        self.ref = prepare_reference(self.run_dir, self.pools)
        self.echo(f"reference data for {len(self.pools)} pools in {self.ref}")
        load_reference(self.ref, self.kafka, AvroCodec())

    def parties(self) -> None:
        """Hospitals, bureaus and agencies of this run, with fresh random tokens, in the run's files."""
        self.hospitals, self.bureaus, self.agencies = make_parties(self.run_dir, self.pools, self.run_id,
                                                                   self.opts.hospitals_per_pool)

    def databases(self) -> None:
        """Fresh databases for this run; the clearing group starts at the topic's current end."""
        self.database = {k: f"hubday_{self.run_id}_{k}" for k in ("registration", "settlement", "clearing")}
        admin = sa.create_engine(self.postgres, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            for name in self.database.values():
                conn.execute(sa.text(f'create database "{name}"'))
        admin.dispose()
        self.group = f"interregion-clearing-{self.run_id}"
        commit_end_offsets(self.kafka, self.group, "settlement.events")

    def environment(self) -> dict[str, str]:
        """A rehearsal on one machine: the development mode (its operator token and signing key are the
        samples; the person and voucher keys and every hospital's, bureau's and agency's token are fresh).
        Hospitals call through the gateway (x-tif-* headers); the hospitals file references each paas
        token, which the service reads from its environment."""
        run_id, d = self.run_id, self.database
        return {**os.environ, "HUB_ENV": "development", "HUB_KAFKA_BOOTSTRAP": self.kafka,
                "HUB_POSTGRES_URL": self.postgres, "HUB_REDIS_URL": self.redis_url,
                "HUB_PERSON_KEY": f"day-{run_id}-{secrets.token_hex(8)}",
                "HUB_VOUCHER_KEY": f"day-voucher-{run_id}-{secrets.token_hex(8)}",
                "HUB_REGISTRATION_DATABASE": d["registration"], "HUB_SETTLEMENT_DATABASE": d["settlement"],
                "HUB_CLEARING_DATABASE": d["clearing"], "HUB_CLEARING_GROUP": self.group,
                "HUB_CLEARING_OUT": str(self.run_dir / "clearing"),
                "HUB_HOSPITALS_FILE": str(self.run_dir / "hospitals.yaml"),
                "HUB_BUREAUS_FILE": str(self.run_dir / "bureaus.yaml"),
                "HUB_AGENCIES_FILE": str(self.run_dir / "agencies.yaml"),
                "HUB_ANOMALY_MANY_BILLS": str(DAY_MANY_BILLS), "HUB_REFERENCE_DIR": str(self.ref),
                "HUB_LOG_LEVEL": "WARNING", "HUB_SETTLEMENT_DB_POOL": str(max(8, self.opts.concurrency + 2)),
                **{f"HUB_PAAS_TOKEN_{h['code']}": h["token"] for h in self.hospitals}}

    def start_services(self) -> None:
        self.echo("starting the registration and settle-at-treatment services (and one a day behind, for "
                  "yesterday's bills)")
        reg, settle, _, earlier = self.opts.ports
        u = self.urls
        self.services.start(
            ("registration", ["registration", "serve", "--port", str(reg)], f"{u['registration']}/health/ready", {}),
            ("settlement", ["settlement", "serve", "--port", str(settle)], f"{u['settlement']}/health/ready", {}),
            ("settlement-yesterday", ["settlement", "serve", "--port", str(earlier)], f"{u['yesterday']}/health/ready",
             {"HUB_SETTLEMENT_CLOCK_SHIFT_DAYS": "-1"}))

    def enrol(self) -> None:
        """Each bureau enrols its insured and files registrations; the settle service then knows them."""
        self.persons = enrol(self.opts, self.rnd, self.run_id, self.pools, self.bureaus, self.urls["registration"],
                             self.echo)
        wait_registered(self.urls["settlement"], self.hospitals, self.persons, self.echo)
        self.before, self.scripted = anomaly_plans(self.rnd, self.ref, self.hospitals, self.persons, self.pool_codes)

    def yesterday(self) -> Ledger:
        """Yesterday's bills, for the hospital-jump flag's baseline: settled by a settlement service whose
        business clock runs a day behind, all published before clearing starts reading (a clearing that
        caught up between them could close yesterday and place the rest late)."""
        history = settle_bills(replace(self.opts, settlements=0), self.rnd, self.ref, self.hospitals, self.persons,
                               self.pool_codes, self.urls["yesterday"], lambda _: None, None, self.before)
        self.services.stop("settlement-yesterday")
        _wait_published(self.postgres, self.database["settlement"])
        self.echo(f"  {len(history.settled)} bills settled yesterday (the baseline of a hospital's average bill)"
                  + (f"; refused: {dict(history.refused)}" if history.refused else ""))
        return history

    def today(self) -> tuple[Ledger, dict]:
        """Clearing starts; today's bills (random and scripted) and the manual claims."""
        self.echo("starting the clearing service")
        clear = self.urls["clearing"]
        self.services.start(("clearing", ["clearing", "serve", "--port", str(self.opts.ports[2])],
                             f"{clear}/health/live", {}))
        ledger = settle_bills(self.opts, self.rnd, self.ref, self.hospitals, self.persons, self.pool_codes,
                              self.urls["settlement"], self.echo, self.progress, self.scripted,
                              reserved=frozenset(plan[0]["psn_no"] for plan in self.before))
        claims = manual_claims(self.rnd, self.ref, self.persons, self.bureaus, self.agencies, self.hospitals,
                               self.pool_codes, self.urls["settlement"], self.echo)
        return ledger, claims

    def close(self, ledger: Ledger, claims: dict, history: Ledger) -> dict:
        """Once clearing has every event, the day is closed as an operator would; the summary."""
        today = datetime.now(SHANGHAI).date()
        _wait_cleared(self.postgres, self.database, ledger, self.echo, claims=claims["settled"] + len(history.settled))
        close = subprocess.run([sys.executable, "-m", "hub.cli", "clearing", "close", "--date", today.isoformat()],
                               env=self.services.env, capture_output=True, text=True, timeout=600)
        if close.returncode != 0:
            raise RuntimeError(f"closing the day failed:\n{close.stderr[-3000:]}")
        summary = _summary(self.opts, ledger, self.run_dir / "clearing" / today.isoformat(), today,
                           time.monotonic() - self.started, self.run_dir)
        summary["fund_risk"] = _fund_risk(self.urls["clearing"], self.pool_codes)
        summary["manual_claims"] = claims
        summary["settled_yesterday"] = len(history.settled)
        return summary

    def sandbox(self) -> dict:
        """The running services for a person to try (`hub day --keep`), the bureau portal among them."""
        u = self.urls
        box = sandbox({"settlement_url": u["settlement"], "registration_url": u["registration"],
                       "clearing_url": u["clearing"]}, self.hospitals, self.bureaus, self.persons)
        return box | _start_portal(self.services, self.opts.portal_port, self.run_id, self.bureaus, u["clearing"],
                                   u["settlement"], self.echo)

    def _write(self, summary: dict) -> None:
        (self.run_dir / "summary.json").write_text(json.dumps(summary, ensure_ascii=False, indent=2), encoding="utf-8")


def _start_portal(services: Services, port: int, run_id: str, bureaus: list[dict], clear_url: str, settle_url: str,
                  echo: Callable[[str], None]) -> dict:
    """The bureau portal for the sandbox, on the day's services with the day's bureau tokens, and
    a clerk and a supervisor of the first bureau with fresh passwords (shown on the terminal only)."""
    url = f"http://127.0.0.1:{port}"
    extra = {"HUB_PORTAL_DATABASE": f"hubday_{run_id}_portal", "HUB_PORTAL_CLEARING_URL": clear_url,
             "HUB_PORTAL_SETTLEMENT_URL": settle_url,
             "HUB_PORTAL_BUREAU_TOKENS": ",".join(f"{b['pool']}={b['token']}" for b in bureaus)}
    pool = bureaus[0]["pool"]
    people = [{"username": f"clerk-{pool}", "role": "clerk", "pool": pool, "password": secrets.token_urlsafe(12)},
              {"username": f"supervisor-{pool}", "role": "supervisor", "pool": pool,
               "password": secrets.token_urlsafe(12)}]
    echo("starting the bureau portal")
    for person in people:
        added = subprocess.run([sys.executable, "-m", "hub.cli", "portal", "user", "add", person["username"],
                                "--role", person["role"], "--pool", pool, "--password-stdin"],
                               input=person["password"] + "\n", env={**services.env, **extra}, capture_output=True,
                               text=True, timeout=120)
        if added.returncode != 0:
            raise RuntimeError(f"adding the portal's {person['role']} failed:\n{added.stderr[-2000:]}")
    services.start(("portal", ["portal", "serve", "--port", str(port)], f"{url}/health/live", extra))
    return {"portal_url": url, "portal_people": people}


def delete_group(bootstrap: str, group: str) -> None:
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        # A member that has just left may still be counted until its session times out (10 s).
        for _ in range(30):
            # kafka-python 3 answers {group: "OK"} or {group: <the error>}.
            if all(result in ("OK", None) for result in admin.delete_groups([group]).values()):
                return
            time.sleep(0.5)
    finally:
        admin.close()


def commit_end_offsets(bootstrap: str, group: str, topic: str) -> None:
    from kafka import KafkaConsumer, TopicPartition
    from kafka.structs import OffsetAndMetadata

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        ends = consumer.end_offsets(tps)
        consumer.commit({tp: OffsetAndMetadata(off, "", -1) for tp, off in ends.items()})
    finally:
        consumer.close()


def _count_until(postgres: str, database: str, sql: str, done: Callable[[int], bool], limit_s: float,
                 every_s: float) -> tuple[bool, int]:
    """Poll a count in one of the run's databases until `done(count)`: (whether it was, the last
    count). A table not created yet counts 0."""
    engine = sa.create_engine(sa.make_url(postgres).set(database=database))
    deadline, got = time.monotonic() + limit_s, 0
    try:
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                try:
                    got = conn.execute(sa.text(sql)).scalar_one()
                except sa.exc.ProgrammingError:
                    got = 0
            if done(got):
                return True, got
            time.sleep(every_s)
    finally:
        engine.dispose()
    return False, got


def _wait_published(postgres: str, database: str, limit_s: float = 120) -> None:
    """Until the settlement service's outbox is empty: every event it committed is in Kafka."""
    if not _count_until(postgres, database, "select count(*) from outbox", lambda n: n == 0, limit_s, 0.2)[0]:
        raise RuntimeError(f"the settlement outbox did not empty within {limit_s:.0f} s")


def _wait_cleared(postgres, databases, ledger: Ledger, echo, limit_s: float = 600, claims: int = 0) -> None:
    """Until every settlement, reversal and manual claim is in the clearing tables (relay and
    consumer caught up)."""
    want = len(ledger.settled) + len(ledger.reversed) + claims
    done, got = _count_until(postgres, databases["clearing"], "select (select count(*) from applied_events)"
                             " + (select count(*) from manual_claims)", lambda n: n >= want, limit_s, 0.5)
    if not done:
        raise RuntimeError(f"clearing received {got} of {want} settlement events in {limit_s:.0f} s")
    echo(f"  clearing has all {want} settlement and manual-claim events")


def _fund_risk(clear_url: str, pool_codes: list[str]) -> dict[str, dict]:
    """The fund-risk watch of every budgeted pool after the close, as the clearing service answers it."""
    import httpx

    token = os.environ.get("HUB_OPERATOR_TOKEN", "dev-operator")
    out = {}
    for pool in pool_codes:
        answer = httpx.get(f"{clear_url}/v1/fund-risk/{pool}", headers={"Authorization": f"Bearer {token}"}, timeout=30)
        if answer.status_code == 200:
            found = answer.json()
            out[pool] = {"level": found["level"],
                         "funds": {f["fund_pay_type"]: f["ratio_pct"] for f in found["funds"] if f["spent_fen"]}}
    return out


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def _summary(opts, ledger: Ledger, files_dir: Path, day: date, elapsed_s: float, run_dir: Path) -> dict:
    """The day in figures, computed from what hospitals saw and checked against the clearing files."""
    nets: dict[str, int] = defaultdict(int)
    gross = 0
    for setl_id, (home, treat, fund) in ledger.settled.items():
        sign = 0 if setl_id in ledger.reversed else 1  # a reversal cancels its settlement within the day
        nets[treat] += sign * fund
        nets[home] -= sign * fund
        gross += sign * fund
    files_nets, moved_twice = {}, 0
    anomalies, claims_in_files = Counter({kind: 0 for kind in ANOMALY_KINDS}), 0
    for path in sorted(files_dir.glob("clearing_*.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        files_nets[doc["header"]["pool_code"]] = doc["net_position_fen"]
        anomalies.update(a["kind"] for a in doc.get("anomalies", []))
        claims_in_files += len(doc.get("manual_claims", []))
        moved_twice += sum(abs(f["net_fen"]) for f in doc["funds"])  # money moves fund by fund
    moved = moved_twice // 2
    agree = {p: v for p, v in nets.items() if v} == {p: v for p, v in files_nets.items() if v}
    return {
        "clearing_date": day.isoformat(),
        "settlements": len(ledger.settled), "reversals": len(ledger.reversed),
        "refused": dict(ledger.refused.most_common()), "retries_answered_identically": ledger.retries_same_answer,
        "settle_latency_ms": {"p50": round(_percentile(ledger.latencies_ms, 0.50), 1),
                              "p95": round(_percentile(ledger.latencies_ms, 0.95), 1),
                              "p99": round(_percentile(ledger.latencies_ms, 0.99), 1),
                              "mean": round(statistics.fmean(ledger.latencies_ms), 1) if ledger.latencies_ms else None},
        "bills_per_s": round(opts.settlements / ledger.elapsed_s, 1),
        "gross_fen": gross, "moved_after_netting_fen": moved,
        "netting_efficiency": round(1 - moved / gross, 4) if gross else None,
        "net_positions_sum_fen": sum(files_nets.values()),
        "anomaly_flags": dict(anomalies), "manual_claims_in_files": claims_in_files,
        "summary_agrees_with_clearing_files": agree,
        "files": str(files_dir), "run_dir": str(run_dir), "elapsed_s": round(elapsed_s, 1),
    }
