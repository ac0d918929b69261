"""Monthly statements: issue one per home bureau for a month whose days are all closed, let the
bureau confirm or dispute its lines, resolve disputes, close, and publish every change.
The rules are in hub.clearing.domain.statements; this module reads and writes the clearing
database, the outbox (MonthlyStatementChanged on clearing.statements) and the closed files.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from hub.clearing.adapters import database as db
from hub.clearing.adapters import files
from hub.clearing.domain.funds import INSUTYPE_CODES
from hub.clearing.domain.statements import EVENT_ACTION, LineState, StatementError, after, month_days
from hub.messaging.topics import CLEARING_STATEMENTS

if TYPE_CHECKING:
    from hub.clearing.service_layer.services import ClearingService

ISSUE_LOCK = 4242202
MAX_LINES_PER_ACTION = 10_000
AMOUNT = ("medfee_sumamt_fen", "hifp_pay_fen", "hifmi_pay_fen", "maf_pay_fen")


class MonthlyStatements:
    def __init__(self, clearing: "ClearingService"):
        self.clearing = clearing
        self.engine = clearing.engine

    @property
    def out_dir(self) -> Path:
        return self.clearing.out_dir / "months"

    # ------------------------------------------------------------------ issue

    def issue(self, month: str, who: str) -> list[dict[str, Any]]:
        """Every home bureau's statement of `month` (its days all closed): the month's lines and the
        resolved disputes of earlier months. Issuing again adds none twice."""
        first, last = month_days(month)
        now = self.clearing.clock()
        if last >= now.astimezone(files.SHANGHAI).date():
            raise StatementError("month_not_over", f"{month} is not over yet")
        d, a, s, l = db.days.c, db.applied_events.c, db.monthly_statements.c, db.statement_lines.c
        issued = []
        with self.engine.begin() as conn:
            conn.execute(sa.text("select pg_advisory_xact_lock(:k)"), {"k": ISSUE_LOCK})
            still_open = conn.execute(sa.select(d.clearing_date).where(
                d.clearing_date.between(first, last), d.status != "CLOSED").order_by(d.clearing_date)).scalars().all()
            if still_open:
                raise StatementError("days_open", f"close {', '.join(x.isoformat() for x in still_open)} first")
            pools = set(conn.execute(sa.select(a.home_pool).distinct().where(
                a.clearing_date.between(first, last), a.home_pool != a.treatment_pool)).scalars())
            pools |= set(conn.execute(sa.select(l.bureau_pool).distinct().where(
                l.state == LineState.RESOLVED.value, l.carried_to == "", l.month < month)).scalars())
            have = set(conn.execute(sa.select(s.bureau_pool).where(s.month == month)).scalars())
            for pool in sorted(pools - have):
                advance = conn.execute(sa.select(db.advances).where(db.advances.c.pool_code == pool)).first()
                balance, required = (advance.balance_fen, advance.required_fen) if advance else (0, 0)
                top_up = self.clearing.advance_rule.top_up(balance, required)
                conn.execute(db.monthly_statements.insert().values(
                    month=month, bureau_pool=pool, status="ISSUED", issued_at=now, issued_by=who,
                    advance_balance_fen=balance, advance_required_fen=required, top_up_fen=top_up))
                sign = sa.case((a.kind == "REVERSED", -1), else_=1)
                conn.execute(db.statement_lines.insert().from_select(
                    ["month", "bureau_pool", "event_id", "counterparty_pool", "kind", "settlement_id", "reversal_id",
                     "clearing_date", "hospital_code", "insurance_type", "person_id_masked", *AMOUNT, "state",
                     "updated_at", "updated_by"],
                    sa.select(sa.literal(month), a.home_pool, a.event_id, a.treatment_pool, a.kind, a.settlement_id,
                              a.reversal_id, a.clearing_date, a.hospital_code, a.insurance_type, a.person_id_masked,
                              *(sign * a[c] for c in AMOUNT), sa.literal(LineState.PENDING.value),
                              sa.literal(now), sa.literal(who))
                    .where(a.home_pool == pool, a.treatment_pool != pool, a.clearing_date.between(first, last))))
                carried = conn.execute(sa.select(db.statement_lines).where(
                    l.bureau_pool == pool, l.state == LineState.RESOLVED.value, l.carried_to == "",
                    l.month < month)).all()
                if carried:
                    conn.execute(pg_insert(db.statement_lines).values([
                        {**r._mapping, "month": month, "state": LineState.PENDING.value, "reason": "",
                         "carried_from": r.month, "carried_to": "", "updated_at": now, "updated_by": who}
                        for r in carried]).on_conflict_do_nothing())
                    conn.execute(db.statement_lines.update().where(
                        l.bureau_pool == pool, l.state == LineState.RESOLVED.value, l.carried_to == "",
                        l.month < month).values(carried_to=month))
                summary = self._summary(conn, month, pool)
                self._emit(conn, summary, "ISSUED", [], "", who, now)
                issued.append(summary)
        return issued

    # ------------------------------------------------------------------ a bureau's actions

    def act(self, month: str, pool: str, action: str, event_ids: list[str] | None, reason: str, who: str,
            all_pending: bool = False) -> dict[str, Any]:
        """A bureau confirms, unconfirms, disputes (with a reason) or withdraws a dispute on lines
        of its ISSUED statement; all of them or none. Repeating an action changes nothing."""
        month_days(month)
        if action == "dispute" and not reason.strip():
            raise StatementError("reason_required", "a dispute says why")
        if len(reason) > 500:
            raise StatementError("reason_too_long", "a reason is at most 500 characters")
        l = db.statement_lines.c
        now = self.clearing.clock()
        with self.engine.begin() as conn:
            self._locked(conn, month, pool, open_only=True)
            if all_pending:
                if action != "confirm":
                    raise StatementError("invalid_action", "only confirm applies to all pending lines")
                event_ids = list(conn.execute(sa.select(l.event_id).where(
                    l.month == month, l.bureau_pool == pool, l.state == LineState.PENDING.value)).scalars())
            ids = sorted(set(event_ids or []))
            if not ids and not all_pending:
                raise StatementError("no_lines", "name the lines (event_ids)")
            if len(ids) > MAX_LINES_PER_ACTION or not all(isinstance(i, str) for i in ids):
                raise StatementError("invalid_lines", f"event_ids: at most {MAX_LINES_PER_ACTION} strings")
            states = dict(conn.execute(sa.select(l.event_id, l.state).where(
                l.month == month, l.bureau_pool == pool, l.event_id.in_(ids)).with_for_update()).all())
            missing = [i for i in ids if i not in states]
            if missing:
                raise StatementError("line_not_found", f"{missing[0]} is not a line of {pool}'s {month} statement"
                                     + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
            changed = [i for i in ids if after(action, LineState(states[i]), i).value != states[i]]
            if changed:
                new_state = BUREAU_STATE[action]
                conn.execute(db.statement_lines.update().where(
                    l.month == month, l.bureau_pool == pool, l.event_id.in_(changed)).values(
                    state=new_state.value, reason=reason.strip() if action == "dispute" else "", updated_at=now,
                    updated_by=who))
            summary = self._summary(conn, month, pool)
            if changed:
                self._emit(conn, summary, EVENT_ACTION[action], changed, reason.strip(), who, now)
        return {**summary, "changed": changed}

    def resolve(self, month: str, pool: str, event_id: str, note: str, who: str) -> dict[str, Any]:
        """The centre records a disputed line's resolution; it is carried into the bureau's next
        statement (withheld from this one either way)."""
        if not note.strip():
            raise StatementError("note_required", "say how the dispute was resolved")
        l = db.statement_lines.c
        now = self.clearing.clock()
        with self.engine.begin() as conn:
            self._locked(conn, month, pool, open_only=False)
            row = conn.execute(sa.select(l.state).where(l.month == month, l.bureau_pool == pool,
                                                        l.event_id == event_id).with_for_update()).first()
            if row is None:
                raise StatementError("line_not_found", f"{event_id} is not a line of {pool}'s {month} statement")
            if row.state == LineState.RESOLVED.value:
                return {**self._summary(conn, month, pool), "changed": []}
            if row.state != LineState.DISPUTED.value:
                raise StatementError("invalid_transition", f"line {event_id} is {row.state}: only a dispute is resolved")
            conn.execute(db.statement_lines.update().where(l.month == month, l.bureau_pool == pool,
                                                           l.event_id == event_id).values(
                state=LineState.RESOLVED.value, reason=note.strip(), updated_at=now, updated_by=who))
            summary = self._summary(conn, month, pool)
            self._emit(conn, summary, "RESOLVED", [event_id], note.strip(), who, now)
        return {**summary, "changed": [event_id]}

    def close(self, month: str, pool: str, who: str) -> dict[str, Any]:
        """Close a statement once no line is pending: its files are written and signed, and
        nothing in it changes any more (closing again answers the same)."""
        s = db.monthly_statements.c
        now = self.clearing.clock()
        with self.engine.begin() as conn:
            statement = self._locked(conn, month, pool, open_only=False)
            if statement.status == "CLOSED":
                return self._summary(conn, month, pool)
            summary = self._summary(conn, month, pool)
            if summary["pending_lines"]:
                raise StatementError("lines_pending", f"{summary['pending_lines']} line(s) are neither confirmed nor "
                                                      "disputed")
            conn.execute(db.monthly_statements.update().where(s.month == month, s.bureau_pool == pool).values(
                status="CLOSED", closed_at=now, closed_by=who))
            rendered = self._render(conn, month, pool)
            conn.execute(db.monthly_statements.update().where(s.month == month, s.bureau_pool == pool).values(
                manifest_sha256=files.manifest_sha256(rendered)))
            summary = self._summary(conn, month, pool)
            self._emit(conn, summary, "CLOSED", [], "", who, now)
        files.write_files(self.out_dir / month, rendered)
        return summary

    # ------------------------------------------------------------------ reading

    def still_open(self) -> list[dict[str, Any]]:
        """Every issued statement not closed yet (the operators' overview; each one's lines are on
        its own page: counting every bureau's lines would read the month's whole table)."""
        s = db.monthly_statements.c
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(s.month, s.bureau_pool, s.status, s.issued_at, s.top_up_fen)
                                .where(s.status != "CLOSED").order_by(s.month, s.bureau_pool)).all()
        return [{"month": r.month, "bureau_pool": r.bureau_pool, "status": r.status, "issued_at": _text(r.issued_at),
                 "top_up_fen": r.top_up_fen} for r in rows]

    def show(self, month: str, pool: str, filters: dict[str, str] | None = None,
             limit: int | None = None, offset: int = 0) -> dict[str, Any] | None:
        """The statement with its lines: all of them, or those matching `filters` (counterparty_pool,
        hospital_code, insutype, state), at most `limit` from `offset` on; `lines_matching` counts
        them all, and the statement's counterparties and hospitals are listed for choosing."""
        month_days(month)
        l = db.statement_lines.c
        where = [l.month == month, l.bureau_pool == pool]
        for name, value in (filters or {}).items():
            if not value:
                continue
            if name == "insutype":
                where.append(l.insurance_type == {v: k for k, v in INSUTYPE_CODES.items()}.get(value, value))
            elif name in ("counterparty_pool", "hospital_code", "state"):
                where.append(l[name] == value)
        with self.engine.connect() as conn:
            if self._statement(conn, month, pool) is None:
                return None
            lines = self._lines(conn, where, limit, offset)
            h = db.hospital_month_lines.c
            flags = {(r.settlement_id, r.kind): r.cnfm_flag for r in conn.execute(
                sa.select(h.settlement_id, h.kind, h.cnfm_flag).where(
                    h.settlement_id.in_({line["settlement_id"] for line in lines}))).all()} if lines else {}
            # The treating hospital's own confirmation of each line (3261): shown, not part of the signed files.
            for line in lines:
                line["hospital_cnfm"] = flags.get((line["settlement_id"], line["kind"]), "")
            out = {**self._summary(conn, month, pool), "lines": lines}
            if filters is not None or limit is not None:
                out["lines_matching"] = conn.execute(sa.select(sa.func.count()).where(*where)
                                                     .select_from(db.statement_lines)).scalar_one()
                for name in ("counterparty_pool", "hospital_code"):
                    out[f"{name}s"] = list(conn.execute(sa.select(l[name]).distinct().where(
                        l.month == month, l.bureau_pool == pool).order_by(l[name])).scalars())
            return out

    def statement_file(self, month: str, pool: str, suffix: str) -> bytes | None:
        """A closed statement's file: as written, else rendered again (byte-identical)."""
        month_days(month)
        name = f"statement_{month}_{pool}.{suffix}"
        written = self.out_dir / month / name
        if written.is_file():
            return written.read_bytes()
        with self.engine.connect() as conn:
            statement = self._statement(conn, month, pool)
            if statement is None or statement.status != "CLOSED":
                return None
            return self._render(conn, month, pool).get(name)

    # ------------------------------------------------------------------ helpers

    def _statement(self, conn: sa.Connection, month: str, pool: str, lock: bool = False):
        s = db.monthly_statements.c
        query = sa.select(db.monthly_statements).where(s.month == month, s.bureau_pool == pool)
        return conn.execute(query.with_for_update() if lock else query).first()

    def _locked(self, conn: sa.Connection, month: str, pool: str, open_only: bool):
        statement = self._statement(conn, month, pool, lock=True)
        if statement is None:
            raise StatementError("statement_not_found", f"no {month} statement for {pool}")
        if open_only and statement.status != "ISSUED":
            raise StatementError("statement_closed", f"{pool}'s {month} statement is closed")
        return statement

    def _summary(self, conn: sa.Connection, month: str, pool: str) -> dict[str, Any]:
        l = db.statement_lines.c
        st = self._statement(conn, month, pool)
        totals = {state.value: (0, 0) for state in LineState}
        for state, count, amount in conn.execute(sa.select(
                l.state, sa.func.count(), sa.func.coalesce(sa.func.sum(l.hifp_pay_fen + l.hifmi_pay_fen + l.maf_pay_fen), 0))
                .where(l.month == month, l.bureau_pool == pool).group_by(l.state)):
            totals[state] = (count, int(amount))
        return {"month": month, "bureau_pool": pool, "status": st.status, "issued_at": _text(st.issued_at),
                "closed_at": _text(st.closed_at), "line_count": sum(c for c, _ in totals.values()),
                "confirmed_fen": totals["CONFIRMED"][1], "disputed_fen": totals["DISPUTED"][1],
                "resolved_fen": totals["RESOLVED"][1], "pending_fen": totals["PENDING"][1],
                "pending_lines": totals["PENDING"][0], "advance_balance_fen": st.advance_balance_fen,
                "advance_required_fen": st.advance_required_fen, "top_up_fen": st.top_up_fen}

    def _lines(self, conn: sa.Connection, where: list, limit: int | None = None, offset: int = 0) -> list[dict[str, Any]]:
        l = db.statement_lines.c
        rows = conn.execute(sa.select(db.statement_lines).where(*where)
                            .order_by(l.clearing_date, l.settlement_id, l.kind, l.event_id)
                            .limit(limit).offset(offset or None)).all()
        return [{"event_id": r.event_id, "state": r.state, "reason": r.reason, "carried_from": r.carried_from,
                 "kind": r.kind, "settlement_id": r.settlement_id, "reversal_id": r.reversal_id or "",
                 "clearing_date": r.clearing_date.isoformat(), "hospital_code": r.hospital_code,
                 "counterparty_pool": r.counterparty_pool, "insutype": INSUTYPE_CODES[r.insurance_type],
                 "person_id_masked": r.person_id_masked, **{c: getattr(r, c) for c in AMOUNT}} for r in rows]

    def _render(self, conn: sa.Connection, month: str, pool: str) -> dict[str, bytes]:
        statement = self._statement(conn, month, pool)
        summary = self._summary(conn, month, pool)
        l = db.statement_lines.c
        return files.render_statement_files(summary, self._lines(conn, [l.month == month, l.bureau_pool == pool]),
                                            self.clearing.pool_names,
                                            statement.closed_at, self.clearing.signer,
                                            self._manual_claims(conn, month, pool))

    def _manual_claims(self, conn: sa.Connection, month: str, pool: str) -> list[dict[str, Any]]:
        """The month's manual claims (零星报销) the bureau paid its insured: for its books, not
        lines to confirm — no other fund owes anything for them."""
        return self.clearing.manual_claims_between(conn, pool, *month_days(month))

    def _emit(self, conn: sa.Connection, summary: dict[str, Any], action: str, ids: list[str], reason: str, who: str,
              now: datetime) -> None:
        event = {"event_id": uuid.uuid4(), "event_time": now, "producer": "interregion-clearing", "schema_version": 1,
                 "month": summary["month"], "bureau_pool": summary["bureau_pool"], "action": action,
                 "line_event_ids": ids, "reason": reason, "actor": who, "status": summary["status"],
                 "confirmed_fen": summary["confirmed_fen"], "disputed_fen": summary["disputed_fen"] + summary["resolved_fen"],
                 "pending_fen": summary["pending_fen"], "top_up_fen": summary["top_up_fen"]}
        conn.execute(db.outbox.insert().values(topic=CLEARING_STATEMENTS.name, message_key=summary["bureau_pool"],
                                               payload=self.clearing.codec.encode("MonthlyStatementChanged", event)))


BUREAU_STATE = {"confirm": LineState.CONFIRMED, "unconfirm": LineState.PENDING, "dispute": LineState.DISPUTED,
                "withdraw": LineState.PENDING}


def _text(value: datetime | date | None) -> str | None:
    return value.isoformat() if value is not None else None
