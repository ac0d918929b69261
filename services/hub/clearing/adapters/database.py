"""The clearing service's own tables (database `hub_clearing`).

`applied_events` is the idempotency record and the detail behind every clearing file (one row
per settlement event, unique by event id); `bilateral` holds the running totals per clearing
day and pool pair, so netting reads pools x pools rows, never the day's events.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Sequence

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert


from hub import migrations
from hub.messaging.outbox import define_outbox

metadata = sa.MetaData()

applied_events = sa.Table(
    "applied_events", metadata,
    sa.Column("event_id", sa.Text, primary_key=True),
    sa.Column("kind", sa.Text, nullable=False),  # SETTLED, REVERSED
    sa.Column("settlement_id", sa.Text, nullable=False),
    sa.Column("reversal_id", sa.Text),
    sa.Column("clearing_date", sa.Date, nullable=False),
    sa.Column("business_date", sa.Date, nullable=False),
    sa.Column("late", sa.Boolean, nullable=False),
    sa.Column("home_pool", sa.Text, nullable=False),
    sa.Column("treatment_pool", sa.Text, nullable=False),
    sa.Column("hospital_code", sa.Text, nullable=False),
    sa.Column("person_id_masked", sa.Text, nullable=False),
    sa.Column("medfee_sumamt_fen", sa.BigInteger, nullable=False),
    sa.Column("hifp_pay_fen", sa.BigInteger, nullable=False),
    sa.Column("hifmi_pay_fen", sa.BigInteger, nullable=False),
    sa.Column("maf_pay_fen", sa.BigInteger, nullable=False),
    sa.Column("source", sa.Text, nullable=False),  # topic:partition:offset, for tracing
    # RESIDENT or EMPLOYEE: which funds pay (hub.clearing.domain.funds). Rows applied before the
    # funds were kept apart read as residents' (the only insurance type the hub then settled).
    sa.Column("insurance_type", sa.Text, nullable=False, server_default="RESIDENT"),
    # Who and when, for the anomaly flags (hub.clearing.domain.anomalies): the person's keyed
    # reference (never the id), the visit type and days. Empty / null in events written before.
    sa.Column("person_ref", sa.Text, nullable=False, server_default=""),
    sa.Column("visit_type", sa.Text, nullable=False, server_default=""),
    sa.Column("begntime", sa.Date),
    sa.Column("endtime", sa.Date),
)
sa.Index("applied_by_day_home", applied_events.c.clearing_date, applied_events.c.home_pool)
sa.Index("applied_by_day_treatment", applied_events.c.clearing_date, applied_events.c.treatment_pool)
sa.Index("applied_by_person", applied_events.c.person_ref, applied_events.c.clearing_date)

APPLIED_COLUMNS = tuple(c.name for c in applied_events.columns)


def _copy_insert(conn: sa.Connection, table: str, columns: Sequence[str], rows: Iterable[tuple], tail: str) -> list:
    """Rows into `table` by COPY into a temporary twin of it, then one INSERT ... SELECT ending in
    `tail` (its ON CONFLICT / RETURNING), inside the caller's transaction; the returned rows.
    SQLAlchemy multi-row INSERTs of 500 rows and 8,000 parameters, compiled and parsed anew for
    every batch, were ~75 % of the consumer's time."""
    names = ", ".join(columns)
    with conn.connection.driver_connection.cursor() as cur:  # psycopg
        cur.execute(f"create temp table if not exists {table}_in (like {table}) on commit delete rows")
        with cur.copy(f"copy {table}_in ({names}) from stdin") as copy:
            for row in rows:
                copy.write_row(row)
        cur.execute(f"insert into {table} ({names}) select {names} from {table}_in {tail}")
        return cur.fetchall() if cur.description else []


def insert_applied(conn: sa.Connection, rows: list[tuple]) -> set[str]:
    """Insert a batch's rows (tuples in APPLIED_COLUMNS' order) into applied_events, skipping
    event ids already there; the ids that were new."""
    returned = _copy_insert(conn, "applied_events", APPLIED_COLUMNS, rows, "on conflict do nothing returning event_id")
    return {r[0] for r in returned}


# Manual claims (零星报销) the home bureaus priced (ManualClaimSettled): the home fund pays the
# patient, so they are never netted; they are listed in the home bureau's file for their day and
# counted in the fund-risk watch. Applied once by event id.
manual_claims = sa.Table(
    "manual_claims", metadata,
    sa.Column("event_id", sa.Text, primary_key=True),
    sa.Column("claim_no", sa.Text, nullable=False),
    sa.Column("clearing_date", sa.Date, nullable=False, index=True),
    sa.Column("business_date", sa.Date, nullable=False),
    sa.Column("home_pool", sa.Text, nullable=False),
    sa.Column("treatment_pool", sa.Text, nullable=False),
    sa.Column("hospital_code", sa.Text, nullable=False),
    sa.Column("lodged_by", sa.Text, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("person_id_masked", sa.Text, nullable=False),
    sa.Column("insurance_type", sa.Text, nullable=False),
    sa.Column("visit_type", sa.Text, nullable=False),
    sa.Column("begntime", sa.Date, nullable=False),
    sa.Column("endtime", sa.Date, nullable=False),
    sa.Column("medfee_sumamt_fen", sa.BigInteger, nullable=False),
    sa.Column("hifp_pay_fen", sa.BigInteger, nullable=False),
    sa.Column("hifmi_pay_fen", sa.BigInteger, nullable=False),
    sa.Column("maf_pay_fen", sa.BigInteger, nullable=False),
    sa.Column("psn_part_amt_fen", sa.BigInteger, nullable=False),
    sa.Column("source", sa.Text, nullable=False),
)
sa.Index("manual_claims_home_day", manual_claims.c.home_pool, manual_claims.c.clearing_date)

bilateral = sa.Table(
    "bilateral", metadata,
    sa.Column("clearing_date", sa.Date, primary_key=True),
    sa.Column("home_pool", sa.Text, primary_key=True),
    sa.Column("treatment_pool", sa.Text, primary_key=True),
    sa.Column("insurance_type", sa.Text, primary_key=True, server_default="RESIDENT"),
    sa.Column("hifp_pay_fen", sa.BigInteger, nullable=False),
    sa.Column("hifmi_pay_fen", sa.BigInteger, nullable=False),
    sa.Column("maf_pay_fen", sa.BigInteger, nullable=False),
    sa.Column("settlement_count", sa.BigInteger, nullable=False),
)

BILATERAL_COLUMNS = ("clearing_date", "home_pool", "treatment_pool", "insurance_type", "hifp_pay_fen", "hifmi_pay_fen",
                     "maf_pay_fen", "settlement_count")


def add_bilateral(conn: sa.Connection, rows: list[tuple]) -> None:
    """Add a batch's totals (one row per day, pool pair and insurance type, BILATERAL_COLUMNS) to the
    running totals."""
    _copy_insert(conn, "bilateral", BILATERAL_COLUMNS, rows,
                 "on conflict (clearing_date, home_pool, treatment_pool, insurance_type) do update set"
                 " hifp_pay_fen = bilateral.hifp_pay_fen + excluded.hifp_pay_fen,"
                 " hifmi_pay_fen = bilateral.hifmi_pay_fen + excluded.hifmi_pay_fen,"
                 " maf_pay_fen = bilateral.maf_pay_fen + excluded.maf_pay_fen,"
                 " settlement_count = bilateral.settlement_count + excluded.settlement_count")


days = sa.Table(
    "days", metadata,
    sa.Column("clearing_date", sa.Date, primary_key=True),
    sa.Column("status", sa.Text, nullable=False),  # OPEN, CLOSED
    sa.Column("cycle_id", sa.Text),
    sa.Column("closed_at", sa.DateTime(timezone=True)),
    sa.Column("gross_fen", sa.BigInteger),
    sa.Column("net_abs_fen", sa.BigInteger),
    sa.Column("efficiency", sa.Text),
)

statements = sa.Table(
    "statements", metadata,
    sa.Column("clearing_date", sa.Date, primary_key=True),
    sa.Column("pool_code", sa.Text, primary_key=True),
    sa.Column("cycle_id", sa.Text, nullable=False),
    sa.Column("receivable_fen", sa.BigInteger, nullable=False),
    sa.Column("payable_fen", sa.BigInteger, nullable=False),
    sa.Column("net_position_fen", sa.BigInteger, nullable=False),
    sa.Column("settlement_count", sa.BigInteger, nullable=False),
    sa.Column("manifest_sha256", sa.Text, nullable=False),
    sa.Column("confirmed_at", sa.DateTime(timezone=True)),
    sa.Column("confirmed_by", sa.Text),
)

# Each pool's position per fund (insurance type and fund_pay_type) on a closed day: the money
# moves fund by fund, and every fund's nets sum to zero on their own.
fund_statements = sa.Table(
    "fund_statements", metadata,
    sa.Column("clearing_date", sa.Date, primary_key=True),
    sa.Column("pool_code", sa.Text, primary_key=True),
    sa.Column("insutype", sa.Text, primary_key=True),
    sa.Column("fund_pay_type", sa.Text, primary_key=True),
    sa.Column("receivable_fen", sa.BigInteger, nullable=False),
    sa.Column("payable_fen", sa.BigInteger, nullable=False),
    sa.Column("net_fen", sa.BigInteger, nullable=False),
)

# Advance funds (预付金, hub.clearing.domain.advance): each bureau's current balance (the row a
# close or a deposit locks), and every movement of it.
advances = sa.Table(
    "advances", metadata,
    sa.Column("pool_code", sa.Text, primary_key=True),
    sa.Column("balance_fen", sa.BigInteger, nullable=False),
    sa.Column("required_fen", sa.BigInteger, nullable=False),
    sa.Column("warning", sa.Boolean, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

advance_ledger = sa.Table(
    "advance_ledger", metadata,
    sa.Column("entry_id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("pool_code", sa.Text, nullable=False),
    sa.Column("reference", sa.Text, nullable=False),  # close:<day> for a day's net; the centre's for a deposit
    sa.Column("clearing_date", sa.Date, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),  # DRAW, CREDIT, DEPOSIT
    sa.Column("amount_fen", sa.BigInteger, nullable=False),
    sa.Column("balance_fen", sa.BigInteger, nullable=False),
    sa.Column("required_fen", sa.BigInteger, nullable=False),
    sa.Column("warning", sa.Boolean, nullable=False),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("recorded_by", sa.Text, nullable=False),
    sa.Column("note", sa.Text, nullable=False, server_default=""),
    sa.UniqueConstraint("pool_code", "reference", name="advance_ledger_reference"),
)
sa.Index("advance_ledger_by_pool", advance_ledger.c.pool_code, advance_ledger.c.entry_id)

# Monthly statements (hub.clearing.domain.statements): one per month and home bureau, a line per
# settlement event it pays for (or carried in from an earlier month's resolved dispute).
monthly_statements = sa.Table(
    "monthly_statements", metadata,
    sa.Column("month", sa.Text, primary_key=True),  # yyyy-mm
    sa.Column("bureau_pool", sa.Text, primary_key=True),
    sa.Column("status", sa.Text, nullable=False),  # ISSUED, CLOSED
    sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("issued_by", sa.Text, nullable=False),
    sa.Column("closed_at", sa.DateTime(timezone=True)),
    sa.Column("closed_by", sa.Text),
    sa.Column("advance_balance_fen", sa.BigInteger, nullable=False),
    sa.Column("advance_required_fen", sa.BigInteger, nullable=False),
    sa.Column("top_up_fen", sa.BigInteger, nullable=False),
    sa.Column("manifest_sha256", sa.Text),
)

statement_lines = sa.Table(
    "statement_lines", metadata,
    sa.Column("month", sa.Text, primary_key=True),
    sa.Column("bureau_pool", sa.Text, primary_key=True),
    sa.Column("event_id", sa.Text, primary_key=True),
    sa.Column("counterparty_pool", sa.Text, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("settlement_id", sa.Text, nullable=False),
    sa.Column("reversal_id", sa.Text),
    sa.Column("clearing_date", sa.Date, nullable=False),
    sa.Column("hospital_code", sa.Text, nullable=False),
    sa.Column("insurance_type", sa.Text, nullable=False),
    sa.Column("person_id_masked", sa.Text, nullable=False),
    sa.Column("medfee_sumamt_fen", sa.BigInteger, nullable=False),  # signed: a reversal is negative
    sa.Column("hifp_pay_fen", sa.BigInteger, nullable=False),
    sa.Column("hifmi_pay_fen", sa.BigInteger, nullable=False),
    sa.Column("maf_pay_fen", sa.BigInteger, nullable=False),
    sa.Column("state", sa.Text, nullable=False),  # PENDING, CONFIRMED, DISPUTED, RESOLVED
    sa.Column("reason", sa.Text, nullable=False, server_default=""),
    sa.Column("carried_from", sa.Text, nullable=False, server_default=""),  # the month it was disputed in
    sa.Column("carried_to", sa.Text, nullable=False, server_default=""),  # the month a resolved line went on to
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_by", sa.Text, nullable=False),
)
sa.Index("statement_lines_resolved", statement_lines.c.bureau_pool, statement_lines.c.state)

# The hospitals' side of the month (HospitalMonthChanged, from the settle service's 3261/3262 and
# 3203/3204): each 清分 line's hospital confirmation (shown beside the home bureau's statement line;
# the treatment bureau pays its hospitals from confirmed lines), and the monthly clearing
# applications. The newest event wins (event time, then event id): applying one again changes nothing.
hospital_month_lines = sa.Table(
    "hospital_month_lines", metadata,
    sa.Column("hospital_code", sa.Text, primary_key=True),
    sa.Column("setl_sn", sa.Text, primary_key=True),
    sa.Column("month", sa.Text, nullable=False),  # yyyy-mm
    sa.Column("settlement_id", sa.Text, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),  # COMPLETED, REVERSED
    sa.Column("home_pool", sa.Text, nullable=False),
    sa.Column("treatment_pool", sa.Text, nullable=False),
    sa.Column("cnfm_flag", sa.Text, nullable=False),  # 1 confirmed, 0 not agreed, '' rolled back
    sa.Column("medfee_sumamt_fen", sa.BigInteger, nullable=False),
    sa.Column("fund_pay_sumamt_fen", sa.BigInteger, nullable=False),
    sa.Column("event_time", sa.BigInteger, nullable=False),  # ms
    sa.Column("event_id", sa.Text, nullable=False),
)
sa.Index("hospital_month_lines_settlement", hospital_month_lines.c.settlement_id, hospital_month_lines.c.kind)
sa.Index("hospital_month_lines_pool", hospital_month_lines.c.treatment_pool, hospital_month_lines.c.month)

hospital_applications = sa.Table(
    "hospital_applications", metadata,
    sa.Column("clr_appy_evt_id", sa.Text, primary_key=True),
    sa.Column("hospital_code", sa.Text, nullable=False),
    sa.Column("treatment_pool", sa.Text, nullable=False),
    sa.Column("month", sa.Text, nullable=False),  # yyyy-mm
    sa.Column("clr_type", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),  # APPLIED, CANCELLED
    sa.Column("psntime", sa.Integer, nullable=False),
    sa.Column("medfee_sumamt_fen", sa.BigInteger, nullable=False),
    sa.Column("fund_appy_sum_fen", sa.BigInteger, nullable=False),
    sa.Column("event_time", sa.BigInteger, nullable=False),
    sa.Column("event_id", sa.Text, nullable=False),
)

# The anomaly flags of a closed day, for the home bureau (hub.clearing.domain.anomalies).
anomaly_flags = sa.Table(
    "anomaly_flags", metadata,
    sa.Column("clearing_date", sa.Date, primary_key=True),
    sa.Column("home_pool", sa.Text, primary_key=True),
    sa.Column("n", sa.Integer, primary_key=True),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("subject", sa.Text, nullable=False),  # a person's keyed reference or a hospital code
    sa.Column("detail", sa.Text, nullable=False),
    sa.Column("settlement_ids", sa.Text, nullable=False),  # space-separated, at most MAX_FLAG_IDS
)
MAX_FLAG_IDS = 100

partition_marks = sa.Table(
    "partition_marks", metadata,
    sa.Column("topic", sa.Text, primary_key=True),
    sa.Column("partition", sa.Integer, primary_key=True),
    sa.Column("next_offset", sa.BigInteger, nullable=False),
    sa.Column("max_event_time", sa.DateTime(timezone=True), nullable=False),
)


def advance_marks(conn: sa.Connection, marks: list[tuple[str, int, int, Any]]) -> None:
    """Move partitions' marks forward to (topic, partition, next offset, newest event time);
    never back (a batch read again after a rebalance leaves them where they were)."""
    if not marks:
        return
    m = partition_marks.c
    stmt = pg_insert(partition_marks).values(
        [{"topic": t, "partition": p, "next_offset": o, "max_event_time": when} for t, p, o, when in marks])
    conn.execute(stmt.on_conflict_do_update(
        index_elements=[m.topic, m.partition],
        set_={"next_offset": sa.func.greatest(m.next_offset, stmt.excluded.next_offset),
              "max_event_time": sa.func.greatest(m.max_event_time, stmt.excluded.max_event_time)}))


# Events whose handling failed the same way again and again (poison): kept with their bytes
# and reason until an operator resolves them (re-applies or discards). An unresolved one blocks
# closing its day and every later day, so no bureau gets a file with an event silently missing.
quarantined_events = sa.Table(
    "quarantined_events", metadata,
    sa.Column("source", sa.Text, primary_key=True),  # topic:partition:offset
    sa.Column("event_id", sa.Text),
    sa.Column("record_name", sa.Text, nullable=False),
    sa.Column("business_date", sa.Date),  # None when the event does not say: blocks every day
    sa.Column("home_pool", sa.Text),
    sa.Column("treatment_pool", sa.Text),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("payload", sa.LargeBinary, nullable=False),
    sa.Column("quarantined_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("resolved_at", sa.DateTime(timezone=True)),
    sa.Column("resolution", sa.Text),  # APPLIED, DISCARDED
    sa.Column("resolved_by", sa.Text),
    sa.Column("note", sa.Text),
)

outbox = define_outbox(metadata)
OUTBOX_RELAY_LOCK = 4242201


# Columns renamed to the names the amounts carry from the engine to the files; a database made
# before the rename gets them renamed in place (nothing else about the tables changed).
RENAMED_COLUMNS = {
    "applied_events": {"medfee_fen": "medfee_sumamt_fen", "fund_fen": "hifp_pay_fen",
                       "serious_illness_fen": "hifmi_pay_fen", "assistance_fen": "maf_pay_fen"},
    "bilateral": {"fund_fen": "hifp_pay_fen", "serious_illness_fen": "hifmi_pay_fen", "assistance_fen": "maf_pay_fen"},
}
SCHEMA_LOCK = 4242200
# Columns added after a table's first schema: a database made before them gets them in place.
ADDED_COLUMNS = {"applied_events": ("insurance_type", "person_ref", "visit_type", "begntime", "endtime"),
                 "bilateral": ("insurance_type",)}


def create_schema(engine: sa.Engine) -> None:
    """The service's database brought to the head of its Alembic history (adapters/migrations)."""
    migrations.upgrade(engine, MIGRATIONS, SCHEMA_LOCK)


def baseline(conn: sa.Connection) -> None:
    """The history's first revision (migrations/versions/0001_baseline.py): the amounts' columns
    renamed where a database still has their first names, the tables and added columns, and a
    bilateral table made before the funds were kept apart given its key."""
    for table, renames in RENAMED_COLUMNS.items():
        existing = set(conn.execute(sa.text(
            "select column_name from information_schema.columns where table_schema = current_schema()"
            " and table_name = :t"), {"t": table}).scalars())
        for old, new in renames.items():
            if old in existing and new not in existing:
                conn.execute(sa.text(f"alter table {table} rename column {old} to {new}"))
    migrations.baseline(conn, metadata, ADDED_COLUMNS)
    key = set(conn.execute(sa.text(
        "select a.attname from pg_index i join pg_attribute a on a.attrelid = i.indrelid"
        " and a.attnum = any(i.indkey) where i.indrelid = 'bilateral'::regclass and i.indisprimary")).scalars())
    if "insurance_type" not in key:
        conn.execute(sa.text("alter table bilateral drop constraint bilateral_pkey, add primary key"
                             " (clearing_date, home_pool, treatment_pool, insurance_type)"))


def upsert_newest(conn: sa.Connection, table: sa.Table, rows: list[dict], keys: list[str]) -> None:
    """Rows written unless the one kept is newer (event time, then event id): events applied in any
    order, or again, leave the newest state. A key twice among `rows` is written once, its newest
    (one statement may not touch a row twice)."""
    newest: dict[tuple, dict] = {}
    for row in rows:
        key = tuple(row[k] for k in keys)
        if key not in newest or (newest[key]["event_time"], newest[key]["event_id"]) < (row["event_time"], row["event_id"]):
            newest[key] = row
    if not newest:
        return
    stmt = pg_insert(table).values(list(newest.values()))
    kept, new = (table.c.event_time, table.c.event_id), (stmt.excluded.event_time, stmt.excluded.event_id)
    conn.execute(stmt.on_conflict_do_update(
        index_elements=[table.c[k] for k in keys],
        set_={c.name: stmt.excluded[c.name] for c in table.columns if c.name not in keys},
        where=sa.tuple_(*kept) < sa.tuple_(*new)))


MIGRATIONS = Path(__file__).resolve().parent / "migrations"
