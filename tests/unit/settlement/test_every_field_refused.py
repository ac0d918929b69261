"""Every transaction's input, each field in turn replaced by a value of the wrong kind — a list, an
object, nesting deeper than the hub takes, a huge or negative number, null, a boolean, control
characters, an overlong or empty string: never a fault of the hub (no exception, no internal
error, an answer that serialises), every refusal names the field, and a refusal changes no
business row. Against the fake repository (no servers); `tests/integration/test_hostile_input.py`
sends a sample of the same through the real HTTP stack."""

from __future__ import annotations

import base64
import copy
from decimal import Decimal
from typing import Any, Callable

import orjson
import pytest

from hub.settlement.domain.model import Accumulators
from hub.settlement.service_layer.envelope import KNOWN
from hub.settlement.service_layer.reasons import Why

from .test_handlers import CERTNO, FILED_TO_GZ, IDENTIFIED, KEY, PSN, Hub

DEEP: dict = {}
_node = DEEP
for _ in range(10):
    _node["x"] = {}
    _node = _node["x"]
BAD_VALUES: list[tuple[str, Any]] = [
    ("a list", ["21"]), ("an object", {"code": "21"}), ("deep nesting", DEEP), ("1e308", Decimal("1E+308")),
    ("2**70", 2**70), ("-1", -1), ("null", None), ("true", True), ("a NUL", "21\x00"), ("a newline", "2\n1"),
    ("5,000 characters", "9" * 5000), ("empty", ""), ("a fraction", Decimal("0.001")),
]
BEGIN = "2026-03-10 08:00:00"


def _settled(hub: Hub) -> dict:
    mdtrt_id = hub.bill(("A", "1", "500.00"))
    return {"mdtrt_id": mdtrt_id, **hub.settle(mdtrt_id)}


def _guanxian_visit(hub: Hub) -> str:
    """An outpatient visit with its fee line, of a 冠县 resident (九江 covers no outpatient care off-site)."""
    hub.read_model.enrol(KEY, "371525199001011234", "371525", filings=FILED_TO_GZ)
    mdtrt_id = hub.ok("2201", {"mdtrtinfo": {"psn_no": "371525199001011234", "med_type": "11",
                                             "begntime": BEGIN}})["data"]["mdtrt_id"]
    hub.upload(mdtrt_id, ("A", "1", "80.00"))
    return mdtrt_id


def _open_outpatient(hub: Hub) -> str:
    return hub.ok("2201", {"mdtrtinfo": {"psn_no": PSN, "med_type": "11", "begntime": BEGIN}})["data"]["mdtrt_id"]


# Each transaction: how to reach the state it acts on (returns names it needs), and its input as a
# HIS sends it — every field a public HIS fills, the ones the hub ignores included.
SETUPS: dict[str, tuple[Callable[[Hub], dict], Callable[[dict], dict]]] = {
    "1101": (lambda h: {}, lambda s: {"data": {"mdtrt_cert_type": "02", "mdtrt_cert_no": CERTNO, "card_sn": "",
                                               "begntime": BEGIN, "psn_cert_type": "01", "certno": CERTNO,
                                               "psn_name": "张三"}}),
    "2201": (lambda h: {}, lambda s: {"mdtrtinfo": {"psn_no": IDENTIFIED, "insutype": "390", "begntime": BEGIN,
                                                    "mdtrt_cert_type": "02", "mdtrt_cert_no": CERTNO, "ipt_otp_no": "MZ1",
                                                    "atddr_no": "D001", "dr_name": "王医生", "dept_code": "01",
                                                    "dept_name": "内科", "caty": "A03", "med_type": "11",
                                                    "dise_codg": "J06.900", "trum_flag": "0", "rel_ttp_flag": "0"}}),
    "2401": (lambda h: {}, lambda s: {"mdtrtinfo": {"psn_no": IDENTIFIED, "insutype": "390", "med_type": "21",
                                                    "begntime": BEGIN, "mdtrt_cert_type": "02", "mdtrt_cert_no": CERTNO,
                                                    "ipt_no": "ZY1", "adm_bed": "12", "dise_codg": "J18.900",
                                                    "adm_diag_dscr": "肺炎"},
                                      "diseinfo": [{"diag_type": "1", "diag_srt_no": "1", "diag_code": "J18.900",
                                                    "diag_name": "肺炎", "diag_time": BEGIN, "vali_flag": "1"}]}),
    "2202": (lambda h: {"mdtrt_id": _open_outpatient(h)},
             lambda s: {"data": {"psn_no": PSN, "mdtrt_id": s["mdtrt_id"], "ipt_otp_no": "MZ1"}}),
    "2404": (lambda h: {"mdtrt_id": h.open()}, lambda s: {"data": {"psn_no": PSN, "mdtrt_id": s["mdtrt_id"]}}),
    "2203": (lambda h: {"mdtrt_id": _open_outpatient(h)},
             lambda s: {"mdtrtinfo": {"mdtrt_id": s["mdtrt_id"], "psn_no": PSN, "med_type": "11", "begntime": BEGIN,
                                      "main_cond_dscr": "咳嗽", "dise_codg": "J06.900", "dise_name": "上感"},
                        "diseinfo": [{"diag_type": "1", "diag_srt_no": "1", "diag_code": "J06.900", "diag_name": "上感",
                                      "diag_dept": "内科", "diag_time": BEGIN, "vali_flag": "1"}]}),
    "2402": (lambda h: {"mdtrt_id": h.open()},
             lambda s: {"dscginfo": {"mdtrt_id": s["mdtrt_id"], "psn_no": PSN, "endtime": "2026-03-12 10:00:00",
                                     "dscg_way": "1", "dscg_maindiag_code": "J18.900"},
                        "diseinfo": [{"diag_code": "J18.900", "diag_name": "肺炎", "diag_type": "1"}]}),
    "2405": (lambda h: {"mdtrt_id": h.open()}, lambda s: {"data": {"mdtrt_id": s["mdtrt_id"], "psn_no": PSN}}),
    "2204": (lambda h: {"mdtrt_id": _open_outpatient(h)},
             lambda s: {"feedetail": [{"feedetl_sn": "1", "mdtrt_id": s["mdtrt_id"], "psn_no": PSN, "chrg_bchno": "B1",
                                       "med_list_codg": "A", "medins_list_codg": "HIS-1",
                                       "det_item_fee_sumamt": Decimal("30.00"), "cnt": Decimal("2"),
                                       "pric": Decimal("15.00"), "fee_ocur_time": BEGIN, "bilg_dept_codg": "01"}]}),
    "2301": (lambda h: {"mdtrt_id": h.open()},
             lambda s: {"feedetail": [{"feedetl_sn": "1", "mdtrt_id": s["mdtrt_id"], "psn_no": PSN, "med_list_codg": "A",
                                       "det_item_fee_sumamt": "100.00", "cnt": "1", "pric": "100.00",
                                       "fee_ocur_time": BEGIN}]}),
    "2205": (lambda h: {"mdtrt_id": h.bill()},
             lambda s: {"data": {"mdtrt_id": s["mdtrt_id"], "feedetl_sn": "0000", "psn_no": PSN, "chrg_bchno": "B1"}}),
    "2302": (lambda h: {"mdtrt_id": h.bill()},
             lambda s: {"data": {"mdtrt_id": s["mdtrt_id"], "feedetl_sn": "1", "psn_no": PSN}}),
    "2303": (lambda h: {"mdtrt_id": h.bill()},
             lambda s: {"data": {"psn_no": PSN, "mdtrt_id": s["mdtrt_id"], "mdtrt_cert_type": "", "medfee_sumamt": "200.00",
                                 "endtime": "2026-03-12 10:00:00", "insutype": "390", "acct_used_flag": "0"}}),
    "2304": (lambda h: {"mdtrt_id": h.bill()},
             lambda s: {"data": {"psn_no": PSN, "mdtrt_id": s["mdtrt_id"], "medfee_sumamt": Decimal("200.00"),
                                 "psn_setlway": "01", "endtime": "2026-03-12 10:00:00", "insutype": "390",
                                 "acct_used_flag": "0", "mid_setl_flag": "0"}}),
    "2206": (lambda h: {"mdtrt_id": h.bill()},
             lambda s: {"data": {"psn_no": PSN, "mdtrt_id": s["mdtrt_id"], "medfee_sumamt": "200.00"}}),
    "2207": (lambda h: {"mdtrt_id": h.bill()},
             lambda s: {"data": {"psn_no": PSN, "mdtrt_id": s["mdtrt_id"], "medfee_sumamt": "200.00",
                                 "psn_setlway": "01", "chrg_bchno": "B1", "acct_used_flag": "0"}}),
    "2208": (_settled, lambda s: {"data": {"psn_no": PSN, "mdtrt_id": s["mdtrt_id"], "setl_id": s["setl_id"]}}),
    "2305": (_settled, lambda s: {"data": {"psn_no": PSN, "mdtrt_id": s["mdtrt_id"], "setl_id": s["setl_id"]}}),
    "2601": (lambda h: {"omsgid": h.call("2401", {"mdtrtinfo": {"psn_no": PSN, "med_type": "21", "begntime": BEGIN}},
                                         msgid="LOST-1").body["inf_refmsgid"] and "LOST-1"},
             lambda s: {"data": {"psn_no": PSN, "omsgid": s["omsgid"], "oinfno": "2401"}}),
    "3201": (_settled, lambda s: {"data": {"insutype": "390", "clr_type": "21", "setl_optins": "440100",
                                           "stmt_begndate": "2026-03-12", "stmt_enddate": "2026-03-12",
                                           "medfee_sumamt": "500.00", "fund_pay_sumamt": s["fund_pay_sumamt"],
                                           "acct_pay": "0.00", "fixmedins_setl_cnt": 1, "refd_setl_flag": "0"}}),
    "3202": (_settled, lambda s: {"data": {"setl_optins": "440100", "clr_type": "21", "stmt_begndate": "2026-03-12",
                                           "stmt_enddate": "2026-03-12", "medfee_sumamt": "500.00",
                                           "fund_pay_sumamt": s["fund_pay_sumamt"], "fixmedins_setl_cnt": 1,
                                           "details": [{"setl_id": s["setl_id"], "medfee_sumamt": "500.00",
                                                        "fund_pay_sumamt": s["fund_pay_sumamt"]}]}}),
    "5203": (_settled, lambda s: {"data": {"psn_no": PSN, "setl_id": s["setl_id"], "mdtrt_id": s["mdtrt_id"]}}),
    "5204": (_settled, lambda s: {"data": {"psn_no": PSN, "setl_id": s["setl_id"], "mdtrt_id": s["mdtrt_id"]}}),
    "5206": (lambda h: {}, lambda s: {"data": {"psn_no": PSN, "cum_ym": "202603"}}),
    "9001": (lambda h: {}, lambda s: {"signIn": {"opter_no": "0001", "mac": "00-16-3E-00-00-01", "ip": "10.1.1.1"}}),
    "9002": (lambda h: {}, lambda s: {"signOut": {"sign_no": "abc", "opter_no": "0001"}}),
    "9101": (lambda h: {}, lambda s: {"fsUploadIn": {"in": base64.b64encode(b"setl_id\tmdtrt_id\n").decode(),
                                                     "filename": "detail.txt", "fixmedins_code": "H44010000001"}}),
    "9102": (lambda h: {"number": h.ok("9101", {"fsUploadIn": {"in": base64.b64encode(b"x").decode(),
                                                              "filename": "a.txt"}})["file_qury_no"]},
             lambda s: {"fsDownloadIn": {"file_qury_no": s["number"], "filename": "a.txt",
                                         "fixmedins_code": "H44010000001"}}),
    "2001": (lambda h: {}, lambda s: {"data": {"psn_no": PSN, "begntime": BEGIN, "insutype": "390", "med_type": "21",
                                               "fixmedins_code": "H44010000001", "endtime": "", "dise_codg": ""}}),
    "2403": (lambda h: {"mdtrt_id": h.open()},
             lambda s: {"adminfo": {"mdtrt_id": s["mdtrt_id"], "psn_no": PSN, "med_type": "24", "begntime": BEGIN,
                                    "adm_diag_dscr": "肺炎", "dise_codg": "J18.900", "adm_bed": "12"},
                        "diseinfo": [{"diag_code": "J18.900", "diag_name": "肺炎", "diag_type": "1"}]}),
    "5301": (lambda h: {}, lambda s: {"psn_no": PSN}),
    "5302": (lambda h: {}, lambda s: {"psn_no": PSN, "biz_appy_type": "03"}),
    "5303": (lambda h: {"mdtrt_id": h.open()}, lambda s: {"data": {"psn_no": PSN, "begntime": BEGIN, "endtime": ""}}),
    "5304": (lambda h: {}, lambda s: {"data": {"psn_no": PSN, "begntime": BEGIN}}),
    "5269": (lambda h: {"setl_id": h.ok("2207", {"data": {"mdtrt_id": _guanxian_visit(h)}})["setlinfo"]["setl_id"]},
             lambda s: {"data": {"mdtrtRegno": s["setl_id"], "mdtrtId": "", "medinsNo": "H44010000001"}}),
    "5270": (_settled, lambda s: {"data": {"setl_id": s["setl_id"], "mdtrt_id": s["mdtrt_id"], "psn_no": PSN}}),
    "3260": (_settled, lambda s: {"data": {"trt_year": "2026", "trt_month": "03", "startrow": 1}}),
    "3261": (_settled, lambda s: {"data": {"trt_year": "2026", "trt_month": "03", "totalrow": 1},
                                  "detail": [{"certno": "", "mdtrt_id": s["mdtrt_id"], "setl_sn": s["setl_id"],
                                              "mdtrt_setl_time": "2026-03-12 10:00:00", "medfee_sumamt": "500.00",
                                              "optins_pay_sumamt": s["fund_pay_sumamt"], "cnfm_flag": "1"}]}),
    "3262": (_settled, lambda s: {"trt_year": "2026", "trt_month": "03", "otransid": "0"}),
    "3203": (lambda h: {}, lambda s: {"data": {"clr_type": "21", "clr_way": "1", "setlym": "202602", "psntime": 0,
                                               "medfee_sumamt": "0.00", "med_sumfee": "0.00", "fund_appy_sum": "0.00",
                                               "cash_payamt": "0.00", "acct_pay": "0.00", "begndate": "2026-02-01",
                                               "enddate": "2026-02-28", "clr_optins": "440100"}}),
    "3204": (lambda h: {"id": h.ok("3203", {"data": {"clr_type": "11", "setlym": "202602", "medfee_sumamt": "0",
                                                     "fund_appy_sum": "0"}})["result"]["clr_appy_evt_id"]},
             lambda s: {"data": {"clr_appy_evt_id": s["id"]}}),
    **{infno: (lambda h: {}, lambda s: {"data": {"ver": "0"}}) for infno in
       ("1301", "1302", "1303", "1304", "1305", "1306", "1307")},
}


def leaves(node: Any, path: tuple = ()) -> list[tuple]:
    """The path of every field of an input (into lists and objects)."""
    if isinstance(node, dict):
        return [p for key, value in node.items() for p in leaves(value, (*path, key))]
    if isinstance(node, list):
        return [p for n, value in enumerate(node) for p in leaves(value, (*path, n))]
    return [path]


def replaced(payload: dict, path: tuple, value: Any) -> dict:
    out = copy.deepcopy(payload)
    node = out
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return out


def business(hub: Hub) -> tuple:
    """The business rows. A settlement locks its person-year by upserting the row before deciding,
    so a refused one may leave an all-zero row: it reads as no row (`year_accumulators`), and is
    left out."""
    t = hub.repo.tables
    accumulators = {k: a for k, a in t.accumulators.items() if a != Accumulators(year=a.year)}
    return copy.deepcopy(t.visits), copy.deepcopy(t.settlements), accumulators, list(t.outbox)


def test_every_known_transaction_has_a_case():
    assert set(SETUPS) == set(KNOWN)


@pytest.mark.parametrize("infno", sorted(SETUPS))
def test_each_field_of_wrong_kind_is_refused_by_name_and_changes_nothing(infno):
    setup, make = SETUPS[infno]
    hub = Hub()
    state = setup(hub)
    payload = make(state)
    baseline = hub.call(infno, payload)
    assert baseline.reason is None, baseline.body  # the well-formed input is answered
    fresh = True  # the state again after an accepted request (a refused one changes nothing: checked)
    for path in leaves(payload):
        field = str(path[-1])
        for name, value in BAD_VALUES:
            if fresh:
                hub = Hub()
                payload, fresh = make(setup(hub)), False
            before = business(hub)
            reply = hub.call(infno, replaced(payload, path, value))
            what = f"{infno} {'.'.join(map(str, path))} = {name}: {reply.body.get('err_msg')}"
            assert reply.reason not in (Why.INTERNAL_ERROR, Why.HUB_UNAVAILABLE), what
            orjson.dumps(reply.body)  # the answer can be sent (no integer past 64 bits, nothing unserialisable)
            if reply.reason is not None:
                assert field in reply.body["err_msg"], what
                assert business(hub) == before, what
            else:
                fresh = True
