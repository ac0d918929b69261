"""Manual claims (零星报销) against the fake repository: priced by the engine on the home policy's
claim-at-home terms (READINGS.md 37), sharing the person's accumulators with direct settlement,
idempotent by claim number, every refusal a stable code that changes nothing, and each party
seeing only its own claims. Expected figures are computed by hand here from the policy files."""

from __future__ import annotations

import copy
from dataclasses import replace
from datetime import date, datetime, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.messaging import AvroCodec, SchemaRegistry
from hub.reference.policy import Level
from hub.settlement.domain.model import Accumulators
from hub.settlement.entrypoints.claims_http import status_of
from hub.settlement.service_layer.claims import Actor, ClaimRefused, Claims
from hub.settlement.service_layer.handlers import SettlementService
from hub.settlement.service_layer.identity import Hospital, HospitalRegistry, person_ref
from hub.settlement.service_layer.pricing import ReferenceCache

from .builders import CATALOGUE, sample_policies
from .fakes import FakeReadModel, FakeRepository

KEY = b"unit-test-person-key"
NOW = datetime(2026, 3, 20, 2, 0, tzinfo=timezone.utc)
GZ = Hospital("H44010000001", "广州 test hospital", "440100", Level("3"), "x")
UNFILED, FILED, CANTONESE = "360400199001010001", "360400199001010002", "440100199001010003"
JIUJIANG = Actor("bureau", "B360400", "360400")
GUANGZHOU = Actor("bureau", "B440100", "440100")
AGENCY_GZ = Actor("agency", "A440100", "440100")
AGENCY_JJ = Actor("agency", "A360400", "360400")
CATALOGUE_JJ = replace(CATALOGUE, pool_code="360400", catalogue_version="360400-test")


class Hub:
    def __init__(self):
        self.codec = AvroCodec(SchemaRegistry())
        self.repo = FakeRepository()
        self.read_model = FakeReadModel(self.codec, sample_policies(), [CATALOGUE, CATALOGUE_JJ])
        self.read_model.enrol(KEY, UNFILED, "360400")
        self.read_model.enrol(KEY, FILED, "360400", filings=[
            {"filing_id": "F-1", "filing_type": "REFERRAL", "target_pool": "440100", "valid_from": date(2026, 1, 1),
             "valid_to": None, "revoked": False}])
        self.read_model.enrol(KEY, CANTONESE, "440100", filings=[
            {"filing_id": "F-2", "filing_type": "REFERRAL", "target_pool": "360400", "valid_from": date(2026, 1, 1),
             "valid_to": None, "revoked": False}])
        self.settle = SettlementService(self.repo, self.read_model, self.codec, KEY, clock=lambda: NOW)
        self.claims = Claims(self.repo, self.read_model, ReferenceCache(self.read_model), self.codec, KEY,
                             HospitalRegistry([GZ]), clock=lambda: NOW)

    def outbox(self) -> list[str]:
        return [self.codec.decode(p).record_name.rsplit(".", 1)[-1] for _, p in self.repo.tables.outbox]

    def acc(self, psn: str) -> Accumulators:
        return self.repo.year_accumulators(person_ref(KEY, psn), 2026)


def claim(claim_no: str = "LX-0001", psn: str = UNFILED, amount: str = "10000.00", **over) -> dict:
    body = {"claim_no": claim_no, "psn_no": psn, "med_type": "21", "treatment_pool": "440100",
            "hospital_code": GZ.code, "begntime": "2026-03-02", "endtime": "2026-03-09", "reason": "NOT_FILED",
            "feedetail": [{"feedetl_sn": "1", "med_list_codg": "A", "cnt": "1", "pric": amount,
                           "det_item_fee_sumamt": amount}]}
    return {**body, **over}


@pytest.fixture
def hub() -> Hub:
    return Hub()


def refused(call, *args) -> ClaimRefused:
    with pytest.raises(ClaimRefused) as info:
        call(*args)
    return info.value


def test_an_unfiled_claim_is_priced_at_the_home_policys_unfiled_terms(hub):
    # 九江 residents (360400-RESIDENT-2020.2): unfiled care does not settle at the counter; the
    # claim at home gets the UNREGISTERED terms — deductible 800 yuan, 40 %. A 甲 line of
    # 10,000.00 yuan: (1,000,000 - 80,000) x 40 % = 368,000 fen from the fund, 632,000 the patient's.
    status, answer = hub.claims.submit(JIUJIANG, claim())
    assert status == 201 and answer["status"] == "SETTLED"
    assert (answer["hifp_pay"], answer["hifmi_pay"], answer["maf_pay"], answer["psn_part_amt"]) == (
        "3680.00", "0.00", "0.00", "6320.00")
    assert answer["filing_status"] == "UNREGISTERED" and answer["paid_to_patient"] == "3680.00"
    assert answer["psn_no"] == "3604**********0001"  # masked: no id in clear in what is kept
    assert hub.acc(UNFILED).inpatient_fund_paid == 368_000 and hub.acc(UNFILED).admissions == 1
    assert hub.outbox() == ["ManualClaimSettled"]
    event = hub.codec.decode(hub.repo.tables.outbox[0][1]).value
    assert (event["hifp_pay_fen"], event["psn_part_amt_fen"], event["medfee_sumamt_fen"]) == (368_000, 632_000, 1_000_000)
    assert event["home_pool"] == "360400" and event["lodged_by"] == "bureau:360400"


def test_the_same_claim_again_answers_the_same_and_a_reused_number_is_refused(hub):
    first = hub.claims.submit(JIUJIANG, claim())
    assert hub.claims.submit(JIUJIANG, claim()) == (200, first[1])
    before = copy.deepcopy(hub.repo.tables)
    e = refused(hub.claims.submit, JIUJIANG, claim(amount="9000.00"))
    assert (e.code, status_of(e)) == ("claim_number_reused", 409)
    assert hub.repo.tables == before and hub.outbox() == ["ManualClaimSettled"]


def test_the_same_claim_again_answers_as_before_after_the_enrolment_has_gone(hub):
    """Idempotency first: a bureau that re-sends a paid claim (its answer was lost) gets the same
    answer, whatever the registrations say by then; a new claim for the same person is refused
    and keeps nothing."""
    first = hub.claims.submit(JIUJIANG, claim())
    del hub.read_model.registrations[person_ref(KEY, UNFILED)]
    assert hub.claims.submit(JIUJIANG, claim()) == (200, first[1])
    before = copy.deepcopy(hub.repo.tables)
    e = refused(hub.claims.submit, JIUJIANG, claim("LX-0002"))
    assert e.code == "person_not_enrolled" and hub.repo.tables == before


def test_every_refused_line_is_reported_and_nothing_is_kept(hub):
    body = claim()
    body["feedetail"] = [
        {"feedetl_sn": "1", "med_list_codg": "A", "cnt": "1", "pric": "10.00"},
        {"feedetl_sn": "2", "med_list_codg": "A", "cnt": "2", "pric": "10.00", "det_item_fee_sumamt": "25.00"},
        {"feedetl_sn": "3", "med_list_codg": "A", "cnt": "1", "pric": "-5.00"},
    ]
    before = copy.deepcopy(hub.repo.tables)
    e = refused(hub.claims.submit, JIUJIANG, body)
    assert e.code == "invalid_lines" and status_of(e) == 422
    assert [(l["line"], l["reason"]) for l in e.lines] == [(2, "amount_mismatch"), (3, "invalid_amount")]
    assert "feedetail.1" in e.lines[0]["message"] and "feedetail.2" in e.lines[1]["message"]
    assert hub.repo.tables == before


@pytest.mark.parametrize("actor, over, code, status", [
    (GUANGZHOU, {"home_pool": "360400"}, "claim_of_another_pool", 403),
    (GUANGZHOU, {"treatment_pool": "360400", "hospital_code": "H36040000009", "hosp_lv": "3"},
     "person_not_enrolled", 422),  # a 九江 insured, asked by 广州: as if unknown
    (JIUJIANG, {"treatment_pool": "360400"}, "not_off_site", 422),
    (JIUJIANG, {"reason": "BECAUSE"}, "invalid_field", 422),
    (JIUJIANG, {"endtime": "2026-02-01"}, "invalid_field", 422),
    (JIUJIANG, {"endtime": "2027-01-01"}, "invalid_field", 422),
    (JIUJIANG, {"treatment_pool": "510900"}, "hospital_region_mismatch", 422),
    (JIUJIANG, {"hospital_code": "H51090000009", "treatment_pool": "510900"}, "invalid_field", 422),  # no hosp_lv
    (JIUJIANG, {"claim_no": "LX 1"}, "invalid_field", 422),
    (AGENCY_JJ, {"home_pool": "360400"}, "claim_outside_agency_region", 403),
])
def test_refusals_are_stable_codes_that_change_nothing(hub, actor, over, code, status):
    before = copy.deepcopy(hub.repo.tables)
    e = refused(hub.claims.submit, actor, claim(**over))
    assert (e.code, status_of(e)) == (code, status)
    assert hub.repo.tables == before


def test_a_claim_and_a_direct_settlement_share_the_persons_accumulators(hub):
    # A filed (REFERRAL) 九江 resident: 600 yuan deductible, 50 %. The claim (the counter was down)
    # of 1,000.00: (100,000 - 60,000) x 50 % = 20,000 fen. Then a stay settled at the counter;
    # the year's accumulators hold both, and the second admission is counted as the second.
    hub.claims.submit(JIUJIANG, claim(psn=FILED, amount="1000.00", reason="COUNTER_DOWN"))
    assert hub.acc(FILED).inpatient_fund_paid == 20_000 and hub.acc(FILED).admissions == 1
    mdtrt = hub.settle.handle(GZ, {"infno": "2401", "msgid": "m1", "input": {"mdtrtinfo": {
        "psn_no": FILED, "med_type": "21", "begntime": "2026-03-12 08:00:00"}}}).body["output"]["result"]["mdtrt_id"]
    hub.settle.handle(GZ, {"infno": "2301", "msgid": "m2", "input": {"feedetail": [
        {"mdtrt_id": mdtrt, "med_list_codg": "A", "cnt": "1", "pric": "1000.00"}]}})
    out = hub.settle.handle(GZ, {"infno": "2304", "msgid": "m3", "input": {"data": {
        "mdtrt_id": mdtrt, "endtime": "2026-03-15 08:00:00"}}}).body["output"]["setlinfo"]
    paid = round(float(out["hifp_pay"]) * 100)
    assert hub.acc(FILED).inpatient_fund_paid == 20_000 + paid and hub.acc(FILED).admissions == 2
    assert hub.outbox() == ["ManualClaimSettled", "SettlementCompleted"]


def test_serious_illness_routed_home_is_paid_in_the_manual_claim(hub):
    # 广州 residents (440100-RESIDENT-2015.1), filed (REFERRAL) to 九江, a 3rd-level stay of a 甲
    # line of 100,000.00 yuan. Basic: deductible 900 yuan, 60 - 10 = 50 %:
    # (10,000,000 - 90,000) x 50 % = 4,955,000. Compliant out-of-pocket 5,045,000; serious illness
    # (off-site: claimed at home, 零星报销) 50 % above 18,000 yuan: (5,045,000 - 1,800,000) x 50 % =
    # 1,622,500. The patient: 10,000,000 - 4,955,000 - 1,622,500 = 3,422,500.
    body = claim(psn=CANTONESE, amount="100000.00", treatment_pool="360400", hospital_code="H36040000009",
                 hosp_lv="3", reason="ROUTED_HOME")
    _, answer = hub.claims.submit(GUANGZHOU, body)
    assert (answer["hifp_pay"], answer["hifmi_pay"], answer["psn_part_amt"]) == ("49550.00", "16225.00", "34225.00")
    assert hub.acc(CANTONESE).serious_paid == 1_622_500


def test_an_agency_lodges_and_the_home_bureau_decides(hub):
    status, lodged = hub.claims.submit(AGENCY_GZ, claim(home_pool="360400"))
    assert status == 202 and lodged["status"] == "LODGED" and "hifp_pay" not in lodged
    assert hub.repo.tables.accumulators == {} and hub.outbox() == []
    # each party sees only its own: the agency what it lodged, the bureau its insured's
    assert [c["claim_no"] for c in hub.claims.list(AGENCY_GZ)] == ["LX-0001"]
    assert hub.claims.list(AGENCY_JJ) == [] and hub.claims.list(GUANGZHOU) == []
    assert [c["status"] for c in hub.claims.list(JIUJIANG, "LODGED")] == ["LODGED"]
    assert status_of(refused(hub.claims.get, AGENCY_JJ, "360400", "LX-0001")) == 404
    assert status_of(refused(hub.claims.decide, GUANGZHOU, "360400", "LX-0001", {"decision": "APPROVE"})) == 404
    assert refused(hub.claims.decide, JIUJIANG, "360400", "LX-0001", {"decision": "REJECT"}).code == "note_required"
    approved = hub.claims.decide(JIUJIANG, "360400", "LX-0001", {"decision": "APPROVE"})
    assert approved["status"] == "SETTLED" and approved["hifp_pay"] == "3680.00"
    assert approved["decided_by"] == "bureau:360400" and hub.outbox() == ["ManualClaimSettled"]
    assert hub.claims.decide(JIUJIANG, "360400", "LX-0001", {"decision": "APPROVE"}) == approved
    e = refused(hub.claims.decide, JIUJIANG, "360400", "LX-0001", {"decision": "REJECT", "note": "late"})
    assert (e.code, status_of(e)) == ("claim_already_decided", 409)
    assert hub.claims.get(AGENCY_GZ, "360400", "LX-0001")["status"] == "SETTLED"


def test_a_rejected_claim_pays_nothing(hub):
    hub.claims.submit(AGENCY_GZ, claim(home_pool="360400"))
    rejected = hub.claims.decide(JIUJIANG, "360400", "LX-0001", {"decision": "REJECT", "note": "receipts unreadable"})
    assert rejected["status"] == "REJECTED" and rejected["note"] == "receipts unreadable"
    assert hub.repo.tables.accumulators == {} and hub.outbox() == []
    assert refused(hub.claims.decide, JIUJIANG, "360400", "LX-0001", {"decision": "APPROVE"}).code == "claim_already_decided"


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
                    max_leaves=12)


@given(field=st.sampled_from(sorted(claim())), value=JSON, line_field=st.sampled_from(
    ["med_list_codg", "cnt", "pric", "det_item_fee_sumamt", "feedetl_sn"]), line_value=JSON, whole=JSON)
@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
def test_whatever_a_claimant_sends_is_answered_or_refused_with_a_stable_code_and_changes_nothing_when_refused(
        field, value, line_field, line_value, whole):
    hub = Hub()
    bodies = [whole, {**claim(), field: value}, claim()]
    bodies[2]["feedetail"][0][line_field] = line_value
    for n, body in enumerate(bodies):
        if isinstance(body, dict):
            body = {**body, "claim_no": f"LX-H{n}"} if body.get("claim_no") == "LX-0001" else body
        before = copy.deepcopy(hub.repo.tables)
        try:
            status, _ = hub.claims.submit(JIUJIANG, body)
        except ClaimRefused as e:
            assert 400 <= status_of(e) < 500 and e.code and e.message
            assert hub.repo.tables == before
        else:
            assert status in (200, 201)
