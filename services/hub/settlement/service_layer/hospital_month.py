"""The hospital's month over the interface, as public HIS code drives it (hsa-his
InsureUnifiedRemoteBOImpl, nhis-web YbFunUtils):

- 3260 提取异地清分明细: the month's 清分 lines, 100 a page from `startrow` — each settlement of
  the hospital's whose business date is in the month (setl_sn = its setl_id) and each reversal
  made in the month (setl_sn = the reversal's own id, amounts negated), with the hospital's
  confirmation so far;
- 3261 异地清分结果确认: confirm lines (`cnfm_flag` 1) or say they are not agreed (0), at most 100
  a call, each checked against the hub's line (its amounts must be the hub's);
- 3262 异地清分结果确认回退: roll a month's confirmations back — those of one 3261 (`otransid`
  its msgid) or all of them;
- 3203 清算申请 / 3204 清算申请撤销: file the month's clearing application for one clearing type
  (its totals must be the hub's for that month and type) and cancel it. While an application
  stands, the month's confirmations cannot change (cancel it first).

Every change is a HospitalMonthChanged event (service_layer/events.py), published with it in one
transaction: clearing keeps each line's hospital confirmation beside the home bureau's statement
line, and gives the treatment bureau what its hospitals confirmed and applied for. The decisions
are here; the transaction (msgid claim, lock, remembered answer, outbox) is the handler's.
"""

from __future__ import annotations

import calendar
import uuid
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any, Callable

from hub.money import AmountError, fen_to_yuan, yuan_to_fen
from hub.settlement.adapters.repository import Application, Confirmation, MonthLine, MonthState
from hub.settlement.service_layer.envelope import SHANGHAI, Answer, Request, data_of
from hub.settlement.service_layer.reasons import Why

LINES = frozenset({"3260"})
CHANGES = frozenset({"3203", "3204", "3261", "3262"})
PAGE = 100  # lines a 3260 answers at a time (hsa-his pages on while a page is full)
MAX_CONFIRM = 100  # lines one 3261 may confirm (the convention's batches of at most 100)
CLR_TYPES = {"11": "门诊", "21": "住院"}
PRODUCER = "settle-at-treatment"


@dataclass
class MonthChange:
    """What a 3203/3204/3261/3262 changes, decided: rows to write and the event to publish."""

    confirmations: list[Confirmation] = field(default_factory=list)
    removed: list[tuple[str, str]] = field(default_factory=list)  # (hospital_code, setl_sn)
    applications: list[Application] = field(default_factory=list)
    event: dict[str, Any] | None = None


def month_of(data: dict, request: Request) -> tuple[str, date, date]:
    """The month a request names — `trt_year` + `trt_month` (3260-3262) or `setlym` (3203) — as
    (yyyyMM, its first day, its last day)."""
    if request.infno == "3203":
        text, where = str(data.get("setlym") or ""), "setlym"
    else:
        year, month = data.get("trt_year"), data.get("trt_month")
        text, where = f"{year}{str(month).zfill(2)}", "trt_year, trt_month"
        if year in (None, "") or month in (None, ""):
            raise Answer(Why.INVALID_FIELD, "trt_year, trt_month: the month's year (yyyy) and month (MM)")
    if not (len(text) == 6 and text.isdigit() and 1 <= int(text[4:]) <= 12 and int(text[:4]) >= 2000):
        raise Answer(Why.INVALID_FIELD, f"{where}: a month, yyyyMM (got {text!r})")
    first = date(int(text[:4]), int(text[4:]), 1)
    return text, first, first.replace(day=calendar.monthrange(first.year, first.month)[1])


def node(request: Request) -> dict:
    """The request's `data`; a HIS that sends the fields straight under `input` (hsa-his's 3262) is read too."""
    data = data_of(request.payload)
    return data or {k: v for k, v in request.payload.items() if not isinstance(v, (dict, list))}


def line_row(n: int, line: MonthLine, request: Request, confirmation: Confirmation | None,
             opened: Callable[[str], dict[str, str]]) -> dict[str, Any]:
    """A 3260 row as hsa-his stores it (seqno, mdtrtarea, medins_no, certno, mdtrt_id,
    mdtrt_setl_time, setl_sn, fulamt_advpay_flag, medfee_sumamt, optins_pay_sumamt), the hub's
    extras beside: the home pool, insurance and clearing type, what kind of line, and the
    hospital's confirmation so far. The person's id is given in clear to the treating hospital only."""
    details = opened(line.sealed) if line.sealed else {}
    return {"seqno": n, "mdtrtarea": request.hospital.pool, "medins_no": request.hospital.code,
            "certno": details.get("certno", ""), "psn_name": details.get("psn_name", ""),
            "mdtrt_id": line.mdtrt_id, "mdtrt_setl_time": line.at.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S"),
            "setl_sn": line.setl_sn, "setl_id": line.settlement_id, "fulamt_advpay_flag": "0",
            "medfee_sumamt": fen_to_yuan(line.medfee_sumamt_fen), "optins_pay_sumamt": fen_to_yuan(line.fund_pay_sumamt_fen),
            "insuplc_admdvs": line.home_pool, "insutype": line.insutype, "clr_type": line.clr_type,
            "refd_setl_flag": "1" if line.kind == "REVERSED" else "0",
            "cnfm_flag": confirmation.cnfm_flag if confirmation else ""}


def lines_page(request: Request, lines: list[MonthLine], state: MonthState,
               opened: Callable[[str], dict[str, str]]) -> dict[str, Any]:
    """3260: one page of the month's lines."""
    start = node(request).get("startrow", 1)  # a count already (inputs.py), or null
    if start is None or start < 1:
        raise Answer(Why.INVALID_FIELD, "startrow: the first line to answer, from 1")
    page = lines[start - 1:start - 1 + PAGE]
    return {"data": [line_row(start + n, line, request, state.confirmations.get(line.setl_sn), opened)
                     for n, line in enumerate(page)],
            "totalrow": len(lines)}


def _applied(state: MonthState) -> Application | None:
    return next((a for a in state.applications.values() if a.status == "APPLIED"), None)


def _event(request: Request, month: str, action: str, lines: list[dict], application: dict | None = None) -> dict:
    return {"event_id": uuid.uuid4(), "event_time": request.now, "producer": PRODUCER, "schema_version": 1,
            "msgid": request.msgid, "hospital_code": request.hospital.code, "treatment_pool": request.hospital.pool,
            "month": month, "action": action, "lines": lines, "application": application}


def _event_line(line: MonthLine, flag: str) -> dict:
    return {"setl_sn": line.setl_sn, "settlement_id": line.settlement_id, "kind": line.kind, "home_pool": line.home_pool,
            "cnfm_flag": flag, "medfee_sumamt_fen": line.medfee_sumamt_fen, "fund_pay_sumamt_fen": line.fund_pay_sumamt_fen}


def _fen(value: Any, where: str) -> int:
    try:
        return yuan_to_fen(value, where)
    except AmountError as exc:
        raise Answer(Why.INVALID_AMOUNT, str(exc)) from None


def decide(request: Request, month: str, last: date, lines: list[MonthLine], state: MonthState
           ) -> tuple[dict[str, Any], MonthChange]:
    """A 3203/3261/3262 decided against the month's lines (`month_of` the request: yyyyMM and its
    last day) and the hospital's month (locked): its output and what changes; or an Answer raised
    before anything is. (3204: `cancel`.)"""
    data = node(request)
    if request.infno == "3203":
        return _apply(request, data, month, last, lines, state)
    standing = _applied(state)
    if standing is not None:
        raise Answer(Why.MONTH_APPLIED, f"trt_year, trt_month: {month} has a clearing application "
                                        f"({standing.clr_appy_evt_id}); cancel it with 3204 first")
    if request.infno == "3261":
        return _confirm(request, month, lines, state)
    return _roll_back(request, data, month, lines, state)


def _confirm(request: Request, month: str, lines: list[MonthLine], state: MonthState) -> tuple[dict, MonthChange]:
    detail = request.payload.get("detail")
    if not isinstance(detail, list) or not 1 <= len(detail) <= MAX_CONFIRM:
        raise Answer(Why.INVALID_FIELD, f"detail: 1 to {MAX_CONFIRM} lines a call (confirm in batches)")
    by_sn = {l.setl_sn: l for l in lines}
    change, event_lines, seen = MonthChange(), [], set()
    for n, row in enumerate(detail):
        if not isinstance(row, dict):
            raise Answer(Why.INVALID_INPUT, f"detail.{n}: an object")
        sn, flag = row.get("setl_sn"), row.get("cnfm_flag")
        line = by_sn.get(sn) if isinstance(sn, str) else None
        if line is None:
            raise Answer(Why.MONTH_LINE_NOT_FOUND, f"detail.{n}.setl_sn: {sn!r} is not a line of {month} (3260 lists them)")
        if sn in seen:
            raise Answer(Why.INVALID_FIELD, f"detail.{n}.setl_sn: {sn} is twice in this batch")
        seen.add(sn)
        if str(flag) not in ("0", "1"):
            raise Answer(Why.INVALID_FIELD, f"detail.{n}.cnfm_flag: 1 confirmed, 0 not agreed")
        for name, hub_fen in (("medfee_sumamt", line.medfee_sumamt_fen), ("optins_pay_sumamt", line.fund_pay_sumamt_fen)):
            if row.get(name) not in (None, "") and _fen(row[name], f"detail.{n}.{name}") != hub_fen:
                raise Answer(Why.AMOUNT_MISMATCH, f"detail.{n}.{name}: the hub's line {sn} is {fen_to_yuan(hub_fen)}")
        change.confirmations.append(Confirmation(request.hospital.code, sn, month, str(flag), request.msgid, request.now))
        event_lines.append(_event_line(line, str(flag)))
    change.event = _event(request, month, "LINES_CONFIRMED", event_lines)
    confirmed = sum(1 for c in change.confirmations if c.cnfm_flag == "1")
    return {"data": {"trt_year": month[:4], "trt_month": month[4:], "totalrow": len(detail), "cnfm_cnt": confirmed,
                     "not_agreed_cnt": len(detail) - confirmed}}, change


def _roll_back(request: Request, data: dict, month: str, lines: list[MonthLine], state: MonthState
               ) -> tuple[dict, MonthChange]:
    otransid = data.get("otransid")
    chosen = [c for c in state.confirmations.values()
              if otransid in (None, "", "0", 0) or c.msgid == str(otransid)]
    by_sn = {l.setl_sn: l for l in lines}
    change = MonthChange(removed=[(request.hospital.code, c.setl_sn) for c in chosen])
    event_lines = [_event_line(by_sn[c.setl_sn], "") for c in chosen if c.setl_sn in by_sn]
    change.event = _event(request, month, "LINES_ROLLED_BACK", event_lines)
    return {"data": {"trt_year": month[:4], "trt_month": month[4:], "rollback_cnt": len(chosen)}}, change


def _apply(request: Request, data: dict, month: str, last: date, lines: list[MonthLine], state: MonthState
           ) -> tuple[dict, MonthChange]:
    if request.now.astimezone(SHANGHAI).date() <= last:
        raise Answer(Why.MONTH_NOT_OVER, f"setlym: {month} is not over yet")
    clr_type = str(data.get("clr_type") or "")
    if clr_type not in CLR_TYPES:
        raise Answer(Why.INVALID_FIELD, f"clr_type: {', '.join(f'{k} {v}' for k, v in CLR_TYPES.items())}")
    standing = next((a for a in state.applications.values() if a.status == "APPLIED" and a.clr_type == clr_type), None)
    if standing is not None:
        raise Answer(Why.ALREADY_APPLIED, f"clr_type: {month}'s {clr_type} application is {standing.clr_appy_evt_id}")
    of_type = [l for l in lines if l.clr_type == clr_type]
    hub = {"medfee_sumamt": sum(l.medfee_sumamt_fen for l in of_type),
           "fund_appy_sum": sum(l.fund_pay_sumamt_fen for l in of_type),
           "psntime": sum(1 if l.kind == "COMPLETED" else -1 for l in of_type)}
    for name in ("medfee_sumamt", "fund_appy_sum"):
        if data.get(name) in (None, ""):
            raise Answer(Why.INVALID_FIELD, f"{name}: the month's total, yuan")
        if _fen(data[name], name) != hub[name]:
            raise Answer(Why.AMOUNT_MISMATCH, f"{name}: the hub's {month} {clr_type} total is {fen_to_yuan(hub[name])}")
    if data.get("psntime") not in (None, "") and int(data["psntime"]) != hub["psntime"]:
        raise Answer(Why.AMOUNT_MISMATCH, f"psntime: the hub counts {hub['psntime']} settlements in {month} ({clr_type})")
    application = Application(f"CA{request.hospital.code}{uuid.uuid4().hex[:16].upper()}", request.hospital.code, month,
                              clr_type, "APPLIED", hub["psntime"], hub["medfee_sumamt"], hub["fund_appy_sum"],
                              request.msgid, request.now)
    change = MonthChange(applications=[application])
    change.event = _event(request, month, "CLEARING_APPLIED", [], {
        "clr_appy_evt_id": application.clr_appy_evt_id, "clr_type": clr_type, "psntime": application.psntime,
        "medfee_sumamt_fen": application.medfee_sumamt_fen, "fund_appy_sum_fen": application.fund_appy_sum_fen})
    return {"result": {"clr_appy_evt_id": application.clr_appy_evt_id}}, change


def cancel(request: Request, application: Application | None) -> tuple[dict, MonthChange]:
    """3204: the hospital's standing application, cancelled."""
    data = node(request)
    if application is None or application.hospital_code != request.hospital.code:
        raise Answer(Why.APPLICATION_NOT_FOUND, f"clr_appy_evt_id: no application {data.get('clr_appy_evt_id')!r} "
                                                "of this hospital's")
    if application.status != "APPLIED":
        raise Answer(Why.APPLICATION_CANCELLED, f"clr_appy_evt_id: {application.clr_appy_evt_id} was cancelled "
                                                f"at {application.cancelled_at.isoformat() if application.cancelled_at else ''}")
    cancelled = replace(application, status="CANCELLED", cancelled_at=request.now)
    change = MonthChange(applications=[cancelled])
    change.event = _event(request, application.month, "CLEARING_CANCELLED", [], {
        "clr_appy_evt_id": application.clr_appy_evt_id, "clr_type": application.clr_type,
        "psntime": application.psntime, "medfee_sumamt_fen": application.medfee_sumamt_fen,
        "fund_appy_sum_fen": application.fund_appy_sum_fen})
    return {"result": {"clr_appy_evt_id": application.clr_appy_evt_id, "status": "CANCELLED"}}, change
