"""The portal's own tables (no business data): its people, their sessions, the maker-checker
recommendations and the audit trail."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from hub import migrations
from hub.messaging.outbox import define_outbox

metadata = sa.MetaData()

users = sa.Table(
    "portal_users", metadata,
    sa.Column("username", sa.Text, primary_key=True),
    sa.Column("display_name", sa.Text, nullable=False),
    sa.Column("role", sa.Text, nullable=False),
    sa.Column("bureau_code", sa.Text, nullable=False),
    sa.Column("pool", sa.Text, nullable=False),
    sa.Column("password_hash", sa.Text, nullable=False),  # argon2id
    sa.Column("failures", sa.Integer, nullable=False),
    sa.Column("locked_until", sa.DateTime(timezone=True)),
)

sessions = sa.Table(
    "portal_sessions", metadata,
    sa.Column("token_sha256", sa.Text, primary_key=True),  # the cookie's token is never stored
    sa.Column("username", sa.Text, nullable=False, index=True),
    sa.Column("csrf", sa.Text, nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
)

recommendations = sa.Table(
    "portal_recommendations", metadata,
    sa.Column("kind", sa.Text, primary_key=True),
    sa.Column("pool", sa.Text, primary_key=True),
    sa.Column("subject", sa.Text, primary_key=True),
    sa.Column("decision", sa.Text, nullable=False),
    sa.Column("note", sa.Text, nullable=False),
    sa.Column("made_by", sa.Text, nullable=False),
    sa.Column("made_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("checked_by", sa.Text, nullable=False),
    sa.Column("checked_at", sa.DateTime(timezone=True)),
    sa.Column("amount_fen", sa.BigInteger, nullable=False, server_default="0"),
)

audit = sa.Table(
    "portal_audit", metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("username", sa.Text, nullable=False),
    sa.Column("pool", sa.Text, nullable=False, index=True),
    sa.Column("action", sa.Text, nullable=False),
    sa.Column("subject", sa.Text, nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
)

# Each audit line is also an event (cn.hub.portal.PortalActionRecorded on portal.audit), written
# here in the same transaction and published by the relay.
outbox = define_outbox(metadata)

SCHEMA_LOCK = 7_310_004
OUTBOX_RELAY_LOCK = 7_310_005


def create_schema(engine: sa.Engine) -> None:
    """The service's database brought to the head of its Alembic history (adapters/migrations)."""
    migrations.upgrade(engine, MIGRATIONS, SCHEMA_LOCK)


def baseline(conn: sa.Connection) -> None:
    """The history's first revision (migrations/versions/0001_baseline.py)."""
    migrations.baseline(conn, metadata, None)


MIGRATIONS = Path(__file__).resolve().parent / "migrations"
