"""`hub his-check`: the conformance client (client.py) run against any hub deployment — or any
platform that speaks the national interface — as a HIS vendor would before pointing a real HIS at
it. It drives one patient through a day and the hospital's month (sign-in, lookup, benefits check,
an outpatient visit and a stay with their fees, pre-settlement, settlement, queries, reversal,
reconciliation, the month's 清分 lines, confirmation and rollback, sign-out) and reports, per
transaction, the checks made and those that failed. A refusal is not a failure when its envelope is
right (the platform may refuse a visit the patient's home policy does not cover); what follows it
is then skipped, and said so.

It imports nothing of the hub's services: it is written from the convention and public HIS code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from hub.his_check.client import SHANGHAI, Answer, HisClient


@dataclass
class Step:
    infno: str
    what: str
    checks: int = 0
    failures: list[str] = field(default_factory=list)
    note: str = ""  # the refusal's reason, or why the step was skipped

    @property
    def status(self) -> str:
        if self.failures:
            return "FAILED"
        return "skipped" if self.note.startswith("skipped") else ("refused" if self.note else "ok")


@dataclass
class Report:
    steps: list[Step] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return sum(1 for s in self.steps if s.failures)

    def lines(self) -> list[str]:
        out = [f"{'infno':<6} {'what':<40} {'checks':>6}  result"]
        for s in self.steps:
            note = s.note.removeprefix("skipped: ")
            out.append(f"{s.infno:<6} {s.what:<40} {s.checks:>6}  {s.status}{': ' + note if note else ''}")
            out += [f"{'':<6} - {f}" for f in s.failures]
        checks = sum(s.checks for s in self.steps)
        out.append(f"{len(self.steps)} transactions, {checks} checks, {self.failed} with failures")
        return out


@dataclass
class Patient:
    psn_no: str
    insutype: str = "390"
    certno: str = ""
    item_code: str = "110001000020000"  # a catalogue code of the treatment pool (a bed day, in the samples)
    price: Decimal = Decimal("120.00")


class Scenario:
    def __init__(self, client: HisClient, patient: Patient, today: datetime | None = None):
        self.client, self.patient = client, patient
        self.today = today or datetime.now(SHANGHAI)
        self.report = Report()

    def call(self, infno: str, what: str, input_: dict, check=None, msgid: str | None = None) -> Answer:
        before_checks, before_failures = self.client.checks, len(self.client.failures)
        answer = self.client.call(infno, input_, msgid)
        if check is not None and answer.ok:
            check(answer)
        step = Step(infno, what, self.client.checks - before_checks, self.client.failures[before_failures:])
        if not answer.ok:
            step.note = str(answer.body.get("err_msg") or answer.http_status)
        self.report.steps.append(step)
        return answer

    def skip(self, infno: str, what: str, because: str) -> None:
        self.report.steps.append(Step(infno, what, note=f"skipped: {because}"))

    def run(self) -> Report:
        c, p = self.client, self.patient
        now = self.today.strftime("%Y-%m-%d %H:%M:%S")
        signed = self.call("9001", "sign in", {"signIn": {"opter_no": "0001", "mac": "", "ip": ""}})
        c.sign_no = (signed.output.get("signinoutb") or {}).get("sign_no", "")
        by = {"psn_no": p.psn_no} if not p.certno else {"mdtrt_cert_type": "02", "mdtrt_cert_no": p.certno,
                                                          "psn_cert_type": "01", "certno": p.certno}
        self.call("1101", "person lookup", {"data": {**by, "begntime": now}}, c.check_person)
        self.call("2001", "benefits check", {"data": {"psn_no": p.psn_no, "insutype": p.insutype, "med_type": "21",
                                                      "begntime": now}},
                  lambda a: c.expect(isinstance(a.output.get("trtinfo"), list), "2001 answers trtinfo[]"))
        self.bill(("2201", "2204", "2206", "2207", "2208"), "11", "an outpatient visit")
        settled = self.bill(("2401", "2301", "2303", "2304", None), "21", "a stay")
        if settled:
            info = settled
            self.call("5203", "a settlement as stored", {"data": {"psn_no": p.psn_no, "setl_id": info["setl_id"]}},
                      lambda a: c.expect((a.output.get("setlinfo") or {}).get("setl_id") == info["setl_id"],
                                         "5203 answers the settlement"))
            self.call("5204", "its fee lines", {"data": {"psn_no": p.psn_no, "setl_id": info["setl_id"]}})
            self.call("5270", "its inpatient slip", {"data": {"mdtrtRegno": info["setl_id"], "mdtrtId": info["mdtrt_id"]}})
        self.call("5206", "accumulators", {"data": {"psn_no": p.psn_no, "cum_ym": self.today.strftime("%Y%m")}},
                  lambda a: c.expect(isinstance(a.output.get("cuminfo"), list), "5206 answers cuminfo[]"))
        for infno, node in (("5301", "feedetail"), ("5302", "psnfixmedin"), ("5303", "data"), ("5304", "refmedin")):
            self.call(infno, f"person query ({node})", {"data": {"psn_no": p.psn_no}},
                      lambda a, infno=infno, node=node: c.expect(isinstance(a.output.get(node), list),
                                                                 f"{infno} answers {node}[]"))
        day = self.today.strftime("%Y-%m-%d")
        self.call("3201", "daily totals", {"data": {"stmt_begndate": day, "stmt_enddate": day, "insutype": p.insutype,
                                                    "clr_type": "21", "setl_optins": c.mdtrtarea_admvs,
                                                    "medfee_sumamt": Decimal("0.00"), "fund_pay_sumamt": Decimal("0.00"),
                                                    "acct_pay": Decimal("0.00"), "fixmedins_setl_cnt": 0}},
                  lambda a: c.expect((a.output.get("stmtinfo") or {}).get("stmt_rslt") in ("0", "1"),
                                     "3201 answers stmtinfo.stmt_rslt"))
        self.month()
        self.call("9002", "sign out", {"signOut": {"sign_no": c.sign_no, "opter_no": "0001"}})
        return self.report

    def bill(self, infnos: tuple, med_type: str, what: str) -> dict[str, Any] | None:
        c, p = self.client, self.patient
        opening, upload, preview, settle, reverse = infnos
        now = self.today.strftime("%Y-%m-%d %H:%M:%S")
        opened = self.call(opening, f"open {what}", {"mdtrtinfo": {"psn_no": p.psn_no, "insutype": p.insutype,
                                                                   "med_type": med_type, "begntime": now}})
        mdtrt_id = (opened.output.get("data") or opened.output.get("result") or {}).get("mdtrt_id")
        if not opened.ok or not mdtrt_id:
            for infno in (upload, preview, settle, reverse):
                if infno:
                    self.skip(infno, what, f"{opening} did not open the visit")
            return None
        line = {"feedetl_sn": "1", "mdtrt_id": mdtrt_id, "psn_no": p.psn_no, "med_list_codg": p.item_code,
                "cnt": Decimal("1"), "pric": p.price, "det_item_fee_sumamt": p.price, "fee_ocur_time": now}
        self.call(upload, f"fee lines of {what}", {"feedetail": [line]}, lambda a: c.check_fee_results(a, 1))
        settle_input = {"data": {"psn_no": p.psn_no, "mdtrt_id": mdtrt_id, "insutype": p.insutype,
                                 "medfee_sumamt": p.price, "psn_setlway": "01", "acct_used_flag": "0"}}
        self.call(preview, f"pre-settle {what}", settle_input, lambda a: c.check_setlement(a, settled=False))
        settled = self.call(settle, f"settle {what}", settle_input, lambda a: c.check_setlement(a, settled=True))
        info = (settled.output.get("setlinfo") or {}) if settled.ok else None
        if info and reverse:
            self.call(reverse, f"reverse {what}", {"data": {"psn_no": p.psn_no, "setl_id": info.get("setl_id")}})
        return {**info, "mdtrt_id": mdtrt_id} if info else None

    def month(self) -> None:
        """This month's lines (3260), a confirmation (3261) rolled back (3262); last month's clearing
        application (3203) with the totals 3260 gives, cancelled (3204)."""
        c = self.client
        ym = (self.today.strftime("%Y"), self.today.strftime("%m"))
        listed = self.call("3260", "the month's 清分 lines", {"data": {"trt_year": ym[0], "trt_month": ym[1], "startrow": 1}},
                           lambda a: c.expect(isinstance(a.output.get("data"), list), "3260 answers data[]"))
        rows = (listed.output.get("data") or []) if listed.ok else []
        if rows:
            row = rows[0]
            confirmed = self.call("3261", "confirm a line", {"data": {"trt_year": ym[0], "trt_month": ym[1], "totalrow": 1},
                                                           "detail": [{k: row.get(k) for k in (
                                                               "certno", "mdtrt_id", "mdtrt_setl_time", "setl_sn",
                                                               "medfee_sumamt", "optins_pay_sumamt")} | {"cnfm_flag": "1"}]})
            self.call("3262", "roll the confirmation back", {"trt_year": ym[0], "trt_month": ym[1],
                                                              "otransid": confirmed.msgid})
        else:
            self.skip("3261", "confirm a line", "3260 listed no line this month")
        last = self.today.replace(day=1) - timedelta(days=1)
        previous = self.call("3260", "last month's lines", {"data": {"trt_year": last.strftime("%Y"),
                                                                     "trt_month": last.strftime("%m")}})
        of_type = [r for r in (previous.output.get("data") or []) if r.get("clr_type") == "21"] if previous.ok else []
        fen = lambda key: sum(int(Decimal(str(r.get(key, "0"))) * 100) for r in of_type)  # noqa: E731
        applied = self.call("3203", "last month's clearing application", {"data": {
            "clr_type": "21", "clr_way": "1", "setlym": last.strftime("%Y%m"),
            "psntime": sum(-1 if r.get("refd_setl_flag") == "1" else 1 for r in of_type),
            "medfee_sumamt": Decimal(fen("medfee_sumamt")) / 100, "fund_appy_sum": Decimal(fen("optins_pay_sumamt")) / 100,
            "med_sumfee": Decimal(fen("medfee_sumamt")) / 100, "cash_payamt": Decimal("0.00"), "acct_pay": Decimal("0.00"),
            "begndate": last.replace(day=1).strftime("%Y-%m-%d"), "enddate": last.strftime("%Y-%m-%d")}},
            lambda a: c.expect(bool((a.output.get("result") or {}).get("clr_appy_evt_id")),
                               "3203 answers result.clr_appy_evt_id"))
        number = (applied.output.get("result") or {}).get("clr_appy_evt_id") if applied.ok else None
        if number:
            self.call("3204", "cancel it", {"data": {"clr_appy_evt_id": number}})
        else:
            self.skip("3204", "cancel it", "3203 filed nothing")
