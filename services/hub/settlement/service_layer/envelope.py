"""The convention's envelope: a checked request in, an answer (done, or refused with a reason) out."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, NamedTuple

from hub.business_day import SHANGHAI
from hub.rejections import Reason
from hub.settlement.service_layer.identity import Hospital, mask_person_id
from hub.settlement.service_layer.reasons import Why


OPEN_VISIT = frozenset({"2201", "2401"})
CANCEL_VISIT = frozenset({"2202", "2404"})
UPLOAD_FEES = frozenset({"2204", "2301"})
CANCEL_FEES = frozenset({"2205", "2302"})
PRE_SETTLE = frozenset({"2206", "2303"})
SETTLE = frozenset({"2207", "2304"})
REVERSE = frozenset({"2208", "2305"})
DIAGNOSES = frozenset({"2203"})  # outpatient diagnoses (and medical type): kept with the visit
DISCHARGE = frozenset({"2402"})
ADMISSION_CHANGE = frozenset({"2403"})  # 入院信息变更: an open stay's medical type and diagnoses
CANCEL_DISCHARGE = frozenset({"2405"})
UNDO = frozenset({"2601"})  # 冲正: undo a transaction whose answer the hospital never received
UNDOABLE = SETTLE | OPEN_VISIT
LOOKUP = frozenset({"1101"})
RECONCILE = frozenset({"3201", "3202"})
SIGN = frozenset({"9001", "9002"})  # sign in and out: a sign_no for the envelopes that follow
FILES = frozenset({"9101", "9102"})  # upload a file, download one (service_layer/files.py)
CATALOGUE_FILES = frozenset({"1301", "1302", "1303", "1304", "1305", "1306", "1307"})  # catalogues as files
QUERY = frozenset({"5203", "5204", "5206"})  # a settlement as stored; its fee lines; a person's accumulators
MONTH_LINES = frozenset({"3260"})  # the month's 清分 lines (service_layer/hospital_month.py)
MONTH_CHANGES = frozenset({"3203", "3204", "3261", "3262"})  # clearing application, line confirmations
MUTATING = (OPEN_VISIT | CANCEL_VISIT | DIAGNOSES | DISCHARGE | CANCEL_DISCHARGE | UPLOAD_FEES | CANCEL_FEES | SETTLE
            | REVERSE | UNDO | ADMISSION_CHANGE)
GROUPED = MUTATING | PRE_SETTLE  # decided in group transactions (`SettlementService.run_group`)
OFF_SITE_QUERIES = frozenset({"2001", "5301", "5302", "5303", "5304", "5269", "5270"})  # service_layer/off_site.py
KNOWN = (GROUPED | LOOKUP | RECONCILE | SIGN | QUERY | FILES | CATALOGUE_FILES | MONTH_LINES | MONTH_CHANGES
         | OFF_SITE_QUERIES)


class Answer(Exception):
    """Ends a transaction with a refusal: its reason (a stable code) and what exactly was wrong."""

    def __init__(self, reason: Reason, detail: str = ""):
        super().__init__(f"{reason.code}: {detail or reason.message}")
        self.reason = reason
        self.message = detail or reason.message


def not_ready() -> Answer:
    """The answer while the read model rebuilds: try again, nothing was decided."""
    return Answer(Why.HUB_NOT_READY)


class Request(NamedTuple):
    """A request whose envelope has been checked (`SettlementService.check`)."""

    hospital: Hospital
    infno: str
    msgid: str
    payload: dict
    now: datetime

    @property
    def key(self) -> tuple[str, str]:
        return self.hospital.code, self.msgid


@dataclass(frozen=True)
class Reply:
    """The answer in the envelope, and its reason when it is a refusal (None: done)."""

    reason: Reason | None
    body: dict[str, Any]
    file: tuple[str, bytes] | None = None  # 9102: the file's name and bytes, answered as they are


# `infcode` is text, as the platform sends it: public HIS code compares it with the string "0"
# (hsa-his `"0".equals(...)`, nhis-web's `String infcode`); a JSON number never equals that string.
INFCODE_DONE = "0"
INFCODE_REFUSED = "-1"


def succeeded(body: dict[str, Any]) -> bool:
    """Whether an answer (fresh, or remembered by an older hub that wrote the number 0) is a success."""
    return str(body.get("infcode")) == INFCODE_DONE


HUB_REGION = "000000"  # the hub answers as the national platform: region code of the receiving side
_SEQUENCE = itertools.count()


def _envelope(now: datetime) -> dict[str, Any]:
    """The answer's envelope as the platform writes it: `inf_refmsgid` = receiving region (6) +
    yyyyMMddHHmmss (14) + a sequence (10); `refmsg_time`/`respond_time` = yyyyMMddHHmmssSSS."""
    local = now.astimezone(SHANGHAI)
    stamp = local.strftime("%Y%m%d%H%M%S")
    sequence = f"{os.getpid() % 1000:03d}{next(_SEQUENCE) % 10**7:07d}"
    millis = f"{stamp}{local.microsecond // 1000:03d}"
    return {"infcode": INFCODE_DONE, "inf_refmsgid": f"{HUB_REGION}{stamp}{sequence}", "refmsg_time": millis,
            "respond_time": millis, "err_msg": "", "warn_msg": "", "cainfo": "", "signtype": ""}


def done(output: dict | list, now: datetime) -> Reply:
    body = _envelope(now)
    body["output"] = output
    return Reply(None, body)


def refused(reason: Reason, message: str, now: datetime) -> Reply:
    """A refusal as the platform answers one: infcode "-1" and err_msg, led by the stable reason
    code in brackets (also in the hub's extra field `err_code`), no output."""
    body = _envelope(now)
    body.update(infcode=INFCODE_REFUSED, err_msg=f"[{reason.code}] {message or reason.message}", err_code=reason.code, output=None)
    return Reply(reason, body)


def refusal(exc: Answer, now: datetime) -> Reply:
    return refused(exc.reason, exc.message, now)


def data_of(payload: dict, key: str = "data") -> dict:
    """`payload[key]` as an object ({} when absent): any other shape is refused."""
    value = payload.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise Answer(Why.INVALID_INPUT, f"input.{key}: an object")
    return value


_ID_FIELDS = ("psn_no", "certno")  # where an answer names the person
_ID_INPUTS = ("psn_no", "certno", "mdtrt_cert_no")
SEALED = "_sealed"  # a stored answer's sealed person details (service_layer.people): opened, never sent


def reveal(reply: Reply, payload: dict, opener: Callable[[str], dict[str, str]] | None = None) -> Reply:
    """The answer as the asking hospital sees it. What the hub stores names the person masked;
    this copy names them in clear: from the sealed details the answer carries (opened by
    `opener`, and the sealed copy dropped), or where the answer shows the masked id of a number
    the request itself carried, that number (a HIS echoes `psn_no` back in its next calls)."""
    if reply.reason is not None or not isinstance(reply.body.get("output"), dict):
        return reply
    output = dict(reply.body["output"])
    sealed = output.pop(SEALED, None)
    clear = opener(sealed) if sealed and opener is not None else {}
    sent = {}
    for node in (payload.get("data"), payload.get("mdtrtinfo"), payload):
        if isinstance(node, dict):
            for key in _ID_INPUTS:
                value = node.get(key)
                if isinstance(value, str) and value:
                    sent[mask_person_id(value)] = value
    if not sent and not clear and sealed is None:
        return reply
    output = {k: _revealed(v, sent, clear) for k, v in output.items()}
    return Reply(None, {**reply.body, "output": output})


def _revealed(node: Any, sent: dict[str, str], clear: dict[str, str]) -> Any:
    if not isinstance(node, dict) or "psn_no" not in node:
        return node
    node = {**node, **{k: clear[k] for k in ("psn_no", "certno", "psn_name", "brdy") if k in node and clear.get(k)}}
    return {**node, **{k: sent[node[k]] for k in _ID_FIELDS if node.get(k) in sent}}


def canonical_sha256(infno: str, payload: Any) -> str:
    """A request's content as the msgid's idempotency compares it: SHA-256 of the canonical `infno` + `input`."""
    text = json.dumps({"infno": infno, "input": payload}, sort_keys=True, ensure_ascii=False, separators=(",", ":"),
                      default=str)  # Decimal: amounts sent as JSON numbers
    return hashlib.sha256(text.encode()).hexdigest()
