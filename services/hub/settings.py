"""Shared kernel: the few settings helpers every service's bootstrap uses, and where the
servers are by default: the loopback ports the local launcher (`hub services up`) uses, each
overridable by HUB_LOCAL_*_PORT, unless HUB_KAFKA_BOOTSTRAP / HUB_REDIS_URL / HUB_POSTGRES_URL say."""

from __future__ import annotations

import os

import sqlalchemy as sa


def env(name: str, default: str) -> str:
    return os.environ.get(name, default)


LOCAL_PORTS = {"kafka": 39092, "kafka_controller": 39093, "redis": 36379, "postgres": 35432}


def local_port(server: str) -> int:
    """The loopback port of a local server: HUB_LOCAL_<SERVER>_PORT, or the launcher's default."""
    return int(env(f"HUB_LOCAL_{server.upper()}_PORT", str(LOCAL_PORTS[server])))


def kafka_bootstrap() -> str:
    return env("HUB_KAFKA_BOOTSTRAP", f"127.0.0.1:{local_port('kafka')}")


def redis_url() -> str:
    return env("HUB_REDIS_URL", f"redis://127.0.0.1:{local_port('redis')}/0")


def postgres_url() -> str:
    """The PostgreSQL server (superuser URL); each service has its own database on it."""
    return env("HUB_POSTGRES_URL", f"postgresql+psycopg://hub@127.0.0.1:{local_port('postgres')}/postgres")


def database_url(postgres_url: str, database: str) -> str:
    """The server URL pointed at one service's own database."""
    return sa.make_url(postgres_url).set(database=database).render_as_string(hide_password=False)


def create_schema(engine: sa.Engine, metadata: sa.MetaData, lock_key: int,
                  added: dict[str, tuple[str, ...]] | None = None) -> None:
    """Create the service's tables; processes starting at once serialise on an advisory lock.
    `added` names the columns (by table) added after a table's first schema: a database made
    before them gets them in place, as the metadata declares them (each has a server default)."""
    with engine.begin() as conn:
        conn.execute(sa.text("select pg_advisory_xact_lock(:k)"), {"k": lock_key})
        metadata.create_all(conn)
        for table, names in (added or {}).items():
            # ALTER TABLE takes an exclusive lock even when the column exists (IF NOT EXISTS): a
            # replica starting beside running ones would queue every reader of the table behind
            # it, or wait forever behind a long reader. So only a missing column is altered in.
            present = set(conn.execute(sa.text(
                "select column_name from information_schema.columns where table_schema = current_schema()"
                " and table_name = :t"), {"t": table}).scalars())
            for name in names:
                if name in present:
                    continue
                column = metadata.tables[table].c[name]
                if column.nullable and column.server_default is None:  # rows made before hold null
                    conn.execute(sa.text(f"alter table {table} add column if not exists {name}"
                                         f" {column.type.compile(dialect=engine.dialect)}"))
                    continue
                default = column.server_default.arg
                if isinstance(default, str):  # a plain value: a literal ('' for text, '0' cast to bigint)
                    default = "'" + default.replace("'", "''") + "'"
                else:  # an SQL expression
                    default = default.text if hasattr(default, "text") else str(default.compile(dialect=engine.dialect))
                conn.execute(sa.text(f"alter table {table} add column if not exists {name}"
                                     f" {column.type.compile(dialect=engine.dialect)} not null default {default}"))
