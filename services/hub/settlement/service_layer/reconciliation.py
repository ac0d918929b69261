"""Reconciliation (对账, 3201 totals and 3202 detail): what the hub holds for a hospital against what
the hospital says it settled — settlements standing (settled, not reversed) in a range of business
dates, selected as HIS code reconciles them (one total per insurance type, clearing type and
agency)."""

from __future__ import annotations

from typing import Callable

from hub.settlement.adapters.repository import Repository
from hub.settlement.domain.money import AmountError, yuan_to_fen
from hub.settlement.service_layer import convention, files
from hub.settlement.service_layer.envelope import Answer, Request, data_of
from hub.settlement.service_layer.reasons import Why

MAX_RECONCILE_DAYS = 31
MAX_RECONCILE_DETAILS = 100_000


def reconcile(repository: Repository, request: Request, keep: Callable[[Request, str, bytes], dict]) -> dict:
    """3201 totals / 3202 detail: what the hub holds for this hospital, settlements standing
    (settled, not reversed) whose business date lies in [stmt_begndate, stmt_enddate] — and,
    as HIS code reconciles one total per insurance type, clearing type and agency, only those
    of the `insutype`, `clr_type` and `setl_optins` the request names (each as the settlement
    was answered in its setlinfo; a field left out or empty selects every value)."""
    data = data_of(request.payload)
    begin, end = convention.parse_day(data.get("stmt_begndate")), convention.parse_day(data.get("stmt_enddate"))
    if begin is None or end is None or end < begin or (end - begin).days >= MAX_RECONCILE_DAYS:
        raise Answer(Why.INVALID_FIELD, f"stmt_begndate..stmt_enddate: a range of at most {MAX_RECONCILE_DAYS} days")
    wanted = _reconcile_selection(data)
    standing = [s for s in repository.standing_settlements(request.hospital.code, begin, end)
                if all(getattr(s, field) == value for field, value in wanted.items())]
    hub = {s.setl_id: (s.medfee_sumamt_fen, s.fund_pay_sumamt_fen) for s in standing}
    y = convention.fen_to_yuan
    hub_totals = {"medfee_sumamt": y(sum(v[0] for v in hub.values())),
                  "fund_pay_sumamt": y(sum(v[1] for v in hub.values())), "acct_pay": convention.ZERO,
                  "fixmedins_setl_cnt": len(hub)}
    if request.infno == "3201":
        theirs = _their_totals(data)
        differing = [k for k in hub_totals if k in theirs and hub_totals[k] != theirs[k]]
        return {"stmtinfo": {"setl_optins": wanted.get("clr_optins", request.hospital.pool),
                             "stmt_rslt": "0" if not differing else "1",
                             "stmt_rslt_dscr": "match" if not differing else "mismatch: " + ", ".join(differing),
                             "hub": hub_totals, "hospital": theirs}}
    theirs_detail = _their_detail_file(repository, request, data) if data.get("file_qury_no") else _their_details(data)
    differences = sorted(
        [{"setl_id": k, "reason": "missing_at_hospital"} for k in hub.keys() - theirs_detail.keys()]
        + [{"setl_id": k, "reason": "not_standing_at_hub"} for k in theirs_detail.keys() - hub.keys()]
        + [{"setl_id": k, "reason": "amounts_differ", "hub_medfee_sumamt": y(hub[k][0]),
            "hub_fund_pay_sumamt": y(hub[k][1])}
           for k in hub.keys() & theirs_detail.keys() if hub[k] != theirs_detail[k]],
        key=lambda d: d["setl_id"])
    result = keep(request, f"3202_{begin:%Y%m%d}_{end:%Y%m%d}.zip",
                        files.zipped("3202_result.txt", files.result_text(differences)))
    return {"fileinfo": result,
            "stmtinfo": {"stmt_rslt": "0" if not differences else "1",
                         "stmt_rslt_dscr": "match" if not differences else f"{len(differences)} differing settlements",
                         "hub": hub_totals}, "differences": differences}

def _their_detail_file(repository: Repository, request: Request, data: dict) -> dict[str, tuple[int, int]]:
    """3202's detail file, uploaded by the hospital with 9101 (file_qury_no)."""
    number = data["file_qury_no"]
    stored = repository.file(number) if isinstance(number, str) else None
    if stored is None or stored.hospital_code != request.hospital.code:
        raise Answer(Why.FILE_NOT_FOUND, f"file_qury_no: no file {number} of this hospital's: upload it with 9101 first")
    return files.detail_rows(files.text_of(stored.content))


_RECONCILE_SELECTORS = (("insutype", "insutype", frozenset(convention.INSUTYPES)),
                        ("clr_type", "clr_type", frozenset(convention.CLR_TYPES.values())),
                        ("setl_optins", "clr_optins", None))


def _reconcile_selection(data: dict) -> dict[str, str]:
    """The settlements a 3201/3202 totals: {StandingSettlement field: value} for each selector sent
    (each a code already: inputs.py)."""
    wanted = {}
    for name, field, allowed in _RECONCILE_SELECTORS:
        value = data.get(name)
        if value in (None, ""):
            continue
        if value not in allowed if allowed else not (value.isdigit() and len(value) == 6):
            raise Answer(Why.INVALID_FIELD, f"{name}: {', '.join(sorted(allowed)) if allowed else 'a 6-digit pool code'}")
        wanted[field] = value
    return wanted


def _their_totals(data: dict) -> dict:
    """The hospital's totals; `acct_pay` compared only when sent (the hub pays nothing from accounts)."""
    y = convention.fen_to_yuan
    try:
        totals = {"medfee_sumamt": y(yuan_to_fen(data.get("medfee_sumamt", "0"), "medfee_sumamt")),
                  "fund_pay_sumamt": y(yuan_to_fen(data.get("fund_pay_sumamt", "0"), "fund_pay_sumamt"))}
        if data.get("acct_pay") not in (None, ""):
            totals["acct_pay"] = y(yuan_to_fen(data["acct_pay"], "acct_pay"))
    except (AmountError, ValueError, TypeError, ArithmeticError) as exc:
        raise Answer(Why.INVALID_AMOUNT, str(exc)) from None
    # A count the edge read (inputs.py: 0 to 10^9); -1 when not sent, which no hub total matches.
    return {**totals, "fixmedins_setl_cnt": data.get("fixmedins_setl_cnt", -1)}


def _their_details(data: dict) -> dict[str, tuple[int, int]]:
    details = data.get("details")
    if not isinstance(details, list) or len(details) > MAX_RECONCILE_DETAILS:
        raise Answer(Why.INVALID_FIELD, f"details: a list of at most {MAX_RECONCILE_DETAILS} settlements")
    theirs = {}
    try:
        for n, d in enumerate(details):
            if not isinstance(d, dict) or not isinstance(d.get("setl_id"), str):
                raise Answer(Why.INVALID_FIELD, f"details.{n}.setl_id")
            theirs[d["setl_id"]] = (yuan_to_fen(d.get("medfee_sumamt", "0"), f"details.{n}.medfee_sumamt"),
                                    yuan_to_fen(d.get("fund_pay_sumamt", "0"), f"details.{n}.fund_pay_sumamt"))
    except (AmountError, ValueError, TypeError) as exc:
        raise Answer(Why.INVALID_AMOUNT, str(exc)) from None
    return theirs
