"""The clearing repository on PostgreSQL (database `hub_clearing`, tables in database.py): every
SQL statement the service runs on a day's events, closes, advances, flags and quarantine. The
monthly statements' statements are in postgres_months.py.

A batch of events and the close of a day are serialised on the day's row: applying takes a share
lock on the rows of the days it touches (`open_days`), closing an exclusive one (`day(lock=True)`).
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from datetime import date, datetime
from typing import Any, Iterator, Sequence

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from hub.clearing.adapters import database as db
from hub.clearing.adapters.files import LineRow
from hub.clearing.adapters.postgres_months import MonthSql
from hub.clearing.adapters.repository import (Advance, ClearingRepository, Day, FundStatement, LateEvent,
                                              LedgerRow, Mark, Quarantined, Statement, Unit)
from hub.clearing.domain.anomalies import Bill
from hub.clearing.domain.netting import Obligation

a = db.applied_events.c
HOSPITAL_MONTH = "HospitalMonthChanged"
BILL_COLUMNS = (a.settlement_id, a.person_ref, a.home_pool, a.treatment_pool, a.hospital_code, a.visit_type,
                a.begntime, a.endtime, a.medfee_sumamt_fen, a.clearing_date)


def _standing() -> sa.ColumnElement[bool]:
    """A settlement not reversed, with a person and days, treated outside its home pool."""
    reversed_ = sa.select(a.settlement_id).where(a.kind == "REVERSED").scalar_subquery()
    return sa.and_(a.kind == "SETTLED", a.home_pool != a.treatment_pool, a.person_ref != "",
                   a.begntime.is_not(None), a.settlement_id.not_in(reversed_))


class PostgresUnit(MonthSql, Unit):
    def __init__(self, conn: sa.Connection):
        self.conn = conn

    # -------------------------------------------------------------- applying events

    def open_days(self, days: Sequence[date]) -> dict[date, str]:
        d = db.days.c
        self.conn.execute(pg_insert(db.days).values([{"clearing_date": x, "status": "OPEN"} for x in sorted(days)])
                          .on_conflict_do_nothing())
        return dict(self.conn.execute(sa.select(d.clearing_date, d.status).where(d.clearing_date >= min(days))
                                      .with_for_update(read=True)).all())

    def insurance_types(self, settlement_ids: Sequence[str]) -> dict[str, str]:
        return dict(self.conn.execute(sa.select(a.settlement_id, a.insurance_type).where(
            a.kind == "SETTLED", a.settlement_id.in_(sorted(settlement_ids)))).all())

    def add_events(self, rows: Sequence[tuple]) -> set[str]:
        return db.insert_applied(self.conn, list(rows))

    def add_manual_claims(self, rows: Sequence[dict[str, Any]]) -> set[str]:
        return set(self.conn.execute(pg_insert(db.manual_claims).values(list(rows)).on_conflict_do_nothing()
                                     .returning(db.manual_claims.c.event_id)).scalars())

    def add_bilateral(self, rows: Sequence[tuple]) -> None:
        db.add_bilateral(self.conn, list(rows))

    def advance_marks(self, marks: Sequence[tuple[str, int, int, datetime]]) -> None:
        db.advance_marks(self.conn, list(marks))

    def keep_newest_hospital_month(self, lines: Sequence[dict[str, Any]],
                                   applications: Sequence[dict[str, Any]]) -> None:
        db.upsert_newest(self.conn, db.hospital_month_lines, list(lines), ["hospital_code", "setl_sn"])
        db.upsert_newest(self.conn, db.hospital_applications, list(applications), ["clr_appy_evt_id"])

    # -------------------------------------------------------------- closing a day

    def day(self, day: date, lock: bool = False) -> Day | None:
        query = sa.select(db.days).where(db.days.c.clearing_date == day)
        if lock:
            self.conn.execute(pg_insert(db.days).values(clearing_date=day, status="OPEN").on_conflict_do_nothing())
            query = query.with_for_update()
        row = self.conn.execute(query).first()
        return None if row is None else Day(**row._mapping)

    def open_day_list(self) -> list[date]:
        d = db.days.c
        return list(self.conn.execute(sa.select(d.clearing_date).where(d.status == "OPEN").order_by(d.clearing_date))
                    .scalars())

    def marks(self) -> dict[tuple[str, int], Mark]:
        return {(r.topic, r.partition): Mark(**r._mapping) for r in self.conn.execute(sa.select(db.partition_marks))}

    def obligations(self, day: date, pool: str | None = None) -> list[Obligation]:
        b = db.bilateral.c
        where = [b.clearing_date == day]
        if pool is not None:
            where.append(sa.or_(b.home_pool == pool, b.treatment_pool == pool))
        return [Obligation(r.home_pool, r.treatment_pool, r.hifp_pay_fen, r.hifmi_pay_fen, r.maf_pay_fen,
                           r.settlement_count, r.insurance_type)
                for r in self.conn.execute(sa.select(db.bilateral).where(*where))]

    def lines(self, day: date, pool: str) -> list[LineRow]:
        return [LineRow(*r) for r in self.conn.execute(sa.select(*(a[n] for n in LineRow._fields)).where(
            a.clearing_date == day, sa.or_(a.home_pool == pool, a.treatment_pool == pool)))]

    def record_day_statement(self, statement: Statement, funds: Sequence[FundStatement]) -> None:
        self.conn.execute(db.statements.insert().values(**vars(statement)))
        if funds:
            self.conn.execute(db.fund_statements.insert(), [vars(f) for f in funds])

    def mark_closed(self, day: date, cycle_id: str, closed_at: datetime, gross_fen: int, net_abs_fen: int,
                    efficiency: str) -> None:
        self.conn.execute(db.days.update().where(db.days.c.clearing_date == day).values(
            status="CLOSED", cycle_id=cycle_id, closed_at=closed_at, gross_fen=gross_fen, net_abs_fen=net_abs_fen,
            efficiency=efficiency))

    def add_outbox(self, topic: str, key: str, payload: bytes) -> None:
        self.conn.execute(db.outbox.insert().values(topic=topic, message_key=key, payload=payload))

    # -------------------------------------------------------------- anomaly flags' evidence

    def person_bill_counts(self, day: date, since: date) -> dict[str, int]:
        standing = _standing()
        persons = sa.select(a.person_ref).where(standing, a.clearing_date == day).distinct().scalar_subquery()
        return dict(self.conn.execute(sa.select(a.person_ref, sa.func.count()).where(
            standing, a.clearing_date.between(since, day), a.person_ref.in_(persons))
            .group_by(a.person_ref).having(sa.func.count() >= 2)).all())

    def bills_of(self, persons: Sequence[str], since: date, day: date) -> list[Bill]:
        return [Bill(*r) for r in self.conn.execute(sa.select(*BILL_COLUMNS).where(
            _standing(), a.clearing_date.between(since, day), a.person_ref.in_(list(persons))))]

    def first_bills(self, day: date, person: str, limit: int) -> list[tuple[str, str]]:
        return [tuple(r) for r in self.conn.execute(sa.select(a.home_pool, a.settlement_id).where(
            _standing(), a.clearing_date == day, a.person_ref == person).order_by(a.settlement_id).limit(limit))]

    def bills_under(self, day: date, thresholds_fen: Sequence[int], under_pct: int) -> list[Bill]:
        if not thresholds_fen:
            return []
        band = sa.or_(*(sa.and_(a.medfee_sumamt_fen * 100 >= t * (100 - under_pct), a.medfee_sumamt_fen < t)
                        for t in thresholds_fen))
        return [Bill(*r) for r in self.conn.execute(sa.select(*BILL_COLUMNS).where(
            _standing(), a.clearing_date == day, band))]

    def hospital_totals(self, first: date, last: date) -> dict[str, dict[str, tuple[int, int]]]:
        out: dict[str, dict[str, tuple[int, int]]] = defaultdict(dict)
        for home, hospital, count, total in self.conn.execute(sa.select(
                a.home_pool, a.hospital_code, sa.func.count(), sa.func.sum(a.medfee_sumamt_fen)).where(
                _standing(), a.clearing_date.between(first, last)).group_by(a.home_pool, a.hospital_code)):
            out[home][hospital] = (count, int(total))
        return dict(out)

    def hospital_bill_ids(self, day: date, home: str, hospital: str, limit: int) -> list[str]:
        return list(self.conn.execute(sa.select(a.settlement_id).where(
            _standing(), a.clearing_date == day, a.home_pool == home, a.hospital_code == hospital)
            .order_by(a.settlement_id).limit(limit)).scalars())

    def record_flags(self, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            self.conn.execute(db.anomaly_flags.insert(), list(rows))

    def flags(self, day: date, pool: str) -> list[dict[str, Any]]:
        f = db.anomaly_flags.c
        return [{"kind": r.kind, "subject": r.subject, "detail": r.detail, "settlement_ids": r.settlement_ids.split()}
                for r in self.conn.execute(sa.select(db.anomaly_flags).where(f.clearing_date == day,
                                                                             f.home_pool == pool).order_by(f.n))]

    def latest_flag_day(self, pool: str) -> date | None:
        f = db.anomaly_flags.c
        return self.conn.execute(sa.select(sa.func.max(f.clearing_date)).where(f.home_pool == pool)).scalar_one()

    # -------------------------------------------------------------- advances

    def lock_advances(self, pools: Sequence[str], now: datetime) -> dict[str, Advance]:
        adv = db.advances.c
        self.conn.execute(pg_insert(db.advances).values([
            {"pool_code": pool, "balance_fen": 0, "required_fen": 0, "warning": False, "updated_at": now}
            for pool in pools]).on_conflict_do_nothing())
        return {r.pool_code: Advance(**r._mapping) for r in self.conn.execute(
            sa.select(db.advances).where(adv.pool_code.in_(list(pools))).order_by(adv.pool_code).with_for_update())}

    def payables(self, pools: Sequence[str], first: date, before: date) -> dict[str, list[int]]:
        st = db.statements.c
        out: dict[str, list[int]] = {pool: [] for pool in pools}
        for pool, payable in self.conn.execute(sa.select(st.pool_code, st.payable_fen).where(
                st.pool_code.in_(list(pools)), st.clearing_date >= first, st.clearing_date < before)):
            out[pool].append(payable)
        return out

    def record_ledger(self, entries: Sequence[LedgerRow], now: datetime) -> list[LedgerRow]:
        adv = db.advances.c
        rows = [{k: v for k, v in vars(e).items() if k != "entry_id"} for e in entries]
        written = [LedgerRow(**r._mapping) for r in self.conn.execute(
            db.advance_ledger.insert().returning(*db.advance_ledger.c), rows)] if rows else []
        if rows:
            self.conn.execute(db.advances.update().where(adv.pool_code == sa.bindparam("pool"))
                              .values(balance_fen=sa.bindparam("balance"), required_fen=sa.bindparam("required"),
                                      warning=sa.bindparam("warn"), updated_at=now),
                              [{"pool": e.pool_code, "balance": e.balance_fen, "required": e.required_fen,
                                "warn": e.warning} for e in entries])
        return written

    def ledger_entry(self, pool: str, reference: str) -> LedgerRow | None:
        led = db.advance_ledger.c
        row = self.conn.execute(sa.select(db.advance_ledger).where(led.pool_code == pool,
                                                                   led.reference == reference)).first()
        return None if row is None else LedgerRow(**row._mapping)

    def advance(self, pool: str) -> Advance | None:
        row = self.conn.execute(sa.select(db.advances).where(db.advances.c.pool_code == pool)).first()
        return None if row is None else Advance(**row._mapping)

    def ledger(self, pool: str, limit: int) -> list[LedgerRow]:
        led = db.advance_ledger.c
        rows = self.conn.execute(sa.select(db.advance_ledger).where(led.pool_code == pool)
                                 .order_by(led.entry_id.desc()).limit(limit)).all()
        return [LedgerRow(**r._mapping) for r in reversed(rows)]

    def all_advances(self) -> list[Advance]:
        return [Advance(**r._mapping) for r in self.conn.execute(
            sa.select(db.advances).order_by(db.advances.c.pool_code))]

    def recent_balances(self, per_pool: int) -> dict[str, list[tuple[date, int]]]:
        led = db.advance_ledger.c
        ranked = sa.select(led.pool_code, led.entry_id, led.clearing_date, led.balance_fen, sa.func.row_number().over(
            partition_by=led.pool_code, order_by=led.entry_id.desc()).label("n")).subquery()
        out: dict[str, list[tuple[date, int]]] = {}
        for r in self.conn.execute(sa.select(ranked).where(ranked.c.n <= per_pool)
                                   .order_by(ranked.c.pool_code, ranked.c.entry_id)):
            out.setdefault(r.pool_code, []).append((r.clearing_date, r.balance_fen))
        return out

    # -------------------------------------------------------------- manual claims and funds

    def manual_claims(self, first: date, last: date, pool: str | None = None) -> list[dict[str, Any]]:
        m = db.manual_claims.c
        where = [m.clearing_date.between(first, last)] + ([m.home_pool == pool] if pool is not None else [])
        return [dict(r._mapping) for r in self.conn.execute(sa.select(db.manual_claims).where(*where).order_by(
            m.clearing_date, m.home_pool, m.claim_no, m.event_id))]

    def manual_claim_totals(self, pool: str, first: date, last: date) -> list[tuple[str, str, int, int, int]]:
        m = db.manual_claims.c
        month = sa.func.to_char(m.clearing_date, "YYYY-MM")
        return [(t, mon, int(hifp), int(hifmi), int(maf)) for t, mon, hifp, hifmi, maf in self.conn.execute(sa.select(
            m.insurance_type, month, sa.func.sum(m.hifp_pay_fen), sa.func.sum(m.hifmi_pay_fen),
            sa.func.sum(m.maf_pay_fen)).where(m.home_pool == pool, m.clearing_date.between(first, last))
            .group_by(m.insurance_type, month))]

    def fund_payables(self, pool: str, first: date, last: date) -> list[tuple[str, str, int]]:
        f = db.fund_statements.c
        month = sa.func.to_char(f.clearing_date, "YYYY-MM")
        return [(fund, mon, int(v)) for fund, mon, v in self.conn.execute(sa.select(
            f.fund_pay_type, month.label("month"), sa.func.sum(f.payable_fen)).where(
            f.pool_code == pool, f.clearing_date.between(first, last)).group_by(f.fund_pay_type, month).order_by(month))]

    def latest_fund_day(self, pool: str) -> date | None:
        f = db.fund_statements.c
        return self.conn.execute(sa.select(sa.func.max(f.clearing_date)).where(f.pool_code == pool)).scalar_one()

    # -------------------------------------------------------------- quarantine

    def quarantine(self, row: Quarantined) -> None:
        self.conn.execute(pg_insert(db.quarantined_events).values(**vars(row)).on_conflict_do_nothing())

    def blocking(self, day: date) -> list[str]:
        q = db.quarantined_events.c
        return list(self.conn.execute(sa.select(q.source).where(
            q.resolved_at.is_(None), sa.or_(q.business_date.is_(None), q.business_date <= day),
            sa.not_(q.record_name.endswith(HOSPITAL_MONTH))).order_by(q.source)).scalars())

    def quarantined(self, include_resolved: bool = False) -> list[Quarantined]:
        q = db.quarantined_events.c
        query = sa.select(db.quarantined_events)
        if not include_resolved:
            query = query.where(q.resolved_at.is_(None))
        return [Quarantined(**r._mapping) for r in self.conn.execute(query.order_by(q.quarantined_at))]

    def quarantined_one(self, source: str) -> Quarantined | None:
        row = self.conn.execute(sa.select(db.quarantined_events).where(
            db.quarantined_events.c.source == source)).first()
        return None if row is None else Quarantined(**row._mapping)

    def resolve_quarantined(self, source: str, at: datetime, resolution: str, who: str, note: str | None) -> None:
        q = db.quarantined_events.c
        self.conn.execute(db.quarantined_events.update().where(q.source == source, q.resolved_at.is_(None)).values(
            resolved_at=at, resolution=resolution, resolved_by=who, note=note))

    # -------------------------------------------------------------- a closed day's statements

    def statements(self, day: date) -> list[Statement]:
        s = db.statements.c
        return [Statement(**r._mapping) for r in self.conn.execute(
            sa.select(db.statements).where(s.clearing_date == day).order_by(s.pool_code))]

    def statement(self, day: date, pool: str) -> Statement | None:
        s = db.statements.c
        row = self.conn.execute(sa.select(db.statements).where(s.clearing_date == day, s.pool_code == pool)).first()
        return None if row is None else Statement(**row._mapping)

    def statements_of(self, pool: str, limit: int) -> list[Statement]:
        s = db.statements.c
        return [Statement(**r._mapping) for r in self.conn.execute(
            sa.select(db.statements).where(s.pool_code == pool).order_by(s.clearing_date.desc()).limit(limit))]

    def unconfirmed(self) -> list[Statement]:
        s = db.statements.c
        return [Statement(**r._mapping) for r in self.conn.execute(
            sa.select(db.statements).where(s.confirmed_at.is_(None)).order_by(s.clearing_date, s.pool_code))]

    def confirm(self, day: date, pool: str, at: datetime, who: str) -> bool:
        s = db.statements.c
        return self.conn.execute(db.statements.update().where(
            s.clearing_date == day, s.pool_code == pool, s.confirmed_at.is_(None)).values(
            confirmed_at=at, confirmed_by=who)).rowcount == 1

    def late_events(self, day: date, pool: str, limit: int) -> list[LateEvent]:
        return [LateEvent(r.settlement_id, r.kind, r.business_date, r.home_pool, r.treatment_pool, int(r.fund_fen))
                for r in self.conn.execute(sa.select(
                    a.settlement_id, a.kind, a.business_date, a.home_pool, a.treatment_pool,
                    (a.hifp_pay_fen + a.hifmi_pay_fen + a.maf_pay_fen).label("fund_fen"))
                    .where(a.clearing_date == day, a.late, sa.or_(a.home_pool == pool, a.treatment_pool == pool))
                    .order_by(a.business_date, a.settlement_id).limit(limit))]

    # -------------------------------------------------------------- hospitals' month

    def hospital_month_totals(self, treatment_pool: str, first: date, last: date) -> list[tuple[str, str, int, int]]:
        h = db.hospital_month_lines.c
        sign = sa.case((a.kind == "REVERSED", -1), else_=1)
        flag = sa.func.coalesce(h.cnfm_flag, sa.literal_column("''"))
        return [(code, f, count, int(fund or 0)) for code, f, count, fund in self.conn.execute(
            sa.select(a.hospital_code, flag, sa.func.count(),
                      sa.func.sum(sign * (a.hifp_pay_fen + a.hifmi_pay_fen + a.maf_pay_fen)))
            .select_from(db.applied_events.outerjoin(db.hospital_month_lines, sa.and_(
                h.settlement_id == a.settlement_id, h.kind == a.kind)))
            .where(a.treatment_pool == treatment_pool, a.home_pool != a.treatment_pool,
                   a.business_date.between(first, last))
            .group_by(a.hospital_code, flag))]

    def hospital_applications(self, treatment_pool: str, month: str) -> list[dict[str, Any]]:
        h = db.hospital_applications.c
        return [dict(r._mapping) for r in self.conn.execute(sa.select(db.hospital_applications).where(
            h.treatment_pool == treatment_pool, h.month == month).order_by(h.hospital_code, h.clr_type))]

    def hospital_flags(self, settlement_ids: Sequence[str]) -> dict[tuple[str, str], str]:
        if not settlement_ids:
            return {}
        h = db.hospital_month_lines.c
        return {(r.settlement_id, r.kind): r.cnfm_flag for r in self.conn.execute(
            sa.select(h.settlement_id, h.kind, h.cnfm_flag).where(h.settlement_id.in_(set(settlement_ids))))}


class PostgresClearingRepository(ClearingRepository):
    def __init__(self, engine: sa.Engine):
        self.engine = engine

    @contextlib.contextmanager
    def unit(self) -> Iterator[PostgresUnit]:
        with self.engine.begin() as conn:
            yield PostgresUnit(conn)
