"""What a hospital may send, checked at the edge: one fee-line parser for upload and claim,
bounds far below any overflow, no control characters. Pure: no servers."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.settlement.service_layer.convention import (DEFAULT_LIMITS, ConventionError, Limits, check_text, claim_from,
                                                   fee_lines)

LINE = {"feedetl_sn": "1", "med_list_codg": "XJ01CAA001A001010101001", "cnt": "2", "pric": "12.50"}


@pytest.mark.parametrize("line, code", [
    ({**LINE, "pric": 12.5}, "invalid_field"),                      # a JSON float
    ({**LINE, "cnt": 2.0}, "invalid_field"),
    ({**LINE, "pric": ["12.50"]}, "invalid_field"),                 # a list
    ({k: v for k, v in LINE.items() if k != "med_list_codg"}, "invalid_field"),
    ("XJ01CAA001A001010101001", "invalid_field"),                              # a line that is a string
    ({**LINE, "med_list_codg": "X0\x00001"}, "invalid_field"),     # NUL in a code
    ({**LINE, "med_list_codg": "X0 01"}, "invalid_field"),         # a space in a code
    ({**LINE, "pric": "-12.50"}, "invalid_amount"),                 # negative price
    ({**LINE, "pric": "12.505"}, "invalid_amount"),
    ({**LINE, "pric": "9999999999.99", "cnt": "1000000"}, "amount_too_large"),  # finding 2's line
    ({**LINE, "pric": "2000000.01"}, "amount_too_large"),
    ({**LINE, "cnt": "100001"}, "amount_too_large"),
    ({**LINE, "pric": "1000000.00", "cnt": "6"}, "amount_too_large"),  # a line over 5 million yuan
    ({**LINE, "det_item_fee_sumamt": "30.00"}, "amount_mismatch"),  # not cnt x pric
])
def test_a_bad_fee_line_is_refused_with_a_stable_code(line, code):
    with pytest.raises(ConventionError) as refused:
        fee_lines([line])
    assert refused.value.code == code


def test_a_bill_over_its_limit_is_refused_however_it_is_split():
    lines = [{**LINE, "feedetl_sn": str(n), "pric": "1000000.00", "cnt": "5"} for n in range(5)]  # 25 M yuan
    with pytest.raises(ConventionError) as refused:
        fee_lines(lines)
    assert refused.value.code == "amount_too_large"
    assert fee_lines(lines[:4])[-1].amount_fen == 500_000_000  # 20 M yuan is allowed


def test_limits_are_named_settings():
    limits = Limits.from_env({"HUB_LIMIT_MAX_PRICE_FEN": "1000", "HUB_LIMIT_MAX_LINES": "3"})
    assert limits.max_price_fen == 1000 and limits.max_lines == 3 and limits.max_bill_fen == DEFAULT_LIMITS.max_bill_fen
    with pytest.raises(ConventionError):
        fee_lines([{**LINE, "pric": "10.01"}], limits)
    with pytest.raises(ConventionError):
        fee_lines([LINE] * 4, limits)


def test_the_worst_day_the_limits_allow_still_fits_a_bigint():
    bills_a_day = 10_000_000  # ~30 times the 2023 national daily average of cross-province settlements
    assert DEFAULT_LIMITS.max_bill_fen * bills_a_day < 2**63 - 1


def test_the_claim_uses_the_same_parser():
    mdtrt = {"med_type": "21", "mdtrtarea_admvs": "440100", "hosp_lv": "3", "begntime": "2026-03-10"}
    with pytest.raises(ConventionError) as refused:
        claim_from(mdtrt, [{**LINE, "det_item_fee_sumamt": "30.00"}])
    assert refused.value.code == "amount_mismatch"
    claim = claim_from(mdtrt, [LINE])
    assert claim.lines[0].amount_fen == 2500


@pytest.mark.parametrize("value", ["a\x00b", "a\nb", {"k\x01": 1}, [["x\x7f"]], {"a": {"b": ["\x1b[31m"]}}])
def test_control_characters_anywhere_are_refused(value):
    with pytest.raises(ConventionError) as refused:
        check_text({"data": value})
    assert refused.value.code == "invalid_characters"


def test_deep_nesting_is_refused():
    deep: object = "x"
    for _ in range(12):
        deep = [deep]
    with pytest.raises(ConventionError) as refused:
        check_text({"data": deep})
    assert refused.value.code == "invalid_input"


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                           max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(json_values, st.fixed_dictionaries(
    {"med_list_codg": json_values, "cnt": json_values, "pric": json_values},
    optional={"feedetl_sn": json_values, "det_item_fee_sumamt": json_values, "mdtrt_id": json_values})), max_size=5))
def test_any_json_is_either_parsed_within_limits_or_refused_with_a_code(feedetail):
    try:
        lines = fee_lines(feedetail)
    except ConventionError as exc:
        assert exc.code in {"invalid_field", "invalid_amount", "amount_too_large", "amount_mismatch", "too_many_lines"}
        return
    assert sum(l.amount_fen for l in lines) <= DEFAULT_LIMITS.max_bill_fen
    assert all(0 <= l.pric_fen <= DEFAULT_LIMITS.max_price_fen for l in lines)
