"""The simulated day's bills: planned from the visit mix, costs and filings of DESIGN.md (and the
scripted ones that show each anomaly flag), then settled over the national interface as hospitals
in other regions do: 1101, a visit, its fees, the settlement, some retries and reversals."""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import httpx

from hub import money
from hub.business_day import SHANGHAI
from hub.simulation.interface import CONVENTION_PATH, gateway_headers, visit_id, weighted
from hub.simulation.parties import catalogue_codes, covered_visit_types, settles_unfiled, uncapped_items


# Average cost per inpatient stay by level (DESIGN.md section 4, one county, 2018 H1), yuan.
INPATIENT_MEAN_YUAN = {"1": 1984.65, "2": 5904.83, "3": 8201.19, "3P": 20325.67}
CHRONIC_MEAN_YUAN = 3152.17
GENERAL_MEAN_YUAN = 180.0  # not in DESIGN.md: an assumption of the simulation

# Visit mix: 2023 national figures, 118 M outpatient vs 11.25 M inpatient direct settlements.
VISIT_MIX = (("21", 0.087), ("11", 0.55), ("14", 0.35), ("13", 0.013))


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


def settle_bills(opts, rnd, ref, hospitals, persons, pool_codes, settle_url, echo, progress, scripted=(),
                 reserved: frozenset[str] = frozenset()) -> Ledger:
    """Every bill of the day over the national interface, on `concurrency` threads: random ones
    (the visit mix, costs and filings of DESIGN.md) and the `scripted` ones (`anomaly_plans`).
    Scripted and `reserved` persons have no random bills."""
    plans = plan_bills(opts, rnd, ref, hospitals, persons, pool_codes, scripted, reserved)
    hospital_side = Hospitals(settle_url)
    echo(f"settling {opts.settlements} bills from {len(hospitals)} hospitals in {len(pool_codes)} regions")
    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=opts.concurrency) as pool:
        iterator = pool.map(hospital_side.settle, plans)
        if progress is not None:
            iterator = progress(iterator, total=len(plans))
        for _ in iterator:
            pass
    hospital_side.ledger.elapsed_s = time.monotonic() - t0
    return hospital_side.ledger


def plan_bills(opts, rnd, ref, hospitals, persons, pool_codes, scripted=(), reserved=frozenset()) -> list[tuple]:
    """The day's bills, each (n, person, hospital, med_type, fee lines, retry?, reverse?, dates or None)."""
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
            med_type = weighted(rnd, [(t, w / sum(w for _, w in mix)) for t, w in mix])
            if med_type != "21" or person["psn_no"] not in stayed:
                break
        if med_type == "21":
            stayed.add(person["psn_no"])
        # Filed patients mostly travel to where they filed; the others anywhere else.
        treat = where.setdefault(person["psn_no"], person.get("target") if person.get("target") and rnd.random() < 0.8
                                 else rnd.choice([c for c in pool_codes if c != person["pool"]]))
        hospital = rnd.choice([h for h in hospitals if h["pool"] == treat])
        plans.append((n, person, hospital, med_type, fee_lines(rnd, catalogues[treat], hospital, med_type),
                      rnd.random() < opts.retry_share, rnd.random() < opts.reversal_share, None))
    return plans + [(len(plans) + i, *plan) for i, plan in enumerate(scripted)]


def fee_lines(rnd, catalogue: list[tuple[str, int]], hospital: dict, med_type: str) -> list[dict]:
    """A bill's fee lines: a lognormal total around the visit type's mean cost, spread over 2 to 12
    catalogue items."""
    mean = {"21": INPATIENT_MEAN_YUAN[hospital["level"]], "13": GENERAL_MEAN_YUAN * 3,
            "14": CHRONIC_MEAN_YUAN, "11": GENERAL_MEAN_YUAN}[med_type]
    total_fen = int(rnd.lognormvariate(math.log(mean * 100), 0.6))
    items = rnd.sample(catalogue, rnd.randint(2, 12))
    lines, left = [], total_fen
    for i, (code, price) in enumerate(items):
        share = left if i == len(items) - 1 else int(left * rnd.uniform(0.1, 0.6))
        left -= share
        qty = max(1, round(share / max(price, 1)))
        lines.append({"med_list_codg": code, "cnt": str(qty), "pric": f"{max(1, share // qty) / 100:.2f}"})
    return lines


class Hospitals:
    """The hospitals' side of the day: each bill as a HIS sends it (through the gateway's signed
    headers), one HTTP client per thread, what they saw kept in the ledger."""

    def __init__(self, settle_url: str):
        self.settle_url = settle_url
        self.ledger = Ledger()
        self.local = threading.local()

    def _http(self) -> httpx.Client:
        if not hasattr(self.local, "http"):
            self.local.http = httpx.Client(base_url=self.settle_url, timeout=60)
        return self.local.http

    def _call(self, n: int, person: dict, hospital: dict, infno: str, payload: dict):
        msgid = f"{hospital['code']}{datetime.now():%Y%m%d%H%M%S}{n:06d}{infno}"
        envelope = {"infno": infno, "msgid": msgid, "mdtrtarea_admvs": hospital["pool"],
                    "insuplc_admdvs": person["pool"], "fixmedins_code": hospital["code"], "opter": "sim",
                    "inf_time": datetime.now(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S"), "input": payload}
        t0 = time.perf_counter()
        r = self._http().post(CONVENTION_PATH, json=envelope, headers=gateway_headers(hospital["code"], hospital["token"]))
        return r.status_code, r.json(), (time.perf_counter() - t0) * 1000, envelope

    def _refused(self, status: int, body: dict) -> bool:
        if body.get("infcode") == "0":
            return False
        with self.ledger.lock:
            self.ledger.refused[body.get("err_code", str(status))] += 1
        return True

    def settle(self, plan: tuple) -> None:
        """One bill: 1101 (the patient shows the resident id card), the visit (2401 a stay, 2201 an
        outpatient visit, emergencies among them), its fees, the settlement; a retry of the same
        request where planned, and a reversal."""
        n, person, hospital, med_type, lines, retry, reverse, dates = plan  # dates: (begin, end) or None: today

        def call(infno, payload):
            return self._call(n, person, hospital, infno, payload)
        cert = {"mdtrt_cert_type": "02", "mdtrt_cert_no": person["certno"]}
        status, body, _, _ = call("1101", {"data": {**cert, "psn_cert_type": "01", "certno": person["certno"]}})
        if self._refused(status, body):
            return
        inpatient = med_type == "21"
        status, body, _, _ = call("2401" if inpatient else "2201", {"mdtrtinfo": {
            "psn_no": body["output"]["baseinfo"]["psn_no"], **cert, "med_type": med_type,
            "begntime": f"{dates[0]} 08:00:00" if dates else datetime.now(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S")}})
        if self._refused(status, body):
            return
        mdtrt = visit_id(body)
        feed = [dict(l, feedetl_sn=str(i + 1), mdtrt_id=mdtrt) for i, l in enumerate(lines)]
        status, body, _, _ = call("2301" if inpatient else "2204", {"feedetail": feed})
        if self._refused(status, body):
            return
        status, body, ms, envelope = call("2304" if inpatient else "2207", {"data": {
            "mdtrt_id": mdtrt, **({"endtime": f"{dates[1]} 10:00:00"} if dates else {})}})
        with self.ledger.lock:
            self.ledger.latencies_ms.append(ms)
        if self._refused(status, body):
            return
        info = body["output"]["setlinfo"]
        if retry:  # the hospital did not see the answer and sends the same request again
            again = self._http().post(CONVENTION_PATH, json=envelope,
                                      headers=gateway_headers(hospital["code"], hospital["token"])).json()
            with self.ledger.lock:
                self.ledger.retries_same_answer += again["output"] == body["output"]
        with self.ledger.lock:
            self.ledger.settled[info["setl_id"]] = (person["pool"], hospital["pool"],
                                                    money.yuan_to_fen(info["fund_pay_sumamt"]))
        if reverse:
            status, body, _, _ = call("2305" if inpatient else "2208", {"data": {"setl_id": info["setl_id"]}})
            if body.get("infcode") == "0":
                with self.ledger.lock:
                    self.ledger.reversed.add(info["setl_id"])


# ----------------------------------------------------------------------------- the scripted bills

ANOMALY_KINDS = ("OVERLAPPING_REGIONS", "READMISSION", "JUST_UNDER_THRESHOLD", "MANY_BILLS", "HOSPITAL_JUMP")
DAY_MANY_BILLS = 8  # the day's HUB_ANOMALY_MANY_BILLS: a scripted person reaches it, hardly anyone else


def anomaly_plans(rnd, ref, hospitals, persons, pool_codes) -> tuple[list[tuple], list[tuple]]:
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
