"""Monthly statements: issue one per home bureau for a month whose days are all closed, let the bureau
confirm or dispute its lines, resolve disputes, close, and publish every change
(MonthlyStatementChanged on clearing.statements, through the outbox). The rules are in
hub.clearing.domain.statements; the repository stores."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from hub.clearing.adapters import files
from hub.clearing.adapters.repository import ClearingRepository, MonthlyStatement, Unit
from hub.clearing.domain.advance import AdvanceRule
from hub.clearing.domain.funds import INSUTYPE_CODES
from hub.clearing.domain.refusals import ClearingRefused, StatementRefusal
from hub.clearing.domain.statements import EVENT_ACTION, LineState, after, month_days
from hub.clearing.service_layer.day_files import Publishing, claim_dict
from hub.clearing.service_layer.journal import PRODUCER, Journal

MAX_LINES_PER_ACTION = 10_000
AMOUNT = ("medfee_sumamt_fen", "hifp_pay_fen", "hifmi_pay_fen", "maf_pay_fen")
BUREAU_STATE = {"confirm": LineState.CONFIRMED, "unconfirm": LineState.PENDING, "dispute": LineState.DISPUTED,
                "withdraw": LineState.PENDING}
INSURANCE_TYPE = {code: name for name, code in INSUTYPE_CODES.items()}


def issue(repository: ClearingRepository, journal: Journal, rule: AdvanceRule, now: datetime, month: str,
          who: str) -> list[dict[str, Any]]:
    """Every home bureau's statement of `month` (its days all closed): the month's lines and the
    resolved disputes of earlier months. Issuing again adds none twice."""
    first, last = month_days(month)
    if last >= now.astimezone(files.SHANGHAI).date():
        raise ClearingRefused(StatementRefusal.MONTH_NOT_OVER, month)
    issued = []
    with repository.unit() as unit:
        unit.lock_month_issue()
        still_open = unit.days_not_closed(first, last)
        if still_open:
            raise ClearingRefused(StatementRefusal.DAYS_OPEN, f"close {', '.join(x.isoformat() for x in still_open)}")
        for pool in sorted(unit.pools_to_state(month, first, last) - unit.month_pools_issued(month)):
            advance = unit.advance(pool)
            balance, required = (advance.balance_fen, advance.required_fen) if advance else (0, 0)
            unit.issue_statement(MonthlyStatement(month, pool, "ISSUED", now, who, balance, required,
                                                  rule.top_up(balance, required)), first, last)
            summary = _summary(unit, month, pool)
            _emit(unit, journal, summary, "ISSUED", [], "", who, now)
            issued.append(summary)
    return issued


def act(repository: ClearingRepository, journal: Journal, now: datetime, month: str, pool: str, action: str,
        event_ids: list[str] | None, reason: str, who: str, all_pending: bool = False) -> dict[str, Any]:
    """A bureau confirms, unconfirms, disputes (with a reason) or withdraws a dispute on lines of its
    ISSUED statement; all of them or none. Repeating an action changes nothing."""
    month_days(month)
    if action == "dispute" and not reason.strip():
        raise ClearingRefused(StatementRefusal.REASON_REQUIRED)
    if len(reason) > 500:
        raise ClearingRefused(StatementRefusal.REASON_TOO_LONG)
    with repository.unit() as unit:
        _locked(unit, month, pool, open_only=True)
        if all_pending:
            if action != "confirm":
                raise ClearingRefused(StatementRefusal.INVALID_ACTION, f"{action} of all pending lines")
            event_ids = [i for i, state in unit.line_states(month, pool, None, lock=False).items()
                         if state == LineState.PENDING.value]
        ids = sorted(set(event_ids or []))
        if not ids and not all_pending:
            raise ClearingRefused(StatementRefusal.NO_LINES)
        if len(ids) > MAX_LINES_PER_ACTION or not all(isinstance(i, str) for i in ids):
            raise ClearingRefused(StatementRefusal.INVALID_LINES)
        states = unit.line_states(month, pool, ids)
        missing = [i for i in ids if i not in states]
        if missing:
            raise ClearingRefused(StatementRefusal.LINE_NOT_FOUND, f"{missing[0]} in {pool}'s {month} statement"
                                 + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
        changed = [i for i in ids if after(action, LineState(states[i]), i).value != states[i]]
        if changed:
            unit.set_line_states(month, pool, changed, BUREAU_STATE[action].value,
                                 reason.strip() if action == "dispute" else "", now, who)
        summary = _summary(unit, month, pool)
        if changed:
            _emit(unit, journal, summary, EVENT_ACTION[action], changed, reason.strip(), who, now)
    return {**summary, "changed": changed}


def resolve(repository: ClearingRepository, journal: Journal, now: datetime, month: str, pool: str, event_id: str,
            note: str, who: str) -> dict[str, Any]:
    """The centre records a disputed line's resolution; it is carried into the bureau's next
    statement (withheld from this one either way)."""
    if not note.strip():
        raise ClearingRefused(StatementRefusal.NOTE_REQUIRED)
    with repository.unit() as unit:
        _locked(unit, month, pool, open_only=False)
        state = unit.line_states(month, pool, [event_id]).get(event_id)
        if state is None:
            raise ClearingRefused(StatementRefusal.LINE_NOT_FOUND, f"{event_id} in {pool}'s {month} statement")
        if state == LineState.RESOLVED.value:
            return {**_summary(unit, month, pool), "changed": []}
        if state != LineState.DISPUTED.value:
            raise ClearingRefused(StatementRefusal.INVALID_TRANSITION, f"line {event_id} is {state}: only a dispute is resolved")
        unit.set_line_states(month, pool, [event_id], LineState.RESOLVED.value, note.strip(), now, who)
        summary = _summary(unit, month, pool)
        _emit(unit, journal, summary, "RESOLVED", [event_id], note.strip(), who, now)
    return {**summary, "changed": [event_id]}


def close(repository: ClearingRepository, journal: Journal, publishing: Publishing, now: datetime, month: str,
          pool: str, who: str) -> dict[str, Any]:
    """Close a statement once no line is pending: its files are written and signed, and nothing in it
    changes any more (closing again answers the same)."""
    with repository.unit() as unit:
        if _locked(unit, month, pool, open_only=False).status == "CLOSED":
            return _summary(unit, month, pool)
        summary = _summary(unit, month, pool)
        if summary["pending_lines"]:
            raise ClearingRefused(StatementRefusal.LINES_PENDING, f"{summary['pending_lines']} line(s)")
        unit.close_monthly(month, pool, now, who)
        rendered = _render(unit, publishing, month, pool)
        unit.set_monthly_digest(month, pool, files.manifest_sha256(rendered))
        summary = _summary(unit, month, pool)
        _emit(unit, journal, summary, "CLOSED", [], "", who, now)
    files.write_files(publishing.out_dir / "months" / month, rendered)
    return summary


def still_open(repository: ClearingRepository) -> list[dict[str, Any]]:
    """Every issued statement not closed yet (the operators' overview; each one's lines are on its own
    page: counting every bureau's lines would read the month's whole table)."""
    with repository.unit() as unit:
        rows = unit.open_monthlies()
    return [{"month": r.month, "bureau_pool": r.bureau_pool, "status": r.status, "issued_at": _text(r.issued_at),
             "top_up_fen": r.top_up_fen} for r in rows]


def show(repository: ClearingRepository, month: str, pool: str, filters: dict[str, str] | None = None,
         limit: int | None = None, offset: int = 0) -> dict[str, Any] | None:
    """The statement with its lines: all of them, or those matching `filters` (counterparty_pool,
    hospital_code, insutype, state), at most `limit` from `offset` on; `lines_matching` counts them
    all, and the statement's counterparties and hospitals are listed for choosing."""
    month_days(month)
    where = {("insurance_type" if name == "insutype" else name): (INSURANCE_TYPE.get(value, value)
                                                                  if name == "insutype" else value)
             for name, value in (filters or {}).items()
             if value and name in ("insutype", "counterparty_pool", "hospital_code", "state")}
    with repository.unit() as unit:
        if unit.monthly(month, pool) is None:
            return None
        lines = [_line(r) for r in unit.month_lines(month, pool, where, limit, offset)]
        # The treating hospital's own confirmation of each line (3261): shown, not part of the signed files.
        flags = unit.hospital_flags([line["settlement_id"] for line in lines])
        for line in lines:
            line["hospital_cnfm"] = flags.get((line["settlement_id"], line["kind"]), "")
        out = {**_summary(unit, month, pool), "lines": lines}
        if filters is not None or limit is not None:
            out["lines_matching"] = unit.count_month_lines(month, pool, where)
            for name in ("counterparty_pool", "hospital_code"):
                out[f"{name}s"] = unit.month_line_values(month, pool, name)
    return out


def statement_file(repository: ClearingRepository, publishing: Publishing, month: str, pool: str,
                   suffix: str) -> bytes | None:
    """A closed statement's file: as written, else rendered again (byte-identical)."""
    month_days(month)
    name = f"statement_{month}_{pool}.{suffix}"
    written = publishing.out_dir / "months" / month / name
    if written.is_file():
        return written.read_bytes()
    with repository.unit() as unit:
        statement = unit.monthly(month, pool)
        if statement is None or statement.status != "CLOSED":
            return None
        return _render(unit, publishing, month, pool).get(name)


def _locked(unit: Unit, month: str, pool: str, open_only: bool) -> MonthlyStatement:
    statement = unit.monthly(month, pool, lock=True)
    if statement is None:
        raise ClearingRefused(StatementRefusal.STATEMENT_NOT_FOUND, f"{month} for {pool}")
    if open_only and statement.status != "ISSUED":
        raise ClearingRefused(StatementRefusal.STATEMENT_CLOSED, f"{pool}'s {month} statement")
    return statement


def _summary(unit: Unit, month: str, pool: str) -> dict[str, Any]:
    st = unit.monthly(month, pool)
    totals = {state.value: (0, 0) for state in LineState} | unit.month_totals(month, pool)
    return {"month": month, "bureau_pool": pool, "status": st.status, "issued_at": _text(st.issued_at),
            "closed_at": _text(st.closed_at), "line_count": sum(c for c, _ in totals.values()),
            "confirmed_fen": totals["CONFIRMED"][1], "disputed_fen": totals["DISPUTED"][1],
            "resolved_fen": totals["RESOLVED"][1], "pending_fen": totals["PENDING"][1],
            "pending_lines": totals["PENDING"][0], "advance_balance_fen": st.advance_balance_fen,
            "advance_required_fen": st.advance_required_fen, "top_up_fen": st.top_up_fen}


def _line(r: dict[str, Any]) -> dict[str, Any]:
    return {"event_id": r["event_id"], "state": r["state"], "reason": r["reason"], "carried_from": r["carried_from"],
            "kind": r["kind"], "settlement_id": r["settlement_id"], "reversal_id": r["reversal_id"] or "",
            "clearing_date": r["clearing_date"].isoformat(), "hospital_code": r["hospital_code"],
            "counterparty_pool": r["counterparty_pool"], "insutype": INSUTYPE_CODES[r["insurance_type"]],
            "person_id_masked": r["person_id_masked"], **{c: r[c] for c in AMOUNT}}


def _render(unit: Unit, publishing: Publishing, month: str, pool: str) -> dict[str, bytes]:
    statement = unit.monthly(month, pool)
    # The month's manual claims (零星报销) the bureau paid its insured: for its books, not lines to
    # confirm — no other fund owes anything for them.
    claims = [claim_dict(r) for r in unit.manual_claims(*month_days(month), pool=pool)]
    return files.render_statement_files(_summary(unit, month, pool),
                                        [_line(r) for r in unit.month_lines(month, pool, {})],
                                        publishing.pool_names, statement.closed_at, publishing.signer, claims)


def _emit(unit: Unit, journal: Journal, summary: dict[str, Any], action: str, ids: list[str], reason: str, who: str,
          now: datetime) -> None:
    event = {"event_id": uuid.uuid4(), "event_time": now, "producer": PRODUCER, "schema_version": 1,
             "month": summary["month"], "bureau_pool": summary["bureau_pool"], "action": action,
             "line_event_ids": ids, "reason": reason, "actor": who, "status": summary["status"],
             "confirmed_fen": summary["confirmed_fen"], "disputed_fen": summary["disputed_fen"] + summary["resolved_fen"],
             "pending_fen": summary["pending_fen"], "top_up_fen": summary["top_up_fen"]}
    journal.record(unit, "MonthlyStatementChanged", summary["bureau_pool"], event)


def _text(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
