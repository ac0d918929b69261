"""The transactional outbox: a service writes its events into its own `outbox` table in the
same transaction as its state; the relay publishes committed rows to Kafka, in id order,
then deletes them (what Kafka holds needs no second copy, and the table stays small).

A crash after publishing but before deleting publishes those rows again on restart: the
events keep their event ids, and every consumer applies an event id once. Only one relay
publishes at a time (a PostgreSQL advisory lock), so per-key order is kept.
"""

from __future__ import annotations

import logging
import threading

import sqlalchemy as sa

from hub.messaging.producer import EventProducer
from hub.operations.metrics import OUTBOX_PUBLISHED

log = logging.getLogger(__name__)


def define_outbox(metadata: sa.MetaData) -> sa.Table:
    """The outbox table, in the owning service's own database."""
    table = sa.Table(
        "outbox", metadata,
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("topic", sa.Text, nullable=False),
        sa.Column("message_key", sa.Text, nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    return table


class OutboxRelay:
    def __init__(self, engine: sa.Engine, table: sa.Table, producer: EventProducer, lock_key: int,
                 stop: threading.Event | None = None, batch_rows: int = 500, idle_wait_s: float = 0.05):
        self.engine = engine
        self.table = table
        self.lock_key = lock_key
        self.producer = producer
        self.stop = stop or threading.Event()
        self.batch_rows = batch_rows
        self.idle_wait_s = idle_wait_s
        self.published = 0

    def publish_batch(self, conn: sa.Connection) -> int:
        # Plain SQL: this runs for every batch of events the hub publishes.
        rows = conn.exec_driver_sql(
            f"select id, topic, message_key, payload from {self.table.fullname} order by id limit %s",
            (self.batch_rows,)).all()
        if not rows:
            conn.commit()
            return 0
        for row in rows:
            self.producer.send_bytes(row.topic, row.message_key, bytes(row.payload))
        self.producer.flush()  # every row is on the broker (acks=all) before it is deleted
        conn.exec_driver_sql(f"delete from {self.table.fullname} where id = any(%s)", ([r.id for r in rows],))
        conn.commit()
        self.published += len(rows)
        OUTBOX_PUBLISHED.labels(self.table.metadata.schema or self.table.name).inc(len(rows))
        return len(rows)

    def run(self) -> None:
        with self.engine.connect() as conn:
            while not self.stop.is_set():
                if conn.execute(sa.text("select pg_try_advisory_lock(:k)"), {"k": self.lock_key}).scalar():
                    conn.commit()
                    break
                conn.commit()
                self.stop.wait(1.0)
            try:
                while not self.stop.is_set():
                    if self.publish_batch(conn) == 0:
                        self.stop.wait(self.idle_wait_s)
            finally:
                conn.execute(sa.text("select pg_advisory_unlock_all()"))
                conn.commit()
