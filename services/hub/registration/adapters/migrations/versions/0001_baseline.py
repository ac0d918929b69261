"""The registration service's baseline: every table of its metadata, and the columns added since a table's
first schema, created where missing (a database made before this history began converges here).

Revision ID: 0001
Revises:
"""

from alembic import op

from hub.registration.adapters import database as db

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    db.baseline(op.get_bind())


def downgrade() -> None:
    db.metadata.drop_all(op.get_bind())
