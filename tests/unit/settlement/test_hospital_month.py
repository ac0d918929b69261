"""The hospital's month (3260-3262, 3203/3204) against the fake repository: the lines, their
confirmation and rollback, the clearing application and its cancellation, each change one
HospitalMonthChanged event, every refusal naming its field and changing nothing."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from hub.settlement.domain.money import yuan_to_fen
from hub.settlement.service_layer.reasons import Why

from .test_handlers import CERTNO, FILED_TO_GZ, IDENTIFIED, KEY, NOW, Hub

MARCH = {"trt_year": "2026", "trt_month": "03"}
APRIL_2 = datetime(2026, 4, 2, 2, 0, tzinfo=timezone.utc)


@pytest.fixture
def month() -> tuple[Hub, list[dict]]:
    """Three stays settled on 12 March (one of a person the bureau named, one reversed the same
    day) and an outpatient visit: five lines, the reversal's amounts negated."""
    hub = Hub()
    ticks = iter(range(10_000))  # a second a call: the lines come in the order they were made
    hub.service.clock = lambda: NOW + timedelta(seconds=next(ticks))
    hub.read_model.enrol(KEY, "371525199001011234", "371525", filings=[{**FILED_TO_GZ[0], "filing_id": "F-GX"}])
    stays = [hub.settle(hub.bill(("A", "1", price))) for price in ("1000.00", "2500.00")]
    named = hub.open(psn=IDENTIFIED)
    hub.upload(named, ("A", "1", "800.00"))
    stays.append(hub.settle(named))
    outpatient = hub.ok("2201", {"mdtrtinfo": {"psn_no": "371525199001011234", "med_type": "11",
                                               "begntime": "2026-03-12 08:00:00"}})["data"]["mdtrt_id"]
    hub.upload(outpatient, ("A", "1", "100.00"))
    hub.ok("2207", {"data": {"mdtrt_id": outpatient}})
    hub.ok("2305", {"data": {"setl_id": stays[1]["setl_id"]}})
    rows = hub.ok("3260", {"data": {**MARCH, "startrow": 1}})["data"]
    return hub, rows


def events(hub: Hub) -> list[dict]:
    decoded = [hub.codec.decode(payload) for _, payload in hub.repo.tables.outbox]
    return [d.value for d in decoded if d.record_name.endswith("HospitalMonthChanged")]


def confirm(rows: list[dict], flag: str = "1") -> list[dict]:
    return [{k: r[k] for k in ("certno", "mdtrt_id", "mdtrt_setl_time", "setl_sn", "medfee_sumamt",
                               "optins_pay_sumamt")} | {"cnfm_flag": flag} for r in rows]


def test_3260_lists_the_months_settlements_and_reversals_as_a_his_stores_them(month):
    hub, rows = month
    assert [r["seqno"] for r in rows] == [1, 2, 3, 4, 5]
    kinds = [(r["refd_setl_flag"], r["clr_type"], r["medfee_sumamt"]) for r in rows]
    assert kinds == [("0", "21", "1000.00"), ("0", "21", "2500.00"), ("0", "21", "800.00"), ("0", "11", "100.00"),
                     ("1", "21", "-2500.00")]
    reversal = rows[4]
    assert reversal["setl_id"] == rows[1]["setl_sn"] and reversal["setl_sn"].startswith("R")  # the reversal's own id
    assert yuan_to_fen(reversal["optins_pay_sumamt"]) == -yuan_to_fen(rows[1]["optins_pay_sumamt"])
    named = rows[2]
    assert (named["certno"], named["psn_name"]) == (CERTNO, "张三")  # in clear to the treating hospital only
    assert all(r["mdtrtarea"] == "440100" and r["medins_no"] == "H44010000001" and r["cnfm_flag"] == "" for r in rows)
    stored = str(hub.repo.tables.settlements) + str(hub.repo.tables.requests)
    assert CERTNO not in stored  # nothing the hub keeps names the person
    assert hub.ok("3260", {"data": {**MARCH, "startrow": 6}}) == {"data": [], "totalrow": 5}
    assert hub.ok("3260", {"data": {"trt_year": "2026", "trt_month": "02"}})["data"] == []
    refused = hub.call("3260", {"data": {"trt_year": "2026", "trt_month": "13"}})
    assert refused.reason is Why.INVALID_FIELD and "trt_month" in refused.body["err_msg"]


def test_3261_confirms_in_batches_and_3262_rolls_a_batch_back(month):
    hub, rows = month
    first = hub.call("3261", {"data": {**MARCH, "totalrow": 3}, "detail": confirm(rows[:2]) + confirm(rows[2:3], "0")},
                     msgid="CNFM-1")
    assert first.reason is None and first.body["output"]["data"]["cnfm_cnt"] == 2
    hub.ok("3261", {"data": MARCH, "detail": confirm(rows[3:])})
    flags = [r["cnfm_flag"] for r in hub.ok("3260", {"data": MARCH})["data"]]
    assert flags == ["1", "1", "0", "1", "1"]
    (confirmed, second) = events(hub)
    assert (confirmed["action"], confirmed["msgid"], confirmed["month"]) == ("LINES_CONFIRMED", "CNFM-1", "202603")
    assert [(l["settlement_id"], l["kind"], l["cnfm_flag"]) for l in confirmed["lines"]] == [
        (rows[0]["setl_id"], "COMPLETED", "1"), (rows[1]["setl_id"], "COMPLETED", "1"),
        (rows[2]["setl_id"], "COMPLETED", "0")]
    assert [l["kind"] for l in second["lines"]] == ["COMPLETED", "REVERSED"]

    again = hub.call("3261", {"data": {**MARCH, "totalrow": 3}, "detail": confirm(rows[:2]) + confirm(rows[2:3], "0")},
                     msgid="CNFM-1")
    assert again.body["output"] == first.body["output"] and len(events(hub)) == 2  # answered as before, nothing again

    back = hub.ok("3262", {**MARCH, "otransid": "CNFM-1"})  # hsa-his sends the fields straight under input
    assert back["data"]["rollback_cnt"] == 3
    assert [r["cnfm_flag"] for r in hub.ok("3260", {"data": MARCH})["data"]] == ["", "", "", "1", "1"]
    rolled = events(hub)[-1]
    assert rolled["action"] == "LINES_ROLLED_BACK" and {l["cnfm_flag"] for l in rolled["lines"]} == {""}
    assert hub.ok("3262", {"data": {**MARCH, "otransid": "0"}})["data"]["rollback_cnt"] == 2  # "0": every one


@pytest.mark.parametrize("detail,reason,field", [
    (lambda rows: [dict(confirm(rows[:1])[0], medfee_sumamt="999.00")], Why.AMOUNT_MISMATCH, "detail.0.medfee_sumamt"),
    (lambda rows: [dict(confirm(rows[:1])[0], optins_pay_sumamt="1.00")], Why.AMOUNT_MISMATCH, "detail.0.optins_pay_sumamt"),
    (lambda rows: [dict(confirm(rows[:1])[0], setl_sn="S-NONE")], Why.MONTH_LINE_NOT_FOUND, "detail.0.setl_sn"),
    (lambda rows: confirm(rows[:1]) * 2, Why.INVALID_FIELD, "detail.1.setl_sn"),
    (lambda rows: [dict(confirm(rows[:1])[0], cnfm_flag="2")], Why.INVALID_FIELD, "detail.0.cnfm_flag"),
    (lambda rows: confirm(rows[:1]) * 101, Why.INVALID_FIELD, "detail"),
    (lambda rows: [], Why.INVALID_FIELD, "detail"),
])
def test_a_confirmation_that_does_not_match_the_hubs_line_is_refused_and_changes_nothing(month, detail, reason, field):
    hub, rows = month
    before = (dict(hub.repo.tables.confirmations), list(hub.repo.tables.outbox))
    refused = hub.call("3261", {"data": MARCH, "detail": detail(rows)})
    assert refused.reason is reason and field in refused.body["err_msg"], refused.body
    assert (hub.repo.tables.confirmations, hub.repo.tables.outbox) == before


def test_3203_files_the_months_application_once_its_totals_are_the_hubs_and_3204_cancels_it(month):
    hub, rows = month
    stays = [r for r in rows if r["clr_type"] == "21"]
    totals = {"clr_type": "21", "clr_way": "1", "setlym": "202603", "psntime": 2, "begndate": "2026-03-01",
              "enddate": "2026-03-31",
              "medfee_sumamt": f"{sum(yuan_to_fen(r['medfee_sumamt']) for r in stays) / 100:.2f}",
              "fund_appy_sum": f"{sum(yuan_to_fen(r['optins_pay_sumamt']) for r in stays) / 100:.2f}"}
    assert totals["medfee_sumamt"] == "1800.00"  # 1000 + 2500 + 800 - 2500 reversed
    early = hub.call("3203", {"data": totals})
    assert early.reason is Why.MONTH_NOT_OVER and "setlym" in early.body["err_msg"]
    hub.service.clock = lambda: APRIL_2
    wrong = hub.call("3203", {"data": {**totals, "fund_appy_sum": "1.00"}})
    assert wrong.reason is Why.AMOUNT_MISMATCH and "fund_appy_sum" in wrong.body["err_msg"]
    assert hub.call("3203", {"data": {**totals, "psntime": 3}}).reason is Why.AMOUNT_MISMATCH
    applied = hub.ok("3203", {"data": totals})["result"]["clr_appy_evt_id"]
    event = events(hub)[-1]
    assert (event["action"], event["application"]["clr_appy_evt_id"], event["application"]["fund_appy_sum_fen"]) == (
        "CLEARING_APPLIED", applied, yuan_to_fen(totals["fund_appy_sum"]))
    assert hub.call("3203", {"data": totals}).reason is Why.ALREADY_APPLIED
    locked = hub.call("3261", {"data": MARCH, "detail": confirm(rows[:1])})
    assert locked.reason is Why.MONTH_APPLIED and applied in locked.body["err_msg"]
    assert hub.call("3262", {"data": MARCH}).reason is Why.MONTH_APPLIED

    assert hub.ok("3204", {"data": {"clr_appy_evt_id": applied}})["result"]["status"] == "CANCELLED"
    assert events(hub)[-1]["action"] == "CLEARING_CANCELLED"
    assert hub.call("3204", {"data": {"clr_appy_evt_id": applied}}).reason is Why.APPLICATION_CANCELLED
    assert hub.call("3204", {"data": {"clr_appy_evt_id": "CA-NONE"}}).reason is Why.APPLICATION_NOT_FOUND
    assert hub.ok("3261", {"data": MARCH, "detail": confirm(rows[:1])})["data"]["cnfm_cnt"] == 1  # open again


def test_another_hospital_sees_none_of_the_lines_and_cancels_none_of_the_applications(month):
    from .test_handlers import OTHER

    hub, rows = month
    assert hub.ok("3260", {"data": MARCH}, hospital=OTHER) == {"data": [], "totalrow": 0}
    refused = hub.call("3261", {"data": MARCH, "detail": confirm(rows[:1])}, hospital=OTHER)
    assert refused.reason is Why.MONTH_LINE_NOT_FOUND
    hub.service.clock = lambda: APRIL_2
    applied = hub.ok("3203", {"data": {"clr_type": "11", "setlym": "202603", "medfee_sumamt": "100.00",
                                       "fund_appy_sum": rows[3]["optins_pay_sumamt"], "psntime": 1}})
    taken = hub.call("3204", {"data": {"clr_appy_evt_id": applied["result"]["clr_appy_evt_id"]}}, hospital=OTHER)
    assert taken.reason is Why.APPLICATION_NOT_FOUND
