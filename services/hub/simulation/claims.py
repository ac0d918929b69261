"""The simulated day's manual claims (零星报销): a home bureau's and an agency's, over the settlement
service's API, one of each reason."""

from __future__ import annotations

import math
from collections import Counter
from datetime import datetime, timedelta

import httpx

from hub import money
from hub.business_day import SHANGHAI
from hub.simulation.interface import fen_to_yuan
from hub.simulation.parties import catalogue_codes


CLAIM_REASONS = ("NOT_FILED", "HOSPITAL_NOT_CONNECTED", "COUNTER_DOWN", "ROUTED_HOME")


def manual_claims(rnd, ref, persons, bureaus, agencies, hospitals, pool_codes, settle_url, echo) -> dict:
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
