"""The clearing repository in memory, for unit tests of its use cases: the same interface as
PostgresClearingRepository, each unit of work on a copy of the tables that replaces them only when
it ends without an exception (so a refusal, or a close that fails its zero sum, changes nothing).
What PostgreSQL answers in SQL (the flags' evidence, the month's totals) is answered here by
reading the rows one by one."""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any, Iterator, Sequence

from hub.clearing.adapters.database import APPLIED_COLUMNS
from hub.clearing.adapters.files import LineRow
from hub.clearing.adapters.repository import (LINE_FILTERS, Advance, ClearingRepository, Day, FundStatement,
                                              LateEvent, LedgerRow, Mark, MonthlyStatement, Quarantined, Statement,
                                              Unit)
from hub.clearing.domain.anomalies import Bill
from hub.clearing.domain.netting import Obligation


@dataclass
class Tables:
    days: dict[date, Day] = field(default_factory=dict)
    events: dict[str, dict[str, Any]] = field(default_factory=dict)  # applied_events rows by event id
    manual_claims: dict[str, dict[str, Any]] = field(default_factory=dict)
    bilateral: dict[tuple, list[int]] = field(default_factory=dict)  # (day, home, treatment, type) -> totals
    marks: dict[tuple[str, int], Mark] = field(default_factory=dict)
    hospital_lines: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    hospital_applications: dict[str, dict[str, Any]] = field(default_factory=dict)
    statements: dict[tuple[date, str], Statement] = field(default_factory=dict)
    fund_statements: list[FundStatement] = field(default_factory=list)
    flags: list[dict[str, Any]] = field(default_factory=list)
    advances: dict[str, Advance] = field(default_factory=dict)
    ledger: list[LedgerRow] = field(default_factory=list)
    quarantine: dict[str, Quarantined] = field(default_factory=dict)
    monthly: dict[tuple[str, str], MonthlyStatement] = field(default_factory=dict)
    lines: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)  # (month, pool, event id)
    outbox: list[tuple[str, str, bytes]] = field(default_factory=list)


def _month(d: date) -> str:
    return f"{d.year:04d}-{d.month:02d}"


class FakeUnit(Unit):
    def __init__(self, t: Tables):
        self.t = t

    # -------------------------------------------------------------- applying events

    def open_days(self, days: Sequence[date]) -> dict[date, str]:
        for d in days:
            self.t.days.setdefault(d, Day(d, "OPEN"))
        return {d: row.status for d, row in self.t.days.items() if d >= min(days)}

    def insurance_types(self, settlement_ids: Sequence[str]) -> dict[str, str]:
        return {e["settlement_id"]: e["insurance_type"] for e in self.t.events.values()
                if e["kind"] == "SETTLED" and e["settlement_id"] in settlement_ids}

    def add_events(self, rows: Sequence[tuple]) -> set[str]:
        new = set()
        for row in rows:
            record = dict(zip(APPLIED_COLUMNS, row, strict=True))
            if record["event_id"] not in self.t.events:
                self.t.events[record["event_id"]] = record
                new.add(record["event_id"])
        return new

    def add_manual_claims(self, rows: Sequence[dict[str, Any]]) -> set[str]:
        new = {r["event_id"] for r in rows if r["event_id"] not in self.t.manual_claims}
        for r in rows:
            self.t.manual_claims.setdefault(r["event_id"], dict(r))
        return new

    def add_bilateral(self, rows: Sequence[tuple]) -> None:
        for day, home, treatment, insurance, *amounts in rows:
            totals = self.t.bilateral.setdefault((day, home, treatment, insurance), [0, 0, 0, 0])
            for i, amount in enumerate(amounts):
                totals[i] += amount

    def advance_marks(self, marks: Sequence[tuple[str, int, int, datetime]]) -> None:
        for topic, partition, offset, when in marks:
            old = self.t.marks.get((topic, partition))
            self.t.marks[(topic, partition)] = Mark(topic, partition, max(offset, old.next_offset if old else offset),
                                                    max(when, old.max_event_time if old else when))

    def keep_newest_hospital_month(self, lines, applications) -> None:
        for table, rows, key in ((self.t.hospital_lines, lines, ("hospital_code", "setl_sn")),
                                 (self.t.hospital_applications, applications, ("clr_appy_evt_id",))):
            for row in rows:
                k = tuple(row[n] for n in key) if len(key) > 1 else row[key[0]]
                kept = table.get(k)
                if kept is None or (kept["event_time"], kept["event_id"]) < (row["event_time"], row["event_id"]):
                    table[k] = dict(row)

    # -------------------------------------------------------------- closing a day

    def day(self, day: date, lock: bool = False) -> Day | None:
        if lock:
            self.t.days.setdefault(day, Day(day, "OPEN"))
        return self.t.days.get(day)

    def open_day_list(self) -> list[date]:
        return sorted(d for d, row in self.t.days.items() if row.status == "OPEN")

    def marks(self) -> dict[tuple[str, int], Mark]:
        return dict(self.t.marks)

    def obligations(self, day: date, pool: str | None = None) -> list[Obligation]:
        return [Obligation(home, treatment, *totals, insurance)
                for (d, home, treatment, insurance), totals in self.t.bilateral.items()
                if d == day and (pool is None or pool in (home, treatment))]

    def _of_day(self, day: date) -> list[dict[str, Any]]:
        return [e for e in self.t.events.values() if e["clearing_date"] == day]

    def lines(self, day: date, pool: str) -> list[LineRow]:
        return [LineRow(*(e[n] for n in LineRow._fields)) for e in self._of_day(day)
                if pool in (e["home_pool"], e["treatment_pool"])]

    def record_day_statement(self, statement: Statement, funds: Sequence[FundStatement]) -> None:
        key = (statement.clearing_date, statement.pool_code)
        assert key not in self.t.statements, f"duplicate key: statement {key}"
        self.t.statements[key] = statement
        self.t.fund_statements += funds

    def mark_closed(self, day, cycle_id, closed_at, gross_fen, net_abs_fen, efficiency) -> None:
        self.t.days[day] = Day(day, "CLOSED", cycle_id, closed_at, gross_fen, net_abs_fen, efficiency)

    def add_outbox(self, topic: str, key: str, payload: bytes) -> None:
        self.t.outbox.append((topic, key, payload))

    # -------------------------------------------------------------- anomaly flags' evidence

    def _standing(self, first: date, last: date) -> list[dict[str, Any]]:
        reversed_ = {e["settlement_id"] for e in self.t.events.values() if e["kind"] == "REVERSED"}
        return [e for e in self.t.events.values()
                if e["kind"] == "SETTLED" and e["home_pool"] != e["treatment_pool"] and e["person_ref"]
                and e["begntime"] is not None and e["settlement_id"] not in reversed_
                and first <= e["clearing_date"] <= last]

    @staticmethod
    def _bill(e: dict[str, Any]) -> Bill:
        return Bill(e["settlement_id"], e["person_ref"], e["home_pool"], e["treatment_pool"], e["hospital_code"],
                    e["visit_type"], e["begntime"], e["endtime"], e["medfee_sumamt_fen"], e["clearing_date"])

    def person_bill_counts(self, day: date, since: date) -> dict[str, int]:
        today = {e["person_ref"] for e in self._standing(day, day)}
        counts: dict[str, int] = {}
        for e in self._standing(since, day):
            if e["person_ref"] in today:
                counts[e["person_ref"]] = counts.get(e["person_ref"], 0) + 1
        return {p: c for p, c in counts.items() if c >= 2}

    def bills_of(self, persons: Sequence[str], since: date, day: date) -> list[Bill]:
        return [self._bill(e) for e in self._standing(since, day) if e["person_ref"] in persons]

    def first_bills(self, day: date, person: str, limit: int) -> list[tuple[str, str]]:
        return sorted(((e["home_pool"], e["settlement_id"]) for e in self._standing(day, day)
                       if e["person_ref"] == person), key=lambda r: r[1])[:limit]

    def bills_under(self, day: date, thresholds_fen: Sequence[int], under_pct: int) -> list[Bill]:
        return [self._bill(e) for e in self._standing(day, day)
                if any(e["medfee_sumamt_fen"] * 100 >= t * (100 - under_pct) and e["medfee_sumamt_fen"] < t
                       for t in thresholds_fen)]

    def hospital_totals(self, first: date, last: date) -> dict[str, dict[str, tuple[int, int]]]:
        out: dict[str, dict[str, tuple[int, int]]] = {}
        for e in self._standing(first, last):
            count, total = out.setdefault(e["home_pool"], {}).get(e["hospital_code"], (0, 0))
            out[e["home_pool"]][e["hospital_code"]] = (count + 1, total + e["medfee_sumamt_fen"])
        return out

    def hospital_bill_ids(self, day: date, home: str, hospital: str, limit: int) -> list[str]:
        return sorted(e["settlement_id"] for e in self._standing(day, day)
                      if e["home_pool"] == home and e["hospital_code"] == hospital)[:limit]

    def record_flags(self, rows: Sequence[dict[str, Any]]) -> None:
        self.t.flags += [dict(r) for r in rows]

    def flags(self, day: date, pool: str) -> list[dict[str, Any]]:
        return [{"kind": f["kind"], "subject": f["subject"], "detail": f["detail"],
                 "settlement_ids": f["settlement_ids"].split()}
                for f in sorted(self.t.flags, key=lambda f: f["n"])
                if f["clearing_date"] == day and f["home_pool"] == pool]

    def latest_flag_day(self, pool: str) -> date | None:
        return max((f["clearing_date"] for f in self.t.flags if f["home_pool"] == pool), default=None)

    # -------------------------------------------------------------- advances

    def lock_advances(self, pools: Sequence[str], now: datetime) -> dict[str, Advance]:
        for pool in pools:
            self.t.advances.setdefault(pool, Advance(pool, 0, 0, False, now))
        return {pool: self.t.advances[pool] for pool in sorted(pools)}

    def payables(self, pools: Sequence[str], first: date, before: date) -> dict[str, list[int]]:
        return {pool: [s.payable_fen for (d, p), s in sorted(self.t.statements.items())
                       if p == pool and first <= d < before] for pool in pools}

    def record_ledger(self, entries: Sequence[LedgerRow], now: datetime) -> list[LedgerRow]:
        written = []
        for e in entries:
            if self.ledger_entry(e.pool_code, e.reference) is not None:
                raise KeyError(f"duplicate key: ledger {e.pool_code} {e.reference}")
            written.append(replace(e, entry_id=len(self.t.ledger) + 1))
            self.t.ledger.append(written[-1])
            self.t.advances[e.pool_code] = Advance(e.pool_code, e.balance_fen, e.required_fen, e.warning, now)
        return written

    def ledger_entry(self, pool: str, reference: str) -> LedgerRow | None:
        return next((e for e in self.t.ledger if e.pool_code == pool and e.reference == reference), None)

    def advance(self, pool: str) -> Advance | None:
        return self.t.advances.get(pool)

    def ledger(self, pool: str, limit: int) -> list[LedgerRow]:
        return [e for e in self.t.ledger if e.pool_code == pool][-limit:]

    def all_advances(self) -> list[Advance]:
        return [self.t.advances[p] for p in sorted(self.t.advances)]

    def recent_balances(self, per_pool: int) -> dict[str, list[tuple[date, int]]]:
        out: dict[str, list[tuple[date, int]]] = {}
        for e in self.t.ledger:
            out.setdefault(e.pool_code, []).append((e.clearing_date, e.balance_fen))
        return {p: rows[-per_pool:] for p, rows in sorted(out.items())}

    # -------------------------------------------------------------- manual claims and funds

    def manual_claims(self, first: date, last: date, pool: str | None = None) -> list[dict[str, Any]]:
        return sorted((dict(m) for m in self.t.manual_claims.values()
                       if first <= m["clearing_date"] <= last and pool in (None, m["home_pool"])),
                      key=lambda m: (m["clearing_date"], m["home_pool"], m["claim_no"], m["event_id"]))

    def manual_claim_totals(self, pool: str, first: date, last: date) -> list[tuple[str, str, int, int, int]]:
        out: dict[tuple[str, str], list[int]] = {}
        for m in self.manual_claims(first, last, pool):
            t = out.setdefault((m["insurance_type"], _month(m["clearing_date"])), [0, 0, 0])
            for i, name in enumerate(("hifp_pay_fen", "hifmi_pay_fen", "maf_pay_fen")):
                t[i] += m[name]
        return [(k[0], k[1], *v) for k, v in sorted(out.items())]

    def fund_payables(self, pool: str, first: date, last: date) -> list[tuple[str, str, int]]:
        out: dict[tuple[str, str], int] = {}
        for f in self.t.fund_statements:
            if f.pool_code == pool and first <= f.clearing_date <= last:
                key = (f.fund_pay_type, _month(f.clearing_date))
                out[key] = out.get(key, 0) + f.payable_fen
        return sorted(((k[0], k[1], v) for k, v in out.items()), key=lambda r: r[1])

    def latest_fund_day(self, pool: str) -> date | None:
        return max((f.clearing_date for f in self.t.fund_statements if f.pool_code == pool), default=None)

    # -------------------------------------------------------------- quarantine

    def quarantine(self, row: Quarantined) -> None:
        self.t.quarantine.setdefault(row.source, row)

    def blocking(self, day: date) -> list[str]:
        return sorted(q.source for q in self.t.quarantine.values()
                      if q.resolved_at is None and (q.business_date is None or q.business_date <= day)
                      and not q.record_name.endswith("HospitalMonthChanged"))

    def quarantined(self, include_resolved: bool = False) -> list[Quarantined]:
        return sorted((q for q in self.t.quarantine.values() if include_resolved or q.resolved_at is None),
                      key=lambda q: q.quarantined_at)

    def quarantined_one(self, source: str) -> Quarantined | None:
        return self.t.quarantine.get(source)

    def resolve_quarantined(self, source: str, at: datetime, resolution: str, who: str, note: str | None) -> None:
        q = self.t.quarantine[source]
        if q.resolved_at is None:
            self.t.quarantine[source] = replace(q, resolved_at=at, resolution=resolution, resolved_by=who, note=note)

    # -------------------------------------------------------------- a closed day's statements

    def statements(self, day: date) -> list[Statement]:
        return [s for (d, _), s in sorted(self.t.statements.items()) if d == day]

    def statement(self, day: date, pool: str) -> Statement | None:
        return self.t.statements.get((day, pool))

    def statements_of(self, pool: str, limit: int) -> list[Statement]:
        return [s for (_, p), s in sorted(self.t.statements.items(), reverse=True) if p == pool][:limit]

    def unconfirmed(self) -> list[Statement]:
        return [s for _, s in sorted(self.t.statements.items()) if s.confirmed_at is None]

    def confirm(self, day: date, pool: str, at: datetime, who: str) -> bool:
        s = self.t.statements.get((day, pool))
        if s is None or s.confirmed_at is not None:
            return False
        self.t.statements[(day, pool)] = replace(s, confirmed_at=at, confirmed_by=who)
        return True

    def late_events(self, day: date, pool: str, limit: int) -> list[LateEvent]:
        rows = sorted((e for e in self._of_day(day) if e["late"] and pool in (e["home_pool"], e["treatment_pool"])),
                      key=lambda e: (e["business_date"], e["settlement_id"]))[:limit]
        return [LateEvent(e["settlement_id"], e["kind"], e["business_date"], e["home_pool"], e["treatment_pool"],
                          e["hifp_pay_fen"] + e["hifmi_pay_fen"] + e["maf_pay_fen"]) for e in rows]

    # -------------------------------------------------------------- hospitals' month

    def hospital_month_totals(self, treatment_pool: str, first: date, last: date) -> list[tuple[str, str, int, int]]:
        flags = {(h["settlement_id"], h["kind"]): h["cnfm_flag"] for h in self.t.hospital_lines.values()}
        out: dict[tuple[str, str], list[int]] = {}
        for e in self.t.events.values():
            if e["treatment_pool"] == treatment_pool != e["home_pool"] and first <= e["business_date"] <= last:
                t = out.setdefault((e["hospital_code"], flags.get((e["settlement_id"], e["kind"]), "")), [0, 0])
                t[0] += 1
                t[1] += (-1 if e["kind"] == "REVERSED" else 1) * (e["hifp_pay_fen"] + e["hifmi_pay_fen"] + e["maf_pay_fen"])
        return [(k[0], k[1], *v) for k, v in sorted(out.items())]

    def hospital_applications(self, treatment_pool: str, month: str) -> list[dict[str, Any]]:
        return sorted((dict(a) for a in self.t.hospital_applications.values()
                       if a["treatment_pool"] == treatment_pool and a["month"] == month),
                      key=lambda a: (a["hospital_code"], a["clr_type"]))

    def hospital_flags(self, settlement_ids: Sequence[str]) -> dict[tuple[str, str], str]:
        return {(h["settlement_id"], h["kind"]): h["cnfm_flag"] for h in self.t.hospital_lines.values()
                if h["settlement_id"] in settlement_ids}

    # -------------------------------------------------------------- monthly statements

    def lock_month_issue(self) -> None:
        pass  # one unit at a time here

    def days_not_closed(self, first: date, last: date) -> list[date]:
        return sorted(d for d, row in self.t.days.items() if first <= d <= last and row.status != "CLOSED")

    def pools_to_state(self, month: str, first: date, last: date) -> set[str]:
        return ({e["home_pool"] for e in self.t.events.values()
                 if first <= e["clearing_date"] <= last and e["home_pool"] != e["treatment_pool"]}
                | {line["bureau_pool"] for line in self.t.lines.values()
                   if line["state"] == "RESOLVED" and not line["carried_to"] and line["month"] < month})

    def month_pools_issued(self, month: str) -> set[str]:
        return {pool for m, pool in self.t.monthly if m == month}

    def issue_statement(self, statement: MonthlyStatement, first: date, last: date) -> None:
        month, pool = statement.month, statement.bureau_pool
        self.t.monthly[(month, pool)] = statement
        stamp = {"state": "PENDING", "reason": "", "carried_from": "", "carried_to": "",
                 "updated_at": statement.issued_at, "updated_by": statement.issued_by}
        for e in self.t.events.values():
            if e["home_pool"] == pool != e["treatment_pool"] and first <= e["clearing_date"] <= last:
                sign = -1 if e["kind"] == "REVERSED" else 1
                self.t.lines[(month, pool, e["event_id"])] = {
                    "month": month, "bureau_pool": pool, "event_id": e["event_id"],
                    "counterparty_pool": e["treatment_pool"], **{n: e[n] for n in (
                        "kind", "settlement_id", "reversal_id", "clearing_date", "hospital_code", "insurance_type",
                        "person_id_masked")},
                    **{n: sign * e[n] for n in ("medfee_sumamt_fen", "hifp_pay_fen", "hifmi_pay_fen", "maf_pay_fen")},
                    **stamp}
        for key, line in list(self.t.lines.items()):
            if line["bureau_pool"] == pool and line["state"] == "RESOLVED" and not line["carried_to"] \
                    and line["month"] < month:
                self.t.lines.setdefault((month, pool, line["event_id"]), {**line, **stamp, "month": month,
                                                                          "carried_from": line["month"]})
                self.t.lines[key] = {**line, "carried_to": month}

    def monthly(self, month: str, pool: str, lock: bool = False) -> MonthlyStatement | None:
        return self.t.monthly.get((month, pool))

    def _lines_of(self, month: str, pool: str) -> list[dict[str, Any]]:
        return [line for (m, p, _), line in self.t.lines.items() if (m, p) == (month, pool)]

    def month_totals(self, month: str, pool: str) -> dict[str, tuple[int, int]]:
        out: dict[str, tuple[int, int]] = {}
        for line in self._lines_of(month, pool):
            count, fen = out.get(line["state"], (0, 0))
            out[line["state"]] = (count + 1, fen + line["hifp_pay_fen"] + line["hifmi_pay_fen"] + line["maf_pay_fen"])
        return out

    def line_states(self, month: str, pool: str, event_ids: Sequence[str] | None, lock: bool = True) -> dict[str, str]:
        return {line["event_id"]: line["state"] for line in self._lines_of(month, pool)
                if event_ids is None or line["event_id"] in event_ids}

    def set_line_states(self, month, pool, event_ids, state, reason, at, who) -> None:
        for i in event_ids:
            self.t.lines[(month, pool, i)].update(state=state, reason=reason, updated_at=at, updated_by=who)

    def close_monthly(self, month: str, pool: str, at: datetime, who: str) -> None:
        self.t.monthly[(month, pool)] = replace(self.t.monthly[(month, pool)], status="CLOSED", closed_at=at,
                                                closed_by=who)

    def set_monthly_digest(self, month: str, pool: str, sha256: str) -> None:
        self.t.monthly[(month, pool)] = replace(self.t.monthly[(month, pool)], manifest_sha256=sha256)

    def open_monthlies(self) -> list[MonthlyStatement]:
        return [s for _, s in sorted(self.t.monthly.items()) if s.status != "CLOSED"]

    def _matching(self, month: str, pool: str, filters: dict[str, str]) -> list[dict[str, Any]]:
        assert set(filters) <= set(LINE_FILTERS), filters
        return sorted((dict(line) for line in self._lines_of(month, pool)
                       if all(line[n] == v for n, v in filters.items())),
                      key=lambda l: (l["clearing_date"], l["settlement_id"], l["kind"], l["event_id"]))

    def month_lines(self, month, pool, filters, limit=None, offset=0) -> list[dict[str, Any]]:
        rows = self._matching(month, pool, filters)[offset:]
        return rows if limit is None else rows[:limit]

    def count_month_lines(self, month: str, pool: str, filters: dict[str, str]) -> int:
        return len(self._matching(month, pool, filters))

    def month_line_values(self, month: str, pool: str, name: str) -> list[str]:
        return sorted({line[name] for line in self._lines_of(month, pool)})


class FakeClearingRepository(ClearingRepository):
    def __init__(self):
        self.tables = Tables()

    @contextlib.contextmanager
    def unit(self) -> Iterator[FakeUnit]:
        working = copy.deepcopy(self.tables)
        yield FakeUnit(working)
        self.tables = working
