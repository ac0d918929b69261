"""The settle-at-treatment repository on PostgreSQL: every SQL statement the service runs (the
interface and its rows are in repository.py). A group of requests is one transaction of three round
trips in one pipeline: BEGIN with the load, the accumulators, and the writes with COMMIT and the sync."""

from __future__ import annotations

import contextlib
import threading
from datetime import date
from typing import Any, Iterator, Sequence

import orjson
import psycopg
from psycopg import RawCursor
from psycopg.rows import namedtuple_row
from psycopg.types.json import Jsonb, set_json_dumps

from hub.messaging.topics import SETTLEMENT_EVENTS
from hub.settlement.adapters.repository import (ANSWERED, Application, Changes, Confirmation, FeeRow, Key, Loaded, MonthLine,
                                             MonthState, NewClaim, PersonYear, Repository, StandingSettlement,
                                             StoredAnswer, StoredClaim, StoredFile, StoredSettlement, Transaction,
                                             UNDONE_BEFORE_ARRIVAL, Visit)
from hub.settlement.domain.model import ACCUMULATOR_FIELDS, Accumulators

_VISIT_COLUMNS = ("mdtrt_id, hospital_code, person_ref, person_id_masked, med_type, insutype, begntime, status,"
                  " endtime, accident_injury, diagnoses")
_SETTLEMENT_COLUMNS = ("setl_id, mdtrt_id, msgid, hospital_code, person_ref, person_id_masked, home_pool,"
                       " treatment_pool, policy_year, business_date, settled_at, medfee_sumamt_fen, hifp_pay_fen,"
                       " hifmi_pay_fen, maf_pay_fen, psn_part_amt_fen, accumulators_delta, output, status,"
                       " reversed_at, reversal_msgid, reversal_id")
_FIELDS = ", ".join(ACCUMULATOR_FIELDS)
CLAIM_COLUMNS = ("home_pool, claim_no, lodged_by, request_sha256, status, person_ref, person_id_masked, treatment_pool,"
                  " hospital_code, reason, claim, result, policy_year, accumulators_delta, medfee_sumamt_fen,"
                  " hifp_pay_fen, hifmi_pay_fen, maf_pay_fen, psn_part_amt_fen, lodged_at, decided_at, decided_by, note")


_APPLICATION_COLUMNS = ("clr_appy_evt_id, hospital_code, month, clr_type, status, psntime, medfee_sumamt_fen,"
                        " fund_appy_sum_fen, msgid, applied_at, cancelled_at")


def _month_state(conn: psycopg.Connection, hospital_code: str, month: str) -> MonthState:
    state = MonthState()
    for r in conn.execute("select hospital_code, setl_sn, month, cnfm_flag, msgid, updated_at from month_confirmations"
                          " where hospital_code = %s and month = %s", (hospital_code, month)).fetchall():
        state.confirmations[r.setl_sn] = Confirmation(*r)
    for r in conn.execute(f"select {_APPLICATION_COLUMNS} from clearing_applications where hospital_code = %s"
                          " and month = %s", (hospital_code, month)).fetchall():
        state.applications[r.clr_appy_evt_id] = Application(*r)
    return state


def _claim_row(c: StoredClaim) -> tuple:
    return (c.home_pool, c.claim_no, c.lodged_by, c.request_sha256, c.status, c.person_ref, c.person_id_masked,
            c.treatment_pool, c.hospital_code, c.reason, Jsonb(c.claim), Jsonb(c.result), c.policy_year,
            Jsonb(c.accumulators_delta), c.medfee_sumamt_fen, c.hifp_pay_fen, c.hifmi_pay_fen, c.maf_pay_fen,
            c.psn_part_amt_fen, c.lodged_at, c.decided_at, c.decided_by, c.note)


def _values(rows: Sequence[tuple], row_sql: str) -> tuple[str, list]:
    """Multi-row VALUES: the SQL (`row_sql` once per row, parenthesised) and the flat parameters."""
    return ", ".join([f"({row_sql})"] * len(rows)), [value for row in rows for value in row]


def _raw_values(rows: Sequence[tuple], row_sql: str) -> tuple[str, list]:
    """`_values` with PostgreSQL's own placeholders ($1, $2 ...), for a RawCursor: psycopg then
    sends the statement as it is. With %s it converts every statement, and a multi-row one is too
    long for its cache of conversions: that was 7-10 % of the group thread (py-spy, whole bills)."""
    parts = row_sql.split("%s")
    width = len(parts) - 1
    sql = ", ".join("(" + "".join(f"{part}${n * width + k + 1}" if k < width else part
                                  for k, part in enumerate(parts)) + ")" for n in range(len(rows)))
    return sql, [value for row in rows for value in row]


def _orjson_dumps(obj: Any) -> str:
    return orjson.dumps(obj).decode()


class PostgresTransaction(Transaction):
    """Statements in pipeline mode: reads go in one round trip, writes go with the commit.

    Every write is one statement per table over multi-row VALUES (the planner knows the row
    count; psycopg binds each value in C). Row-by-row executemany would cost a socket wait, with
    its GIL hand-off, per row; arrays (unnest) cost psycopg's Python array dumping."""

    def __init__(self, conn: psycopg.Connection):
        self.conn = conn

    def load(self, claims: Sequence[NewClaim], visit_ids: Sequence[str], setl_ids: Sequence[str]) -> Loaded:
        conn = self.conn
        claim = RawCursor(conn)  # a statement of its own length per group: not in psycopg's conversion cache
        if claims:  # in key order: every group takes its locks in one order
            rows, params = _raw_values([(c.hospital_code, c.msgid, c.infno, c.request_sha256)
                                        for c in sorted(claims, key=lambda c: (c.hospital_code, c.msgid))],
                                       "%s, %s, %s, %s, 0, '{}'")
            claim.execute("insert into requests (hospital_code, msgid, infno, request_sha256, status_code, response)"
                          f" values {rows} on conflict do nothing returning hospital_code, msgid", params)
        visit_ids, setl_ids = sorted(set(visit_ids)), sorted(set(setl_ids))
        # Visits locked, then their fee lines, then settlements: each statement led by its primary
        # key (a join may be planned as a scan of every fee line on stale statistics).
        visits, fees, settlements = conn.cursor(), conn.cursor(), conn.cursor()
        # One array of ids (with reversals, and an init plan computed once), so both statements
        # are index scans: an OR with a subquery was planned as a scan of every visit and fee line.
        named = "mdtrt_id = any(%(v)s::text[])"
        if setl_ids:
            named = ("mdtrt_id = any(%(v)s::text[] || array(select mdtrt_id from settlements"
                     " where setl_id = any(%(s)s::text[])))")
        visits.execute(f"select {_VISIT_COLUMNS} from visits where {named} order by mdtrt_id for update",
                       {"v": visit_ids, "s": setl_ids})
        fees.execute(f"select mdtrt_id, feedetl_sn, med_list_codg, cnt, pric_fen, amount_fen from fee_details"
                     f" where {named} order by mdtrt_id, feedetl_sn", {"v": visit_ids, "s": setl_ids})
        if setl_ids:
            settlements.execute(f"select {_SETTLEMENT_COLUMNS} from settlements where setl_id = any(%s)"
                                " order by setl_id for update", (setl_ids,))
        claimed = {(r.hospital_code, r.msgid) for r in claim.fetchall()} if claims else set()
        found = {r.mdtrt_id: Visit(*r) for r in visits.fetchall()}
        for r in fees.fetchall():
            if r.mdtrt_id in found:
                found[r.mdtrt_id].fees[r.feedetl_sn] = FeeRow(*r)
        stored = {r.setl_id: StoredSettlement(*r) for r in settlements.fetchall()} if setl_ids else {}
        return Loaded(claimed, found, stored)

    def requests(self, keys: Sequence[Key]) -> dict[Key, StoredAnswer]:
        keys = sorted(set(keys))
        rows = self.conn.execute(
            "select hospital_code, msgid, request_sha256, status_code, response, infno from requests"
            " where (hospital_code, msgid) in (select * from unnest(%s::text[], %s::text[]))"
            " order by hospital_code, msgid for update", ([k[0] for k in keys], [k[1] for k in keys])).fetchall()
        return {(r.hospital_code, r.msgid): StoredAnswer(*r[2:]) for r in rows}

    def accumulators(self, lock: Sequence[PersonYear], read: Sequence[PersonYear]) -> dict[PersonYear, Accumulators]:
        lock = sorted(set(lock))
        read = sorted(set(read) - set(lock))
        locked, plain = self.conn.cursor(), self.conn.cursor()
        if lock:
            # Creates each person-year row if needed and locks it to the end of the transaction, in
            # one statement and one (sorted) order: concurrent settlements of a person queue here.
            values, params = _values(lock, "%s, %s")
            locked.execute(f"insert into accumulators (person_ref, policy_year) values {values}"
                           " on conflict (person_ref, policy_year) do update set person_ref = excluded.person_ref"
                           f" returning person_ref, policy_year, {_FIELDS}", params)
        if read:
            plain.execute(f"select person_ref, policy_year, {_FIELDS} from accumulators where (person_ref, policy_year)"
                          " in (select * from unnest(%s::text[], %s::int[]))", ([k[0] for k in read], [k[1] for k in read]))
        found = {}
        for row in [*(locked.fetchall() if lock else ()), *(plain.fetchall() if read else ())]:
            found[(row.person_ref, row.policy_year)] = Accumulators(row.policy_year, *row[2:])
        for ref, year in [*lock, *read]:
            found.setdefault((ref, year), Accumulators(year))
        return found

    def write(self, c: Changes) -> None:
        self._write_visits(c)
        self._write_settlements(c)
        self._write_requests(c)

    def manual_claim(self, home_pool: str, claim_no: str, new: StoredClaim | None = None
                     ) -> tuple[StoredClaim | None, bool]:
        inserted = []
        if new is not None:  # a concurrent insert of the same key waits here for the other to end
            row = _claim_row(new)
            inserted = self.conn.execute(
                f"insert into manual_claims ({CLAIM_COLUMNS}) values ({', '.join(['%s'] * len(row))})"
                " on conflict do nothing returning claim_no", row).fetchall()
        found = self.conn.execute(f"select {CLAIM_COLUMNS} from manual_claims where home_pool = %s and claim_no = %s"
                                  " for update", (home_pool, claim_no)).fetchall()
        return (StoredClaim(*found[0]) if found else None), bool(inserted)

    def update_manual_claim(self, claim: StoredClaim) -> None:
        self.conn.execute("update manual_claims set status = %s, result = %s, policy_year = %s, accumulators_delta = %s,"
                          " medfee_sumamt_fen = %s, hifp_pay_fen = %s, hifmi_pay_fen = %s, maf_pay_fen = %s,"
                          " psn_part_amt_fen = %s, decided_at = %s, decided_by = %s, note = %s"
                          " where home_pool = %s and claim_no = %s",
                          (claim.status, Jsonb(claim.result), claim.policy_year, Jsonb(claim.accumulators_delta),
                           claim.medfee_sumamt_fen, claim.hifp_pay_fen, claim.hifmi_pay_fen, claim.maf_pay_fen,
                           claim.psn_part_amt_fen, claim.decided_at, claim.decided_by, claim.note,
                           claim.home_pool, claim.claim_no))

    def month_state(self, hospital_code: str, month: str) -> MonthState:
        self.conn.execute("select pg_advisory_xact_lock(hashtext(%s))", (f"month:{hospital_code}:{month}",))
        return _month_state(self.conn, hospital_code, month)

    def write_month(self, confirmations: Sequence[Confirmation], removed: Sequence[tuple[str, str]],
                    applications: Sequence[Application]) -> None:
        for c in confirmations:
            self.conn.execute("insert into month_confirmations (hospital_code, setl_sn, month, cnfm_flag, msgid, updated_at)"
                              " values (%s, %s, %s, %s, %s, %s) on conflict (hospital_code, setl_sn) do update set"
                              " month = excluded.month, cnfm_flag = excluded.cnfm_flag, msgid = excluded.msgid,"
                              " updated_at = excluded.updated_at",
                              (c.hospital_code, c.setl_sn, c.month, c.cnfm_flag, c.msgid, c.updated_at))
        for hospital_code, setl_sn in removed:
            self.conn.execute("delete from month_confirmations where hospital_code = %s and setl_sn = %s",
                              (hospital_code, setl_sn))
        for a in applications:
            self.conn.execute(f"insert into clearing_applications ({_APPLICATION_COLUMNS}) values"
                              f" ({', '.join(['%s'] * 11)}) on conflict (clr_appy_evt_id) do update set"
                              " status = excluded.status, cancelled_at = excluded.cancelled_at",
                              (a.clr_appy_evt_id, a.hospital_code, a.month, a.clr_type, a.status, a.psntime,
                               a.medfee_sumamt_fen, a.fund_appy_sum_fen, a.msgid, a.applied_at, a.cancelled_at))

    def _write_visits(self, c: Changes) -> None:
        execute = RawCursor(self.conn).execute
        if c.new_visits:
            values, params = _raw_values([(v.mdtrt_id, v.hospital_code, v.person_ref, v.person_id_masked, v.med_type,
                                       v.insutype, v.begntime, v.status, v.endtime, v.accident_injury, v.diagnoses)
                                      for v in c.new_visits], "%s, %s, %s, %s, %s, %s, %s::date, %s, %s::date, %s, %s")
            execute(f"insert into visits ({_VISIT_COLUMNS}) values {values}", params)
        if c.deleted_fees:
            values, params = _raw_values(c.deleted_fees, "%s::text, %s::text")
            execute(f"delete from fee_details f using (values {values}) as d(mdtrt_id, feedetl_sn)"
                    " where f.mdtrt_id = d.mdtrt_id and f.feedetl_sn = d.feedetl_sn", params)
        if c.upserted_fees:
            values, params = _raw_values([(f.mdtrt_id, f.feedetl_sn, f.med_list_codg, f.cnt, f.pric_fen, f.amount_fen)
                                      for f in c.upserted_fees], "%s, %s, %s, %s, %s, %s")
            execute(f"insert into fee_details (mdtrt_id, feedetl_sn, med_list_codg, cnt, pric_fen, amount_fen)"
                    f" values {values} on conflict (mdtrt_id, feedetl_sn) do update set"
                    " med_list_codg = excluded.med_list_codg, cnt = excluded.cnt, pric_fen = excluded.pric_fen,"
                    " amount_fen = excluded.amount_fen", params)
        if c.changed_visits:
            values, params = _raw_values([(v.mdtrt_id, v.status, v.endtime, v.med_type, v.diagnoses)
                                          for v in c.changed_visits], "%s::text, %s::text, %s::date, %s::text, %s::text")
            execute(f"update visits v set status = d.status, endtime = d.endtime, med_type = d.med_type,"
                    f" diagnoses = d.diagnoses from (values {values}) as d(mdtrt_id, status, endtime, med_type, diagnoses)"
                    " where v.mdtrt_id = d.mdtrt_id", params)

    def _write_settlements(self, c: Changes) -> None:
        execute = RawCursor(self.conn).execute
        if c.reversed_settlements:  # before the inserts: a visit reversed and settled anew in one group
            values, params = _raw_values([(s.setl_id, s.reversed_at, s.reversal_msgid, s.reversal_id)
                                          for s in c.reversed_settlements], "%s::text, %s::timestamptz, %s::text, %s::text")
            execute(f"update settlements s set status = 'REVERSED', reversed_at = d.reversed_at,"
                    f" reversal_msgid = d.reversal_msgid, reversal_id = d.reversal_id from (values {values})"
                    " as d(setl_id, reversed_at, reversal_msgid, reversal_id) where s.setl_id = d.setl_id", params)
        if c.new_settlements:
            values, params = _raw_values([(s.setl_id, s.mdtrt_id, s.msgid, s.hospital_code, s.person_ref,
                                       s.person_id_masked, s.home_pool, s.treatment_pool, s.policy_year,
                                       s.business_date, s.settled_at, s.medfee_sumamt_fen, s.hifp_pay_fen,
                                       s.hifmi_pay_fen, s.maf_pay_fen, s.psn_part_amt_fen,
                                       Jsonb(s.accumulators_delta), Jsonb(s.output), s.status, s.reversed_at,
                                       s.reversal_msgid, s.reversal_id) for s in c.new_settlements],
                                      ", ".join(["%s"] * 22))
            execute(f"insert into settlements ({_SETTLEMENT_COLUMNS}) values {values}", params)
        if c.accumulators:
            values, params = _raw_values([(ref, a.year, *(getattr(a, f) for f in ACCUMULATOR_FIELDS))
                                      for ref, a in c.accumulators],
                                     "%s::text, %s::int" + ", %s::bigint" * len(ACCUMULATOR_FIELDS))
            execute("update accumulators a set " + ", ".join(f"{f} = d.{f}" for f in ACCUMULATOR_FIELDS)
                    + f" from (values {values}) as d(person_ref, policy_year, {_FIELDS})"
                    " where a.person_ref = d.person_ref and a.policy_year = d.policy_year", params)
        if c.outbox:  # ids follow the order of decision
            values, params = _raw_values([(SETTLEMENT_EVENTS.name, key, payload) for key, payload in c.outbox],
                                     "%s, %s, %s")
            execute(f"insert into outbox (topic, message_key, payload) values {values}", params)

    def _write_requests(self, c: Changes) -> None:
        execute = RawCursor(self.conn).execute
        if c.answers:
            values, params = _raw_values([(*key, ANSWERED, Jsonb(body)) for key, body in c.answers],
                                     "%s::text, %s::text, %s::int, %s::jsonb")
            execute("update requests r set status_code = d.status_code, response = d.response"
                    f" from (values {values}) as d(hospital_code, msgid, status_code, response)"
                    " where r.hospital_code = d.hospital_code and r.msgid = d.msgid", params)
        if c.tombstones:
            values, params = _raw_values([(*key, infno, UNDONE_BEFORE_ARRIVAL, ANSWERED, Jsonb(body))
                                      for key, infno, body in c.tombstones], "%s, %s, %s, %s, %s, %s")
            execute("insert into requests (hospital_code, msgid, infno, request_sha256, status_code, response)"
                    f" values {values} on conflict do nothing", params)
        if c.forgotten:
            values, params = _raw_values(c.forgotten, "%s::text, %s::text")
            execute(f"delete from requests r using (values {values}) as d(hospital_code, msgid)"
                    " where r.hospital_code = d.hospital_code and r.msgid = d.msgid", params)


class PostgresRepository(Repository):
    """Each thread has its own connection (no pool checkout; statements stay prepared)."""

    def __init__(self, dsn: str):
        self._dsn = dsn
        self._local = threading.local()

    def _connection(self) -> psycopg.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            # Statements stay prepared (parsed once) but are planned for their parameters each time:
            # a generic plan made while a table was new and small (a fresh database, the first
            # minute after start) scans it sequentially until the next ANALYZE — at 100k fee lines
            # that made the settle group's read 37 ms instead of under 1 (pg_stat_statements).
            conn = psycopg.connect(self._dsn, autocommit=True, row_factory=namedtuple_row,
                                   options="-c plan_cache_mode=force_custom_plan")
            set_json_dumps(_orjson_dumps, conn)
            self._local.conn = conn
        return conn

    def _drop_connection(self) -> None:
        conn, self._local.conn = getattr(self._local, "conn", None), None
        if conn is not None:
            conn.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """One pipeline, begun and committed by hand. psycopg's `conn.transaction()` inside a
        pipeline nests two more pipelines and syncs at each level: a round trip for BEGIN before
        the first read, one for the writes, one for COMMIT and an empty one on leaving — five or six
        wake-ups of the database and of this thread for a group, where BEGIN rides with the
        reads and COMMIT with the writes and the one sync at the end (three). Below saturation, a
        group is one request and each round trip costs about as much CPU as the work in it."""
        conn = self._connection()
        try:
            with conn.pipeline():
                conn.execute("begin")
                yield PostgresTransaction(conn)
                conn.execute("commit")
        except BaseException:
            self._drop_connection()  # whatever state it is in, the next transaction starts clean
            raise

    def answers(self, keys: Sequence[Key]) -> dict[Key, StoredAnswer]:
        if not keys:
            return {}
        rows = self._read("select hospital_code, msgid, request_sha256, status_code, response from requests"
                          " where (hospital_code, msgid) in (select * from unnest(%s::text[], %s::text[]))",
                          ([k[0] for k in keys], [k[1] for k in keys]))
        return {(r.hospital_code, r.msgid): StoredAnswer(r.request_sha256, r.status_code, r.response) for r in rows}

    def standing_settlements(self, hospital_code: str, begin: date, end: date) -> list[StandingSettlement]:
        rows = self._read("select setl_id, medfee_sumamt_fen, hifp_pay_fen + hifmi_pay_fen + maf_pay_fen fund,"
                          " coalesce(output->'setlinfo'->>'insutype', '') insutype,"
                          " coalesce(output->'setlinfo'->>'clr_type', '') clr_type,"
                          " coalesce(output->'setlinfo'->>'clr_optins', '') clr_optins from settlements"
                          " where hospital_code = %s and status = 'SETTLED' and business_date between %s and %s",
                          (hospital_code, begin, end))
        return [StandingSettlement(*r) for r in rows]

    def month_lines(self, hospital_code: str, first: date, last: date) -> list[MonthLine]:
        common = ("mdtrt_id, home_pool, {at} at, {sign}medfee_sumamt_fen medfee,"
                  " {sign}(hifp_pay_fen + hifmi_pay_fen + maf_pay_fen) fund, coalesce(output->>'_sealed', '') sealed,"
                  " person_id_masked, coalesce(output->'setlinfo'->>'insutype', '') insutype,"
                  " coalesce(output->'setlinfo'->>'clr_type', '') clr_type from settlements where hospital_code = %s")
        rows = self._read(
            "select setl_id setl_sn, setl_id settlement_id, 'COMPLETED' kind, " + common.format(at="settled_at", sign="")
            + " and business_date between %s and %s union all"
            " select coalesce(reversal_id, 'R-' || setl_id), setl_id, 'REVERSED', " + common.format(at="reversed_at", sign="-")
            + " and status = 'REVERSED' and (reversed_at at time zone 'Asia/Shanghai')::date between %s and %s"
            " order by 6, 3, 1", (hospital_code, first, last, hospital_code, first, last))
        return [MonthLine(*r) for r in rows]

    def open_stays(self, hospital_code: str, person_ref: str) -> list[Visit]:
        rows = self._read(f"select {_VISIT_COLUMNS} from visits where hospital_code = %s and person_ref = %s"
                          " and status = 'OPEN' and med_type in ('21', '22', '24') order by begntime, mdtrt_id",
                          (hospital_code, person_ref))
        return [Visit(*r) for r in rows]

    def application(self, clr_appy_evt_id: str) -> Application | None:
        rows = self._read(f"select {_APPLICATION_COLUMNS} from clearing_applications where clr_appy_evt_id = %s",
                          (clr_appy_evt_id,))
        return Application(*rows[0]) if rows else None

    def month_view(self, hospital_code: str, month: str) -> MonthState:
        try:
            return _month_state(self._connection(), hospital_code, month)
        except BaseException:
            self._drop_connection()
            raise

    def settlement(self, setl_id: str) -> StoredSettlement | None:
        row = self._read(f"select {_SETTLEMENT_COLUMNS} from settlements where setl_id = %s", (setl_id,))
        return StoredSettlement(*row[0]) if row else None

    def put_file(self, file: StoredFile) -> None:
        try:
            with self._connection().transaction():
                self._connection().execute(
                    "insert into files (file_qury_no, hospital_code, filename, content, created_at)"
                    " values (%s, %s, %s, %s, %s)",
                    (file.file_qury_no, file.hospital_code, file.filename, file.content, file.created_at))
        except BaseException:
            self._drop_connection()
            raise

    def file(self, file_qury_no: str) -> StoredFile | None:
        rows = self._read("select file_qury_no, hospital_code, filename, content, created_at from files"
                          " where file_qury_no = %s", (file_qury_no,))
        return StoredFile(*rows[0][:3], bytes(rows[0][3]), rows[0][4]) if rows else None

    def visit(self, mdtrt_id: str) -> Visit | None:
        rows = self._read(f"select {_VISIT_COLUMNS} from visits where mdtrt_id = %s", (mdtrt_id,))
        if not rows:
            return None
        visit = Visit(*rows[0])
        for r in self._read("select mdtrt_id, feedetl_sn, med_list_codg, cnt, pric_fen, amount_fen from fee_details"
                            " where mdtrt_id = %s order by feedetl_sn", (mdtrt_id,)):
            visit.fees[r.feedetl_sn] = FeeRow(*r)
        return visit

    def year_accumulators(self, person_ref: str, year: int) -> Accumulators:
        rows = self._read(f"select {_FIELDS} from accumulators where person_ref = %s and policy_year = %s",
                          (person_ref, year))
        return Accumulators(year, *rows[0]) if rows else Accumulators(year)

    def manual_claims(self, home_pool: str | None = None, lodged_by: str | None = None,
                      status: str | None = None, limit: int = 1000, claim_no: str | None = None) -> list[StoredClaim]:
        rows = self._read(f"select {CLAIM_COLUMNS} from manual_claims"
                          " where (%(pool)s::text is null or home_pool = %(pool)s)"
                          " and (%(by)s::text is null or lodged_by = %(by)s)"
                          " and (%(status)s::text is null or status = %(status)s)"
                          " and (%(no)s::text is null or claim_no = %(no)s)"
                          " order by lodged_at desc, claim_no limit %(limit)s",
                          {"pool": home_pool, "by": lodged_by, "status": status, "no": claim_no, "limit": limit})
        return [StoredClaim(*r) for r in rows]

    def _read(self, sql: str, params) -> list:
        try:
            return self._connection().execute(sql, params).fetchall()
        except BaseException:
            self._drop_connection()
            raise

    def close(self) -> None:
        self._drop_connection()
