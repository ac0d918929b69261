"""Alembic's environment for the settlement service's own schema history (run by hub.migrations.upgrade)."""

from alembic import context

from hub.settlement.adapters.database import metadata
from hub.migrations import env_run

env_run(context, metadata)
