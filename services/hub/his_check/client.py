"""A hospital information system's client of the national interface, written from the public
convention (定点医药机构接口规范) and from how public HIS code calls the platform — not from the
hub's own models: it builds the full envelope, signs every request with the gateway headers,
sends amounts as JSON numbers (as Java's BigDecimal serialises them), and reads every answer by
the convention's node and field names, checking each field's presence, type and format.

Each check is recorded (`checks`, `failures`) so a run can say how much of the convention holds.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Callable
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")
PATH = "/fsi/api/rsfComIntfaceService/commInterface"
YUAN = re.compile(r"^-?\d+\.\d{2}$")
DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")
STAMP17 = re.compile(r"^\d{17}$")
REFMSGID = re.compile(r"^\d{6}\d{14}\d{10}$")

SETLINFO_FIELDS = ["mdtrt_id", "setl_id", "psn_no", "psn_name", "psn_cert_type", "certno", "gend", "naty", "brdy",
                   "age", "insutype", "psn_type", "cvlserv_flag", "setl_time", "mdtrt_cert_type", "med_type",
                   "medfee_sumamt", "fulamt_ownpay_amt", "overlmt_selfpay", "preselfpay_amt", "inscp_scp_amt",
                   "act_pay_dedc", "hifp_pay", "pool_prop_selfpay", "cvlserv_pay", "hifes_pay", "hifmi_pay",
                   "hifob_pay", "maf_pay", "oth_pay", "fund_pay_sumamt", "psn_part_amt", "acct_pay", "psn_cash_pay",
                   "hosp_part_amt", "balc", "acct_mulaid_pay", "medins_setl_id", "clr_optins", "clr_way", "clr_type"]
SETLINFO_AMOUNTS = ["medfee_sumamt", "fulamt_ownpay_amt", "overlmt_selfpay", "preselfpay_amt", "inscp_scp_amt",
                    "act_pay_dedc", "hifp_pay", "cvlserv_pay", "hifes_pay", "hifmi_pay", "hifob_pay", "maf_pay",
                    "oth_pay", "fund_pay_sumamt", "psn_part_amt", "acct_pay", "psn_cash_pay", "hosp_part_amt", "balc",
                    "acct_mulaid_pay"]
FUND_FIELDS = ["fund_pay_type", "fund_pay_type_name", "inscp_scp_amt", "crt_payb_lmt_amt", "fund_payamt",
               "setl_proc_info"]
BASEINFO_FIELDS = ["psn_no", "psn_cert_type", "certno", "psn_name", "gend", "naty", "brdy", "age"]
INSUINFO_FIELDS = ["balc", "insutype", "psn_type", "psn_insu_stas", "psn_insu_date", "paus_insu_date", "cvlserv_flag",
                   "insuplc_admdvs", "emp_name"]
IDETINFO_FIELDS = ["psn_idet_type", "psn_type_lv", "memo", "begntime", "endtime"]
FEE_RESULT_FIELDS = ["feedetl_sn", "det_item_fee_sumamt", "cnt", "pric", "pric_uplmt_amt", "selfpay_prop",
                     "fulamt_ownpay_amt", "overlmt_amt", "preselfpay_amt", "inscp_scp_amt", "chrgitm_lv",
                     "med_chrgitm_type", "bas_medn_flag", "lmt_used_flag"]


def fen(yuan: str) -> int:
    return int(Decimal(yuan) * 100)


@dataclass
class Answer:
    http_status: int
    body: dict[str, Any]
    msgid: str

    @property
    def ok(self) -> bool:
        # As hsa-his reads it: `"0".equals(map.get("infcode"))` — the number 0 is a failure there.
        return self.body.get("infcode") == "0"

    @property
    def output(self) -> dict[str, Any]:
        return self.body.get("output") or {}


@dataclass
class HisClient:
    post: Callable[[str, bytes, dict[str, str]], tuple[int, dict]]  # (path, body, headers) -> (status, json)
    fixmedins_code: str
    fixmedins_name: str
    mdtrtarea_admvs: str
    paasid: str
    paas_token: str
    insuplc_admdvs: str = ""
    sign_no: str = ""
    clock: Callable[[], float] = time.time
    checks: int = 0
    failures: list[str] = field(default_factory=list)
    _sequence: int = 0

    # ------------------------------------------------------------------ sending

    def msgid(self) -> str:
        """Sender's message id: institution code (12) + yyyyMMddHHmmss (14) + sequence (4)."""
        self._sequence = (self._sequence + 1) % 10_000
        return f"{self.fixmedins_code}{datetime.now(SHANGHAI):%Y%m%d%H%M%S}{self._sequence:04d}"

    def headers(self) -> dict[str, str]:
        timestamp = str(int(self.clock()))
        nonce = f"{int(self.clock() * 1000):x}-{secrets.randbelow(0xFFFFFF):x}"
        digest = hashlib.sha256(f"{timestamp}{self.paas_token}{nonce}{timestamp}".encode()).hexdigest()
        return {"x-tif-paasid": self.paasid, "x-tif-timestamp": timestamp, "x-tif-nonce": nonce,
                "x-tif-signature": digest, "Content-Type": "application/json;charset=utf-8"}

    def envelope(self, infno: str, input_: dict, msgid: str) -> dict:
        return {"infno": infno, "msgid": msgid, "mdtrtarea_admvs": self.mdtrtarea_admvs,
                "insuplc_admdvs": self.insuplc_admdvs, "recer_sys_code": "MBS_LOCAL", "dev_no": "", "dev_safe_info": "",
                "cainfo": "", "signtype": "", "infver": "V1.0", "opter_type": "1", "opter": "0001",
                "opter_name": "收费员", "inf_time": datetime.now(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S"),
                "fixmedins_code": self.fixmedins_code, "fixmedins_name": self.fixmedins_name, "sign_no": self.sign_no,
                "input": input_}

    def download(self, file_qury_no: str, filename: str) -> bytes | Answer:
        """9102: the file's bytes, as the platform answers a download (a refusal in the envelope)."""
        msgid = self.msgid()
        body = _dumps(self.envelope("9102", {"fsDownloadIn": {"file_qury_no": file_qury_no, "filename": filename,
                                                             "fixmedins_code": self.fixmedins_code}}, msgid))
        status, answer = self.post(PATH, body, self.headers())
        if isinstance(answer, bytes):
            self.expect(status == 200, "9102 answers HTTP 200 with the file")
            return answer
        result = Answer(status, answer, msgid)
        self.check_envelope(result)
        return result

    def call(self, infno: str, input_: dict, msgid: str | None = None, headers: dict | None = None) -> Answer:
        msgid = msgid or self.msgid()
        body = _dumps(self.envelope(infno, input_, msgid))
        status, answer = self.post(PATH, body, headers or self.headers())
        answer = Answer(status, answer, msgid)
        self.check_envelope(answer, infno)
        return answer

    # ------------------------------------------------------------------ checking

    def expect(self, condition: bool, what: str) -> bool:
        self.checks += 1
        if not condition:
            self.failures.append(what)
        return condition

    def check_envelope(self, a: Answer, infno: str = "") -> None:
        b = a.body
        self.expect(a.http_status == 200, f"HTTP 200 for every envelope answer (got {a.http_status})")
        self.expect(b.get("infcode") in ("0", "-1"), f'infcode the string "0" or "-1" (got {b.get("infcode")!r})')
        self.expect(isinstance(b.get("err_msg"), str), "err_msg is a string")
        self.expect(bool(STAMP17.match(str(b.get("refmsg_time")))), f"refmsg_time yyyyMMddHHmmssSSS ({b.get('refmsg_time')})")
        self.expect(bool(STAMP17.match(str(b.get("respond_time")))), "respond_time yyyyMMddHHmmssSSS")
        self.expect(bool(REFMSGID.match(str(b.get("inf_refmsgid")))), f"inf_refmsgid region+time+seq ({b.get('inf_refmsgid')})")
        for key in ("warn_msg", "cainfo", "signtype"):
            self.expect(key in b, f"{key} in the envelope")
        if a.ok:  # 5204 answers its fee lines as an array (public HIS code reads a list of rows)
            self.expect(isinstance(b.get("output"), list if infno == "5204" else dict), "output's shape on success")
        else:
            self.expect(bool(b.get("err_msg")), "a refusal says why in err_msg")

    def check_yuan(self, node: dict, keys: list[str], where: str) -> None:
        for key in keys:
            self.expect(bool(YUAN.match(str(node.get(key)))), f"{where}.{key} is yuan with 2 decimals ({node.get(key)!r})")

    def check_setlement(self, a: Answer, settled: bool) -> dict:
        """setlinfo and setldetail of a 2206/2207/2303/2304: every field, and the figures add up."""
        info, detail = a.output.get("setlinfo") or {}, a.output.get("setldetail")
        for key in SETLINFO_FIELDS:
            self.expect(key in info, f"setlinfo.{key} present")
        self.check_yuan(info, SETLINFO_AMOUNTS, "setlinfo")
        self.expect(bool(DATETIME.match(str(info.get("setl_time")))), "setlinfo.setl_time yyyy-MM-dd HH:mm:ss")
        self.expect(info.get("insutype") in ("310", "390"), "setlinfo.insutype 310 or 390")
        if settled:
            self.expect(bool(info.get("setl_id")), "setlinfo.setl_id on a settlement")
            self.expect(info.get("medins_setl_id") == a.msgid, "setlinfo.medins_setl_id is the request's msgid")
        if self.expect(isinstance(detail, list), "setldetail is a list of fund payments"):
            for n, fund in enumerate(detail):
                for key in FUND_FIELDS:
                    self.expect(key in fund, f"setldetail.{n}.{key} present")
                self.check_yuan(fund, ["fund_payamt"], f"setldetail.{n}")
            self.expect(sum(fen(f["fund_payamt"]) for f in detail) == fen(info.get("fund_pay_sumamt", "0")),
                        "setldetail sums to fund_pay_sumamt")
        try:
            self.expect(fen(info["medfee_sumamt"]) == fen(info["fund_pay_sumamt"]) + fen(info["psn_part_amt"]),
                        "medfee_sumamt = fund_pay_sumamt + psn_part_amt")
            funds = sum(fen(info[k]) for k in ("hifp_pay", "hifmi_pay", "hifob_pay", "maf_pay", "cvlserv_pay",
                                               "hifes_pay", "oth_pay"))
            self.expect(funds == fen(info["fund_pay_sumamt"]), "the funds add up to fund_pay_sumamt")
        except (KeyError, ArithmeticError, ValueError):
            self.expect(False, "setlinfo amounts readable")
        return info

    def check_person(self, a: Answer) -> dict:
        """1101: baseinfo, insuinfo[] and idetinfo[], every field the convention gives them."""
        base, insu, idet = a.output.get("baseinfo") or {}, a.output.get("insuinfo"), a.output.get("idetinfo")
        for key in BASEINFO_FIELDS:
            self.expect(key in base, f"baseinfo.{key} present")
        self.expect(base.get("gend") in ("1", "2", "9", ""), "baseinfo.gend 1/2")
        self.expect(bool(re.match(r"^\d{4}-\d{2}-\d{2}$", str(base.get("brdy")))), "baseinfo.brdy yyyy-MM-dd")
        if self.expect(isinstance(insu, list) and len(insu) >= 1, "insuinfo is a list"):
            for key in INSUINFO_FIELDS:
                self.expect(key in insu[0], f"insuinfo.0.{key} present")
            self.check_yuan(insu[0], ["balc"], "insuinfo.0")
        if self.expect(isinstance(idet, list), "idetinfo is a list"):
            for n, entry in enumerate(idet):
                for key in IDETINFO_FIELDS:
                    self.expect(key in entry, f"idetinfo.{n}.{key} present")
                self.expect(bool(DATETIME.match(str(entry.get("begntime")))), f"idetinfo.{n}.begntime yyyy-MM-dd HH:mm:ss")
        return base

    def check_fee_results(self, a: Answer, sent: int) -> list[dict]:
        result = a.output.get("result")
        if not self.expect(isinstance(result, list) and len(result) == sent, "2204/2301 result: one entry per line"):
            return []
        for n, line in enumerate(result):
            for key in FEE_RESULT_FIELDS:
                self.expect(key in line, f"result.{n}.{key} present")
            self.check_yuan(line, ["det_item_fee_sumamt", "fulamt_ownpay_amt", "overlmt_amt", "preselfpay_amt",
                                   "inscp_scp_amt", "pric_uplmt_amt"], f"result.{n}")
            self.expect(line.get("chrgitm_lv") in ("01", "02", "03"), f"result.{n}.chrgitm_lv 01/02/03")
            parts = sum(fen(line[k]) for k in ("fulamt_ownpay_amt", "overlmt_amt", "preselfpay_amt", "inscp_scp_amt"))
            self.expect(parts == fen(line["det_item_fee_sumamt"]), f"result.{n}: the split adds up to the line")
        return result


def _dumps(envelope: dict) -> bytes:
    """JSON as Java HIS code writes it: Decimal amounts as JSON numbers (their exact text), not strings."""
    return _encode(envelope).encode()


def _encode(value: Any) -> str:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k, ensure_ascii=False)}:{_encode(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_encode(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)
