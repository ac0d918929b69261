"""Hostile and malformed input on the hospital interface, against the real service: every
refusal is a 4xx with a stable code in the envelope, never a 5xx, and changes nothing."""

from __future__ import annotations

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.settlement.adapters import database as db
from hub.settlement.service_layer.envelope import KNOWN

from .test_settlement_service import (GZ_A, JIA_DRUG, call, client, enrolled_person, reference_loaded,  # noqa: F401
                                      stack)

BUSINESS_TABLES = (db.visits, db.fee_details, db.settlements, db.accumulators, db.outbox)


def counts(hub) -> dict[str, int]:
    with hub.engine.connect() as conn:
        return {t.name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one() for t in BUSINESS_TABLES}


def test_every_malformed_shape_found_by_the_fault_hunt_is_a_4xx_with_a_stable_code(stack, producer):
    """Finding 4 (each of these answered 503 "retry with the same msgid", forever) and finding 6's med_type."""
    psn, _ = enrolled_person(stack, producer)
    http, env = client(stack, GZ_A)
    status, body = call(http, env("2401", {"mdtrtinfo": {"psn_no": psn, "med_type": "21", "begntime": "2026-03-10"}}))
    assert status == 200, body
    mdtrt = body["output"]["result"]["mdtrt_id"]
    line = {"feedetl_sn": "1", "mdtrt_id": mdtrt, "med_list_codg": JIA_DRUG, "cnt": "1", "pric": "10.00"}
    before = counts(stack)
    cases = [
        (env("2301", {"feedetail": [dict(line, pric=10.555)]}), 200, "invalid_amount"),  # a JSON number, 3 decimals
        (env("2301", {"feedetail": [dict(line, cnt=1.00005)]}), 200, "invalid_amount"),
        (env("2301", {"feedetail": [dict(line, pric=["10.00"])]}), 200, "invalid_field"),
        (env("2301", {"feedetail": [{k: v for k, v in line.items() if k != "med_list_codg"}]}), 200, "invalid_field"),
        (env("2301", {"feedetail": ["a fee line"]}), 200, "invalid_input"),  # a node of the wrong shape
        (env("2301", {"feedetail": [dict(line, mdtrt_id=[mdtrt])]}), 200, "invalid_field"),
        (env("2301", {"feedetail": [dict(line, pric="-10.00")]}), 200, "invalid_amount"),
        (env("2301", {"feedetail": [dict(line, pric="9999999999.99", cnt="1000000")]}), 200, "amount_too_large"),
        (env("2301", {"feedetail": [dict(line, det_item_fee_sumamt="99.00")]}), 200, "amount_mismatch"),
        (env("2301", {"feedetail": [dict(line, med_list_codg="X\x00")]}), 200, "invalid_characters"),
        (dict(env("2301", {"feedetail": [line]}), msgid="H44010000001\x002026"), 200, "invalid_msgid"),
        (dict(env("2301", {"feedetail": [line]}), msgid="H1\n{\"forged\":1}"), 200, "invalid_msgid"),
        (env("2404", {"data": "M123"}), 200, "invalid_input"),
        (env("1101", {"data": "psn"}), 200, "invalid_input"),
        (env("2401", {"mdtrtinfo": [{"psn_no": psn, "med_type": "21"}]}), 200, "invalid_input"),
        (env("3201", {"data": ["2026-03-01", "2026-03-31"]}), 200, "invalid_input"),
        (env("2201", {"mdtrtinfo": {"psn_no": psn, "med_type": "21", "begntime": "2026-03-10"}}), 200, "invalid_field"),
        (env("2207", {"data": {"mdtrt_id": [mdtrt]}}), 200, "invalid_field"),
        # issue 24's type confusion: each answered internal_error (a bare 500 for the 1e308) before the declared edge
        (env("1101", {"data": {"mdtrt_cert_type": ["02"], "mdtrt_cert_no": "x"}}), 200, "invalid_field"),
        (env("2201", {"mdtrtinfo": {"psn_no": psn, "med_type": "11", "mdtrt_cert_type": {"a": 1}}}), 200, "invalid_field"),
        (env("2401", {"mdtrtinfo": {"psn_no": psn, "med_type": "21", "mdtrt_cert_type": []}}), 200, "invalid_field"),
        (env("2601", {"data": {"omsgid": "M1", "oinfno": ["2304"]}}), 200, "invalid_field"),
        (env("3201", {"data": {"stmt_begndate": "2026-03-01", "stmt_enddate": "2026-03-31",
                               "fixmedins_setl_cnt": 1e308}}), 200, "invalid_field"),
    ]
    for request, want_status, want_code in cases:
        got_status, body = call(http, request)
        assert (got_status, body["err_code"]) == (want_status, want_code), (request["input"], body)
        assert body["infcode"] == "-1" and body["err_msg"]
    assert counts(stack) == before  # not one line, visit, settlement or event


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-2**70, max_value=2**70) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=25)
field_names = st.sampled_from(["data", "mdtrtinfo", "feedetail", "psn_no", "mdtrt_id", "med_type", "begntime",
                               "med_list_codg", "cnt", "pric", "setl_id", "stmt_begndate", "stmt_enddate",
                               "medfee_sumamt", "details", "endtime", "feedetl_sn"])
payloads = st.recursive(json_values, lambda inner: st.dictionaries(field_names, inner, max_size=5)
                        | st.lists(inner, max_size=3), max_leaves=30)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(infno=st.sampled_from(sorted(KNOWN)) | st.text(max_size=6), msgid=st.text(min_size=0, max_size=80),
       payload=st.dictionaries(field_names, payloads, max_size=4) | json_values)
def test_no_hostile_envelope_gets_a_5xx_or_changes_anything(stack, infno, msgid, payload):
    http, env = client(stack, GZ_A)
    before = counts(stack)
    status, body = call(http, dict(env(infno, {}), infno=infno, msgid=msgid, input=payload))
    assert status < 500, body
    if body["infcode"] != "0":
        assert body["infcode"] == "-1" and body["err_code"] and body["err_msg"]
    assert counts(stack) == before
