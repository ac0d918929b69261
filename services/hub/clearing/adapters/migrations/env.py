"""Alembic's environment for the clearing service's own schema history (run by hub.migrations.upgrade)."""

from alembic import context

from hub.clearing.adapters.database import metadata
from hub.migrations import env_run

env_run(context, metadata)
