"""Hand-computed settlements, one or more per pool in DESIGN.md's table, from the sample
policy files in reference/policies. The arithmetic is written beside each case, in yuan.
All claims are treated in 广州 (440100) at the hospital level given, unless said otherwise."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import pytest

from hub.reference.policy import InsuranceType, SpecialPopulation
from hub.settlement.domain.engine import settle
from hub.settlement.domain.model import Accumulators, Claim, Person, Settlement
from hub.settlement.domain.model import FilingType as F
from hub.settlement.domain.model import VisitType as V
from hub.settlement.domain.money import yuan_to_fen
from hub.settlement.domain.refusals import Refusal, RefusalCode

from .builders import CATALOGUE, HOME, acc, claim, person, policy


@dataclass
class Case:
    name: str
    policy_version: str
    person: Person
    claim: Claim
    expect: dict[str, str]  # Settlement field -> yuan
    acc: Accumulators = field(default_factory=lambda: Accumulators(year=2026))


CASES = [
    Case(
        "九江 resident, referral filing, tertiary: outside-city deductible 600 and 50%",
        "360400-RESIDENT-2020.2", person(HOME["九江"], F.REFERRAL), claim(("A", "10000.00")),
        # 10000 - 600 = 9400; 9400 x 50% = 4700 fund; patient 10000 - 4700 = 5300
        expect={"act_pay_dedc": "600.00", "hifp_pay": "4700.00", "hifmi_pay": "0.00", "psn_part_amt": "5300.00"},
    ),
    Case(
        "九江 resident, referral, level 2: lines of every class, 600 and 50% (one figure for every level)",
        "360400-RESIDENT-2020.2", person(HOME["九江"], F.REFERRAL),
        claim(("A", "5000.00"), ("B", "2000.00"), ("C", "300.00"), ("S", "150.00", "2"), level="2"),
        # total 5000 + 2000 + 300 + 300 = 7600; 丙 300 self-paid; S capped at 2 x 100 = 200 -> 100 over;
        # 乙 first 10% of 2000 = 200; in scope 5000 + 1800 + 200 = 7000
        # 7000 - 600 = 6400; 6400 x 50% = 3200 fund; patient 7600 - 3200 = 4400
        expect={"medfee_sumamt": "7600.00", "fulamt_ownpay_amt": "300.00", "overlmt_amt": "100.00",
         "preselfpay_amt": "200.00", "inscp_scp_amt": "7000.00", "act_pay_dedc": "600.00",
         "hifp_pay": "3200.00", "psn_part_amt": "4400.00"},
    ),
    Case(
        "冠县 resident, long-term filing, township, 2nd admission, essential drugs at 90%",
        "371525-RESIDENT-2018.3", person(HOME["冠县"], F.LONG_TERM_RESIDENT),
        claim(("A", "1000.00"), ("E", "1000.00"), level="1"), acc=acc(admissions=1),
        # deductible 200 x 1/2 = 100, met from the non-essential 1000 first: (1000 - 100) x 80% = 720;
        # essential 1000 x 90% = 900; fund 1620; compliant OOP 380 < 12000: no serious illness
        expect={"act_pay_dedc": "100.00", "hifp_pay": "1620.00", "hifmi_pay": "0.00", "psn_part_amt": "380.00"},
    ),
    Case(
        "冠县 resident, referral, tertiary, 3rd admission, basic cap runs out; serious illness claimed at the insurer",
        "371525-RESIDENT-2018.3", person(HOME["冠县"], F.REFERRAL), claim(("A", "150000.00")),
        acc=acc(admissions=2, inpatient_fund_paid=100000),
        # 3rd admission: no deductible; ratio 60 - 10 = 50%: 150000 x 50% = 75000, cap leaves 120000 - 100000 = 20000
        # compliant OOP 150000 - 20000 = 130000; serious illness is claimed afterwards at the insurer
        # (地点:中国人民财产保险股份有限公司冠县支公司), none at the counter: patient 150000 - 20000 = 130000
        expect={"act_pay_dedc": "0.00", "fund_before_cap": "75000.00", "hifp_pay": "20000.00",
         "compliant_oop": "130000.00", "hifmi_pay": "0.00", "psn_part_amt": "130000.00"},
    ),
    Case(
        "冠县 accident injury without third party: 50% above the deductible",
        "371525-RESIDENT-2018.3", person(HOME["冠县"], F.LONG_TERM_RESIDENT), claim(("A", "20000.00"), level="2", accident=True),
        # 20000 - 500 = 19500 x 50% = 9750; compliant 10250 < 12000
        expect={"act_pay_dedc": "500.00", "hifp_pay": "9750.00", "hifmi_pay": "0.00", "psn_part_amt": "10250.00"},
    ),
    Case(
        "冠县 general outpatient: 50% within the 120 annual fund cap",
        "371525-RESIDENT-2018.3", person(HOME["冠县"], F.LONG_TERM_RESIDENT),
        claim(("A", "300.00"), level="1", visit=V.GENERAL_OUTPATIENT), acc=acc(general_outpatient_fund_paid=50),
        # 300 x 50% = 150, cap leaves 120 - 50 = 70; patient 230
        expect={"hifp_pay": "70.00", "psn_part_amt": "230.00"},
    ),
    Case(
        "冠县 chronic outpatient: 65%",
        "371525-RESIDENT-2018.3", person(HOME["冠县"], F.LONG_TERM_RESIDENT),
        claim(("A", "3152.17"), level="2", visit=V.CHRONIC_OUTPATIENT),
        # 3152.17 x 65% = 2048.9105 -> 2048.91; patient 1103.26
        expect={"hifp_pay": "2048.91", "psn_part_amt": "1103.26"},
    ),
    Case(
        "广州 resident in 广州, basic cap runs out: 70% beyond the cap, 50% above 18000",
        "440100-RESIDENT-2015.1", person(HOME["广州"], years=3),
        claim(("A", "100000.00"), pool="440100"), acc=acc(inpatient_fund_paid=110000),
        # deductible 900; 99100 x 60% = 59460, the cap leaves 10000
        # the fund covered 99100 x 10000 / 59460 = 16666.666.. -> 16666.67 of the eligible amount:
        # 99100 - 16666.67 = 82433.33 is beyond the cap
        # ordinary compliant OOP 900 + (16666.67 - 10000) = 7566.67 < 18000: 0; beyond the cap
        # 82433.33 x 70% = 57703.331 -> 57703.33; patient 100000 - 10000 - 57703.33 = 32296.67
        expect={"act_pay_dedc": "900.00", "hifp_pay": "10000.00", "compliant_oop_above_basic_cap": "82433.33",
         "hifmi_pay": "57703.33", "psn_part_amt": "32296.67"},
    ),
    Case(
        "广州 resident treated in 东莞: serious illness is claimed at home (零星报销), none at the counter",
        "440100-RESIDENT-2015.1", person(HOME["广州"], years=3),
        claim(("A", "100000.00"), pool="441900"), acc=acc(inpatient_fund_paid=110000),
        # deductible 900; ratio 60 - 20 = 40%: 99100 x 40% = 39640, the cap leaves 10000; hifmi 0; patient 90000
        expect={"hifp_pay": "10000.00", "hifmi_pay": "0.00", "psn_part_amt": "90000.00"},
    ),
    Case(
        "广州 resident, serious-illness cap with +30000 after 3 continuous years",
        "440100-RESIDENT-2015.1", person(HOME["广州"], years=3), claim(("A", "10000.00"), pool="440100"),
        acc=acc(admissions=1, inpatient_fund_paid=120000, serious_compliant_oop=300000, serious_paid=149000),
        # fund cap used up: fund 0; 2nd admission but no halving in this policy: deductible 900
        # ordinary OOP 900 (the other 9100 is beyond the cap: 9100 x 70% = 6370); threshold long passed: 900 x 50% = 450
        # owed 6820, cap 120000 + 30000 - 149000 = 1000; patient 10000 - 1000 = 9000
        expect={"hifp_pay": "0.00", "hifmi_pay": "1000.00", "psn_part_amt": "9000.00"},
    ),
    Case(
        "示例市 resident, filed temporary trip, provincial tertiary: deductible 500, 70 - 15 points",
        "999903-RESIDENT-2023.2", person(HOME["示例市"], F.TEMPORARY_TRIP), claim(("A", "50000.00"), level="3P"),
        # 50000 - 500 = 49500 x 55% = 27225; compliant 22775; serious illness (22775 - 10000) x 60% = 7665
        # patient 50000 - 27225 - 7665 = 15110
        expect={"act_pay_dedc": "500.00", "pool_ratio_bp": "0.55", "hifp_pay": "27225.00", "hifmi_pay": "7665.00",
         "psn_part_amt": "15110.00"},
    ),
    Case(
        "示例市 resident, referral, level 1: 80 - 10 points, segments cross 30000",
        "999903-RESIDENT-2023.2", person(HOME["示例市"], F.REFERRAL), claim(("A", "120000.00"), level="1"),
        # 120000 - 100 = 119900 x 70% = 83930; compliant 36070
        # (30000 - 10000) x 60% = 12000 + (36070 - 30000) x 70% = 4249; serious illness 16249
        # patient 120000 - 83930 - 16249 = 19821
        expect={"hifp_pay": "83930.00", "hifmi_pay": "16249.00", "psn_part_amt": "19821.00"},
    ),
    Case(
        "佳木斯 2022, poverty-registered, admitted after an emergency (急诊抢救 filing): threshold 6000, segments above it",
        "230800-RESIDENT-2022.3", person(HOME["佳木斯"], F.EMERGENCY, pops=(SpecialPopulation.POVERTY_REGISTERED,)),
        claim(("A", "100000.00"), level="2", day=date(2026, 5, 1)),
        # emergency filing: 70 - 10 = 60%; 100000 - 500 = 99500 x 60% = 59700; compliant 40300
        # above 6000: 34300 -> 20000 x 65% = 13000 + 14300 x 70% = 10010; serious illness 23010
        # patient 100000 - 59700 - 23010 = 17290
        expect={"hifp_pay": "59700.00", "hifmi_pay": "23010.00", "psn_part_amt": "17290.00"},
    ),
    Case(
        "佳木斯 2021, ordinary resident: 60% above 12000",
        "230800-RESIDENT-2021.3", person(HOME["佳木斯"], F.LONG_TERM_RESIDENT),
        claim(("A", "60000.00"), level="3", day=date(2021, 6, 1)),
        # 60000 - 900 = 59100 x 60% = 35460; compliant 24540; (24540 - 12000) x 60% = 7524
        expect={"hifp_pay": "35460.00", "hifmi_pay": "7524.00", "psn_part_amt": "17016.00"},
    ),
    Case(
        "遂宁 2019: serious-illness threshold 13500 not reached",
        "510900-RESIDENT-2019.2", person(HOME["遂宁"], F.LONG_TERM_RESIDENT), claim(("A", "30000.00"), day=date(2019, 6, 1)),
        # 30000 - 900 = 29100 x 60% = 17460; compliant 12540 < 13500
        expect={"hifp_pay": "17460.00", "hifmi_pay": "0.00", "psn_part_amt": "12540.00"},
    ),
    Case(
        "遂宁 2020: the same bill, threshold 11350 at 60%",
        "510900-RESIDENT-2020.2", person(HOME["遂宁"], F.LONG_TERM_RESIDENT), claim(("A", "30000.00"), day=date(2020, 6, 1)),
        # compliant 12540; (12540 - 11350) x 60% = 714; patient 12540 - 714 = 11826
        expect={"hifp_pay": "17460.00", "hifmi_pay": "714.00", "psn_part_amt": "11826.00"},
    ),
    Case(
        "遂宁 2020, poverty-registered, off-site: threshold 5675, 60 + 5 = 65%, no top-up (not 县域内)",
        "510900-RESIDENT-2020.2", person(HOME["遂宁"], F.LONG_TERM_RESIDENT, pops=(SpecialPopulation.POVERTY_REGISTERED,)),
        claim(("A", "30000.00"), day=date(2020, 6, 1)),
        # "支付比例提高5个百分点": (12540 - 5675) x 65% = 6865 x 0.65 = 4462.25; patient 12540 - 4462.25 = 8077.75
        expect={"hifmi_pay": "4462.25", "maf_pay": "0.00", "psn_part_amt": "8077.75"},
    ),
    Case(
        "遂宁 2020, poverty-registered, in the home pool: the patient's in-scope share held within 10%",
        "510900-RESIDENT-2020.2", person(HOME["遂宁"], pops=(SpecialPopulation.POVERTY_REGISTERED,)),
        claim(("A", "30000.00"), day=date(2020, 6, 1), pool="510900"),
        # in pool: 30000 - 900 = 29100 x 60% = 17460; serious (12540 - 5675) x 65% = 4462.25;
        # the patient would pay 30000 - 17460 - 4462.25 = 8077.75 of 30000 in scope; 10% is 3000:
        # assistance (医保倾斜支付) 8077.75 - 3000 = 5077.75; patient 3000
        expect={"hifp_pay": "17460.00", "hifmi_pay": "4462.25", "maf_pay": "5077.75", "psn_part_amt": "3000.00"},
    ),
    Case(
        "遂宁 2020, poverty-registered: no serious-illness cap (全面取消建档立卡贫困人口大病保险封顶线)",
        "510900-RESIDENT-2020.2", person(HOME["遂宁"], F.LONG_TERM_RESIDENT, pops=(SpecialPopulation.POVERTY_REGISTERED,)),
        claim(("A", "1000000.00"), day=date(2020, 6, 1)), acc=acc(serious_paid=500000, inpatient_fund_paid=120000),
        # the basic cap is spent: no basic fund; compliant 1000000 - 0 = 1000000 (deductible included);
        # (1000000 - 5675) x 65% = 646311.25, whatever was paid before (no cap); patient 353688.75
        expect={"hifp_pay": "0.00", "hifmi_pay": "646311.25", "psn_part_amt": "353688.75"},
    ),
    Case(
        "九江 employee, referral: tertiary 75% off-site",
        "360400-EMPLOYEE-2020.1", person(HOME["九江"], F.REFERRAL, insurance=InsuranceType.EMPLOYEE), claim(("A", "10000.00")),
        # 9400 x 75% = 7050
        expect={"hifp_pay": "7050.00", "psn_part_amt": "2950.00"},
    ),
    Case(
        "九江 employee, referral, level 2: the in-city 90% (the source reduces only tertiary)",
        "360400-EMPLOYEE-2020.1", person(HOME["九江"], F.REFERRAL, insurance=InsuranceType.EMPLOYEE),
        claim(("A", "10000.00"), level="2"),
        # 10000 - 400 = 9600 x 90% = 8640
        expect={"hifp_pay": "8640.00", "psn_part_amt": "1360.00"},
    ),
    Case(
        "2021 district, general outpatient: 55%, cap 150",
        "999901-RESIDENT-2021.2", person(HOME["district"], F.LONG_TERM_RESIDENT),
        claim(("A", "200.00"), level="1", visit=V.GENERAL_OUTPATIENT), acc=acc(general_outpatient_fund_paid=100),
        # 200 x 55% = 110, cap leaves 50
        expect={"hifp_pay": "50.00", "psn_part_amt": "150.00"},
    ),
    Case(
        "冠县 student, accident outpatient: above 100 a year, 90%, at most 1000",
        "371525-RESIDENT-2018.3", person(HOME["冠县"], F.LONG_TERM_RESIDENT, pops=(SpecialPopulation.STUDENT_CHILD,)),
        claim(("A", "350.00"), level="1", visit=V.GENERAL_OUTPATIENT, accident=True),
        # "累计超过100元以上的部分 ... 支付90%": (350 - 100) x 90% = 225 (the general outpatient 50% / 120 not used)
        expect={"act_pay_dedc": "100.00", "hifp_pay": "225.00", "psn_part_amt": "125.00"},
    ),
    Case(
        "冠县 student, accident outpatient later in the year: deductible met, the 1000 cap runs out",
        "371525-RESIDENT-2018.3", person(HOME["冠县"], F.LONG_TERM_RESIDENT, pops=(SpecialPopulation.STUDENT_CHILD,)),
        claim(("A", "300.00"), level="1", visit=V.EMERGENCY, accident=True),
        acc=acc(accident_outpatient_deductible_met=100, accident_outpatient_fund_paid=900),
        # no deductible left; 300 x 90% = 270, the cap leaves 1000 - 900 = 100; patient 200
        expect={"act_pay_dedc": "0.00", "hifp_pay": "100.00", "psn_part_amt": "200.00"},
    ),
    Case(
        "冠县 adult, accident outpatient: the general outpatient rules (50%, 120 a year)",
        "371525-RESIDENT-2018.3", person(HOME["冠县"], F.LONG_TERM_RESIDENT),
        claim(("A", "350.00"), level="1", visit=V.GENERAL_OUTPATIENT, accident=True),
        # not a student or child: 350 x 50% = 175, the general outpatient cap 120; patient 230
        expect={"hifp_pay": "120.00", "psn_part_amt": "230.00"},
    ),
    Case(
        "2021 district, an emergency visit (med_type 13): an outpatient visit, within the outpatient cap",
        "999901-RESIDENT-2021.2", person(HOME["district"]),
        claim(("A", "400.00"), level="3", visit=V.EMERGENCY), acc=acc(general_outpatient_fund_paid=40, admissions=1),
        # not a stay: no inpatient deductible; an emergency is treated as filed: 55 - 10 = 45%;
        # 400 x 45% = 180, the outpatient cap 150 - 40 leaves 110; patient 290
        expect={"act_pay_dedc": "0.00", "hifp_pay": "110.00", "psn_part_amt": "290.00"},
    ),
    Case(
        "2021 district, provincial tertiary with a long-term filing: deductible 1000, 70%",
        "999901-RESIDENT-2021.2", person(HOME["district"], F.RETIREE_RESETTLED), claim(("A", "20325.67"), level="3P"),
        # 20325.67 - 1000 = 19325.67 x 70% = 13527.969 -> 13527.97; patient 6797.70
        expect={"act_pay_dedc": "1000.00", "hifp_pay": "13527.97", "psn_part_amt": "6797.70"},
    ),
    Case(
        "rounding: 3 x 33.33 at 80%, half-up to the fen",
        "371525-RESIDENT-2018.3", person(HOME["冠县"], F.LONG_TERM_RESIDENT), claim(("A", "33.33", "3"), level="1"),
        acc=acc(admissions=2),
        # 99.99 x 80% = 79.992 -> 79.99; patient 20.00
        expect={"hifp_pay": "79.99", "psn_part_amt": "20.00"},
    ),
    Case(
        "乙 self-pay-first rounds half-up per line; a capped material's excess is absorbed by the hospital",
        "371525-RESIDENT-2018.3", person(HOME["冠县"], F.LONG_TERM_RESIDENT),
        claim(("B", "123.45"), ("M", "1500.00"), level="1"), acc=acc(admissions=2),
        # B: 123.45 x 10% = 12.345 -> 12.35 first, 111.10 in scope
        # M: capped at 1000, 500 absorbed (not billed); 1000 x 20% = 200 first, 800 in scope
        # total billed 1123.45; scope 911.10 x 80% = 728.88; patient 1123.45 - 728.88 = 394.57
        expect={"medfee_sumamt": "1123.45", "hospital_absorbed_amt": "500.00", "preselfpay_amt": "212.35",
         "inscp_scp_amt": "911.10", "hifp_pay": "728.88", "psn_part_amt": "394.57"},
    ),
]


def _figure(settlement: Settlement, name: str) -> str:
    value = getattr(settlement, name)
    if name.endswith("_bp"):
        return f"{value / 10000:.2f}"
    return f"{value // 100}.{value % 100:02d}"


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hand_computed_settlement(case: Case):
    result = settle(case.claim, case.person, policy(case.policy_version), CATALOGUE, case.acc)
    assert isinstance(result, Settlement), result
    got = {name: _figure(result, name) for name in case.expect}
    assert got == case.expect
    assert result.hifp_pay + result.hifmi_pay + result.maf_pay + result.psn_part_amt == result.medfee_sumamt
    assert result.policy_version == case.policy_version


@pytest.mark.parametrize("version,insurance", [("360400-RESIDENT-2020.2", InsuranceType.RESIDENT),
                                               ("360400-EMPLOYEE-2020.1", InsuranceType.EMPLOYEE)])
def test_九江_settles_off_site_at_the_counter_only_after_filing(version, insurance):
    """"经参保地医保经办机构办理信息备案手续后,可在异地定点医疗机构直接结算住院医疗费用"."""
    unfiled = settle(claim(("A", "10000.00")), person(HOME["九江"], insurance=insurance), policy(version), CATALOGUE,
                     Accumulators(year=2026))
    assert isinstance(unfiled, Refusal) and unfiled.reason is RefusalCode.FILING_REQUIRED
    expired = settle(claim(("A", "10000.00")), person(HOME["九江"], F.REFERRAL, insurance=insurance,
                                                       filing_to=date(2026, 1, 31)), policy(version), CATALOGUE,
                     Accumulators(year=2026))
    assert isinstance(expired, Refusal) and expired.reason is RefusalCode.FILING_EXPIRED


def test_an_emergency_visit_is_no_admission_and_needs_outpatient_rules():
    """Emergency (med_type 13) is an outpatient visit: it counts no admission, adds to the general
    outpatient accumulators, and a policy without outpatient rules does not settle it off-site."""
    district = settle(claim(("A", "400.00"), visit=V.EMERGENCY), person(HOME["district"]),
                      policy("999901-RESIDENT-2021.2"), CATALOGUE, Accumulators(year=2026))
    d = district.accumulators_delta
    assert (d.admissions, d.general_outpatient_fund_paid, d.inpatient_fund_paid) == (0, yuan_to_fen("150"), 0)
    jiujiang = settle(claim(("A", "400.00"), visit=V.EMERGENCY), person(HOME["九江"], F.REFERRAL),
                      policy("360400-RESIDENT-2020.2"), CATALOGUE, Accumulators(year=2026))
    assert isinstance(jiujiang, Refusal) and jiujiang.reason is RefusalCode.VISIT_TYPE_NOT_COVERED_OFF_SITE


@pytest.mark.parametrize("years,cap", [(1, "120000.00"), (2, "150000.00"), (4, "150000.00"), (5, "180000.00"),
                                       (9, "180000.00")])
def test_广州_serious_illness_cap_by_continuous_years(years, cap):
    """"连续参保缴费两年以上、不满5年的,最高支付限额另行增加3万元,即15万元;连续参保缴费满5年的,
    最高支付限额另行增加6万元,即18万元": a bill far above every cap pays the cap."""
    result = settle(claim(("A", "3000000.00"), pool="440100"),  # in 广州: settled at the counter
                    person(HOME["广州"], years=years), policy("440100-RESIDENT-2015.1"), CATALOGUE,
                    Accumulators(year=2026))
    assert _figure(result, "hifmi_pay") == cap


def test_every_pool_in_the_design_table_has_a_case():
    covered = {c.policy_version.split("-")[0] for c in CASES}
    assert set(HOME.values()) <= covered


def test_accumulators_move_by_what_was_paid():
    c = CASES[3]
    result = settle(c.claim, c.person, policy(c.policy_version), CATALOGUE, c.acc)
    d = result.accumulators_delta
    assert (d.admissions, d.inpatient_fund_paid, d.serious_paid, d.serious_compliant_oop) == (
        1, yuan_to_fen("20000"), 0, 0)  # 冠县's serious illness is the insurer's, claimed afterwards
    illustrative = next(c for c in CASES if c.name.startswith("示例市 resident, filed temporary trip"))
    d = settle(illustrative.claim, illustrative.person, policy(illustrative.policy_version), CATALOGUE, illustrative.acc).accumulators_delta
    assert (d.inpatient_fund_paid, d.serious_paid, d.serious_compliant_oop) == (
        yuan_to_fen("27225"), yuan_to_fen("7665"), yuan_to_fen("22775"))
