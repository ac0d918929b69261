"""Properties of the rules engine over generated claims, people and accumulators."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from hub.reference.policy import Level
from hub.settlement.domain.engine import settle
from hub.settlement.domain.model import Accumulators, Claim, FeeLine, Filing, FilingType, Person, Settlement, VisitType
from hub.settlement.domain.refusals import Refusal

from .builders import CATALOGUE, TREATMENT_POOL, person, sample_policies

from datetime import date
from decimal import Decimal

DAY = date(2026, 6, 1)
POLICIES = [p for p in sample_policies() if p.in_force_on(DAY)]

codes = st.sampled_from(sorted(CATALOGUE.items) + ["UNKNOWN"])
line = st.tuples(codes, st.integers(min_value=1, max_value=20_000_000), st.integers(min_value=1, max_value=5))
visit = st.sampled_from(list(VisitType))
level = st.sampled_from(list(Level))
filing = st.sampled_from([None, *FilingType])


@st.composite
def accumulators(draw):
    return Accumulators(
        year=2026,
        inpatient_fund_paid=draw(st.integers(0, 15_000_000)),
        admissions=draw(st.integers(0, 4)),
        general_outpatient_fund_paid=draw(st.integers(0, 20_000)),
        chronic_fund_paid=draw(st.integers(0, 1_100_000)),
        accident_fund_paid=draw(st.integers(0, 7_000_000)),
        serious_compliant_oop=draw(st.integers(0, 40_000_000)),
        serious_paid=draw(st.integers(0, 20_000_000)),
    )


def make_claim(items, vt, lv, accident=False) -> Claim:
    fee_lines = tuple(FeeLine(i, code, Decimal(q), price, price * q) for i, (code, price, q) in enumerate(items, 1))
    return Claim(vt, lv, TREATMENT_POOL, DAY, DAY, fee_lines, accident)


def who(policy, filing_type, years=3) -> Person:
    return person(policy.pool_code, filing_type, insurance=policy.insurance_type, years=years)


cases = st.tuples(st.sampled_from(POLICIES), st.lists(line, min_size=1, max_size=8), visit, level, filing,
                  accumulators(), st.booleans())


@settings(max_examples=400, deadline=None)
@given(cases)
def test_every_settlement_balances_to_the_fen_and_respects_the_caps(case):
    policy, items, vt, lv, ft, acc, accident = case
    result = settle(make_claim(items, vt, lv, accident), who(policy, ft), policy, CATALOGUE, acc)
    if isinstance(result, Refusal):
        return
    assert result.hifp_pay + result.hifmi_pay + result.maf_pay + result.psn_part_amt == result.medfee_sumamt
    assert result.fund_pay_sumamt == result.hifp_pay + result.hifmi_pay + result.maf_pay
    assert min(result.hifp_pay, result.hifmi_pay, result.maf_pay, result.psn_part_amt) >= 0
    if result.basic_cap_remaining is not None:
        assert result.hifp_pay <= result.basic_cap_remaining
    if vt.is_stay and policy.inpatient.annual_cap is not None:
        assert acc.inpatient_fund_paid + result.hifp_pay <= max(policy.inpatient.annual_cap, acc.inpatient_fund_paid)
    si = policy.serious_illness
    if si is not None and si.annual_cap is not None and not si.special_populations:
        cap = si.annual_cap + max((i.extra for i in si.cap_increments if 3 >= i.min_continuous_years), default=0)
        assert acc.serious_paid + result.hifmi_pay <= max(cap, acc.serious_paid)


@settings(max_examples=300, deadline=None)
@given(cases, line)
def test_a_bigger_bill_never_lowers_the_patients_share(case, extra):
    policy, items, vt, lv, ft, acc, accident = case
    person_ = who(policy, ft)
    smaller = settle(make_claim(items, vt, lv, accident), person_, policy, CATALOGUE, acc)
    bigger = settle(make_claim(items + [extra], vt, lv, accident), person_, policy, CATALOGUE, acc)
    if isinstance(smaller, Settlement):
        assert isinstance(bigger, Settlement)
        assert bigger.psn_part_amt >= smaller.psn_part_amt


@settings(max_examples=300, deadline=None)
@given(cases, st.sampled_from([FilingType.LONG_TERM_RESIDENT, FilingType.RETIREE_RESETTLED, FilingType.POSTED_WORKER]))
def test_a_registered_patient_never_gets_a_worse_ratio_than_an_unregistered_one(case, long_term):
    policy, items, vt, lv, _ft, acc, accident = case
    c = make_claim(items, vt, lv, accident)
    registered = settle(c, who(policy, long_term), policy, CATALOGUE, acc)
    unregistered = settle(c, who(policy, None), policy, CATALOGUE, acc)
    if isinstance(registered, Settlement) and isinstance(unregistered, Settlement):
        assert registered.pool_ratio_bp >= unregistered.pool_ratio_bp
        assert registered.psn_part_amt <= unregistered.psn_part_amt
