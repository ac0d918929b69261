"""What bureaus and operators read of closed days (beside their files), their confirmations, and the
treatment bureau's view of its hospitals' month."""

from __future__ import annotations

from datetime import datetime
from datetime import date
from typing import Any

from hub.clearing.adapters import files
from hub.clearing.adapters.repository import ClearingRepository, Statement
from hub.clearing.domain.netting import position_of
from hub.clearing.domain.statements import month_days
from hub.clearing.service_layer.journal import Journal, confirmation_event

LATE_SHOWN = 50  # late events a day summary lists


def _text(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def confirm(repository: ClearingRepository, journal: Journal, now: datetime, day: date, pool: str, who: str) -> bool:
    """A bureau confirms its statement of a closed day (published the first time:
    ClearingStatementConfirmed; again, nothing changes); false if it has none."""
    with repository.unit() as unit:
        if unit.statement(day, pool) is None:
            return False
        if unit.confirm(day, pool, now, who):
            journal.record(unit, "ClearingStatementConfirmed", pool, confirmation_event(day, pool, now, who))
        return True


def day_summary(repository: ClearingRepository, pool_names: dict[str, str], day: date, pool: str) -> dict[str, Any] | None:
    """A pool's closed day without its lines: its position per fund and per counterparty (from the
    day's running totals, netted again: no line is read) and its statement's state."""
    with repository.unit() as unit:
        st = unit.statement(day, pool)
        if st is None:
            return None
        row = unit.day(day)
        position = position_of(pool, unit.obligations(day, pool))
        late = unit.late_events(day, pool, LATE_SHOWN + 1)
    header = files.DayHeader(day, row.cycle_id, row.closed_at, pool_names)
    funds, bilateral = files.position_parts(header, position)
    return {"pool_code": pool, "pool_name": pool_names.get(pool, ""), "clearing_date": day.isoformat(),
            "cycle_id": st.cycle_id, "receivable_fen": st.receivable_fen, "payable_fen": st.payable_fen,
            "net_position_fen": st.net_position_fen, "settlement_count": st.settlement_count,
            "manifest_sha256": st.manifest_sha256, "funds": funds, "bilateral": bilateral,
            # events of earlier, closed days that arrived after their close: cleared in this day
            "late_events": [{"settlement_id": r.settlement_id, "kind": r.kind,
                             "business_date": r.business_date.isoformat(), "home_pool": r.home_pool,
                             "treatment_pool": r.treatment_pool, "fund_fen": r.fund_fen} for r in late[:LATE_SHOWN]],
            "late_events_more": len(late) > LATE_SHOWN,
            "confirmed_at": _text(st.confirmed_at), "confirmed_by": st.confirmed_by}


def _statement_dict(r: Statement) -> dict[str, Any]:
    return {"clearing_date": r.clearing_date.isoformat(), "pool_code": r.pool_code, "cycle_id": r.cycle_id,
            "receivable_fen": r.receivable_fen, "payable_fen": r.payable_fen,
            "net_position_fen": r.net_position_fen, "settlement_count": r.settlement_count,
            "confirmed_at": _text(r.confirmed_at), "confirmed_by": r.confirmed_by}


def days_of(repository: ClearingRepository, pool: str, limit: int = 62) -> list[dict[str, Any]]:
    """A pool's closed days, newest first: its net position and whether its bureau confirmed."""
    with repository.unit() as unit:
        return [_statement_dict(r) for r in unit.statements_of(pool, limit)]


def unconfirmed(repository: ClearingRepository) -> list[dict[str, Any]]:
    with repository.unit() as unit:
        rows = unit.unconfirmed()
    return [{"clearing_date": r.clearing_date.isoformat(), "pool_code": r.pool_code,
             "net_position_fen": r.net_position_fen, "cycle_id": r.cycle_id} for r in rows]


def hospital_month(repository: ClearingRepository, month: str, treatment_pool: str) -> dict[str, Any]:
    """The treatment bureau's view of its hospitals' month: per hospital, the lines they confirmed
    (what the bureau pays them from), did not agree or have not confirmed, and their clearing
    applications."""
    first, last = month_days(month)
    with repository.unit() as unit:
        rows = unit.hospital_month_totals(treatment_pool, first, last)
        applied = unit.hospital_applications(treatment_pool, month)
    hospitals: dict[str, dict[str, Any]] = {}

    def of(code: str) -> dict[str, Any]:
        return hospitals.setdefault(code, {"hospital_code": code, "lines": 0, "applications": [], **{
            f"{name}_{unit}": 0 for name in ("confirmed", "not_agreed", "unconfirmed") for unit in ("lines", "fen")}})
    for code, flag, count, fund in rows:
        entry, name = of(code), {"1": "confirmed", "0": "not_agreed"}.get(flag, "unconfirmed")
        entry["lines"] += count
        entry[f"{name}_lines"] += count
        entry[f"{name}_fen"] += fund
    for r in applied:
        of(r["hospital_code"])["applications"].append({k: r[k] for k in (
            "clr_appy_evt_id", "clr_type", "status", "psntime", "medfee_sumamt_fen", "fund_appy_sum_fen")})
    return {"month": month, "treatment_pool": treatment_pool, "hospitals": [hospitals[k] for k in sorted(hospitals)]}
