"""Enrolment rows and filing rules, table-driven, no servers."""

from __future__ import annotations

from datetime import date

import pytest

from hub.registration.domain.model import (FilingSpec, FilingType, Refused, change_filing, new_filing,
                                           parse_enrolment, revoke_filing)

GOOD = {"psn_no": "360402199001011234", "insutype": "390", "enrolled_from": "2020-01-01", "enrolled_to": "",
        "benefits_from": "", "special_populations": ""}

ROWS = [
    ("good", {}, None),
    ("employee word", {"insutype": "EMPLOYEE"}, None),
    ("populations", {"special_populations": "subsistence_allowance;POVERTY_REGISTERED"}, None),
    ("empty id", {"psn_no": " "}, "invalid_psn_no"),
    ("id too long", {"psn_no": "1" * 65}, "invalid_psn_no"),
    ("unknown insutype", {"insutype": "320"}, "invalid_insutype"),
    ("bad date", {"enrolled_from": "2020-13-01"}, "invalid_date"),
    ("missing start", {"enrolled_from": ""}, "invalid_date"),
    ("ends before it starts", {"enrolled_to": "2019-12-31"}, "dates_out_of_order"),
    ("benefits before enrolment", {"benefits_from": "2019-06-01"}, "dates_out_of_order"),
    ("unknown population", {"special_populations": "VIP"}, "unknown_special_population"),
    ("short row", {"insutype": None}, "wrong_column_count"),
    ("a resident id and name", {"certno": "11010519491231002x", "psn_name": "张三"}, None),
    ("a resident id whose check fails", {"certno": "110105194912310021"}, "invalid_certno"),
    ("a resident id of no date", {"certno": "110105194902300020"}, "invalid_certno"),
    ("a name with a newline", {"psn_name": "张\n三"}, "invalid_name"),
    ("a card number with a space", {"card_no": "A 1"}, "invalid_card_no"),
    ("a category, nationality and employer", {"psn_type": "1101", "naty": "01", "emp_name": "九江市第一机械厂"}, None),
    ("a category that is not a code", {"psn_type": "在职"}, "invalid_psn_type"),
    ("a category too long", {"psn_type": "1234567"}, "invalid_psn_type"),
    ("a nationality of one digit", {"naty": "1"}, "invalid_naty"),
    ("an employer with a tab", {"emp_name": "一\t厂"}, "invalid_emp_name"),
    ("an employer too long", {"emp_name": "厂" * 101}, "invalid_emp_name"),
    ("a dated population", {"special_populations": "EXTREME_POVERTY:2026-01-01:2026-12-31"}, None),
    ("a population of two colons", {"special_populations": "EXTREME_POVERTY:2026-01-01"}, "invalid_special_population"),
    ("a population that ends first", {"special_populations": "EXTREME_POVERTY:2026-02-01:2026-01-01"},
     "dates_out_of_order"),
]


@pytest.mark.parametrize("name,change,code", ROWS, ids=[r[0] for r in ROWS])
def test_enrolment_rows(name, change, code):
    result = parse_enrolment({**GOOD, **change})
    if code is None:
        assert not isinstance(result, Refused)
        assert result.benefits_from == result.enrolled_from  # no waiting period given: none
    else:
        assert isinstance(result, Refused) and result.code == code and result.message


def test_special_populations_are_normalised():
    result = parse_enrolment({**GOOD, "special_populations": "subsistence_allowance; POVERTY_REGISTERED;"})
    assert result.special_populations == ("POVERTY_REGISTERED", "SUBSISTENCE_ALLOWANCE")


def test_the_resident_id_gives_birth_date_and_sex_and_is_sealed_with_the_number():
    result = parse_enrolment({**GOOD, "certno": "11010519491231002x", "psn_name": "张三", "card_no": "a123",
                              "special_populations": "EXTREME_POVERTY:2026-01-01:"})
    assert result.details() == {"psn_no": GOOD["psn_no"], "certno": "11010519491231002X", "psn_name": "张三",
                                "card_no": "A123", "brdy": "1949-12-31", "gend": "2", "psn_cert_type": "01"}
    employee = parse_enrolment({**GOOD, "insutype": "310", "psn_type": " 11 ", "naty": "01", "emp_name": "九江市第一机械厂"})
    assert {k: employee.details()[k] for k in ("psn_type", "naty", "emp_name")} == {
        "psn_type": "11", "naty": "01", "emp_name": "九江市第一机械厂"}  # sealed beside the id: answered to a treating hospital
    assert [(i.population, i.begins, i.ends) for i in result.identities] == [("EXTREME_POVERTY", date(2026, 1, 1), None)]


FILINGS = [
    ("long-term stays open", "LONG_TERM_RESIDENT", "440100", None, None),
    ("referral gets the default 183 days", "REFERRAL", "440100", None, date(2026, 8, 31)),  # 183 days counting both ends
    ("emergency is temporary too", "EMERGENCY", "440100", None, date(2026, 8, 31)),  # 183 days counting both ends
    ("explicit end kept", "TEMPORARY_TRIP", "440100", date(2026, 4, 30), date(2026, 4, 30)),
    ("target is the home pool", "REFERRAL", "360400", None, "invalid_target_pool"),
    ("target not a code", "REFERRAL", "GZ", None, "invalid_target_pool"),
    ("unknown type", "HOLIDAY", "440100", None, "invalid_filing_type"),
    ("end before start", "REFERRAL", "440100", date(2026, 2, 1), "dates_out_of_order"),
]


@pytest.mark.parametrize("name,kind,target,valid_to,expect", FILINGS, ids=[f[0] for f in FILINGS])
def test_new_filings(name, kind, target, valid_to, expect):
    result = new_filing("F1", "360400", kind, target, date(2026, 3, 2), valid_to)
    if isinstance(expect, str):
        assert isinstance(result, Refused) and result.code == expect
    else:
        assert result.valid_to == expect


def test_a_revoked_filing_cannot_change_or_be_revoked_again():
    spec = FilingSpec("F1", FilingType.REFERRAL, "440100", date(2026, 3, 1), date(2026, 8, 31))
    revoked = revoke_filing(spec)
    assert revoked.revoked
    assert revoke_filing(revoked).code == "filing_revoked"
    assert change_filing(revoked, "360400", "310100", None, None).code == "filing_revoked"


def test_changing_a_filing_keeps_what_is_not_named():
    spec = FilingSpec("F1", FilingType.REFERRAL, "440100", date(2026, 3, 1), date(2026, 8, 31))
    changed = change_filing(spec, "360400", None, None, date(2026, 12, 31))
    assert (changed.target_pool, changed.valid_from, changed.valid_to) == ("440100", date(2026, 3, 1), date(2026, 12, 31))
