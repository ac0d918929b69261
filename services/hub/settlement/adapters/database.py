"""The settle-at-treatment service's own tables (database `hub_settlement`), in SQLAlchemy Core.

Every settlement, its accumulators and its outbox row are written in one transaction; the
person-year accumulator row is locked (SELECT ... FOR UPDATE) for the length of it, so two
hospitals settling the same person at once are serialised and no cap is ever exceeded.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from sqlalchemy.dialects.postgresql import JSONB

from hub import migrations
from hub.messaging.outbox import define_outbox
from hub.settlement.domain.model import ACCUMULATOR_FIELDS

metadata = sa.MetaData()

visits = sa.Table(
    "visits", metadata,
    sa.Column("mdtrt_id", sa.Text, primary_key=True),
    sa.Column("hospital_code", sa.Text, nullable=False),
    sa.Column("person_ref", sa.Text, nullable=False),
    sa.Column("person_id_masked", sa.Text, nullable=False),
    sa.Column("med_type", sa.Text, nullable=False),
    sa.Column("insutype", sa.Text, nullable=False),
    sa.Column("begntime", sa.Date, nullable=False),
    sa.Column("endtime", sa.Date),
    sa.Column("accident_injury", sa.Boolean, nullable=False, server_default=sa.false()),
    # The visit's diagnosis codes, space-separated, as the hospital sent them (2203, 2401, 2402).
    sa.Column("diagnoses", sa.Text, nullable=False, server_default=""),
    sa.Column("status", sa.Text, nullable=False),  # OPEN, CANCELLED, SETTLED
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)

fee_details = sa.Table(
    "fee_details", metadata,
    sa.Column("mdtrt_id", sa.Text, sa.ForeignKey("visits.mdtrt_id"), primary_key=True),
    sa.Column("feedetl_sn", sa.Text, primary_key=True),
    sa.Column("med_list_codg", sa.Text, nullable=False),
    sa.Column("cnt", sa.Numeric(18, 4), nullable=False),
    sa.Column("pric_fen", sa.BigInteger, nullable=False),
    sa.Column("amount_fen", sa.BigInteger, nullable=False),
)

requests = sa.Table(
    "requests", metadata,
    sa.Column("hospital_code", sa.Text, primary_key=True),
    sa.Column("msgid", sa.Text, primary_key=True),
    sa.Column("infno", sa.Text, nullable=False),
    sa.Column("request_sha256", sa.Text, nullable=False),
    # 0 while the msgid is claimed and its answer not yet decided; otherwise answered (rows
    # written before reasons-as-data hold the HTTP status they were answered with).
    sa.Column("status_code", sa.Integer, nullable=False),
    sa.Column("response", JSONB, nullable=False),  # the whole answer; a refusal's reason is its err_code
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)

settlements = sa.Table(
    "settlements", metadata,
    sa.Column("setl_id", sa.Text, primary_key=True),
    sa.Column("mdtrt_id", sa.Text, sa.ForeignKey("visits.mdtrt_id"), nullable=False),
    sa.Column("msgid", sa.Text, nullable=False),
    sa.Column("hospital_code", sa.Text, nullable=False),
    sa.Column("person_ref", sa.Text, nullable=False),
    sa.Column("person_id_masked", sa.Text, nullable=False),
    sa.Column("home_pool", sa.Text, nullable=False),
    sa.Column("treatment_pool", sa.Text, nullable=False),
    sa.Column("policy_year", sa.Integer, nullable=False),
    sa.Column("business_date", sa.Date, nullable=False),
    sa.Column("settled_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("medfee_sumamt_fen", sa.BigInteger, nullable=False),
    sa.Column("hifp_pay_fen", sa.BigInteger, nullable=False),
    sa.Column("hifmi_pay_fen", sa.BigInteger, nullable=False),
    sa.Column("maf_pay_fen", sa.BigInteger, nullable=False),
    sa.Column("psn_part_amt_fen", sa.BigInteger, nullable=False),
    sa.Column("accumulators_delta", JSONB, nullable=False),
    sa.Column("output", JSONB, nullable=False),
    sa.Column("status", sa.Text, nullable=False),  # SETTLED, REVERSED
    sa.Column("reversed_at", sa.DateTime(timezone=True)),
    sa.Column("reversal_msgid", sa.Text),
    sa.Column("reversal_id", sa.Text),  # the reversal's own setl_id, as 2208/2305 answered it
    sa.CheckConstraint(
        "hifp_pay_fen + hifmi_pay_fen + maf_pay_fen + psn_part_amt_fen = medfee_sumamt_fen",
        name="settlement_balances",
    ),
)
sa.Index("settlements_hospital_day", settlements.c.hospital_code, settlements.c.business_date)
# A visit has at most one live settlement; after a reversal it may be settled again.
sa.Index("one_live_settlement_per_visit", settlements.c.mdtrt_id, unique=True,
         postgresql_where=settlements.c.status == "SETTLED")

accumulators = sa.Table(
    "accumulators", metadata,
    sa.Column("person_ref", sa.Text, primary_key=True),
    sa.Column("policy_year", sa.Integer, primary_key=True),
    *(sa.Column(name, sa.BigInteger, nullable=False, server_default="0") for name in ACCUMULATOR_FIELDS),
)

# Manual claims (零星报销) a home bureau prices after the patient paid in full
# (service_layer/claims.py): one row per (home pool, claim number), idempotent by it. Amounts are
# zero until the claim is SETTLED; a claim an agency lodged waits as LODGED for the home bureau.
manual_claims = sa.Table(
    "manual_claims", metadata,
    sa.Column("home_pool", sa.Text, primary_key=True),
    sa.Column("claim_no", sa.Text, primary_key=True),
    sa.Column("lodged_by", sa.Text, nullable=False),  # bureau:<pool> or agency:<code>
    sa.Column("request_sha256", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),  # LODGED, SETTLED, REJECTED
    sa.Column("person_ref", sa.Text, nullable=False),
    sa.Column("person_id_masked", sa.Text, nullable=False),
    sa.Column("treatment_pool", sa.Text, nullable=False),
    sa.Column("hospital_code", sa.Text, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("claim", JSONB, nullable=False),  # the claim as checked (no person id in clear)
    sa.Column("result", JSONB, nullable=False),  # what the bureau is answered
    sa.Column("policy_year", sa.Integer),
    sa.Column("accumulators_delta", JSONB, nullable=False),
    sa.Column("medfee_sumamt_fen", sa.BigInteger, nullable=False),
    sa.Column("hifp_pay_fen", sa.BigInteger, nullable=False),
    sa.Column("hifmi_pay_fen", sa.BigInteger, nullable=False),
    sa.Column("maf_pay_fen", sa.BigInteger, nullable=False),
    sa.Column("psn_part_amt_fen", sa.BigInteger, nullable=False),
    sa.Column("lodged_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("decided_at", sa.DateTime(timezone=True)),
    sa.Column("decided_by", sa.Text, nullable=False, server_default=""),
    sa.Column("note", sa.Text, nullable=False, server_default=""),
    sa.CheckConstraint("status <> 'SETTLED' or hifp_pay_fen + hifmi_pay_fen + maf_pay_fen + psn_part_amt_fen"
                       " = medfee_sumamt_fen", name="manual_claim_balances"),
)
sa.Index("manual_claims_lodged_by", manual_claims.c.lodged_by, manual_claims.c.lodged_at)

# Files a hospital uploaded (9101) or the hub made for it (a 3202 result): downloadable by
# file_qury_no (9102), by that hospital only.
files = sa.Table(
    "files", metadata,
    sa.Column("file_qury_no", sa.Text, primary_key=True),
    sa.Column("hospital_code", sa.Text, nullable=False),
    sa.Column("filename", sa.Text, nullable=False),
    sa.Column("content", sa.LargeBinary, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

# The hospital's month (3260-3262, 3203/3204; service_layer/hospital_month.py): its confirmation of
# each 清分 line — a settlement (setl_sn = setl_id) or a reversal (setl_sn = reversal_id) whose
# business date is in the month — and its monthly clearing applications. Every change is also a
# HospitalMonthChanged event, which clearing shows beside its monthly statement lines.
month_confirmations = sa.Table(
    "month_confirmations", metadata,
    sa.Column("hospital_code", sa.Text, primary_key=True),
    sa.Column("setl_sn", sa.Text, primary_key=True),
    sa.Column("month", sa.Text, nullable=False),  # yyyyMM
    sa.Column("cnfm_flag", sa.Text, nullable=False),  # 1 confirmed, 0 not agreed
    sa.Column("msgid", sa.Text, nullable=False),  # the 3261 that set it
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)
sa.Index("month_confirmations_month", month_confirmations.c.hospital_code, month_confirmations.c.month)

clearing_applications = sa.Table(
    "clearing_applications", metadata,
    sa.Column("clr_appy_evt_id", sa.Text, primary_key=True),
    sa.Column("hospital_code", sa.Text, nullable=False),
    sa.Column("month", sa.Text, nullable=False),  # setlym, yyyyMM
    sa.Column("clr_type", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),  # APPLIED, CANCELLED
    sa.Column("psntime", sa.Integer, nullable=False),
    sa.Column("medfee_sumamt_fen", sa.BigInteger, nullable=False),
    sa.Column("fund_appy_sum_fen", sa.BigInteger, nullable=False),
    sa.Column("msgid", sa.Text, nullable=False),
    sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("cancelled_at", sa.DateTime(timezone=True)),
)
sa.Index("clearing_applications_month", clearing_applications.c.hospital_code, clearing_applications.c.month)

outbox = define_outbox(metadata)

# What-if replays a bureau asked for over the API (entrypoints/what_if.py): their progress and,
# once done, the report (the same JSON and HTML `hub policy replay` writes).
what_if_runs = sa.Table(
    "what_if_runs", metadata,
    sa.Column("run_id", sa.Text, primary_key=True),
    sa.Column("pool", sa.Text, nullable=False, index=True),
    sa.Column("policy_version", sa.Text, nullable=False),
    sa.Column("first_day", sa.Date, nullable=False),
    sa.Column("last_day", sa.Date, nullable=False),
    sa.Column("requested_by", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),  # RUNNING, DONE, FAILED
    sa.Column("done", sa.BigInteger, nullable=False),
    sa.Column("total", sa.BigInteger, nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("document", sa.LargeBinary),  # the report's JSON
    sa.Column("html", sa.Text),
    sa.Column("error", sa.Text, nullable=False, server_default=""),
)
OUTBOX_RELAY_LOCK = 4242002


def create_engine(url: str, pool_size: int = 10) -> sa.Engine:
    return sa.create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)


ADDED_COLUMNS = {"accumulators": ("accident_outpatient_fund_paid", "accident_outpatient_deductible_met"),
                 "visits": ("diagnoses",), "settlements": ("reversal_id",)}


def create_schema(engine: sa.Engine) -> None:
    """The service's database brought to the head of its Alembic history (adapters/migrations)."""
    migrations.upgrade(engine, MIGRATIONS, 4242001)


def baseline(conn: sa.Connection) -> None:
    """The history's first revision (migrations/versions/0001_baseline.py)."""
    migrations.baseline(conn, metadata, ADDED_COLUMNS)


MIGRATIONS = Path(__file__).resolve().parent / "migrations"
