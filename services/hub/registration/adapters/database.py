"""The registration service's own tables (database `hub_registration`)."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from hub import migrations
from hub.messaging.outbox import define_outbox

metadata = sa.MetaData()

persons = sa.Table(
    "persons", metadata,
    sa.Column("person_ref", sa.Text, primary_key=True),
    sa.Column("person_id_masked", sa.Text, nullable=False),
    sa.Column("home_pool", sa.Text, nullable=False, index=True),
    sa.Column("insurance_type", sa.Text, nullable=False),
    sa.Column("enrolled_from", sa.Date, nullable=False),
    sa.Column("enrolled_to", sa.Date),
    sa.Column("benefits_from", sa.Date, nullable=False),
    sa.Column("special_populations", ARRAY(sa.Text), nullable=False),
    # [{population, begins, ends}] (ISO dates or null): special_populations with their periods
    sa.Column("identities", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
    # psn_no, certno, psn_name, card_no ... sealed (hub.privacy.seal): ciphertext only
    sa.Column("sealed", sa.LargeBinary, nullable=False, server_default=sa.text("''::bytea")),
    sa.Column("credential_refs", ARRAY(sa.Text), nullable=False, server_default=sa.text("'{}'::text[]")),
    sa.Column("registration_version", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)

filings = sa.Table(
    "filings", metadata,
    sa.Column("filing_id", sa.Text, primary_key=True),
    sa.Column("person_ref", sa.Text, sa.ForeignKey("persons.person_ref"), nullable=False, index=True),
    sa.Column("filing_type", sa.Text, nullable=False),
    sa.Column("target_pool", sa.Text, nullable=False),
    sa.Column("valid_from", sa.Date, nullable=False),
    sa.Column("valid_to", sa.Date),
    sa.Column("revoked", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)

# Which person each credential (resident id, social-security card) belongs to: one person each.
credentials = sa.Table(
    "credentials", metadata,
    sa.Column("credential_ref", sa.Text, primary_key=True),
    sa.Column("person_ref", sa.Text, sa.ForeignKey("persons.person_ref"), nullable=False, index=True),
)

imports = sa.Table(
    "imports", metadata,
    sa.Column("import_id", sa.Text, primary_key=True),
    sa.Column("home_pool", sa.Text, nullable=False),
    sa.Column("file_sha256", sa.Text, nullable=False),
    sa.Column("rows_total", sa.Integer, nullable=False),
    sa.Column("rows_changed", sa.Integer, nullable=False),
    sa.Column("rows_unchanged", sa.Integer, nullable=False),
    sa.Column("rows_bad", sa.Integer, nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)

outbox = define_outbox(metadata)
OUTBOX_RELAY_LOCK = 4242101


ADDED_COLUMNS = {"persons": ("identities", "sealed", "credential_refs")}  # since the first schema


def create_schema(engine: sa.Engine) -> None:
    """The service's database brought to the head of its Alembic history (adapters/migrations)."""
    migrations.upgrade(engine, MIGRATIONS, 4242100)


def baseline(conn: sa.Connection) -> None:
    """The history's first revision (migrations/versions/0001_baseline.py)."""
    migrations.baseline(conn, metadata, ADDED_COLUMNS)


MIGRATIONS = Path(__file__).resolve().parent / "migrations"
