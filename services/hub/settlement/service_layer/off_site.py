"""The other calls HIS code makes around an off-site patient, answered from what the hub holds
(public HIS code reads each node named here: hsa-his InsureUnifiedPayInptBOImpl.UP_2001,
InsureUnifiedBaseBOImpl's 5301-5304, InsureUnifiedPayReversalTradeBOImpl's 5269/5270):

- 2001 人员待遇享受检查 (`trtinfo`): for each fund, whether the person would be paid for this
  visit here and now — the engine's own answer to an empty bill of that visit type (enrolment,
  waiting period, filing, visit type), so it can never say yes where settlement would say no;
- 5301 人员慢特病备案查询 (`feedetail`): chronic-disease filings — the hub keeps none: empty;
- 5302 人员定点信息查询 (`psnfixmedin`): the person's off-site filings (备案), as the bureau filed them;
- 5303 在院信息查询 (`data`): the person's stays open at the asking hospital;
- 5304 转院信息查询 (`refmedin`): the person's referrals (转诊转院 filings);
- 5269 / 5270 异地门诊 / 住院结算单: an outpatient / inpatient settlement of the hospital's as its slip.

Pure: what to answer from the rows the handler read.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from typing import Any

from hub.reference.catalogue import Catalogue
from hub.reference.policy import Policy
from hub.settlement.adapters.repository import StoredSettlement, Visit
from hub.settlement.domain.engine import select_policy, settle
from hub.settlement.domain.model import Accumulators, Claim, FeeLine, Person
from hub.settlement.domain.refusals import Refusal
from hub.settlement.service_layer import convention
from hub.settlement.service_layer.envelope import Answer
from hub.settlement.service_layer.reasons import Why

QUERIES = frozenset({"2001", "5301", "5302", "5303", "5304", "5269", "5270"})
SLIPS = {"5269": "11", "5270": "21"}  # the slip's clearing type: outpatient, inpatient
_NOTHING = "NOT-IN-CATALOGUE"  # a zero line no catalogue holds: the empty bill the check prices


def benefits(person: Person, policies: list[Policy], catalogue: Catalogue | None, claim: Claim) -> list[dict[str, Any]]:
    """2001's `trtinfo`: a row per fund (basic, serious illness) with `trt_enjymnt_flag` 1 where
    the engine would pay from it for this visit, else 0 and why (`trt_chk_rslt`)."""
    policy = select_policy(policies, person, claim.service_date)
    empty = replace(claim, lines=(FeeLine(1, _NOTHING, convention.quantity("1"), 0, 0),))
    result = policy if isinstance(policy, Refusal) else settle(empty, person, policy, catalogue or Catalogue("", "", {}),
                                                               Accumulators(claim.service_date.year))
    refused = result if isinstance(result, Refusal) else None
    serious = None if isinstance(policy, Refusal) else policy.serious_illness
    serious_pays = (serious is not None and serious.at_counter and claim.visit_type.value in serious.applies_to
                    and (serious.off_site_at_counter or claim.treatment_pool == person.home_pool))
    rows = []
    for fund, pays, no in (("hifp", refused is None, refused),
                           ("serious", refused is None and serious_pays, refused or "not paid at the counter for this visit")):
        code, name = convention.FUND_PAY_TYPES[(fund, person.insurance_type)]
        rows.append({"psn_no": "", "trt_chk_type": "10" if fund == "hifp" else "20", "fund_pay_type": code,
                     "fund_pay_type_name": name, "trt_enjymnt_flag": "1" if pays else "0",
                     "begndate": claim.admission_date.isoformat(), "enddate": claim.discharge_date.isoformat(),
                     "trt_chk_rslt": "可享受" if pays else (no.message if isinstance(no, Refusal) else str(no))})
    return rows


def filings(value: dict[str, Any], referrals_only: bool) -> list[dict[str, Any]]:
    """5302's `psnfixmedin` (every filing) or 5304's `refmedin` (referrals): as the bureau filed them."""
    insutype = convention.insutype_of(value)
    rows = []
    for f in value.get("filings") or []:
        if referrals_only and f["filing_type"] != "REFERRAL":
            continue
        rows.append({"psn_no": "", "insutype": insutype, "biz_appy_type": f["filing_type"], "trt_dcla_detl_sn": f["filing_id"],
                     "insuplc_admdvs": value.get("home_pool", ""), "mdtrtarea_admvs": f["target_pool"],
                     "begndate": _day(f.get("valid_from")), "enddate": _day(f.get("valid_to")),
                     "vali_flag": "0" if f.get("revoked") else "1", "fixmedins_code": "", "fixmedins_name": ""})
    return rows


def stays(open_stays: list[Visit]) -> list[dict[str, Any]]:
    """5303's `data`: the stays open at the asking hospital."""
    return [{"mdtrt_id": v.mdtrt_id, "psn_no": v.person_id_masked, "insutype": v.insutype, "med_type": v.med_type,
             "begntime": f"{v.begntime.isoformat()} 00:00:00", "endtime": f"{v.endtime.isoformat()} 00:00:00" if v.endtime else "",
             "dise_codg": v.diagnoses.split()[0] if v.diagnoses else ""} for v in open_stays]


def slip(infno: str, stored: StoredSettlement, hospital_code: str) -> dict[str, Any]:
    """5269/5270: the settlement as its slip prints it (its setlinfo and fund lines, as answered)."""
    if stored.hospital_code != hospital_code:
        raise Answer(Why.SETTLEMENT_OF_ANOTHER_HOSPITAL, "setl_id (mdtrtRegno): a hospital prints only its own slips")
    clr_type = (stored.output.get("setlinfo") or {}).get("clr_type", "")
    if clr_type != SLIPS[infno]:
        other = next(k for k, v in SLIPS.items() if v == clr_type) if clr_type in SLIPS.values() else "none"
        raise Answer(Why.INVALID_FIELD, f"setl_id (mdtrtRegno): an {'inpatient' if clr_type == '21' else 'outpatient'}"
                                        f" settlement's slip is {other}")
    return {**{k: stored.output[k] for k in ("setlinfo", "setldetail", "_sealed") if k in stored.output},
            "hub_status": stored.status,
            "title": "异地住院结算单" if infno == "5270" else "异地门诊结算单"}


def _day(value: Any) -> str:
    return value.isoformat() if isinstance(value, date) else (value or "")
