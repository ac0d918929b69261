"""A HIS written from the public convention switches to the hub by changing an address and its
gateway credentials: it drives an out-of-region outpatient bill and a stay through every
transaction it uses, signed with the gateway headers, and reads every answer by the convention's
names (hub/his_check/client.py, which `hub his-check` also runs). Real Kafka, Redis and PostgreSQL (the integration stack)."""

from __future__ import annotations

import base64
import io
import time
import zipfile
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo
from decimal import Decimal

import sqlalchemy as sa
from fastapi.testclient import TestClient

from hub import vouchers
from hub.privacy import person_ref
from hub.settlement.adapters import database as db
from hub.settlement.entrypoints.http import create_app
from tests.integration.test_settlement_service import (  # noqa: F401  (fixtures)
    GZ_A,
    JIA_DRUG,
    enrolled_person,
    reference_loaded,
    stack,
)

from tests.fixtures.people import new_certno
from tests.integration.settlement_helpers import PERSON_KEY

from hub.his_check.client import DATETIME, HisClient, fen


def _zip(name: str, text: str) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, text)
    return out.getvalue()


def _unzipped(content: bytes) -> str:
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        return archive.read(archive.namelist()[0]).decode("utf-8")


def his(stack, hospital=GZ_A) -> HisClient:
    http = TestClient(create_app(stack))

    def post(path: str, body: bytes, headers: dict) -> tuple[int, dict | bytes]:
        response = http.post(path, content=body, headers=headers)
        if not response.headers.get("content-type", "").startswith("application/json"):
            return response.status_code, response.content  # 9102: a file
        return response.status_code, response.json()

    code, pool = hospital
    # The sample hospitals' paasid is their code and their paas token 'dev-<code>' (reference/hospitals.yaml).
    return HisClient(post, code, "广州市第一人民医院", pool, paasid=code, paas_token=f"dev-{code}")


def referred(stack, producer) -> tuple[str, str]:
    """A 冠县 resident (whose policy covers general outpatient care off-site) referred to 广州,
    registered by the bureau with a resident id number and name: (psn_no, certno)."""
    certno = new_certno()
    psn, _ = enrolled_person(stack, producer, home_pool="371525", filings=[{
        "filing_id": "F1", "filing_type": "REFERRAL", "target_pool": "440100", "valid_from": date(2026, 1, 1),
        "valid_to": None, "revoked": False}], certno=certno, psn_name="李四", psn_type="1501", naty="01",
        identities=[{"population": "SUBSISTENCE_ALLOWANCE", "begins": date(2026, 1, 1), "ends": date(2026, 12, 31)}])
    return psn, certno


def test_an_outpatient_bill_and_a_stay_as_a_his_drives_them(stack, producer):
    registered_psn, certno = referred(stack, producer)
    client = his(stack)
    client.insuplc_admdvs = "371525"

    signed = client.call("9001", {"signIn": {"opter_no": "0001", "mac": "00-16-3E-00-00-01", "ip": "10.1.1.1"}})
    client.sign_no = (signed.output.get("signinoutb") or {}).get("sign_no", "")
    client.expect(len(client.sign_no) >= 16, "9001 answers signinoutb.sign_no")

    # The HIS knows the patient by the resident id card; 1101 gives it the person's insurance number.
    person = client.call("1101", {"data": {"mdtrt_cert_type": "02", "mdtrt_cert_no": certno, "card_sn": "",
                                           "begntime": "2026-03-10 08:00:00", "psn_cert_type": "01",
                                           "certno": certno, "psn_name": "李四"}})
    client.expect(person.ok, f"1101 finds the person by resident id ({person.body.get('err_msg')})")
    base = client.check_person(person)
    psn = base.get("psn_no", "")
    client.expect(psn == registered_psn and psn != certno, "baseinfo.psn_no is the insurance number, not the id")
    client.expect((base.get("certno"), base.get("psn_name"), base.get("age") not in ("", None)) == (certno, "李四", True),
                  "baseinfo names the person in clear to the hospital that asked")
    client.expect([i.get("psn_idet_type") for i in person.output.get("idetinfo", [])] == ["SUBSISTENCE_ALLOWANCE"],
                  "idetinfo lists the special population with its period")
    insutype = person.output["insuinfo"][0]["insutype"]
    client.expect(insutype in ("310", "390"), "insuinfo.insutype")
    client.expect(person.output["insuinfo"][0].get("psn_type") == "1501" and base.get("naty") == "01",
                  "insuinfo.psn_type and baseinfo.naty as the bureau registered them (a HIS stores both)")

    # --- an outpatient visit: 2201 register, 2204 fees, 2206 pre-settle, 2207 settle, 2208 reverse
    reg = client.call("2201", {"data": {"psn_no": psn, "insutype": insutype, "begntime": "2026-03-10 09:00:00",
                                        "mdtrt_cert_type": "02", "mdtrt_cert_no": certno, "ipt_otp_no": "MZ0001",
                                        "atddr_no": "D001", "dr_name": "王医生", "dept_code": "01",
                                        "dept_name": "内科", "caty": "A03", "med_type": "11"}})
    client.expect(reg.ok, f"2201 registers ({reg.body.get('err_msg')})")
    mdtrt_id = (reg.output.get("data") or {}).get("mdtrt_id")
    client.expect(bool(mdtrt_id) and reg.output["data"].get("ipt_otp_no") == "MZ0001",
                  "2201 answers output.data.mdtrt_id and echoes ipt_otp_no")
    client.expect(reg.output["data"].get("psn_no") == psn, "2201 answers the psn_no the HIS sent, to echo back")
    diag = client.call("2203", {"mdtrtinfo": {"mdtrt_id": mdtrt_id, "psn_no": psn, "med_type": "11",
                                              "begntime": "2026-03-10 09:00:00", "main_cond_dscr": "咳嗽",
                                              "dise_codg": "J06.900", "dise_name": "急性上呼吸道感染"},
                                "diseinfo": [{"diag_type": "1", "diag_srt_no": "1", "diag_code": "J06.900",
                                              "diag_name": "急性上呼吸道感染", "diag_dept": "内科",
                                              "dise_dor_no": "D001", "dise_dor_name": "王医生",
                                              "diag_time": "2026-03-10 09:05:00", "vali_flag": "1"}]})
    client.expect(diag.ok, f"2203 takes the diagnoses ({diag.body.get('err_msg')})")
    lines = [{"feedetl_sn": "1", "mdtrt_id": mdtrt_id, "psn_no": psn, "chrg_bchno": "B1", "med_list_codg": JIA_DRUG,
              "medins_list_codg": "HIS-001", "det_item_fee_sumamt": Decimal("30.00"), "cnt": Decimal("2"),
              "pric": Decimal("15.00"), "fee_ocur_time": "2026-03-10 09:10:00", "bilg_dept_codg": "01",
              "bilg_dr_codg": "D001", "hosp_appr_flag": "1"},
             {"feedetl_sn": "2", "mdtrt_id": mdtrt_id, "psn_no": psn, "chrg_bchno": "B1", "med_list_codg": "110001000020000",
              "medins_list_codg": "HIS-002", "det_item_fee_sumamt": Decimal("45.5"), "cnt": Decimal("1"),
              "pric": Decimal("45.5"), "fee_ocur_time": "2026-03-10 09:12:00", "bilg_dept_codg": "01",
              "bilg_dr_codg": "D001", "hosp_appr_flag": "1"}]
    up = client.call("2204", {"feedetail": lines})
    client.expect(up.ok, f"2204 uploads ({up.body.get('err_msg')})")
    client.check_fee_results(up, sent=2)
    settle_input = {"data": {"psn_no": psn, "mdtrt_cert_type": "02", "mdtrt_cert_no": certno, "med_type": "11",
                             "medfee_sumamt": Decimal("75.50"), "psn_setlway": "01", "mdtrt_id": mdtrt_id,
                             "chrg_bchno": "B1", "insutype": insutype, "acct_used_flag": "0"}}
    pre = client.call("2206", settle_input)
    client.expect(pre.ok, f"2206 pre-settles ({pre.body.get('err_msg')})")
    client.check_setlement(pre, settled=False)
    setl = client.call("2207", settle_input)
    client.expect(setl.ok, f"2207 settles ({setl.body.get('err_msg')})")
    info = client.check_setlement(setl, settled=True)
    client.expect(info.get("psn_no") == psn, "setlinfo.psn_no is the person's number as the HIS knows it")
    client.expect((info.get("certno"), info.get("psn_name"), info.get("gend") in ("1", "2")) == (certno, "李四", True),
                  "setlinfo names the person as registered")
    client.expect(info.get("medfee_sumamt") == "75.50", "the bill's total as sent in JSON numbers, exactly")
    client.expect((info.get("psn_type"), info.get("naty")) == ("1501", "01"), "setlinfo.psn_type and naty")
    stored = client.call("5203", {"data": {"psn_no": psn, "setl_id": info.get("setl_id"), "mdtrt_id": mdtrt_id}})
    client.expect(stored.ok and (stored.output.get("setlinfo") or {}).get("setl_id") == info.get("setl_id"),
                  "5203 answers the settlement as stored")
    cum = client.call("5206", {"data": {"psn_no": psn, "cum_ym": "202603"}})
    client.expect(cum.ok and isinstance(cum.output.get("cuminfo"), list), "5206 answers cuminfo[]")
    client.expect(all((row.get("cum_ym"), row.get("insutype")) == ("202603", insutype)
                      for row in cum.output.get("cuminfo") or [{}]), "5206: each cuminfo row has cum_ym and insutype")
    back = client.call("2208", {"data": {"psn_no": psn, "mdtrt_id": mdtrt_id, "setl_id": info.get("setl_id")}})
    client.expect(back.ok, f"2208 reverses ({back.body.get('err_msg')})")
    undone = back.output.get("setlinfo") or {}
    client.expect(bool(undone.get("setl_id")) and undone.get("setl_id") != info.get("setl_id"),
                  "2208 answers the reversal under an id of its own")
    for key in ("medfee_sumamt", "fund_pay_sumamt", "psn_part_amt", "hifp_pay"):
        client.expect(fen(info.get(key, "0")) + fen(undone.get(key, "0")) == 0, f"the reversal nets {key} to zero")

    # --- a stay, the patient showing the e-voucher (its token, from the home region's voucher service):
    # 1101, 2401 admit, 2301 fees, 2303 pre-settle, 2304 settle whose answer is lost, 2601 undo
    token, _ = vouchers.issue(stack.settings.voucher_key, "371525", person_ref(PERSON_KEY, psn), time.time())
    by_voucher = client.call("1101", {"data": {"mdtrt_cert_type": "01", "mdtrt_cert_no": token,
                                               "begntime": "2026-03-11 08:00:00", "psn_cert_type": "", "certno": ""}})
    client.expect(by_voucher.ok and (by_voucher.output.get("baseinfo") or {}).get("psn_no") == psn,
                  f"1101 by e-voucher finds the same person ({by_voucher.body.get('err_msg')})")
    adm = client.call("2401", {"mdtrtinfo": {"psn_no": psn, "insutype": insutype, "coner_name": "", "tel": "",
                                             "begntime": "2026-03-11 08:00:00", "mdtrt_cert_type": "01",
                                             "mdtrt_cert_no": token, "med_type": "21", "ipt_no": "ZY0001",
                                             "atddr_no": "D002", "chfpdr_name": "李医生", "adm_diag_dscr": "肺炎",
                                             "adm_dept_codg": "02", "adm_dept_name": "呼吸科", "adm_bed": "12",
                                             "dscg_maindiag_code": "J18.900", "dscg_maindiag_name": "肺炎"},
                               "diseinfo": [{"psn_no": psn, "diag_type": "1", "maindiag_flag": "1", "diag_srt_no": 1,
                                             "diag_code": "J18.900", "diag_name": "肺炎", "diag_dept": "呼吸科",
                                             "dise_dor_no": "D002", "dise_dor_name": "李医生",
                                             "diag_time": "2026-03-11 08:00:00"}]})
    client.expect(adm.ok, f"2401 admits ({adm.body.get('err_msg')})")
    stay = (adm.output.get("result") or {}).get("mdtrt_id")
    up = client.call("2301", {"feedetail": [dict(lines[0], mdtrt_id=stay, det_item_fee_sumamt=Decimal("3000.00"),
                                                 cnt=Decimal("2"), pric=Decimal("1500.00"))]})
    client.expect(up.ok, f"2301 uploads ({up.body.get('err_msg')})")
    client.check_fee_results(up, sent=1)
    out = client.call("2402", {"dscginfo": {"mdtrt_id": stay, "psn_no": psn, "insutype": insutype,
                                            "endtime": "2026-03-14 10:00:00", "dise_codg": "J18.900",
                                            "dise_name": "肺炎", "dscg_way": "1"},
                               "diseinfo": [{"mdtrt_id": stay, "psn_no": psn, "diag_type": "1", "maindiag_flag": "1",
                                             "diag_srt_no": "1", "diag_code": "J18.900", "diag_name": "肺炎"}]})
    client.expect(out.ok, f"2402 discharges ({out.body.get('err_msg')})")
    back_in = client.call("2405", {"data": {"mdtrt_id": stay, "psn_no": psn}})
    client.expect(back_in.ok, f"2405 takes the discharge back ({back_in.body.get('err_msg')})")
    out = client.call("2402", {"dscginfo": {"mdtrt_id": stay, "psn_no": psn, "insutype": insutype,
                                            "endtime": "2026-03-14 10:00:00", "dise_codg": "J18.900",
                                            "dise_name": "肺炎", "dscg_way": "1"}})
    client.expect(out.ok, f"2402 discharges again ({out.body.get('err_msg')})")
    stay_input = {"data": {"psn_no": psn, "mdtrt_cert_type": "01", "mdtrt_cert_no": token, "medfee_sumamt": Decimal("3000.00"),
                           "psn_setlway": "01", "mdtrt_id": stay, "insutype": insutype, "acct_used_flag": "0",
                           "mid_setl_flag": "0", "invono": "", "fulamt_ownpay_amt": Decimal("0.00"),
                           "overlmt_selfpay": Decimal("0.00"), "preselfpay_amt": Decimal("0.00"),
                           "inscp_scp_amt": Decimal("3000.00")}}
    pre = client.call("2303", stay_input)
    client.check_setlement(pre, settled=False)
    lost = client.call("2304", stay_input)
    client.check_setlement(lost, settled=True)
    undo = client.call("2601", {"data": {"psn_no": psn, "omsgid": lost.msgid, "oinfno": "2304"}})
    client.expect(undo.ok, f"2601 undoes the settlement whose answer was lost ({undo.body.get('err_msg')})")
    again = client.call("2304", stay_input, msgid=lost.msgid)
    client.expect(not again.ok, "the lost settlement sent again settles nothing after 2601")
    anew = client.call("2304", stay_input)
    client.expect(anew.ok, f"a new 2304 settles the stay ({anew.body.get('err_msg')})")
    anew_info = client.check_setlement(anew, settled=True)

    # --- a refusal as the platform answers it
    wrong = client.call("2207", {"data": {"psn_no": psn, "mdtrt_id": "M-NO-SUCH-VISIT", "medfee_sumamt": Decimal("1")}})
    client.expect(not wrong.ok and wrong.body.get("infcode") == "-1", "a refusal is infcode -1 with HTTP 200")
    client.expect(wrong.body.get("output") in (None, {}), "a refusal carries no output")

    # --- the settlement's fee lines (5204), a catalogue as a file (1301, 9102)
    fees = client.call("5204", {"data": {"psn_no": psn, "setl_id": anew_info.get("setl_id"), "mdtrt_id": stay}})
    client.expect(fees.ok and isinstance(fees.body.get("output"), list) and len(fees.body["output"]) == 1
                  and fees.body["output"][0].get("setl_id") == anew_info.get("setl_id"), "5204 lists the fee lines")
    listed = client.call("1301", {"data": {"ver": ""}})
    client.expect(listed.ok and int(listed.output.get("data_cn", 0)) > 0, "1301 answers the drug catalogue's file number")
    drugs = client.download(listed.output.get("file_qury_no", ""), "plc")
    client.expect(isinstance(drugs, bytes) and JIA_DRUG in _unzipped(drugs), "9102 downloads the catalogue, a zip")

    # --- a visit opened by mistake: fee lines taken back (2205), the visit cancelled (2202)
    wrong = client.call("2201", {"data": {"psn_no": psn, "insutype": insutype, "begntime": "2026-03-12 09:00:00",
                                          "mdtrt_cert_type": "02", "mdtrt_cert_no": certno, "med_type": "11"}})
    wrong_id = (wrong.output.get("data") or {}).get("mdtrt_id", "")
    client.call("2204", {"feedetail": [dict(lines[0], mdtrt_id=wrong_id)]})
    taken = client.call("2205", {"data": {"mdtrt_id": wrong_id, "chrg_bchno": "0000", "psn_no": psn}})
    client.expect(taken.ok, f"2205 takes the fee lines back ({taken.body.get('err_msg')})")
    cancelled = client.call("2202", {"data": {"psn_no": psn, "mdtrt_id": wrong_id, "ipt_otp_no": "MZ0002"}})
    client.expect(cancelled.ok, f"2202 cancels the visit ({cancelled.body.get('err_msg')})")

    # --- reconciliation: the day's totals (3201), and the detail as a file (9101, 3202, 9102)
    detail = "\n".join([f"{anew_info.get('setl_id')}\t{stay}\t{psn}\t3000.00\t{anew_info.get('fund_pay_sumamt')}\t0.00\t0",
                        f"{info.get('setl_id')}\t{mdtrt_id}\t{psn}\t75.50\t{info.get('fund_pay_sumamt')}\t0.00\t1"])
    uploaded = client.call("9101", {"fsUploadIn": {"in": base64.b64encode(_zip("detail.txt", detail)).decode(),
                                                   "filename": "detail.zip", "fixmedins_code": client.fixmedins_code}})
    client.expect(uploaded.ok and bool(uploaded.output.get("file_qury_no")), "9101 answers file_qury_no")
    today = datetime.now(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%d")
    checked = client.call("3202", {"data": {"setl_optins": "440100", "file_qury_no": uploaded.output.get("file_qury_no"),
                                            "stmt_begndate": today, "stmt_enddate": today,
                                            "medfee_sumamt": Decimal("3000.00"), "fund_pay_sumamt": Decimal("0"),
                                            "cash_payamt": Decimal("0"), "fixmedins_setl_cnt": 1, "clr_type": "21"}})
    fileinfo = checked.output.get("fileinfo") or {}
    client.expect(checked.ok and bool(fileinfo.get("file_qury_no")) and DATETIME.match(str(fileinfo.get("dld_endtime"))),
                  f"3202 answers fileinfo ({checked.body.get('err_msg')})")
    client.expect((checked.output.get("stmtinfo") or {}).get("stmt_rslt") == "0",
                  "3202: the hospital's detail file matches what the hub holds")
    result = client.download(fileinfo.get("file_qury_no", ""), fileinfo.get("filename", ""))
    client.expect(isinstance(result, bytes) and _unzipped(result).startswith("setl_id"), "9102 downloads the 3202 result")

    stmt = client.call("3201", {"data": {"insutype": insutype, "clr_type": "11", "setl_optins": "440100",
                                         "stmt_begndate": "2026-01-01", "stmt_enddate": "2026-01-31",
                                         "medfee_sumamt": Decimal("0.00"), "fund_pay_sumamt": Decimal("0.00"),
                                         "acct_pay": Decimal("0.00"), "fixmedins_setl_cnt": 0}})
    client.expect(stmt.ok and "stmt_rslt" in (stmt.output.get("stmtinfo") or {}), "3201 answers stmtinfo.stmt_rslt")

    signed_out = client.call("9002", {"data": {"sign_no": client.sign_no, "opter_no": "0001"}})
    client.expect(signed_out.ok, "9002 signs out")

    assert not client.failures, f"{len(client.failures)} of {client.checks} checks failed:\n" + "\n".join(client.failures)
    with stack.engine.connect() as conn:
        standing = conn.execute(sa.select(sa.func.count()).select_from(db.settlements)
                                .where(db.settlements.c.status == "SETTLED")).scalar_one()
        assert standing == 1  # the outpatient bill reversed, the lost stay undone, the new one standing


def test_the_gateway_refuses_stale_replayed_and_forged_requests(stack):
    client = his(stack)
    ok = client.call("9001", {"signIn": {"opter_no": "0001"}})
    assert ok.ok
    headers = client.headers()
    assert client.call("9001", {"signIn": {"opter_no": "0001"}}, headers=headers).http_status == 200
    replay = client.call("9001", {"signIn": {"opter_no": "0001"}}, headers=headers)
    assert (replay.http_status, replay.body["err_code"]) == (401, "unauthenticated")
    stale = HisClient(client.post, client.fixmedins_code, "", client.mdtrtarea_admvs, client.paasid, client.paas_token,
                      clock=lambda: 1_000_000_000.0)
    assert stale.call("9001", {"signIn": {}}).http_status == 401
    forged = HisClient(client.post, client.fixmedins_code, "", client.mdtrtarea_admvs, client.paasid, "a guess")
    assert forged.call("9001", {"signIn": {}}).http_status == 401


def test_a_hospitals_whole_month_as_a_his_drives_it(stack, producer):
    """Last month at one hospital, as hsa-his and nhis-web run it: bills of both clearing types
    (11 outpatient, 21 inpatient) and both insurance types, one reversed; then, the month over,
    3201 per insutype + clr_type + setl_optins (each balanced), 3202 by file, 3260's lines, 3261
    confirming them in batches and 3262 rolling one batch back, 3203 filing the month per clearing
    type and 3204 cancelling one — every answer read as public HIS code reads it."""
    now = datetime.now(ZoneInfo("Asia/Shanghai"))
    last_month = (now.replace(day=1) - timedelta(days=1)).replace(day=10, hour=10)
    month, ym = last_month.strftime("%Y%m"), (last_month.strftime("%Y"), last_month.strftime("%m"))
    resident, resident_certno = referred(stack, producer)  # 冠县 resident (390)
    employee, _ = enrolled_person(stack, producer, insurance="EMPLOYEE")  # 九江 employee (310), referred to 广州
    client = his(stack)
    real_clock = stack.service.clock
    stack.service.clock = lambda: last_month.astimezone(timezone.utc)  # the bills' business days are last month's
    day = last_month.strftime("%Y-%m-%d")
    try:
        bills = []
        for psn, insutype, infnos in ((resident, "390", ("2201", "2204", "2207")), (employee, "310", ("2401", "2301", "2304")),
                                      (resident, "390", ("2401", "2301", "2304")), (employee, "310", ("2401", "2301", "2304"))):
            opened = client.call(infnos[0], {"mdtrtinfo": {"psn_no": psn, "insutype": insutype, "begntime": f"{day} 08:00:00",
                                                           "med_type": "11" if infnos[0] == "2201" else "21"}})
            mdtrt_id = (opened.output.get("data") or opened.output.get("result") or {}).get("mdtrt_id")
            client.expect(opened.ok, f"{infnos[0]} opens ({opened.body.get('err_msg')})")
            client.call(infnos[1], {"feedetail": [{"feedetl_sn": "1", "mdtrt_id": mdtrt_id, "psn_no": psn,
                                                   "med_list_codg": JIA_DRUG, "cnt": Decimal("1"),
                                                   "pric": Decimal("1200.00"), "det_item_fee_sumamt": Decimal("1200.00"),
                                                   "fee_ocur_time": f"{day} 09:00:00"}]})
            settled = client.call(infnos[2], {"data": {"psn_no": psn, "mdtrt_id": mdtrt_id, "insutype": insutype,
                                                       "medfee_sumamt": Decimal("1200.00"), "endtime": f"{day} 10:00:00"}})
            bills.append(client.check_setlement(settled, settled=True))
        reversed_ = client.call("2305", {"data": {"psn_no": employee, "setl_id": bills[3].get("setl_id")}})
        client.expect(reversed_.ok, f"2305 reverses ({reversed_.body.get('err_msg')})")
    finally:
        stack.service.clock = real_clock

    # --- 3201 per insurance type and clearing type, as hsa-his sends it (one call per group)
    first_day = last_month.replace(day=1).strftime("%Y-%m-%d")
    last_day = (last_month.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
    span = {"stmt_begndate": first_day, "stmt_enddate": last_day.strftime("%Y-%m-%d"), "setl_optins": "440100",
            "refd_setl_flag": "0"}
    standing = [b for b in bills[:3]]  # the fourth was reversed
    for insutype, clr_type in (("390", "11"), ("390", "21"), ("310", "21")):
        group = [b for b in standing if b.get("insutype") == insutype and b.get("clr_type") == clr_type]
        stmt = client.call("3201", {"data": {**span, "insutype": insutype, "clr_type": clr_type,
                                             "medfee_sumamt": Decimal(sum(fen(b["medfee_sumamt"]) for b in group)) / 100,
                                             "fund_pay_sumamt": Decimal(sum(fen(b["fund_pay_sumamt"]) for b in group)) / 100,
                                             "acct_pay": Decimal("0.00"), "fixmedins_setl_cnt": len(group)}})
        client.expect(stmt.ok and (stmt.output.get("stmtinfo") or {}).get("stmt_rslt") == "0",
                      f"3201 {insutype}/{clr_type} balances ({stmt.output.get('stmtinfo')})")

    # --- 3202 by file: the detail uploaded with 9101
    detail = "\n".join(f"{b['setl_id']}\t{b['mdtrt_id']}\t{b['psn_no']}\t{b['medfee_sumamt']}\t{b['fund_pay_sumamt']}\t0.00\t0"
                       for b in standing)
    uploaded = client.call("9101", {"fsUploadIn": {"in": base64.b64encode(_zip("detail.txt", detail)).decode(),
                                                   "filename": "detail.zip", "fixmedins_code": client.fixmedins_code}})
    checked = client.call("3202", {"data": {**span, "file_qury_no": uploaded.output.get("file_qury_no"),
                                            "fixmedins_setl_cnt": 3}})
    client.expect((checked.output.get("stmtinfo") or {}).get("stmt_rslt") == "0", "3202 by file matches the month")

    # --- 3260: the month's lines, a page at a time, read as hsa-his stores them
    listed = client.call("3260", {"data": {"trt_year": ym[0], "trt_month": ym[1], "startrow": 1}})
    rows = (listed.output or {}).get("data")
    if client.expect(listed.ok and isinstance(rows, list) and len(rows) == 5, f"3260 lists 4 settlements and 1 reversal"):
        for row in rows:
            for key in ("seqno", "mdtrtarea", "medins_no", "certno", "mdtrt_id", "mdtrt_setl_time", "setl_sn",
                        "fulamt_advpay_flag", "medfee_sumamt", "optins_pay_sumamt"):
                client.expect(key in row, f"3260 row.{key} present")
            client.check_yuan(row, ["medfee_sumamt", "optins_pay_sumamt"], "3260 row")
            client.expect(bool(DATETIME.match(str(row.get("mdtrt_setl_time")))), "3260 mdtrt_setl_time yyyy-MM-dd HH:mm:ss")
        outpatient = next((r for r in rows if r["mdtrt_id"] == bills[0].get("mdtrt_id")), {})
        client.expect(outpatient.get("certno") == resident_certno, "3260 names the treating hospital's patient in clear")
        client.expect(sum(fen(r["optins_pay_sumamt"]) for r in rows) == sum(fen(b["fund_pay_sumamt"]) for b in standing),
                      "the month's lines add up to what stands")

    # --- 3261 in batches, 3262 rolling the first back, then confirmed again
    def batch(chosen: list[dict]) -> dict:
        return {"data": {"trt_year": ym[0], "trt_month": ym[1], "totalrow": len(chosen)},
                "detail": [{"certno": r["certno"], "mdtrt_id": r["mdtrt_id"], "mdtrt_setl_time": r["mdtrt_setl_time"],
                            "setl_sn": r["setl_sn"], "medfee_sumamt": Decimal(r["medfee_sumamt"]),
                            "optins_pay_sumamt": Decimal(r["optins_pay_sumamt"]), "cnfm_flag": "1"} for r in chosen]}
    rows = rows or []
    first = client.call("3261", batch(rows[:3]))
    client.expect(first.ok, f"3261 confirms a batch ({first.body.get('err_msg')})")
    second = client.call("3261", batch(rows[3:]))
    client.expect(second.ok, f"3261 confirms the next batch ({second.body.get('err_msg')})")
    back = client.call("3262", {"trt_year": ym[0], "trt_month": ym[1], "otransid": first.msgid})  # as hsa-his sends it
    client.expect(back.ok and (back.output.get("data") or {}).get("rollback_cnt") == 3, "3262 rolls the first batch back")
    flags = [r.get("cnfm_flag") for r in client.call("3260", {"data": {"trt_year": ym[0], "trt_month": ym[1]}}).output["data"]]
    client.expect(flags == ["", "", "", "1", "1"], f"3260 shows the confirmations as they stand ({flags})")
    client.expect(client.call("3261", batch(rows[:3])).ok, "3261 confirms the batch again")

    # --- 3203 per clearing type with the month's totals, 3204 cancelling one
    applications = {}
    for clr_type in ("11", "21"):
        of_type = [r for r in rows if r.get("clr_type") == clr_type]
        applied = client.call("3203", {"data": {
            "clr_type": clr_type, "clr_way": "1", "setlym": month, "psntime": sum(1 if r["refd_setl_flag"] == "0" else -1
                                                                                    for r in of_type),
            "medfee_sumamt": Decimal(sum(fen(r["medfee_sumamt"]) for r in of_type)) / 100,
            "med_sumfee": Decimal(sum(fen(r["medfee_sumamt"]) for r in of_type)) / 100,
            "fund_appy_sum": Decimal(sum(fen(r["optins_pay_sumamt"]) for r in of_type)) / 100,
            "cash_payamt": Decimal("0.00"), "acct_pay": Decimal("0.00"), "begndate": first_day,
            "enddate": last_day.strftime("%Y-%m-%d"), "clr_optins": "440100"}})
        applications[clr_type] = ((applied.output.get("result") or {}).get("clr_appy_evt_id"))
        client.expect(applied.ok and bool(applications[clr_type]),
                      f"3203 files {clr_type}: output.result.clr_appy_evt_id ({applied.body.get('err_msg')})")
    locked = client.call("3262", {"trt_year": ym[0], "trt_month": ym[1], "otransid": "0"})
    client.expect(not locked.ok and locked.body.get("err_code") == "month_applied", "an applied month's lines stay confirmed")
    cancelled = client.call("3204", {"data": {"clr_appy_evt_id": applications["11"]}})
    client.expect(cancelled.ok, f"3204 cancels the outpatient application ({cancelled.body.get('err_msg')})")
    assert not client.failures, f"{len(client.failures)} of {client.checks} checks failed:\n" + "\n".join(client.failures)
    with stack.engine.connect() as conn:  # every change of the month is an event beside the settlements' (outbox)
        kept = conn.execute(sa.select(db.clearing_applications.c.clr_type, db.clearing_applications.c.status)
                            .order_by(db.clearing_applications.c.clr_type)).all()
    assert [tuple(k) for k in kept] == [("11", "CANCELLED"), ("21", "APPLIED")]
