"""The monthly statements' SQL (tables monthly_statements and statement_lines), a part of the
clearing repository's PostgreSQL unit of work (adapters/postgres.py)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Sequence

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from hub.clearing.adapters import database as db
from hub.clearing.adapters.repository import MonthlyStatement

ISSUE_LOCK = 4242202
AMOUNT = ("medfee_sumamt_fen", "hifp_pay_fen", "hifmi_pay_fen", "maf_pay_fen")
RESOLVED, PENDING = "RESOLVED", "PENDING"
l, s = db.statement_lines.c, db.monthly_statements.c


class MonthSql:
    conn: sa.Connection

    def lock_month_issue(self) -> None:
        self.conn.execute(sa.text("select pg_advisory_xact_lock(:k)"), {"k": ISSUE_LOCK})

    def days_not_closed(self, first: date, last: date) -> list[date]:
        d = db.days.c
        return list(self.conn.execute(sa.select(d.clearing_date).where(
            d.clearing_date.between(first, last), d.status != "CLOSED").order_by(d.clearing_date)).scalars())

    def pools_to_state(self, month: str, first: date, last: date) -> set[str]:
        a = db.applied_events.c
        pools = set(self.conn.execute(sa.select(a.home_pool).distinct().where(
            a.clearing_date.between(first, last), a.home_pool != a.treatment_pool)).scalars())
        return pools | set(self.conn.execute(sa.select(l.bureau_pool).distinct().where(
            l.state == RESOLVED, l.carried_to == "", l.month < month)).scalars())

    def month_pools_issued(self, month: str) -> set[str]:
        return set(self.conn.execute(sa.select(s.bureau_pool).where(s.month == month)).scalars())

    def issue_statement(self, statement: MonthlyStatement, first: date, last: date) -> None:
        month, pool, now, who = statement.month, statement.bureau_pool, statement.issued_at, statement.issued_by
        self.conn.execute(db.monthly_statements.insert().values(**vars(statement)))
        a = db.applied_events.c
        sign = sa.case((a.kind == "REVERSED", -1), else_=1)
        self.conn.execute(db.statement_lines.insert().from_select(
            ["month", "bureau_pool", "event_id", "counterparty_pool", "kind", "settlement_id", "reversal_id",
             "clearing_date", "hospital_code", "insurance_type", "person_id_masked", *AMOUNT, "state",
             "updated_at", "updated_by"],
            sa.select(sa.literal(month), a.home_pool, a.event_id, a.treatment_pool, a.kind, a.settlement_id,
                      a.reversal_id, a.clearing_date, a.hospital_code, a.insurance_type, a.person_id_masked,
                      *(sign * a[c] for c in AMOUNT), sa.literal(PENDING), sa.literal(now), sa.literal(who))
            .where(a.home_pool == pool, a.treatment_pool != pool, a.clearing_date.between(first, last))))
        resolved = (l.bureau_pool == pool, l.state == RESOLVED, l.carried_to == "", l.month < month)
        carried = self.conn.execute(sa.select(db.statement_lines).where(*resolved)).all()
        if carried:
            self.conn.execute(pg_insert(db.statement_lines).values([
                {**r._mapping, "month": month, "state": PENDING, "reason": "", "carried_from": r.month,
                 "carried_to": "", "updated_at": now, "updated_by": who} for r in carried]).on_conflict_do_nothing())
            self.conn.execute(db.statement_lines.update().where(*resolved).values(carried_to=month))

    def monthly(self, month: str, pool: str, lock: bool = False) -> MonthlyStatement | None:
        query = sa.select(db.monthly_statements).where(s.month == month, s.bureau_pool == pool)
        row = self.conn.execute(query.with_for_update() if lock else query).first()
        return None if row is None else MonthlyStatement(**row._mapping)

    def month_totals(self, month: str, pool: str) -> dict[str, tuple[int, int]]:
        return {state: (count, int(amount)) for state, count, amount in self.conn.execute(sa.select(
            l.state, sa.func.count(), sa.func.coalesce(sa.func.sum(l.hifp_pay_fen + l.hifmi_pay_fen + l.maf_pay_fen), 0))
            .where(l.month == month, l.bureau_pool == pool).group_by(l.state))}

    def line_states(self, month: str, pool: str, event_ids: Sequence[str] | None, lock: bool = True) -> dict[str, str]:
        where = [l.month == month, l.bureau_pool == pool]
        if event_ids is not None:
            where.append(l.event_id.in_(list(event_ids)))
        query = sa.select(l.event_id, l.state).where(*where)
        return dict(self.conn.execute(query.with_for_update() if lock else query).all())

    def set_line_states(self, month: str, pool: str, event_ids: Sequence[str], state: str, reason: str,
                        at: datetime, who: str) -> None:
        self.conn.execute(db.statement_lines.update().where(
            l.month == month, l.bureau_pool == pool, l.event_id.in_(list(event_ids))).values(
            state=state, reason=reason, updated_at=at, updated_by=who))

    def close_monthly(self, month: str, pool: str, at: datetime, who: str) -> None:
        self.conn.execute(db.monthly_statements.update().where(s.month == month, s.bureau_pool == pool).values(
            status="CLOSED", closed_at=at, closed_by=who))

    def set_monthly_digest(self, month: str, pool: str, sha256: str) -> None:
        self.conn.execute(db.monthly_statements.update().where(s.month == month, s.bureau_pool == pool).values(
            manifest_sha256=sha256))

    def open_monthlies(self) -> list[MonthlyStatement]:
        return [MonthlyStatement(**r._mapping) for r in self.conn.execute(
            sa.select(db.monthly_statements).where(s.status != "CLOSED").order_by(s.month, s.bureau_pool))]

    def month_lines(self, month: str, pool: str, filters: dict[str, str], limit: int | None = None,
                    offset: int = 0) -> list[dict[str, Any]]:
        return [dict(r._mapping) for r in self.conn.execute(
            sa.select(db.statement_lines).where(*self._where(month, pool, filters))
            .order_by(l.clearing_date, l.settlement_id, l.kind, l.event_id).limit(limit).offset(offset or None))]

    def count_month_lines(self, month: str, pool: str, filters: dict[str, str]) -> int:
        return self.conn.execute(sa.select(sa.func.count()).where(*self._where(month, pool, filters))
                                 .select_from(db.statement_lines)).scalar_one()

    def month_line_values(self, month: str, pool: str, name: str) -> list[str]:
        return list(self.conn.execute(sa.select(l[name]).distinct().where(l.month == month, l.bureau_pool == pool)
                                      .order_by(l[name])).scalars())

    @staticmethod
    def _where(month: str, pool: str, filters: dict[str, str]) -> list[Any]:
        return [l.month == month, l.bureau_pool == pool, *(l[name] == value for name, value in filters.items())]
