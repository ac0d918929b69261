"""Publishes committed outbox rows to Kafka, in commit order, then marks them published.

A crash after publishing but before marking publishes those rows again on restart: the
events keep their event ids, and every consumer applies an event id once. Only one relay
publishes at a time (a PostgreSQL advisory lock), so per-key order is kept.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timezone

import sqlalchemy as sa

from hub.messaging import EventProducer
from hub.settlement.adapters import database as db

log = logging.getLogger(__name__)
RELAY_LOCK = 4242002


class OutboxRelay:
    def __init__(self, engine: sa.Engine, producer: EventProducer, stop: threading.Event | None = None,
                 batch_rows: int = 500, idle_wait_s: float = 0.05):
        self.engine = engine
        self.producer = producer
        self.stop = stop or threading.Event()
        self.batch_rows = batch_rows
        self.idle_wait_s = idle_wait_s
        self.published = 0

    def publish_batch(self, conn: sa.Connection) -> int:
        rows = conn.execute(
            sa.select(db.outbox.c.id, db.outbox.c.topic, db.outbox.c.message_key, db.outbox.c.payload)
            .where(db.outbox.c.published_at.is_(None)).order_by(db.outbox.c.id).limit(self.batch_rows)
        ).all()
        if not rows:
            return 0
        for row in rows:
            self.producer.send_bytes(row.topic, row.message_key, bytes(row.payload))
        self.producer.flush()  # every row is on the broker (acks=all) before it is marked
        conn.execute(db.outbox.update().where(db.outbox.c.id.in_([r.id for r in rows]))
                     .values(published_at=datetime.now(timezone.utc)))
        conn.commit()
        self.published += len(rows)
        return len(rows)

    def run(self) -> None:
        with self.engine.connect() as conn:
            while not self.stop.is_set():
                if conn.execute(sa.text("select pg_try_advisory_lock(:k)"), {"k": RELAY_LOCK}).scalar():
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
