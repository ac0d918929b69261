"""Shared kernel: each service's schema is an Alembic history of its own
(hub/<service>/adapters/migrations/versions), applied at start up to its head. Processes starting
at once serialise on the service's advisory lock; a database already at the head is left alone.

The first revision of every history is its baseline: it creates what a database made before the
history began lacks (the tables, and the columns added since their first schema), so a database
made by the earlier create-at-start code and a new one end at the same head. A schema change is
a new revision file in the service's versions/, its down_revision the head before it:
`alembic.command.revision(hub.migrations.config(<the service's migrations directory>), "what
changes")` writes one from its script.py.mako."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory


def config(script_location: Path, connection: sa.Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(script_location))
    cfg.attributes["connection"] = connection
    return cfg


def upgrade(engine: sa.Engine, script_location: Path, lock_key: int) -> str:
    """The service's database brought to the head of its history; the revision it is at."""
    with engine.begin() as conn:
        conn.execute(sa.text("select pg_advisory_xact_lock(:k)"), {"k": lock_key})
        head = ScriptDirectory.from_config(config(script_location)).get_current_head()
        if MigrationContext.configure(conn).get_current_revision() != head:
            command.upgrade(config(script_location, conn), "head")
        return MigrationContext.configure(conn).get_current_revision()


def current(engine: sa.Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head(script_location: Path) -> str:
    return ScriptDirectory.from_config(config(script_location)).get_current_head()


def env_run(context, target_metadata: sa.MetaData) -> None:
    """The body of every history's env.py: online only, on the connection `upgrade` holds."""
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("the hub runs its migrations through hub.migrations.upgrade, on its own connection")
    context.configure(connection=connection, target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()


def baseline(conn: sa.Connection, metadata: sa.MetaData, added: dict[str, tuple[str, ...]] | None = None) -> None:
    """A history's first revision: the metadata's tables created where missing, and `added`, the
    columns (by table) added after a table's first schema, added in place as the metadata declares
    them (each has a server default, or is nullable)."""
    metadata.create_all(conn)
    for table, names in (added or {}).items():
        # ALTER TABLE takes an exclusive lock even when the column exists (IF NOT EXISTS): only a
        # missing column is altered in.
        present = set(conn.execute(sa.text(
            "select column_name from information_schema.columns where table_schema = current_schema()"
            " and table_name = :t"), {"t": table}).scalars())
        for name in names:
            if name in present:
                continue
            column = metadata.tables[table].c[name]
            kind = column.type.compile(dialect=conn.dialect)
            if column.nullable and column.server_default is None:  # rows made before hold null
                conn.execute(sa.text(f"alter table {table} add column if not exists {name} {kind}"))
                continue
            default = column.server_default.arg
            if isinstance(default, str):  # a plain value: a literal ('' for text, '0' cast to bigint)
                default = "'" + default.replace("'", "''") + "'"
            else:  # an SQL expression
                default = default.text if hasattr(default, "text") else str(default.compile(dialect=conn.dialect))
            conn.execute(sa.text(f"alter table {table} add column if not exists {name} {kind} not null default {default}"))
