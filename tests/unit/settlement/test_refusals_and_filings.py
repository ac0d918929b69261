"""Refusals are answers with stable codes; filing status follows DESIGN.md 2.2."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest

from hub.reference.policy import FilingStatus, InsuranceType
from hub.settlement.domain.engine import decide_filing, select_policy, settle, target_matches
from hub.settlement.domain.model import Accumulators, Filing
from hub.settlement.domain.model import FilingType as F
from hub.settlement.domain.model import VisitType as V
from hub.settlement.domain.refusals import Refusal

from .builders import CATALOGUE, HOME, claim, person, policy, sample_policies

ACC = Accumulators(year=2026)
JIUJIANG = "360400-RESIDENT-2020.2"


def strict_filing_policy():
    """九江 with unfiled care not settled directly (a choice some pools make)."""
    p = policy(JIUJIANG)
    return p.model_copy(update={"off_site": p.off_site.model_copy(update={"unregistered_settles_directly": False})})


REFUSALS = [
    # (name, policy, person, claim, code)
    ("no fee lines", policy(JIUJIANG), person(HOME["九江"]), claim(), "claim_invalid"),
    ("discharge before admission", policy(JIUJIANG), person(HOME["九江"]),
     replace(claim(("A", "1")), discharge_date=date(2026, 1, 1)), "claim_invalid"),
    ("not yet enrolled", policy(JIUJIANG), replace(person(HOME["九江"]), enrolled_from=date(2026, 6, 1)),
     claim(("A", "1")), "person_not_enrolled"),
    ("enrolment ended", policy(JIUJIANG), replace(person(HOME["九江"]), enrolled_to=date(2025, 12, 31)),
     claim(("A", "1")), "person_not_enrolled"),
    ("waiting period", policy(JIUJIANG), replace(person(HOME["九江"]), benefits_from=date(2026, 4, 1)),
     claim(("A", "1")), "enrolment_in_waiting_period"),
    ("no filing where the policy demands one", strict_filing_policy(), person(HOME["九江"]),
     claim(("A", "1")), "filing_required"),
    ("filing expired where the policy demands one", strict_filing_policy(),
     person(HOME["九江"], F.REFERRAL, filing_to=date(2026, 2, 28)), claim(("A", "1")), "filing_expired"),
    ("general outpatient in a pool without outpatient rules", policy(JIUJIANG), person(HOME["九江"], F.REFERRAL),
     claim(("A", "1"), visit=V.GENERAL_OUTPATIENT), "visit_type_not_covered_off_site"),
    ("policy not in force on the service date", policy("510900-RESIDENT-2019.2"), person(HOME["遂宁"]),
     claim(("A", "1")), "policy_not_in_force"),
]


@pytest.mark.parametrize("name,pol,who,what,code", REFUSALS, ids=[r[0] for r in REFUSALS])
def test_refusals_carry_a_stable_code_and_a_message(name, pol, who, what, code):
    result = settle(what, who, pol, CATALOGUE, ACC)
    assert isinstance(result, Refusal)
    assert result.code == code
    assert result.message


def test_precedence_enrolment_before_filing():
    who = replace(person(HOME["九江"]), enrolled_from=date(2026, 6, 1))
    assert settle(claim(("A", "1")), who, strict_filing_policy(), CATALOGUE, ACC).code == "person_not_enrolled"


def test_select_policy_by_pool_type_and_date():
    policies = list(sample_policies())
    who = person(HOME["遂宁"])
    assert select_policy(policies, who, date(2019, 7, 1)).policy_version == "510900-RESIDENT-2019.2"
    assert select_policy(policies, who, date(2026, 7, 1)).policy_version == "510900-RESIDENT-2020.2"
    assert select_policy(policies, person("123456"), date(2026, 1, 1)).code == "unknown_home_region"
    employee = person(HOME["遂宁"], insurance=InsuranceType.EMPLOYEE)
    assert select_policy(policies, employee, date(2026, 1, 1)).code == "unknown_home_region"
    assert select_policy(policies, person(HOME["佳木斯"]), date(2020, 1, 1)).code == "policy_not_in_force"


FILINGS = [
    # (name, filings, claim kwargs, expected status)
    ("no filing", (), {}, FilingStatus.UNREGISTERED),
    ("long-term beats referral", (F.REFERRAL, F.LONG_TERM_RESIDENT), {}, FilingStatus.REGISTERED),
    ("emergency visit without a filing is treated as filed", (), {"visit": V.EMERGENCY}, FilingStatus.EMERGENCY),
    ("temporary trip", (F.TEMPORARY_TRIP,), {}, FilingStatus.TEMPORARY),
]


@pytest.mark.parametrize("name,types,kwargs,status", FILINGS, ids=[f[0] for f in FILINGS])
def test_filing_status(name, types, kwargs, status):
    who = replace(person(HOME["九江"]), filings=tuple(
        Filing(f"F{i}", t, "440100", date(2026, 1, 1)) for i, t in enumerate(types)))
    assert decide_filing(who, claim(("A", "1"), **kwargs)).status is status


def test_filed_before_discharge_is_settled_as_filed():
    who = replace(person(HOME["九江"]), filings=(Filing("F1", F.REFERRAL, "440100", date(2026, 3, 12)),))
    stay = replace(claim(("A", "1")), admission_date=date(2026, 3, 10), discharge_date=date(2026, 3, 15))
    assert decide_filing(who, stay).status is FilingStatus.REFERRAL
    after = replace(stay, discharge_date=date(2026, 3, 11))
    assert decide_filing(who, after).status is FilingStatus.UNREGISTERED


def test_revoked_and_expired_filings_do_not_count():
    revoked = replace(person(HOME["九江"]), filings=(Filing("F1", F.REFERRAL, "440100", date(2026, 1, 1), revoked=True),))
    assert decide_filing(revoked, claim(("A", "1"))).status is FilingStatus.UNREGISTERED
    expired = person(HOME["九江"], F.REFERRAL, filing_to=date(2026, 2, 1))
    decision = decide_filing(expired, claim(("A", "1")))
    assert (decision.status, decision.expired_filing_id) == (FilingStatus.UNREGISTERED, "F1")


def test_filing_for_another_region_does_not_count_and_province_filings_do():
    assert decide_filing(person(HOME["九江"], F.REFERRAL, target="310100"), claim(("A", "1"))).status is FilingStatus.UNREGISTERED
    assert target_matches("440000", "440300") and not target_matches("440000", "450100")
    assert decide_filing(person(HOME["九江"], F.REFERRAL, target="440000"), claim(("A", "1"))).status is FilingStatus.REFERRAL


def test_care_in_the_home_pool_is_not_off_site():
    decision = decide_filing(person("440100"), claim(("A", "1")))
    assert decision.status is None


def test_every_sample_policy_survives_its_published_form():
    from hub.reference.policy import parse_policy
    import json

    for p in sample_policies():
        again = parse_policy(json.loads(p.canonical_json()))
        assert again == p
        assert again.sha256() == p.sha256()


def test_a_field_left_at_its_default_does_not_change_a_published_policys_digest():
    """A later build adding an optional field (or a file spelling out a default) must not make
    every published version look changed to the loader."""
    import json

    from hub.reference.policy import parse_policy

    p = policy(JIUJIANG)
    spelled = {**json.loads(p.canonical_json()), "accident_outpatient": None, "medical_assistance": None}
    assert parse_policy(spelled).sha256() == p.sha256()


BAD_POLICIES = [
    # (change to a good document, error paths expected)
    ({"pool_code": "36040"}, ["pool_code"]),
    ({"effective_to": "2019-01-01"}, ["(file)"]),  # before effective_from
    ({"sources": []}, ["sources"]),
    ({"inpatient": {"deductible_by_level": {"1": 100.5, "2": 1, "3": 1}, "ratio_by_level": {"1": 90, "2": 80, "3": 60}}},
     ["inpatient.deductible_by_level.1"]),
    # Field errors come first: the whole-section check (level 3 missing) runs once the fields are valid.
    ({"inpatient": {"deductible_by_level": {"1": 100, "2": 400}, "ratio_by_level": {"1": 90, "2": 80, "3": 160}}},
     ["inpatient.ratio_by_level.3"]),
    ({"inpatient": {"deductible_by_level": {"1": 100, "2": 400}, "ratio_by_level": {"1": 90, "2": 80, "3": 60}}},
     ["inpatient"]),
    ({"pool_code": "1", "effective_from": "someday", "sources": []}, ["pool_code", "effective_from", "sources"]),
    ({"serious_illness": {"threshold": 1000, "segments": [{"lower": 0, "upper": 100, "ratio": 50},
                                                          {"lower": 200, "ratio": 60}]}}, ["serious_illness"]),
    ({"off_site": {"rules": {"SOMETIMES": {}}}}, ["off_site.rules.SOMETIMES.[key]"]),
    ({"unexpected": 1}, ["unexpected"]),
]


@pytest.mark.parametrize("change,paths", BAD_POLICIES, ids=[str(list(c)[0]) for c, _ in BAD_POLICIES])
def test_a_wrong_policy_file_is_refused_whole_with_every_error_by_path(change, paths):
    import json

    from hub.reference.policy import PolicyFileError, parse_policy

    good = json.loads(policy(JIUJIANG).canonical_json())
    parse_policy(good)  # the unchanged document is fine
    with pytest.raises(PolicyFileError) as err:
        parse_policy({**good, **change}, "bad.yaml")
    got = [e.split(": ", 1)[0] for e in err.value.errors]
    assert got == paths, err.value.errors


def test_catalogue_rows_are_checked(tmp_path):
    from hub.reference.catalogue import CatalogueFileError, load_catalogue_file

    path = tmp_path / "440100-test.csv"
    path.write_text("item_code,item_name,item_kind,item_class,self_pay_first_pct,price_cap_yuan,over_cap_rule,essential_drug\n"
                    "A,甲药,DRUG,甲,0,,SELF_PAY,1\n"
                    "B,乙药,DRUG,乙,10,12.5,SELF_PAY,0\n"
                    "C,bad class,DRUG,丁,0,,SELF_PAY,0\n"
                    "D,甲 with share,DRUG,甲,10,,SELF_PAY,0\n"
                    "E,cap with 3 decimals,SERVICE,甲,0,1.005,SELF_PAY,0\n"
                    "A,duplicate,DRUG,甲,0,,SELF_PAY,0\n", encoding="utf-8")
    with pytest.raises(CatalogueFileError) as err:
        load_catalogue_file(path)
    assert [e.split(":")[0] for e in err.value.errors] == ["line 4", "line 5", "line 6", "line 7"]
