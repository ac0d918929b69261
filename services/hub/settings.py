"""Shared kernel: the few settings helpers every service's bootstrap uses."""

from __future__ import annotations

import os

import sqlalchemy as sa


def env(name: str, default: str) -> str:
    return os.environ.get(name, default)


def database_url(postgres_url: str, database: str) -> str:
    """The server URL pointed at one service's own database."""
    return sa.make_url(postgres_url).set(database=database).render_as_string(hide_password=False)


def create_schema(engine: sa.Engine, metadata: sa.MetaData, lock_key: int) -> None:
    """Create the service's tables; processes starting at once serialise on an advisory lock."""
    with engine.begin() as conn:
        conn.execute(sa.text("select pg_advisory_xact_lock(:k)"), {"k": lock_key})
        metadata.create_all(conn)
