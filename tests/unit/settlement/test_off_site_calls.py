"""The calls HIS code makes around an off-site patient (2001, 2403, 5301-5304, 5269/5270): their
nodes as public HIS code reads them, answered from what the hub holds (empty where it holds nothing)."""

from __future__ import annotations

from hub.settlement.service_layer.reasons import Why

from .test_handlers import FILED_TO_GZ, KEY, OTHER, PSN, STRANGER, Hub

BEGIN = "2026-03-10 08:00:00"


def test_2001_says_which_funds_would_pay_as_the_engine_would():
    hub = Hub()
    stay = hub.ok("2001", {"data": {"psn_no": PSN, "med_type": "21", "begntime": BEGIN}})["trtinfo"]
    assert [(r["fund_pay_type"], r["trt_enjymnt_flag"]) for r in stay] == [("390100", "1"), ("390200", "0")]
    assert stay[0]["psn_no"] == PSN and stay[0]["trt_chk_rslt"] == "可享受"  # 九江 has no serious-illness figures
    # 九江 settles no outpatient care off-site: the same refusal a bill would get, as the reason
    visit = hub.ok("2001", {"data": {"psn_no": PSN, "med_type": "11", "begntime": BEGIN}})["trtinfo"]
    assert visit[0]["trt_enjymnt_flag"] == "0" and "does not cover this visit type off-site" in visit[0]["trt_chk_rslt"]
    unfiled = "360400199001019990"
    hub.read_model.enrol(KEY, unfiled, "360400")
    refused = hub.ok("2001", {"data": {"psn_no": unfiled, "med_type": "21", "begntime": BEGIN}})["trtinfo"][0]
    assert refused["trt_enjymnt_flag"] == "0" and "filing" in refused["trt_chk_rslt"]
    emergency = hub.ok("2001", {"data": {"psn_no": unfiled, "med_type": "24", "begntime": BEGIN}})["trtinfo"][0]
    assert emergency["trt_enjymnt_flag"] == "1"  # an emergency admission counts as filed
    assert hub.call("2001", {"data": {"psn_no": STRANGER, "med_type": "21"}}).reason.code == "person_not_enrolled"


def test_2403_changes_an_open_stays_medical_type_and_diagnoses_and_nothing_else():
    hub = Hub()
    stay = hub.open()
    hub.ok("2403", {"adminfo": {"mdtrt_id": stay, "psn_no": PSN, "med_type": "24", "dise_codg": "J18.900"},
                    "diseinfo": [{"diag_code": "I10.x00", "diag_name": "高血压"}]})
    visit = hub.repo.tables.visits[stay]
    assert (visit.med_type, visit.diagnoses) == ("24", "J18.900 I10.x00")
    moved = hub.call("2403", {"adminfo": {"mdtrt_id": stay, "begntime": "2026-03-01 08:00:00"}})
    assert moved.reason is Why.INVALID_FIELD and "begntime" in moved.body["err_msg"]
    assert hub.call("2403", {"adminfo": {"mdtrt_id": stay, "med_type": "11"}}).reason is Why.INVALID_FIELD
    assert hub.call("2403", {"adminfo": {"mdtrt_id": stay, "med_type": "22"}}).reason is Why.INVALID_FIELD
    assert hub.call("2403", {"adminfo": {"mdtrt_id": stay}}, hospital=OTHER).reason is Why.VISIT_OF_ANOTHER_HOSPITAL
    hub.upload(stay, ("A", "1", "100.00"))
    hub.settle(stay)
    assert hub.call("2403", {"adminfo": {"mdtrt_id": stay}}).reason is Why.VISIT_ALREADY_SETTLED


def test_5301_to_5304_answer_filings_and_open_stays_from_what_the_hub_holds():
    hub = Hub()
    assert hub.ok("5301", {"psn_no": PSN}) == {"feedetail": []}  # no chronic-disease filings are kept
    filed = hub.ok("5302", {"data": {"psn_no": PSN}})["psnfixmedin"]
    assert [(f["psn_no"], f["biz_appy_type"], f["mdtrtarea_admvs"], f["begndate"], f["vali_flag"]) for f in filed] == [
        (PSN, "REFERRAL", "440100", "2026-01-01", "1")]
    assert hub.ok("5304", {"psn_no": PSN})["refmedin"][0]["trt_dcla_detl_sn"] == FILED_TO_GZ[0]["filing_id"]
    assert hub.ok("5303", {"data": {"psn_no": PSN}}) == {"data": []}
    stay = hub.open()
    rows = hub.ok("5303", {"data": {"psn_no": PSN}})["data"]
    assert [(r["mdtrt_id"], r["psn_no"], r["med_type"]) for r in rows] == [(stay, PSN, "21")]
    assert hub.ok("5303", {"data": {"psn_no": PSN}}, hospital=OTHER) == {"data": []}  # another hospital's stays: none


def test_5269_and_5270_print_a_settlements_slip_of_its_own_clearing_type():
    hub = Hub()
    stay = hub.bill(("A", "1", "300.00"))
    info = hub.settle(stay)
    slip = hub.ok("5270", {"data": {"mdtrtRegno": info["setl_id"], "mdtrtId": stay}})  # hsa-his's names
    assert (slip["title"], slip["setlinfo"]["setl_id"], slip["hub_status"]) == ("异地住院结算单", info["setl_id"], "SETTLED")
    wrong = hub.call("5269", {"data": {"setl_id": info["setl_id"]}})
    assert wrong.reason is Why.INVALID_FIELD and "5270" in wrong.body["err_msg"]
    assert hub.call("5270", {"data": {"setl_id": info["setl_id"]}}, hospital=OTHER).reason is Why.SETTLEMENT_OF_ANOTHER_HOSPITAL
