"""Advance funds (预付金, the rule in hub.clearing.domain.advance): a closed day's net drawn on or
credited to each bureau's advance, deposits the centre records, and what a bureau and the
operators read of them."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any, Mapping, Sequence

from hub.clearing.adapters.repository import ClearingRepository, LedgerRow, Unit
from hub.clearing.domain.advance import AdvanceRule, close_reference, day_entry
from hub.clearing.domain.refusals import AdvanceRefusal, ClearingRefused
from hub.clearing.service_layer.journal import Journal, deposit_event
from hub.clearing.domain.netting import PoolPosition
from hub.clearing.adapters.files import SHANGHAI
from hub.money import MAX_AMOUNT_FEN
from hub.operations.metrics import ADVANCE_BALANCE, ADVANCE_WARNING


def draw(unit: Unit, rule: AdvanceRule, day: date, positions: Sequence[PoolPosition], now: datetime,
         recorded: Mapping[str, LedgerRow] | None = None) -> dict[str, LedgerRow]:
    """Each pool's day net drawn on (or credited to) its advance, under the lock of its row; the
    required advance from its gross payable over the rule's window. Each pool's ledger entry.
    A rebuild passes the entries the close recorded (its statement events carry them): they are
    booked as they were, not worked out again."""
    if not positions:
        return {}
    pools = [p.pool for p in positions]
    balances = unit.lock_advances(pools, now)
    recorded = recorded or {}
    if any(p.pool not in recorded for p in positions):
        payables = unit.payables(pools, day - timedelta(days=rule.window_days - 1), day)
    entries = []
    for p in positions:
        if p.pool in recorded:
            entries.append(recorded[p.pool])
            continue
        entry = day_entry(rule, p.pool, balances[p.pool].balance_fen, p.net_fen, [*payables[p.pool], p.payable_fen])
        entries.append(LedgerRow(p.pool, close_reference(day), day, entry.kind, entry.amount_fen,
                                 entry.balance_fen, entry.required_fen, entry.warning, now, "clearing", ""))
    unit.record_ledger(entries, now)
    return {e.pool_code: e for e in entries}


def view(rule: AdvanceRule, e: LedgerRow) -> dict[str, Any]:
    """The advance section of a bureau's file (stable: from what the ledger recorded)."""
    return {"balance_before_fen": e.balance_fen - e.amount_fen, "day_net_fen": e.amount_fen,
            "balance_fen": e.balance_fen, "required_fen": e.required_fen, "warning": e.warning,
            "top_up_fen": max(0, e.required_fen - e.balance_fen) if e.warning else 0,
            "rule": f"{rule.months} months of average daily payable over {rule.window_days} days;"
                    f" warned under {rule.warn_pct}%"}


def of_day(unit: Unit, rule: AdvanceRule, day: date, pool: str) -> dict[str, Any] | None:
    """The pool's advance section of a closed day (None for a day closed before advances were kept)."""
    entry = unit.ledger_entry(pool, close_reference(day))
    return None if entry is None else view(rule, entry)


def deposit(repository: ClearingRepository, journal: Journal, rule: AdvanceRule, now: datetime, pool: str,
            reference: str, amount_fen: int, who: str, note: str = "") -> dict[str, Any]:
    """The centre records money a bureau paid into its advance (and publishes it: AdvanceDeposited);
    idempotent by `reference` (the same reference again answers the entry it made; with another
    amount it is refused)."""
    if not (len(pool) == 6 and pool.isdigit()):
        raise ClearingRefused(AdvanceRefusal.INVALID_POOL, repr(pool))
    if not reference.strip() or len(reference) > 100:
        raise ClearingRefused(AdvanceRefusal.INVALID_REFERENCE)
    if not 0 < amount_fen <= MAX_AMOUNT_FEN:
        raise ClearingRefused(AdvanceRefusal.INVALID_AMOUNT, f"{amount_fen} fen")
    with repository.unit() as unit:
        current = unit.lock_advances([pool], now)[pool]
        earlier = unit.ledger_entry(pool, reference)
        if earlier is not None:
            if earlier.amount_fen != amount_fen or earlier.kind != "DEPOSIT":
                raise ClearingRefused(AdvanceRefusal.REFERENCE_REUSED, f"{reference} recorded {earlier.kind} "
                                                       f"{earlier.amount_fen / 100:.2f} yuan")
            return entry_dict(earlier)
        balance = current.balance_fen + amount_fen
        warning = rule.warns(balance, current.required_fen)
        row, = unit.record_ledger([LedgerRow(pool, reference, now.astimezone(SHANGHAI).date(), "DEPOSIT", amount_fen,
                                             balance, current.required_fen, warning, now, who, note)], now)
        journal.record(unit, "AdvanceDeposited", pool, deposit_event(row))
    ADVANCE_BALANCE.labels(pool).set(balance / 100)
    ADVANCE_WARNING.labels(pool).set(1 if warning else 0)
    return entry_dict(row)


def entry_dict(r: LedgerRow) -> dict[str, Any]:
    return {"pool_code": r.pool_code, "reference": r.reference, "clearing_date": r.clearing_date.isoformat(),
            "kind": r.kind, "amount_fen": r.amount_fen, "balance_fen": r.balance_fen,
            "required_fen": r.required_fen, "warning": r.warning, "recorded_at": r.recorded_at.isoformat(),
            "recorded_by": r.recorded_by, "note": r.note}


def advance(repository: ClearingRepository, pool: str, limit: int = 120) -> dict[str, Any] | None:
    """A bureau's advance: balance, requirement, warning, top-up due, and its latest movements."""
    with repository.unit() as unit:
        current = unit.advance(pool)
        if current is None:
            return None
        ledger = unit.ledger(pool, limit)
    return {"pool_code": pool, "balance_fen": current.balance_fen, "required_fen": current.required_fen,
            "warning": current.warning,
            "top_up_fen": max(0, current.required_fen - current.balance_fen) if current.warning else 0,
            "ledger": [entry_dict(r) for r in ledger]}


def overview(repository: ClearingRepository, per_pool: int = 60) -> list[dict[str, Any]]:
    """Every pool's advance and its recent balances (the status page's charts)."""
    with repository.unit() as unit:
        current = unit.all_advances()
        series = unit.recent_balances(per_pool)
    return [{"pool_code": c.pool_code, "balance_fen": c.balance_fen, "required_fen": c.required_fen,
             "warning": c.warning, "series": [[d.isoformat(), b] for d, b in series.get(c.pool_code, [])]}
            for c in current]
