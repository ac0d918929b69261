"""Clearing use cases: apply settlement events (idempotently), close a day, render its files,
serve and confirm them.

A batch of events and the close of a day are serialised on the day's row: applying takes a
share lock on the rows of the days it touches, closing an exclusive one. So a day is closed
only after every batch that was applying to it has committed, and an event that finds its day
closed goes to the next open day, flagged late.
"""

from __future__ import annotations

import logging
import time as _time
import os
import shutil
from collections import defaultdict
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from hub.clearing.adapters import database as db
from hub.clearing.adapters import files
from hub.signing import Signer, signer_from_reference
from hub.clearing.domain.advance import AdvanceRule, day_entry
from hub.clearing.domain.anomalies import (AnomalyRule, Bill, Flag, jumped, just_under_threshold,
                                           overlapping_regions, readmissions)
from hub.clearing.domain.fund_risk import RiskRule, assess
from hub.reference.budget import Budget, in_force
from hub.clearing.domain.events import EARLIEST_MS, LATEST_MS, ClearingEvent, day_of, instant_of
from hub.clearing.domain.funds import INSUTYPE_CODES, funds_of
from hub.clearing.service_layer.statements import MonthlyStatements
from hub.clearing.domain.netting import NettingResult, Obligation, clearing_day_for, net, position_of
from hub.clearing.domain.statements import month_days
from hub.messaging import AvroCodec, Message
from hub.messaging.topics import CLEARING_STATEMENTS
from hub.money import MAX_AMOUNT_FEN
from hub.operations.metrics import (ADVANCE_BALANCE, ADVANCE_REQUIRED, ADVANCE_WARNING, CLEARING_APPLIED,
                                    CLEARING_DAYS_CLOSED, FUND_RISK_LEVEL, FUND_RISK_RATIO)
from hub.rejections import CodedError

SHANGHAI = ZoneInfo("Asia/Shanghai")
PRODUCER = "interregion-clearing"


class DayBlocked(Exception):
    """A day cannot close while an event that may belong to it is quarantined."""

    def __init__(self, day: date, sources: list[str]):
        super().__init__(f"clearing day {day} cannot close: {len(sources)} quarantined event(s) may belong to it "
                         f"({', '.join(sources[:5])}{' ...' if len(sources) > 5 else ''}); resolve them with "
                         "'hub clearing quarantine resolve SOURCE --apply|--discard'")
        self.day = day
        self.sources = sources


class QuarantineError(CodedError):
    """An operator's quarantine action that cannot be done; `code` is stable."""


class AdvanceError(CodedError):
    """An advance-fund action that cannot be done; `code` is stable."""


class EventRefused(ValueError):
    """An event clearing will not count (a fault of the data: the consumer quarantines it)."""


LATE_SHOWN = 50  # late events a day summary lists
log = logging.getLogger(__name__)
AMOUNT_FIELDS = ("medfee_sumamt_fen", "hifp_pay_fen", "hifmi_pay_fen", "maf_pay_fen")


def clearing_event(message: Message) -> ClearingEvent:
    """The service's edge: a settlement event, decoded by the service's `events` codec (no
    logical types), as the typed record clearing counts. Every amount must lie from 0 to the
    kernel's bound (10 billion yuan), so that a day's totals cannot overflow whatever a producer
    got wrong; otherwise EventRefused."""
    v = message.value
    _check_amounts(v, AMOUNT_FIELDS)
    reversal = message.record_name.endswith("SettlementReversed")
    return ClearingEvent(
        str(v["event_id"]), reversal, v["settlement_id"], v.get("reversal_id"), _day(v, "business_date"),
        v["home_pool"], v["treatment_pool"], v["hospital_code"], v["person_id_masked"],
        v["medfee_sumamt_fen"], v["hifp_pay_fen"], v["hifmi_pay_fen"], v["maf_pay_fen"],
        _instant_ms(v, "reversed_at" if reversal else "settled_at"), message.topic, message.partition, message.offset,
        _insurance_type(v.get("insurance_type")), v.get("person_ref") or "", v.get("visit_type") or "",
        _day(v, "begntime"), _day(v, "endtime"))


MANUAL_CLAIM = "ManualClaimSettled"
MANUAL_CLAIM_AMOUNTS = (*AMOUNT_FIELDS, "psn_part_amt_fen")
HOSPITAL_MONTH = "HospitalMonthChanged"


def hospital_month_rows(message: Message) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A HospitalMonthChanged as its rows: (line confirmations, applications). A month that is not
    yyyyMM raises EventRefused."""
    v = message.value
    text = v["month"]
    if not (len(text) == 6 and text.isdigit() and 1 <= int(text[4:]) <= 12):
        raise EventRefused(f"month_invalid: {text!r} is not yyyyMM")
    month = f"{text[:4]}-{text[4:]}"
    stamp = {"event_time": v["event_time"], "event_id": str(v["event_id"])}
    lines = [{"hospital_code": v["hospital_code"], "setl_sn": l["setl_sn"], "month": month,
              "settlement_id": l["settlement_id"], "kind": "SETTLED" if l["kind"] == "COMPLETED" else l["kind"],
              "home_pool": l["home_pool"],
              "treatment_pool": v["treatment_pool"], "cnfm_flag": l["cnfm_flag"],
              "medfee_sumamt_fen": l["medfee_sumamt_fen"], "fund_pay_sumamt_fen": l["fund_pay_sumamt_fen"], **stamp}
             for l in v.get("lines") or []]
    a = v.get("application")
    applications = [] if a is None else [{
        "clr_appy_evt_id": a["clr_appy_evt_id"], "hospital_code": v["hospital_code"], "treatment_pool": v["treatment_pool"],
        "month": month, "clr_type": a["clr_type"],
        "status": "CANCELLED" if v["action"] == "CLEARING_CANCELLED" else "APPLIED", "psntime": a["psntime"],
        "medfee_sumamt_fen": a["medfee_sumamt_fen"], "fund_appy_sum_fen": a["fund_appy_sum_fen"], **stamp}]
    return lines, applications


def manual_claim_row(message: Message) -> dict[str, Any]:
    """A ManualClaimSettled as its row in `manual_claims` (its clearing day set by `apply`);
    amounts out of bounds, or shares that do not add up to the bill, raise EventRefused."""
    v = message.value
    _check_amounts(v, MANUAL_CLAIM_AMOUNTS)
    if v["hifp_pay_fen"] + v["hifmi_pay_fen"] + v["maf_pay_fen"] + v["psn_part_amt_fen"] != v["medfee_sumamt_fen"]:
        raise EventRefused(f"unbalanced: manual claim {v['claim_no']}'s shares do not add up to its bill")
    if v["insurance_type"] not in INSUTYPE_CODES:
        raise EventRefused(f"insurance_type_unknown: {v['insurance_type']!r} is not RESIDENT or EMPLOYEE")
    return {"event_id": str(v["event_id"]), "claim_no": v["claim_no"], "business_date": _day(v, "business_date"),
            "home_pool": v["home_pool"], "treatment_pool": v["treatment_pool"], "hospital_code": v["hospital_code"],
            "lodged_by": v["lodged_by"], "reason": v["reason"], "person_id_masked": v["person_id_masked"],
            "insurance_type": v["insurance_type"], "visit_type": v["visit_type"], "begntime": _day(v, "begntime"),
            "endtime": _day(v, "endtime"), **{name: v[name] for name in MANUAL_CLAIM_AMOUNTS},
            "source": f"{message.topic}:{message.partition}:{message.offset}"}


def _check_amounts(v: dict[str, Any], names) -> None:
    """Every amount named lies from 0 to the kernel's bound, or EventRefused."""
    for name in names:
        value = v.get(name)
        if not isinstance(value, int) or not 0 <= value <= MAX_AMOUNT_FEN:
            raise EventRefused(f"amount_out_of_bounds: {name} = {value!r} is not within 0..{MAX_AMOUNT_FEN} fen")


def _day(v: dict[str, Any], name: str) -> date | None:
    """A date field as the wire carries it (days since 1970) as a date; one no calendar holds
    raises EventRefused."""
    try:
        return day_of(v.get(name))
    except (ValueError, OverflowError):
        raise EventRefused(f"date_out_of_range: {name} = {v.get(name)!r} days since 1970-01-01") from None


def _instant_ms(v: dict[str, Any], name: str) -> int:
    """A timestamp as the wire carries it (ms since 1970), checked to be one a datetime holds
    (a range check: no datetime is made per event); else EventRefused."""
    ms = v[name]
    if not EARLIEST_MS <= ms <= LATEST_MS:
        raise EventRefused(f"time_out_of_range: {name} = {ms!r} ms since 1970-01-01")
    return ms


def _insurance_type(value: Any) -> str | None:
    if value is None or value in INSUTYPE_CODES:
        return value
    raise EventRefused(f"insurance_type_unknown: {value!r} is not RESIDENT or EMPLOYEE")


def applied_row(e: ClearingEvent, clearing_date: date, late: bool) -> tuple:
    """The event's row in `applied_events` (in db.APPLIED_COLUMNS' order): the idempotency
    record and a line of the files."""
    return (e.event_id, "REVERSED" if e.reversal else "SETTLED", e.settlement_id, e.reversal_id, clearing_date,
            e.business_date, late, e.home_pool, e.treatment_pool, e.hospital_code, e.person_id_masked,
            e.medfee_sumamt_fen, e.hifp_pay_fen, e.hifmi_pay_fen, e.maf_pay_fen, f"{e.topic}:{e.partition}:{e.offset}",
            e.insurance_type, e.person_ref, e.visit_type, e.begntime, e.endtime)


def _flag_dict(flag: Flag, text: bool = False) -> dict:
    """A flag as files and the API show it (at most MAX_FLAG_IDS settlements named; the detail
    says how many there were)."""
    ids = list(flag.settlement_ids)
    detail = flag.detail + (f" ({len(ids)} settlements, the first {db.MAX_FLAG_IDS} named)"
                            if len(ids) > db.MAX_FLAG_IDS else "")
    ids = ids[:db.MAX_FLAG_IDS]
    return {"kind": flag.kind, "subject": flag.subject, "detail": detail,
            "settlement_ids": " ".join(ids) if text else ids}


PARALLEL_RENDER_LINES = 50_000  # from this many settlements a day, its files render in worker processes


def _render_pool(staging: Path, header: files.DayHeader, signer: Signer, position, rows, advance,
                 flags, manual) -> tuple[str, str]:
    """One pool's file set rendered and written to the staging directory: (pool, manifest digest)."""
    rendered = files.render_pool_files(header, position, rows, signer, advance, flags, manual)
    files.write_files(staging, rendered)
    return position.pool, files.manifest_sha256(rendered)


class _Renderer:
    """Renders the pools' file sets of a close in order, here or (a big day) in worker processes
    started fresh (spawn: no copy of this process's database connections), at most two pools'
    lines waiting per worker, so memory stays a few pools' lines."""

    def __init__(self, staging: Path, header: files.DayHeader, signer: Signer, parallel: bool):
        self.staging, self.header, self.signer = staging, header, signer
        self.workers = max(1, min(2, os.cpu_count() or 1)) if parallel else 0
        self.pool = None

    def __enter__(self) -> "_Renderer":
        if self.workers:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            self.pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"))
        return self

    def __exit__(self, *exc) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)

    def all(self, work) -> dict[str, str]:
        if self.pool is None:
            return dict(_render_pool(self.staging, self.header, self.signer, *item) for item in work)
        shas, pending = {}, []
        for position, rows, advance, flags, manual in work:
            pending.append(self.pool.submit(_render_pool, self.staging, self.header, self.signer, position, rows, advance,
                                            flags, manual))
            while len(pending) > 2 * self.workers:
                pool, sha = pending.pop(0).result()
                shas[pool] = sha
        for future in pending:
            pool, sha = future.result()
            shas[pool] = sha
        return shas


def _marks(read: list[tuple[str, int, int, int]]) -> list[tuple[str, int, int, datetime]]:
    """A batch's (topic, partition, offset, event time in ms) as each partition's mark: the next
    offset to read there and the newest event time seen (the day-close cut-off's evidence)."""
    newest: dict[tuple[str, int], list[int]] = {}
    for topic, partition, offset, ms in read:
        mark = newest.get((topic, partition))
        if mark is None:
            newest[(topic, partition)] = [offset + 1, ms]
        else:
            if offset >= mark[0]:
                mark[0] = offset + 1
            if ms > mark[1]:
                mark[1] = ms
    return [(t, p, o, instant_of(ms)) for (t, p), (o, ms) in newest.items()]


@dataclass(frozen=True)
class CloseResult:
    clearing_date: date
    cycle_id: str
    already_closed: bool
    netting: NettingResult | None
    files: list[Path]
    phases: dict[str, float] = field(default_factory=dict)  # seconds per step of the close


def day_end(day: date) -> datetime:
    """The first instant after `day` in Asia/Shanghai."""
    return datetime.combine(day + timedelta(days=1), time(0), tzinfo=SHANGHAI)


class ClearingService:
    def __init__(self, engine: sa.Engine, codec: AvroCodec, out_dir: Path, grace: timedelta,
                 pool_names: dict[str, str] | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc), signer: Signer | None = None,
                 advance_rule: AdvanceRule | None = None, budgets: list[Budget] | None = None,
                 risk_rule: RiskRule | None = None, anomaly_rule: AnomalyRule | None = None):
        self.engine = engine
        self.codec = codec
        # Settlement events are read without Avro logical types (the edge, clearing_event, makes
        # the few dates it needs): the consumer and `resolve` decode with this.
        self.events = AvroCodec(codec.registry, logical_types=False)
        self.out_dir = out_dir
        self.grace = grace
        self.pool_names = pool_names or {}
        self.clock = clock
        self.signer = signer or signer_from_reference("sample:")
        self.advance_rule = advance_rule or AdvanceRule()
        self.months = MonthlyStatements(self)
        self.budgets = budgets or []
        self.risk_rule = risk_rule or RiskRule()
        self.anomaly_rule = anomaly_rule or AnomalyRule()

    # ------------------------------------------------------------------ applying events

    def apply(self, batch: list[Message]) -> int:
        """The consumer's handler: every event once, by event id. Returns how many were new.
        An event with an amount out of bounds raises EventRefused (its consumer quarantines it).
        A manual claim (ManualClaimSettled) is kept for its home bureau's file and the fund-risk
        watch, and netted never: the home fund paid the patient, no fund owes another."""
        claimed = [m for m in batch if m.record_name.endswith(MANUAL_CLAIM)]
        claims = [manual_claim_row(m) for m in claimed]
        months = [m for m in batch if m.record_name.endswith(HOSPITAL_MONTH)]
        events = [clearing_event(m) for m in batch if not m.record_name.endswith((MANUAL_CLAIM, HOSPITAL_MONTH))]
        if months:
            self._apply_hospital_months(months)
        if not events and not claims:
            return 0
        new_ids: set[str] = set()
        with self.engine.begin() as conn:
            events = self._with_insurance_types(conn, events)
            days = {e.business_date for e in events} | {c["business_date"] for c in claims}
            conn.execute(pg_insert(db.days).values([{"clearing_date": d, "status": "OPEN"} for d in sorted(days)])
                         .on_conflict_do_nothing())
            rows = conn.execute(sa.select(db.days.c.clearing_date, db.days.c.status)
                                .where(db.days.c.clearing_date >= min(days)).with_for_update(read=True)).all()
            closed = {r.clearing_date for r in rows if r.status == "CLOSED"}
            where = {d: clearing_day_for(d, closed) for d in days}  # business date -> (clearing day, late)
            placed = {e.event_id: (e, *where[e.business_date]) for e in events}  # (event, day, late)
            for c in claims:
                c["clearing_date"] = where[c["business_date"]][0]
            late_days = sorted({day for _, day, _ in placed.values()} | {c["clearing_date"] for c in claims}
                               - {r.clearing_date for r in rows})
            if late_days:
                conn.execute(pg_insert(db.days).values([{"clearing_date": d, "status": "OPEN"} for d in late_days])
                             .on_conflict_do_nothing())
                conn.execute(sa.select(db.days.c.clearing_date).where(db.days.c.clearing_date.in_(late_days))
                             .with_for_update(read=True))
            if placed:
                new_ids = db.insert_applied(conn, [applied_row(e, day, late) for e, day, late in placed.values()])
            if claims:
                new_ids |= set(conn.execute(pg_insert(db.manual_claims).values(claims).on_conflict_do_nothing()
                                            .returning(db.manual_claims.c.event_id)).scalars())
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
                db.add_bilateral(conn, [(*k, *t) for k, t in sorted(totals.items())])
            db.advance_marks(conn, _marks([(e.topic, e.partition, e.offset, e.event_time_ms) for e in events]
                                          + [(m.topic, m.partition, m.offset, m.value["settled_at"]) for m in claimed]))
        CLEARING_APPLIED.inc(len(new_ids))
        return len(new_ids)

    def _apply_hospital_months(self, messages: list[Message]) -> None:
        """The hospitals' confirmations and clearing applications, newest state kept (idempotent:
        applying an event again, or an older one after a newer, changes nothing)."""
        lines, applications = [], []
        for m in messages:
            got_lines, got_applications = hospital_month_rows(m)
            lines += got_lines
            applications += got_applications
        with self.engine.begin() as conn:
            db.upsert_newest(conn, db.hospital_month_lines, lines, ["hospital_code", "setl_sn"])
            db.upsert_newest(conn, db.hospital_applications, applications, ["clr_appy_evt_id"])
            db.advance_marks(conn, _marks([(m.topic, m.partition, m.offset, m.value["event_time"]) for m in messages]))

    def hospital_month(self, month: str, treatment_pool: str) -> dict[str, Any]:
        """The treatment bureau's view of its hospitals' month: per hospital, the lines they
        confirmed (what the bureau pays them from), did not agree or have not confirmed, and their
        clearing applications."""
        month_days(month)
        h, a, ev = db.hospital_month_lines.c, db.hospital_applications.c, db.applied_events.c
        first, last = month_days(month)
        with self.engine.connect() as conn:
            # Every line clearing holds of the month (its settlement events), the hospital's flag beside.
            sign = sa.case((ev.kind == "REVERSED", -1), else_=1)
            flag = sa.func.coalesce(h.cnfm_flag, sa.literal_column("''"))
            rows = conn.execute(
                sa.select(ev.hospital_code, flag, sa.func.count(),
                          sa.func.sum(sign * (ev.hifp_pay_fen + ev.hifmi_pay_fen + ev.maf_pay_fen)))
                .select_from(db.applied_events.outerjoin(db.hospital_month_lines, sa.and_(
                    h.settlement_id == ev.settlement_id, h.kind == ev.kind)))
                .where(ev.treatment_pool == treatment_pool, ev.home_pool != ev.treatment_pool,
                       ev.business_date.between(first, last))
                .group_by(ev.hospital_code, flag)).all()
            applied = conn.execute(sa.select(db.hospital_applications).where(
                a.treatment_pool == treatment_pool, a.month == month).order_by(a.hospital_code, a.clr_type)).all()
        hospitals: dict[str, dict[str, Any]] = {}

        def of(code: str) -> dict[str, Any]:
            return hospitals.setdefault(code, {"hospital_code": code, "lines": 0, "applications": [], **{
                f"{name}_{unit}": 0 for name in ("confirmed", "not_agreed", "unconfirmed") for unit in ("lines", "fen")}})
        for code, flag, count, fund in rows:
            entry, name = of(code), {"1": "confirmed", "0": "not_agreed"}.get(flag, "unconfirmed")
            entry["lines"] += count
            entry[f"{name}_lines"] += count
            entry[f"{name}_fen"] += int(fund or 0)
        for r in applied:
            of(r.hospital_code)["applications"].append({"clr_appy_evt_id": r.clr_appy_evt_id, "clr_type": r.clr_type,
                                          "status": r.status, "psntime": r.psntime,
                                          "medfee_sumamt_fen": r.medfee_sumamt_fen, "fund_appy_sum_fen": r.fund_appy_sum_fen})
        return {"month": month, "treatment_pool": treatment_pool,
                "hospitals": [hospitals[k] for k in sorted(hospitals)]}

    @staticmethod
    def _with_insurance_types(conn: sa.Connection, events: list[ClearingEvent]) -> list[ClearingEvent]:
        """A reversal written before SettlementReversed v2 does not say its insurance type: it is
        its settlement's, as clearing applied it. One that reverses a settlement clearing never
        saw is refused (EventRefused: quarantined until an operator resolves it)."""
        unknown = {e.settlement_id for e in events if e.insurance_type is None}
        if not unknown:
            return events
        a = db.applied_events.c
        known = dict(conn.execute(sa.select(a.settlement_id, a.insurance_type).where(
            a.kind == "SETTLED", a.settlement_id.in_(sorted(unknown)))).all())
        known.update({e.settlement_id: e.insurance_type for e in events if e.insurance_type and not e.reversal})
        missing = sorted(unknown - set(known))
        if missing:
            raise EventRefused(f"insurance_type_unknown: a reversal of {missing[0]}, a settlement clearing has not seen,"
                               " does not say its insurance type")
        return [e if e.insurance_type else e._replace(insurance_type=known[e.settlement_id]) for e in events]

    # ------------------------------------------------------------------ closing a day

    def due_days(self, end_offsets: dict[tuple[str, int], int],
                 committed: dict[tuple[str, int], int] | None = None) -> list[date]:
        """Open days whose cut-off has passed on every partition: the partition's newest consumed
        event is past the day's end plus grace, or the partition is fully consumed (by this
        service's marks, or by the group's `committed` offsets: a partition none of whose
        events was for this hub's group) and the clock is past it."""
        committed = committed or {}
        now = self.clock()
        with self.engine.connect() as conn:
            open_days = conn.execute(sa.select(db.days.c.clearing_date).where(db.days.c.status == "OPEN")
                                     .order_by(db.days.c.clearing_date)).scalars().all()
            marks = {(r.topic, r.partition): r for r in conn.execute(sa.select(db.partition_marks))}
            blocked = {day for day in open_days if self._blocking(conn, day)}
        due = []
        for day in open_days:
            if day in blocked:
                continue  # shown on the status page; closes once an operator resolves its quarantine
            cutoff = day_end(day) + self.grace
            if now < cutoff:
                continue
            if all((marks.get(tp) is not None and (marks[tp].max_event_time >= cutoff or marks[tp].next_offset >= end))
                   or (marks.get(tp) is None and end == 0) or committed.get(tp, -1) >= end
                   for tp, end in end_offsets.items()):
                due.append(day)
        return due

    def close_day(self, day: date) -> CloseResult:
        """Net the day, check the zero sum, record statements and outbox events, write the files.
        Closing a closed day is a no-op that answers what the first close produced. Raises
        DayBlocked while a quarantined event may belong to the day."""
        now = self.clock()
        staging = self.out_dir / f".{day.isoformat()}.closing-{uuid.uuid4().hex[:8]}"
        try:
            with self.engine.begin() as conn:
                conn.execute(pg_insert(db.days).values(clearing_date=day, status="OPEN").on_conflict_do_nothing())
                row = conn.execute(sa.select(db.days).where(db.days.c.clearing_date == day).with_for_update()).one()
                if row.status == "CLOSED":
                    return CloseResult(day, row.cycle_id, True, None, self.write_day_files(day))
                blocking = self._blocking(conn, day)
                if blocking:
                    raise DayBlocked(day, blocking)
                phases, t0 = {}, _time.perf_counter()
                result = net(self._obligations(conn, day))  # raises ZeroSumViolated: nothing is written
                phases["netting"], t0 = _time.perf_counter() - t0, _time.perf_counter()
                cycle_id = f"{day.isoformat()}.1"
                header = files.DayHeader(day, cycle_id, now, self.pool_names)
                unnamed = sorted(p.pool for p in result.positions if not self.pool_names.get(p.pool))
                if unnamed:  # the files still say the code; a reader should not meet a blank name unwarned
                    log.warning("clearing day %s: no reference name for pools %s (add their policy files to the "
                                "reference directory)", day, ", ".join(unnamed))
                advances = self._draw_advances(conn, day, result.positions, now)
                phases["advances"], t0 = _time.perf_counter() - t0, _time.perf_counter()
                flags = self._flag_anomalies(conn, day)
                phases["anomaly flags"], t0 = _time.perf_counter() - t0, _time.perf_counter()
                manual = self._manual_claims_of(conn, day)
                # Each pool's files are rendered once, digested and written to a staging directory at
                # once (memory: one pool's lines at a time); they are moved into place after the commit.
                # A big day renders in worker processes, one per core, while this one reads the next
                # pools' lines (rendering is pure CPU: the workbook and the signature most of it).
                render = _Renderer(staging, header, self.signer,
                                   parallel=sum(p.settlement_count for p in result.positions) >= PARALLEL_RENDER_LINES)
                with render:
                    shas = render.all((position, self._lines(conn, day, position.pool), advances[position.pool],
                                       flags.get(position.pool, []), manual.get(position.pool, []))
                                      for position in result.positions)
                for position in result.positions:
                    sha = shas[position.pool]
                    conn.execute(db.statements.insert().values(
                        clearing_date=day, pool_code=position.pool, cycle_id=cycle_id,
                        receivable_fen=position.receivable_fen, payable_fen=position.payable_fen,
                        net_position_fen=position.net_fen, settlement_count=position.settlement_count,
                        manifest_sha256=sha))
                    if position.funds:
                        conn.execute(db.fund_statements.insert(), [
                            {"clearing_date": day, "pool_code": position.pool, "insutype": f.fund.insutype,
                             "fund_pay_type": f.fund.fund_pay_type, "receivable_fen": f.receivable_fen,
                             "payable_fen": f.payable_fen, "net_fen": f.net_fen} for f in position.funds])
                    conn.execute(db.outbox.insert().values(
                        topic=CLEARING_STATEMENTS.name, message_key=position.pool,
                        payload=self.codec.encode("ClearingStatement",
                                                  self._statement_event(day, cycle_id, now, position, sha))))
                phases["files"], t0 = _time.perf_counter() - t0, _time.perf_counter()
                conn.execute(db.days.update().where(db.days.c.clearing_date == day).values(
                    status="CLOSED", cycle_id=cycle_id, closed_at=now, gross_fen=result.gross_fen,
                    net_abs_fen=result.net_abs_fen,
                    efficiency=f"{result.efficiency.numerator}/{result.efficiency.denominator}"))
                files.write_files(staging, {f"summary_{day.isoformat()}.html": files.render_summary(
                    header, result.positions, result.gross_fen, result.net_abs_fen, result.efficiency,
                    {p.pool: False for p in result.positions})})  # no statement is confirmed yet
        except BaseException:  # nothing of a close that did not commit
            shutil.rmtree(staging, ignore_errors=True)
            raise
        CLEARING_DAYS_CLOSED.inc()
        for pool, a in advances.items():
            ADVANCE_BALANCE.labels(pool).set(a["balance_fen"] / 100)
            ADVANCE_REQUIRED.labels(pool).set(a["required_fen"] / 100)
            ADVANCE_WARNING.labels(pool).set(1 if a["warning"] else 0)
        for pool in advances:
            self._watch_fund_risk(pool, day)
        warned = sorted(pool for pool, a in advances.items() if a["warning"])
        if warned:
            log.warning("clearing day %s: the advance of %s is under %d%% of what it should hold", day,
                        ", ".join(warned), self.advance_rule.warn_pct)
        # The bytes rendered (and digested) inside the transaction are the ones written: no second netting.
        return CloseResult(day, cycle_id, False, result, files.move_files(staging, self.out_dir / day.isoformat()), phases)

    # ------------------------------------------------------------------ advance funds

    def _draw_advances(self, conn: sa.Connection, day: date, positions, now: datetime) -> dict[str, dict]:
        """Each pool's day net drawn on (or credited to) its advance, under the lock of its row;
        the required advance from its gross payable over the rule's window (hub.clearing.domain.advance)."""
        if not positions:
            return {}
        pools = [p.pool for p in positions]
        conn.execute(pg_insert(db.advances).values([
            {"pool_code": pool, "balance_fen": 0, "required_fen": 0, "warning": False, "updated_at": now}
            for pool in pools]).on_conflict_do_nothing())
        adv, st = db.advances.c, db.statements.c
        balances = dict(conn.execute(sa.select(adv.pool_code, adv.balance_fen).where(adv.pool_code.in_(pools))
                                     .order_by(adv.pool_code).with_for_update()).all())
        since = day - timedelta(days=self.advance_rule.window_days - 1)
        payables: dict[str, list[int]] = {pool: [] for pool in pools}
        for pool, payable in conn.execute(sa.select(st.pool_code, st.payable_fen).where(
                st.pool_code.in_(pools), st.clearing_date >= since, st.clearing_date < day)):
            payables[pool].append(payable)
        out, rows = {}, []
        for p in positions:
            entry = day_entry(self.advance_rule, p.pool, balances[p.pool], p.net_fen, [*payables[p.pool], p.payable_fen])
            rows.append({"pool_code": p.pool, "reference": f"close:{day.isoformat()}", "clearing_date": day,
                         "kind": entry.kind, "amount_fen": entry.amount_fen, "balance_fen": entry.balance_fen,
                         "required_fen": entry.required_fen, "warning": entry.warning, "recorded_at": now,
                         "recorded_by": "clearing", "note": ""})
            out[p.pool] = self._advance_view(entry.balance_fen - entry.amount_fen, entry.amount_fen, entry.balance_fen,
                                             entry.required_fen, entry.warning)
        conn.execute(db.advance_ledger.insert(), rows)
        conn.execute(db.advances.update().where(adv.pool_code == sa.bindparam("pool"))
                     .values(balance_fen=sa.bindparam("balance"), required_fen=sa.bindparam("required"),
                             warning=sa.bindparam("warn"), updated_at=now),
                     [{"pool": r["pool_code"], "balance": r["balance_fen"], "required": r["required_fen"],
                       "warn": r["warning"]} for r in rows])
        return out

    def _advance_view(self, before: int, amount: int, balance: int, required: int, warning: bool) -> dict:
        """The advance section of a bureau's file (stable: from what the ledger recorded)."""
        rule = self.advance_rule
        return {"balance_before_fen": before, "day_net_fen": amount, "balance_fen": balance, "required_fen": required,
                "warning": warning, "top_up_fen": max(0, required - balance) if warning else 0,
                "rule": f"{rule.months} months of average daily payable over {rule.window_days} days;"
                        f" warned under {rule.warn_pct}%"}

    def _advance_of(self, conn: sa.Connection, day: date, pool: str) -> dict | None:
        a = db.advance_ledger.c
        row = conn.execute(sa.select(db.advance_ledger).where(
            a.pool_code == pool, a.reference == f"close:{day.isoformat()}")).first()
        if row is None:  # a day closed before advances were kept
            return None
        return self._advance_view(row.balance_fen - row.amount_fen, row.amount_fen, row.balance_fen, row.required_fen,
                                  row.warning)

    def deposit(self, pool: str, reference: str, amount_fen: int, who: str, note: str = "") -> dict:
        """The centre records money a bureau paid into its advance; idempotent by `reference`
        (the same reference again answers the entry it made; with another amount it is refused)."""
        if not (len(pool) == 6 and pool.isdigit()):
            raise AdvanceError("invalid_pool", f"{pool!r}: a pool code is 6 digits")
        if not reference.strip() or len(reference) > 100:
            raise AdvanceError("invalid_reference", "a deposit names its reference (1 to 100 characters)")
        if not 0 < amount_fen <= MAX_AMOUNT_FEN:
            raise AdvanceError("invalid_amount", "a deposit is a positive amount")
        now = self.clock()
        a, adv = db.advance_ledger.c, db.advances.c
        with self.engine.begin() as conn:
            conn.execute(pg_insert(db.advances).values(pool_code=pool, balance_fen=0, required_fen=0, warning=False,
                                                       updated_at=now).on_conflict_do_nothing())
            current = conn.execute(sa.select(db.advances).where(adv.pool_code == pool).with_for_update()).one()
            earlier = conn.execute(sa.select(db.advance_ledger).where(a.pool_code == pool, a.reference == reference)).first()
            if earlier is not None:
                if earlier.amount_fen != amount_fen or earlier.kind != "DEPOSIT":
                    raise AdvanceError("reference_reused", f"{reference} already recorded {earlier.kind} "
                                                           f"{earlier.amount_fen / 100:.2f} yuan")
                return self._entry_dict(earlier)
            balance = current.balance_fen + amount_fen
            warning = self.advance_rule.warns(balance, current.required_fen)
            row = conn.execute(db.advance_ledger.insert().values(
                pool_code=pool, reference=reference, clearing_date=now.astimezone(SHANGHAI).date(), kind="DEPOSIT",
                amount_fen=amount_fen, balance_fen=balance, required_fen=current.required_fen, warning=warning,
                recorded_at=now, recorded_by=who, note=note).returning(db.advance_ledger)).one()
            conn.execute(db.advances.update().where(adv.pool_code == pool).values(
                balance_fen=balance, warning=warning, updated_at=now))
        ADVANCE_BALANCE.labels(pool).set(balance / 100)
        ADVANCE_WARNING.labels(pool).set(1 if warning else 0)
        return self._entry_dict(row)

    @staticmethod
    def _entry_dict(r) -> dict:
        return {"pool_code": r.pool_code, "reference": r.reference, "clearing_date": r.clearing_date.isoformat(),
                "kind": r.kind, "amount_fen": r.amount_fen, "balance_fen": r.balance_fen,
                "required_fen": r.required_fen, "warning": r.warning, "recorded_at": r.recorded_at.isoformat(),
                "recorded_by": r.recorded_by, "note": r.note}

    def advance(self, pool: str, limit: int = 120) -> dict | None:
        """A bureau's advance: balance, requirement, warning, top-up due, and its latest movements."""
        a, adv = db.advance_ledger.c, db.advances.c
        with self.engine.connect() as conn:
            current = conn.execute(sa.select(db.advances).where(adv.pool_code == pool)).first()
            if current is None:
                return None
            ledger = conn.execute(sa.select(db.advance_ledger).where(a.pool_code == pool)
                                  .order_by(a.entry_id.desc()).limit(limit)).all()
        return {"pool_code": pool, "balance_fen": current.balance_fen, "required_fen": current.required_fen,
                "warning": current.warning,
                "top_up_fen": max(0, current.required_fen - current.balance_fen) if current.warning else 0,
                "ledger": [self._entry_dict(r) for r in reversed(ledger)]}

    def advances_overview(self, per_pool: int = 60) -> list[dict]:
        """Every pool's advance and its recent balances (the status page's charts)."""
        a = db.advance_ledger.c
        ranked = sa.select(a.pool_code, a.entry_id, a.clearing_date, a.balance_fen, sa.func.row_number().over(
            partition_by=a.pool_code, order_by=a.entry_id.desc()).label("n")).subquery()
        with self.engine.connect() as conn:
            current = conn.execute(sa.select(db.advances).order_by(db.advances.c.pool_code)).all()
            recent = conn.execute(sa.select(ranked).where(ranked.c.n <= per_pool)
                                  .order_by(ranked.c.pool_code, ranked.c.entry_id)).all()
        series: dict[str, list] = {}
        for r in recent:
            series.setdefault(r.pool_code, []).append([r.clearing_date.isoformat(), r.balance_fen])
        return [{"pool_code": c.pool_code, "balance_fen": c.balance_fen, "required_fen": c.required_fen,
                 "warning": c.warning, "series": series.get(c.pool_code, [])} for c in current]

    # ------------------------------------------------------------------ anomaly flags

    def _flag_anomalies(self, conn: sa.Connection, day: date) -> dict[str, list[dict]]:
        """The day's anomaly flags per home bureau (hub.clearing.domain.anomalies), recorded with
        the day. What reaches Python stays small at any volume: the bills of persons with two or
        more in the window (one with `many_bills` is counted in SQL), bills in a threshold's band,
        and per-hospital counts and totals."""
        a = db.applied_events.c
        rule = self.anomaly_rule
        since = day - timedelta(days=rule.baseline_days)
        reversed_ = sa.select(a.settlement_id).where(a.kind == "REVERSED").scalar_subquery()
        standing = sa.and_(a.kind == "SETTLED", a.home_pool != a.treatment_pool, a.person_ref != "",
                           a.begntime.is_not(None), a.settlement_id.not_in(reversed_))
        columns = (a.settlement_id, a.person_ref, a.home_pool, a.treatment_pool, a.hospital_code, a.visit_type,
                   a.begntime, a.endtime, a.medfee_sumamt_fen, a.clearing_date)
        found: dict[str, list[Flag]] = defaultdict(list)
        # persons: how many standing bills each of today's has in the window
        persons = sa.select(a.person_ref).where(standing, a.clearing_date == day).distinct().scalar_subquery()
        counts = dict(conn.execute(sa.select(a.person_ref, sa.func.count()).where(
            standing, a.clearing_date.between(since, day), a.person_ref.in_(persons))
            .group_by(a.person_ref).having(sa.func.count() >= 2)).all())
        crowded = sorted(p for p, c in counts.items() if c >= rule.many_bills)
        for person in crowded:
            rows = conn.execute(sa.select(a.home_pool, a.settlement_id).where(
                standing, a.clearing_date == day, a.person_ref == person).order_by(a.settlement_id)
                .limit(db.MAX_FLAG_IDS)).all()
            found[rows[0].home_pool].append(Flag("MANY_BILLS", person, f"{counts[person]} bills in "
                                                 f"{rule.baseline_days} days", tuple(r.settlement_id for r in rows)))
        several = sorted(p for p, c in counts.items() if c < rule.many_bills)
        if several:
            history = [Bill(*r) for r in conn.execute(sa.select(*columns).where(
                standing, a.clearing_date.between(since, day), a.person_ref.in_(several)))]
            by_home: dict[str, list[Bill]] = defaultdict(list)
            for b in history:
                by_home[b.home_pool].append(b)
            for home, bills in by_home.items():
                today = [b for b in bills if b.clearing_date == day]
                found[home] += overlapping_regions(today, bills) + readmissions(rule, today, bills)
        # bills in a threshold's band
        band = sa.or_(*(sa.and_(a.medfee_sumamt_fen * 100 >= t * (100 - rule.under_pct), a.medfee_sumamt_fen < t)
                        for t in rule.thresholds_fen)) if rule.thresholds_fen else sa.false()
        banded: dict[str, list[Bill]] = defaultdict(list)
        for r in conn.execute(sa.select(*columns).where(standing, a.clearing_date == day, band)):
            banded[r.home_pool].append(Bill(*r))
        for home, bills in banded.items():
            found[home] += just_under_threshold(rule, bills)
        # each hospital's average bill against its baseline, per home bureau
        def stats(first: date, last: date) -> dict[str, dict[str, tuple[int, int]]]:
            out: dict[str, dict[str, tuple[int, int]]] = defaultdict(dict)
            for home, hospital, count, total in conn.execute(sa.select(
                    a.home_pool, a.hospital_code, sa.func.count(), sa.func.sum(a.medfee_sumamt_fen)).where(
                    standing, a.clearing_date.between(first, last)).group_by(a.home_pool, a.hospital_code)):
                out[home][hospital] = (count, int(total))
            return out
        now, before = stats(day, day), stats(since, day - timedelta(days=1))
        for home, hospitals in now.items():
            for hospital, detail in jumped(rule, hospitals, before.get(home, {})):
                ids = conn.execute(sa.select(a.settlement_id).where(
                    standing, a.clearing_date == day, a.home_pool == home, a.hospital_code == hospital)
                    .order_by(a.settlement_id).limit(db.MAX_FLAG_IDS)).scalars().all()
                found[home].append(Flag("HOSPITAL_JUMP", hospital, detail, tuple(ids)))
        out, rows = {}, []
        for home in sorted(found):
            flags = found[home]
            out[home] = [_flag_dict(f) for f in flags]
            rows += [{"clearing_date": day, "home_pool": home, "n": n, **_flag_dict(f, text=True)}
                     for n, f in enumerate(flags, 1)]
        if rows:
            conn.execute(db.anomaly_flags.insert(), rows)
        return out

    def _flags_of(self, conn: sa.Connection, day: date, pool: str) -> list[dict]:
        f = db.anomaly_flags.c
        return [{"kind": r.kind, "subject": r.subject, "detail": r.detail, "settlement_ids": r.settlement_ids.split()}
                for r in conn.execute(sa.select(db.anomaly_flags).where(f.clearing_date == day, f.home_pool == pool)
                                      .order_by(f.n))]

    def anomalies(self, pool: str, day: date | None = None) -> dict | None:
        """A bureau's flags of a closed day (default: its latest with any)."""
        f = db.anomaly_flags.c
        with self.engine.connect() as conn:
            if day is None:
                day = conn.execute(sa.select(sa.func.max(f.clearing_date)).where(f.home_pool == pool)).scalar_one()
                if day is None:
                    return None
            return {"pool_code": pool, "clearing_date": day.isoformat(), "flags": self._flags_of(conn, day, pool)}

    # ------------------------------------------------------------------ manual claims

    @staticmethod
    def _manual_claims_of(conn: sa.Connection, day: date) -> dict[str, list[dict]]:
        """The day's manual claims (零星报销) per home bureau, for their files: paid by the home fund
        to the patient, netted never."""
        out: dict[str, list[dict]] = defaultdict(list)
        for home, claim in ClearingService._manual_claims_where(conn, db.manual_claims.c.clearing_date == day):
            out[home].append(claim)
        return out

    @staticmethod
    def manual_claims_between(conn: sa.Connection, pool: str, first: date, last: date) -> list[dict]:
        """One home bureau's manual claims cleared in [first, last], in order of day."""
        m = db.manual_claims.c
        return [claim for _, claim in ClearingService._manual_claims_where(
            conn, sa.and_(m.home_pool == pool, m.clearing_date.between(first, last)))]

    @staticmethod
    def _manual_claims_where(conn: sa.Connection, where) -> list[tuple[str, dict]]:
        """(home pool, the claim as the files show it) for the rows `where` picks."""
        m = db.manual_claims.c
        out = []
        for r in conn.execute(sa.select(db.manual_claims).where(where)
                              .order_by(m.clearing_date, m.home_pool, m.claim_no, m.event_id)):
            out.append((r.home_pool, {
                "claim_no": r.claim_no, "insutype": INSUTYPE_CODES[r.insurance_type], "treatment_pool": r.treatment_pool,
                "hospital_code": r.hospital_code, "lodged_by": r.lodged_by, "reason": r.reason,
                "person_id_masked": r.person_id_masked, "visit_type": r.visit_type, "begntime": r.begntime.isoformat(),
                "endtime": r.endtime.isoformat(), "medfee_sumamt_fen": r.medfee_sumamt_fen,
                "hifp_pay_fen": r.hifp_pay_fen, "hifmi_pay_fen": r.hifmi_pay_fen, "maf_pay_fen": r.maf_pay_fen,
                "psn_part_amt_fen": r.psn_part_amt_fen, "event_id": r.event_id}))
        return out

    def manual_claims_spent(self, conn: sa.Connection, pool: str, first: date, last: date) -> list[tuple[str, str, int]]:
        """(fund_pay_type, month, fen) the pool's funds paid in manual claims cleared in [first, last]."""
        m = db.manual_claims.c
        month = sa.func.to_char(m.clearing_date, "YYYY-MM")
        out = []
        for insurance, mon, hifp, hifmi, maf in conn.execute(sa.select(
                m.insurance_type, month, sa.func.sum(m.hifp_pay_fen), sa.func.sum(m.hifmi_pay_fen),
                sa.func.sum(m.maf_pay_fen)).where(m.home_pool == pool, m.clearing_date.between(first, last))
                .group_by(m.insurance_type, month)):
            for fund, amount in zip(funds_of(insurance), (hifp, hifmi, maf)):
                out.append((fund.fund_pay_type, mon, int(amount)))
        return out

    # ------------------------------------------------------------------ fund-risk watch

    def fund_risk(self, pool: str, day: date | None = None) -> dict | None:
        """The pool's off-site spending per fund this year against the pro-rata share of its
        budget (hub.clearing.domain.fund_risk), by `day` (default: its latest closed day), with the
        months so far; None when the pool has no budget for that year or nothing closed."""
        f = db.fund_statements.c
        with self.engine.connect() as conn:
            if day is None:
                day = conn.execute(sa.select(sa.func.max(f.clearing_date)).where(f.pool_code == pool)).scalar_one()
                if day is None:
                    return None
            budget = in_force(self.budgets, pool, day.year)
            if budget is None:
                return None
            month = sa.func.to_char(f.clearing_date, "YYYY-MM")
            rows = conn.execute(sa.select(f.fund_pay_type, month.label("month"), sa.func.sum(f.payable_fen)).where(
                f.pool_code == pool, f.clearing_date.between(date(day.year, 1, 1), day))
                .group_by(f.fund_pay_type, month).order_by(month)).all()
            # direct settlements (what the pool owed others) and manual claims (what it paid its insured)
            rows = [*rows, *self.manual_claims_spent(conn, pool, date(day.year, 1, 1), day)]
        spent: dict[str, int] = {}
        monthly: dict[str, dict[str, int]] = {}
        for fund, m, amount in rows:
            spent[fund] = spent.get(fund, 0) + int(amount)
            monthly.setdefault(fund, {})[m] = monthly.get(fund, {}).get(m, 0) + int(amount)
        risks = assess(self.risk_rule, budget.funds, spent, day)
        return {"pool_code": pool, "as_of": day.isoformat(), "budget_version": budget.budget_version,
                "warn_pct": self.risk_rule.warn_pct, "alarm_pct": self.risk_rule.alarm_pct,
                "level": max((r.level for r in risks), key=["OK", "WARN", "ALARM"].index),
                "funds": [{"fund_pay_type": r.fund_pay_type, "budget_fen": r.budget_fen, "prorata_fen": r.prorata_fen,
                           "spent_fen": r.spent_fen, "ratio_pct": round(float(r.ratio) * 100, 1), "level": r.level,
                           "months": [{"month": m, "spent_fen": v} for m, v in sorted(monthly.get(r.fund_pay_type, {}).items())]}
                          for r in risks]}

    def _watch_fund_risk(self, pool: str, day: date) -> None:
        """After a close: the pool's levels to the gauges, and a warning in the log."""
        try:
            found = self.fund_risk(pool, day)
        except Exception:  # the watch never fails a close that committed
            log.exception("fund-risk watch of %s on %s", pool, day)
            return
        if found is None:
            return
        for f in found["funds"]:
            FUND_RISK_RATIO.labels(pool, f["fund_pay_type"]).set(f["ratio_pct"])
            FUND_RISK_LEVEL.labels(pool, f["fund_pay_type"]).set(["OK", "WARN", "ALARM"].index(f["level"]))
        if found["level"] != "OK":
            log.warning("fund risk %s: %s's off-site spending on %s is %s of its pro-rata budget", found["level"], pool,
                        day, ", ".join(f"{f['fund_pay_type']} {f['ratio_pct']}%" for f in found["funds"]))

    def fund_risk_overview(self) -> list[dict]:
        """Every budgeted pool's watch at its latest closed day (the status page's panel)."""
        pools = sorted({b.pool_code for b in self.budgets})
        return [found for pool in pools if (found := self.fund_risk(pool)) is not None]

    # ------------------------------------------------------------------ quarantine

    def quarantine(self, message: Message, exc: Exception) -> None:
        """The consumer's poison handler: keep the event and why, for an operator to resolve."""
        v = message.value if isinstance(message.value, dict) else {}
        try:
            business_date = _day(v, "business_date") if isinstance(v.get("business_date"), int) else None
        except EventRefused:  # a date no calendar holds: blocks every day, as unknown
            business_date = None
        with self.engine.begin() as conn:
            conn.execute(pg_insert(db.quarantined_events).values(
                source=f"{message.topic}:{message.partition}:{message.offset}",
                event_id=str(v["event_id"]) if v.get("event_id") is not None else None,
                record_name=message.record_name, business_date=business_date,
                home_pool=v.get("home_pool"), treatment_pool=v.get("treatment_pool"),
                reason=f"{type(exc).__name__}: {exc}"[:2000], payload=message.raw, quarantined_at=self.clock(),
            ).on_conflict_do_nothing())

    def _blocking(self, conn: sa.Connection, day: date) -> list[str]:
        """Unresolved quarantined events that may belong to `day`: from it or before (a late
        event joins the next open day), or of unknown date. A hospital's month (a confirmation, a
        clearing application) moves no money between funds: quarantined, it holds back no day."""
        q = db.quarantined_events.c
        return list(conn.execute(sa.select(q.source).where(
            q.resolved_at.is_(None), sa.or_(q.business_date.is_(None), q.business_date <= day),
            sa.not_(q.record_name.endswith(HOSPITAL_MONTH)))
            .order_by(q.source)).scalars())

    def quarantined(self, include_resolved: bool = False) -> list[dict]:
        q = db.quarantined_events.c
        query = sa.select(q.source, q.event_id, q.record_name, q.business_date, q.home_pool, q.treatment_pool,
                          q.reason, q.quarantined_at, q.resolved_at, q.resolution, q.resolved_by, q.note)
        if not include_resolved:
            query = query.where(q.resolved_at.is_(None))
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(q.quarantined_at)).all()
        return [{k: (v.isoformat() if isinstance(v, (date, datetime)) else v) for k, v in r._mapping.items()}
                for r in rows]

    def resolve(self, source: str, action: str, who: str, note: str = "") -> dict:
        """An operator resolves a quarantined event: APPLY it again (after fixing what made it
        fail) or DISCARD it (it will be in no clearing file; say why in `note`)."""
        if action not in ("APPLY", "DISCARD"):
            raise QuarantineError("invalid_action", "APPLY or DISCARD")
        if action == "DISCARD" and not note.strip():
            raise QuarantineError("note_required", "say why the event is discarded (--note)")
        q = db.quarantined_events.c
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(db.quarantined_events).where(q.source == source)).first()
        if row is None:
            raise QuarantineError("not_quarantined", f"no quarantined event {source}")
        if row.resolved_at is not None:
            return {"source": source, "resolution": row.resolution, "already_resolved": True}
        if action == "APPLY":
            topic, partition, offset = source.rsplit(":", 2)
            decoded = self.events.decode(row.payload)
            message = Message(topic, int(partition), int(offset), None, decoded.record_name, decoded.writer_version,
                              decoded.value, 0, (), row.payload)
            try:
                self.apply([message])
            except Exception as exc:  # it still fails: it stays quarantined, and the operator is told why
                raise QuarantineError("still_failing", f"{type(exc).__name__}: {str(exc)[:500]}") from None
        with self.engine.begin() as conn:
            conn.execute(db.quarantined_events.update().where(q.source == source, q.resolved_at.is_(None)).values(
                resolved_at=self.clock(), resolution="APPLIED" if action == "APPLY" else "DISCARDED",
                resolved_by=who, note=note or None))
        return {"source": source, "resolution": "APPLIED" if action == "APPLY" else "DISCARDED",
                "already_resolved": False}

    def _obligations(self, conn: sa.Connection, day: date, *where) -> list[Obligation]:
        return [Obligation(r.home_pool, r.treatment_pool, r.hifp_pay_fen, r.hifmi_pay_fen, r.maf_pay_fen,
                           r.settlement_count, r.insurance_type)
                for r in conn.execute(sa.select(db.bilateral).where(db.bilateral.c.clearing_date == day, *where))]

    def _lines(self, conn: sa.Connection, day: date, pool: str) -> list[files.LineRow]:
        a = db.applied_events.c
        columns = [a[name] for name in files.LineRow._fields]
        return [files.LineRow(*r) for r in conn.execute(sa.select(*columns).where(
            a.clearing_date == day, sa.or_(a.home_pool == pool, a.treatment_pool == pool)))]

    def _statement_event(self, day: date, cycle_id: str, now: datetime, p, sha: str) -> dict:
        return {
            "event_id": uuid.uuid5(uuid.NAMESPACE_URL, f"clearing:{cycle_id}:{p.pool}"), "event_time": now,
            "producer": PRODUCER, "schema_version": 3, "cycle_id": cycle_id, "clearing_date": day,
            "pool_code": p.pool, "receivable_fen": p.receivable_fen, "payable_fen": p.payable_fen,
            "net_position_fen": p.net_fen, "settlement_count": p.settlement_count,
            "bilateral": [{"counterparty_pool": b.counterparty_pool, "receivable_hifp_pay_fen": b.receivable.hifp_pay_fen,
                           "receivable_hifmi_pay_fen": b.receivable.hifmi_pay_fen, "payable_hifp_pay_fen": b.payable.hifp_pay_fen,
                           "payable_hifmi_pay_fen": b.payable.hifmi_pay_fen, "receivable_maf_pay_fen": b.receivable.maf_pay_fen,
                           "payable_maf_pay_fen": b.payable.maf_pay_fen, "settlement_count": b.settlement_count,
                           "insurance_type": b.insurance_type}
                          for b in p.bilateral],
            "funds": [{"insutype": f.fund.insutype, "fund_pay_type": f.fund.fund_pay_type,
                       "receivable_fen": f.receivable_fen, "payable_fen": f.payable_fen, "net_fen": f.net_fen}
                      for f in p.funds],
            "file_sha256": sha, "generated_at": now,
        }

    # ------------------------------------------------------------------ files

    def render_day(self, day: date) -> dict[str, bytes]:
        """Every file of a closed day, rendered from the database (byte-identical every time)."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(db.days).where(db.days.c.clearing_date == day)).first()
            if row is None or row.status != "CLOSED":
                return {}
            result = net(self._obligations(conn, day))
            header = files.DayHeader(day, row.cycle_id, row.closed_at, self.pool_names)
            out: dict[str, bytes] = {}
            for position in result.positions:
                out.update(files.render_pool_files(header, position, self._lines(conn, day, position.pool),
                                                   self.signer, self._advance_of(conn, day, position.pool),
                                                   self._flags_of(conn, day, position.pool)))
            confirmed = {r.pool_code: r.confirmed_at is not None for r in
                         conn.execute(sa.select(db.statements).where(db.statements.c.clearing_date == day))}
        num, den = row.efficiency.split("/")
        out[f"summary_{day.isoformat()}.html"] = files.render_summary(
            header, result.positions, result.gross_fen, result.net_abs_fen, Fraction(int(num), int(den)), confirmed)
        return out

    def write_day_files(self, day: date) -> list[Path]:
        return files.write_files(self.out_dir / day.isoformat(), self.render_day(day))

    def pool_file(self, day: date, pool: str, suffix: str) -> bytes | None:
        """One of a pool's files of a closed day: as written at the close when this replica wrote
        it (no netting, no rendering), else rendered again from the day's records."""
        with self.engine.connect() as conn:
            statement = conn.execute(sa.select(db.statements.c.cycle_id).where(
                db.statements.c.clearing_date == day, db.statements.c.pool_code == pool)).first()
            if statement is None:  # the day is not closed, or the pool had nothing that day
                return None
            written = self.out_dir / day.isoformat() / f"{files.file_stem(day, pool)}.{suffix}"
            if written.is_file():
                return written.read_bytes()
            row = conn.execute(sa.select(db.days).where(db.days.c.clearing_date == day)).one()
            position = net(self._obligations(conn, day)).by_pool.get(pool)
            header = files.DayHeader(day, row.cycle_id, row.closed_at, self.pool_names)
            rendered = files.render_pool_files(header, position, self._lines(conn, day, pool), self.signer,
                                               self._advance_of(conn, day, pool), self._flags_of(conn, day, pool))
        return rendered.get(f"{files.file_stem(day, pool)}.{suffix}")

    def confirm(self, day: date, pool: str, who: str) -> bool:
        with self.engine.begin() as conn:
            updated = conn.execute(db.statements.update().where(
                db.statements.c.clearing_date == day, db.statements.c.pool_code == pool,
                db.statements.c.confirmed_at.is_(None)).values(confirmed_at=self.clock(), confirmed_by=who)).rowcount
            exists = conn.execute(sa.select(sa.func.count()).select_from(db.statements).where(
                db.statements.c.clearing_date == day, db.statements.c.pool_code == pool)).scalar_one()
        return bool(updated or exists)

    def day_summary(self, day: date, pool: str) -> dict | None:
        """A pool's closed day without its lines: its position per fund and per counterparty (from
        the day's running totals, netted again: no line is read) and its statement's state."""
        with self.engine.connect() as conn:
            st = conn.execute(sa.select(db.statements).where(db.statements.c.clearing_date == day,
                                                             db.statements.c.pool_code == pool)).first()
            if st is None:
                return None
            row = conn.execute(sa.select(db.days).where(db.days.c.clearing_date == day)).one()
            b = db.bilateral.c
            position = position_of(pool, self._obligations(conn, day, sa.or_(b.home_pool == pool,
                                                                             b.treatment_pool == pool)))
            a = db.applied_events.c
            late = conn.execute(sa.select(a.settlement_id, a.kind, a.business_date, a.home_pool, a.treatment_pool,
                                          (a.hifp_pay_fen + a.hifmi_pay_fen + a.maf_pay_fen).label("fund_fen"))
                                .where(a.clearing_date == day, a.late, sa.or_(a.home_pool == pool, a.treatment_pool == pool))
                                .order_by(a.business_date, a.settlement_id).limit(LATE_SHOWN + 1)).all()
        header = files.DayHeader(day, row.cycle_id, row.closed_at, self.pool_names)
        funds, bilateral = files.position_parts(header, position)
        return {"pool_code": pool, "pool_name": self.pool_names.get(pool, ""), "clearing_date": day.isoformat(),
                "cycle_id": st.cycle_id, "receivable_fen": st.receivable_fen, "payable_fen": st.payable_fen,
                "net_position_fen": st.net_position_fen, "settlement_count": st.settlement_count,
                "manifest_sha256": st.manifest_sha256, "funds": funds, "bilateral": bilateral,
                # events of earlier, closed days that arrived after their close: cleared in this day
                "late_events": [{"settlement_id": r.settlement_id, "kind": r.kind,
                                 "business_date": r.business_date.isoformat(), "home_pool": r.home_pool,
                                 "treatment_pool": r.treatment_pool, "fund_fen": int(r.fund_fen)} for r in late[:LATE_SHOWN]],
                "late_events_more": len(late) > LATE_SHOWN,
                "confirmed_at": st.confirmed_at.isoformat() if st.confirmed_at else None,
                "confirmed_by": st.confirmed_by}

    def days_of(self, pool: str, limit: int = 62) -> list[dict]:
        """A pool's closed days, newest first: its net position and whether its bureau confirmed."""
        s = db.statements.c
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(db.statements).where(s.pool_code == pool)
                                .order_by(s.clearing_date.desc()).limit(limit)).all()
        return [{"clearing_date": r.clearing_date.isoformat(), "pool_code": r.pool_code, "cycle_id": r.cycle_id,
                 "receivable_fen": r.receivable_fen, "payable_fen": r.payable_fen,
                 "net_position_fen": r.net_position_fen, "settlement_count": r.settlement_count,
                 "confirmed_at": r.confirmed_at.isoformat() if r.confirmed_at else None,
                 "confirmed_by": r.confirmed_by} for r in rows]

    def unconfirmed(self) -> list[dict]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(db.statements).where(db.statements.c.confirmed_at.is_(None))
                                .order_by(db.statements.c.clearing_date, db.statements.c.pool_code)).all()
        return [{"clearing_date": r.clearing_date.isoformat(), "pool_code": r.pool_code,
                 "net_position_fen": r.net_position_fen, "cycle_id": r.cycle_id} for r in rows]
