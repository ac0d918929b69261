"""Applying what the settlement service publishes, each event once by its id: settlements and
reversals (netted), manual claims (kept for the home bureau's file and the fund-risk watch, netted
never) and hospitals' month changes (newest state kept). The consumer reads them
through the wire adapter (adapters/wire.py), which makes these records.

A batch takes a share lock on the rows of the days it touches; a close takes an exclusive one.
So a day is closed only after every batch that was applying to it has committed, and an event
that finds its day closed goes to the next open day, flagged late.
"""

from __future__ import annotations

from datetime import date
from typing import Sequence

from hub.clearing.adapters.repository import ClearingRepository, Unit
from hub.clearing.domain.events import (ClearingEvent, EventRefused, HospitalMonth, ManualClaim, Place, Record,
                                        instant_of)
from hub.clearing.domain.netting import clearing_day_for
from hub.operations.metrics import CLEARING_APPLIED


def apply(repository: ClearingRepository, records: Sequence[Record]) -> int:
    """Every record once, by event id; how many were new (a hospital's month counts none: it
    moves no money). A reversal that does not say its insurance type and reverses a settlement
    clearing never saw raises EventRefused."""
    events = [r for r in records if isinstance(r, ClearingEvent)]
    claims = [r for r in records if isinstance(r, ManualClaim)]
    months = [r for r in records if isinstance(r, HospitalMonth)]
    if months:
        with repository.unit() as unit:
            unit.keep_newest_hospital_month([line for m in months for line in m.lines],
                                            [a for m in months for a in m.applications])
            unit.advance_marks(marks([m.place for m in months]))
    if not events and not claims:
        return 0
    with repository.unit() as unit:
        new_ids = _apply_money(unit, _with_insurance_types(unit, events), claims)
    CLEARING_APPLIED.inc(len(new_ids))
    return len(new_ids)


def _apply_money(unit: Unit, events: list[ClearingEvent], claims: list[ManualClaim]) -> set[str]:
    days = {e.business_date for e in events} | {c.row["business_date"] for c in claims}
    statuses = unit.open_days(sorted(days))
    closed = {d for d, status in statuses.items() if status == "CLOSED"}
    where = {d: clearing_day_for(d, closed) for d in days}  # business date -> (clearing day, late)
    placed = {e.event_id: (e, *where[e.business_date]) for e in events}  # (event, day, late)
    claim_rows = [{**c.row, "clearing_date": where[c.row["business_date"]][0]} for c in claims]
    late_days = sorted({day for _, day, _ in placed.values()} | {c["clearing_date"] for c in claim_rows}
                       - set(statuses))
    if late_days:
        unit.open_days(late_days)
    new_ids = unit.add_events([applied_row(e, day, late) for e, day, late in placed.values()]) if placed else set()
    if claim_rows:
        new_ids |= unit.add_manual_claims(claim_rows)
    totals: dict[tuple, list[int]] = {}
    for e, day, _ in placed.values():
        if e.event_id not in new_ids:
            continue
        t = totals.setdefault((day, e.home_pool, e.treatment_pool, e.insurance_type), [0, 0, 0, 0])
        t[0] += e.sign * e.hifp_pay_fen
        t[1] += e.sign * e.hifmi_pay_fen
        t[2] += e.sign * e.maf_pay_fen
        t[3] += 1
    if totals:
        unit.add_bilateral([(*k, *t) for k, t in sorted(totals.items())])
    unit.advance_marks(marks([Place(e.topic, e.partition, e.offset, e.event_time_ms) for e in events]
                             + [c.place for c in claims]))
    return new_ids


def _with_insurance_types(unit: Unit, events: list[ClearingEvent]) -> list[ClearingEvent]:
    """A reversal written before SettlementReversed v2 does not say its insurance type: it is its
    settlement's, as clearing applied it (or as this batch carries it)."""
    unknown = {e.settlement_id for e in events if e.insurance_type is None}
    if not unknown:
        return events
    known = unit.insurance_types(sorted(unknown))
    known.update({e.settlement_id: e.insurance_type for e in events if e.insurance_type and not e.reversal})
    missing = sorted(unknown - set(known))
    if missing:
        raise EventRefused(f"insurance_type_unknown: a reversal of {missing[0]}, a settlement clearing has not seen,"
                           " does not say its insurance type")
    return [e if e.insurance_type else e._replace(insurance_type=known[e.settlement_id]) for e in events]


def applied_row(e: ClearingEvent, clearing_date: date, late: bool) -> tuple:
    """The event's row in `applied_events` (in database.APPLIED_COLUMNS' order): the idempotency
    record and a line of the files."""
    return (e.event_id, "REVERSED" if e.reversal else "SETTLED", e.settlement_id, e.reversal_id, clearing_date,
            e.business_date, late, e.home_pool, e.treatment_pool, e.hospital_code, e.person_id_masked,
            e.medfee_sumamt_fen, e.hifp_pay_fen, e.hifmi_pay_fen, e.maf_pay_fen, f"{e.topic}:{e.partition}:{e.offset}",
            e.insurance_type, e.person_ref, e.visit_type, e.begntime, e.endtime)


def marks(read: Sequence[Place]) -> list[tuple]:
    """A batch's places as each partition's mark: (topic, partition, the next offset to read there,
    the newest event time seen — the day-close cut-off's evidence)."""
    newest: dict[tuple[str, int], list[int]] = {}
    for p in read:
        mark = newest.get((p.topic, p.partition))
        if mark is None:
            newest[(p.topic, p.partition)] = [p.offset + 1, p.event_time_ms]
        else:
            mark[0] = max(mark[0], p.offset + 1)
            mark[1] = max(mark[1], p.event_time_ms)
    return [(t, p, o, instant_of(ms)) for (t, p), (o, ms) in newest.items()]
