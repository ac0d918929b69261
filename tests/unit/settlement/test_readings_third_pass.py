"""Issue 25's readings, each case computed by hand from the quoted sentence (yuan beside it) and
priced under the policy the hub has in force — the newest version — so each failed before the
correcting version was published: 九江 outside the city follows the referral, not the filing;
冠县's general outpatient pays only at village and township clinics; an emergency admission counts
as filed; a visit type a policy does not cover is refused for its type."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hub.cli import app
from hub.reference.policy import InsuranceType
from hub.settlement.domain.engine import decide_filing, select_policy, settle
from hub.settlement.domain.model import Accumulators, Claim, FilingStatus, Person, Settlement
from hub.settlement.domain.model import FilingType as F
from hub.settlement.domain.model import VisitType as V
from hub.settlement.domain.money import yuan_to_fen
from hub.settlement.domain.refusals import Refusal, RefusalCode

from .builders import CATALOGUE, HOME, claim, person, sample_policies

REPO = Path(__file__).resolve().parents[3]
JIUJIANG, GUANXIAN = HOME["九江"], HOME["冠县"]


def priced(who: Person, bill: Claim) -> Settlement | Refusal:
    policy = select_policy(list(sample_policies()), who, bill.service_date)
    assert not isinstance(policy, Refusal), policy
    return settle(bill, who, policy, CATALOGUE, Accumulators(year=bill.service_date.year))


def yuan(fen: int) -> str:
    return f"{fen / 100:.2f}"


# 1. 九江 outside the city (003_ec4038d2dd5394a0.txt): "在市外住院的起付线为600元(办理转诊转院的)、800元
#    (未办理转诊转院的),报销比例为50%(办理转诊转院的)、40%(未办理转诊转院的)"; for employees "按转诊转院规定转诊
#    到统筹区外的三级医院住院的报销比例为75%,未按转诊转院规定自行到统筹区外的三级医院住院的报销比例为60%".
#    A 10,000-yuan 甲 stay at a 广州 tertiary hospital.
JIUJIANG_STAYS = [
    ("resident, referral: (10000 - 600) x 50%", person(JIUJIANG, F.REFERRAL), claim(("A", "10000.00")), "4700.00"),
    ("resident, filed temporary trip, not a referral: (10000 - 800) x 40%", person(JIUJIANG, F.TEMPORARY_TRIP),
     claim(("A", "10000.00")), "3680.00"),
    ("resident, emergency filing, like a referral (DESIGN.md 2.2): (10000 - 600) x 50%", person(JIUJIANG, F.EMERGENCY),
     claim(("A", "10000.00")), "4700.00"),
    ("resident, long-term filing: the in-city tertiary figures, (10000 - 600) x 60%",
     person(JIUJIANG, F.RETIREE_RESETTLED), claim(("A", "10000.00")), "5640.00"),
    ("employee, referral: (10000 - 600) x 75%", person(JIUJIANG, F.REFERRAL, insurance=InsuranceType.EMPLOYEE),
     claim(("A", "10000.00")), "7050.00"),
    ("employee, filed temporary trip: (10000 - 600) x 60%",
     person(JIUJIANG, F.TEMPORARY_TRIP, insurance=InsuranceType.EMPLOYEE), claim(("A", "10000.00")), "5640.00"),
]


@pytest.mark.parametrize("name,who,bill,fund", JIUJIANG_STAYS, ids=[c[0] for c in JIUJIANG_STAYS])
def test_九江_outside_the_city_the_ratio_follows_the_referral_not_the_filing(name, who, bill, fund):
    result = priced(who, bill)
    assert isinstance(result, Settlement), result
    assert (yuan(result.hifp_pay), result.hifp_pay + result.psn_part_amt) == (fund, yuan_to_fen("10000.00"))


# 2. 冠县 (000_0a252e442d42069e.txt): "普通门诊:在村级、乡镇级定点医疗机构报销比例50%,每人每年基金支付封顶120元".
GUANXIAN_VISITS = [
    ("a tertiary hospital pays nothing", claim(("A", "200.00"), visit=V.GENERAL_OUTPATIENT, level="3"), "0.00"),
    ("a county hospital pays nothing", claim(("A", "200.00"), visit=V.GENERAL_OUTPATIENT, level="2"), "0.00"),
    ("an emergency visit at a county hospital pays nothing", claim(("A", "200.00"), visit=V.EMERGENCY, level="2"),
     "0.00"),
    ("a township clinic, referral 10 points lower: 200 x (50 - 10)%",
     claim(("A", "200.00"), visit=V.GENERAL_OUTPATIENT, level="1"), "80.00"),
    ("a township clinic, capped at 120 a year: 400 x 40% = 160 -> 120",
     claim(("A", "400.00"), visit=V.GENERAL_OUTPATIENT, level="1"), "120.00"),
    ("at home, a village clinic: 200 x 50%", claim(("A", "200.00"), visit=V.GENERAL_OUTPATIENT, level="1",
                                                   pool=GUANXIAN), "100.00"),
]


@pytest.mark.parametrize("name,bill,fund", GUANXIAN_VISITS, ids=[c[0] for c in GUANXIAN_VISITS])
def test_冠县_general_outpatient_pays_only_at_village_and_township_clinics(name, bill, fund):
    result = priced(person(GUANXIAN, F.REFERRAL), bill)
    assert isinstance(result, Settlement), result
    assert (yuan(result.hifp_pay), result.hifp_pay + result.psn_part_amt) == (fund, result.medfee_sumamt)


# 3. An emergency admission counts as filed (DESIGN.md 2.2 "Emergency care (急诊抢救) is treated as filed";
#    冠县: "因急诊、抢救等 … 要在入院后5个工作日内,向县医保处备案").
def test_a_stay_admitted_from_emergency_without_a_filing_is_settled_as_emergency():
    unfiled_jiujiang, unfiled_guanxian = person(JIUJIANG), person(GUANXIAN)
    admitted = claim(("A", "10000.00"))
    emergency = Claim(**{**admitted.__dict__, "emergency_admission": True})
    assert decide_filing(unfiled_jiujiang, emergency).status is FilingStatus.EMERGENCY
    # 九江 settles unfiled care only by claim at home; an emergency admission at the counter, as a referral's:
    # (10000 - 600) x 50% = 4700
    assert priced(unfiled_jiujiang, admitted).reason is RefusalCode.FILING_REQUIRED
    assert yuan(priced(unfiled_jiujiang, emergency).hifp_pay) == "4700.00"
    # 冠县 settles unfiled care at 20 points less, emergency at 10: (10000 - 900) x (60 - 10)% = 4550, not 3640
    assert yuan(priced(unfiled_guanxian, admitted).hifp_pay) == "3640.00"
    assert yuan(priced(unfiled_guanxian, emergency).hifp_pay) == "4550.00"


def test_a_stay_sent_as_med_type_24_is_an_emergency_admission():
    from hub.settlement.service_layer.convention import claim_from

    mdtrt = {"med_type": "24", "mdtrtarea_admvs": "440100", "hosp_lv": "3", "begntime": "2026-03-10"}
    assert claim_from(mdtrt, [{"med_list_codg": "A", "cnt": "1", "pric": "1"}]).emergency_admission
    assert not claim_from({**mdtrt, "med_type": "21"}, [{"med_list_codg": "A", "cnt": "1", "pric": "1"}]).emergency_admission


# 4. A visit type the home policy does not cover at all is refused for its type, in the home pool too.
def test_a_visit_type_no_rule_covers_is_refused_for_its_type_not_for_being_off_site():
    jiamusi = HOME["佳木斯"]  # its policy has inpatient and serious-illness rules only
    at_home = priced(person(jiamusi), claim(("A", "100.00"), visit=V.GENERAL_OUTPATIENT, pool=jiamusi))
    away = priced(person(jiamusi, F.REFERRAL), claim(("A", "100.00"), visit=V.GENERAL_OUTPATIENT))
    assert at_home.reason is away.reason is RefusalCode.VISIT_TYPE_NOT_COVERED
    # 九江 covers outpatient care in the city only: off-site, the cause is being off-site
    assert priced(person(JIUJIANG, F.REFERRAL), claim(("A", "100.00"), visit=V.GENERAL_OUTPATIENT)).reason \
        is RefusalCode.VISIT_TYPE_NOT_COVERED_OFF_SITE


def test_serious_illness_does_not_apply_to_emergency_visits_by_default():
    """READINGS.md 15 and 24 agree with the code: the documents name 住院 and 门特, not 急诊."""
    for policy in sample_policies():
        if policy.serious_illness is not None:
            assert "EMERGENCY" not in policy.serious_illness.applies_to, policy.policy_version


# 6. A manual claim previewed offline, priced as the claims route prices it (READINGS.md 37).
def test_preview_prices_a_manual_claim_as_the_home_bureau_would(tmp_path):
    document = json.loads((REPO / "examples" / "claim-inpatient.json").read_text("utf-8"))
    document["psn"]["filings"] = []  # unfiled: 九江 settles it only as a claim at home
    document["feedetail"] = [{"feedetl_sn": "1", "med_list_codg": "XJ01DDA004A003030101018", "cnt": "1",
                              "pric": "10000.00"}]
    counter = tmp_path / "counter.json"
    counter.write_text(json.dumps(document, ensure_ascii=False), "utf-8")
    refused = CliRunner().invoke(app, ["settle", "preview", str(counter)])
    assert refused.exit_code == 1 and json.loads(refused.output)["err_code"] == "filing_required"

    claim_file = tmp_path / "claim.json"
    claim_file.write_text(json.dumps({**document, "manual": {"reason": "NOT_FILED"}}, ensure_ascii=False), "utf-8")
    result = CliRunner().invoke(app, ["settle", "preview", str(claim_file)])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)["output"]
    # 未办理转诊转院的: (10000 - 800) x 40% = 3680 (the item is 甲 in 广州's catalogue, uncapped)
    assert (out["setlinfo"]["hifp_pay"], out["setlinfo"]["psn_part_amt"]) == ("3680.00", "6320.00")
    assert out["hub_manual_claim"] == {"reason": "NOT_FILED", "home_pool": "360400"}

    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({**document, "manual": {"reason": "LOST_RECEIPT"}}), "utf-8")
    refused = CliRunner().invoke(app, ["settle", "preview", str(wrong)])
    assert refused.exit_code == 1 and "manual.reason" in json.loads(refused.output)["err_msg"]
