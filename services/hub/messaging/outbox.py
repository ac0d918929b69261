"""The transactional outbox: a service writes its events into its own `outbox` table in the
same transaction as its state; the relay publishes committed rows to Kafka, in id order,
then deletes them (what Kafka holds needs no second copy, and the table stays small).

A crash after publishing but before deleting publishes those rows again on restart: the
events keep their event ids, and every consumer applies an event id once. Only one relay
publishes at a time (a PostgreSQL advisory lock), so per-key order is kept.

`run` raises on any fault (a lost database or broker): it runs under the service's
Supervisor, which restarts it with a backoff. It reports its backlog (rows waiting, the oldest
row's age) with every beat, so an operator sees events that sit unpublished.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

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
                 stop: threading.Event | None = None, batch_rows: int = 500, idle_wait_s: float = 0.05,
                 beat: Callable[..., None] = lambda **_: None, backlog_every_s: float = 5.0,
                 flush_timeout_s: float = 10.0):
        self.engine = engine
        self.table = table
        self.lock_key = lock_key
        self.producer = producer
        self.stop = stop or threading.Event()
        self.batch_rows = batch_rows
        self.idle_wait_s = idle_wait_s
        self.published = 0
        self.beat = beat
        self.backlog_every_s = backlog_every_s
        self.flush_timeout_s = flush_timeout_s

    def beat_with_backlog(self, conn: sa.Connection) -> None:
        """Report progress with the rows waiting to be published and the oldest one's age."""
        rows, age = conn.exec_driver_sql(
            f"select count(*), coalesce(extract(epoch from now() - min(created_at)), 0) from {self.table.fullname}"
        ).one()
        conn.commit()
        self.beat(outbox_backlog_rows=int(rows), outbox_oldest_age_seconds=float(age))

    def publish_batch(self, conn: sa.Connection) -> int:
        # Plain SQL: this runs for every batch of events the hub publishes.
        rows = conn.exec_driver_sql(
            f"select id, topic, message_key, payload from {self.table.fullname} order by id limit %s",
            (self.batch_rows,)).all()
        if not rows:
            conn.commit()
            return 0
        sent = [self.producer.send_bytes(row.topic, row.message_key, bytes(row.payload)) for row in rows]
        # A broker that cannot take the batch soon fails the run (the supervisor retries, and
        # readiness says so) instead of blocking for the producer's whole delivery timeout.
        self.producer.flush(timeout_s=self.flush_timeout_s)
        for future in sent:  # every row is on the broker (acks=all) before it is deleted:
            future.get(timeout=0)  # a send that failed raises here, and its rows stay
        conn.exec_driver_sql(f"delete from {self.table.fullname} where id = any(%s)", ([r.id for r in rows],))
        conn.commit()
        self.published += len(rows)
        OUTBOX_PUBLISHED.labels(self.table.metadata.schema or self.table.name).inc(len(rows))
        return len(rows)

    def run(self) -> None:
        """Publish until stopped; raises on a fault (the supervisor restarts it)."""
        with self.engine.connect() as conn:
            while not self.stop.is_set():
                if conn.execute(sa.text("select pg_try_advisory_lock(:k)"), {"k": self.lock_key}).scalar():
                    conn.commit()
                    break
                conn.commit()
                self.beat_with_backlog(conn)  # standing by is progress
                self.stop.wait(1.0)
            last_backlog = 0.0
            while not self.stop.is_set():
                published = self.publish_batch(conn)
                if time.monotonic() - last_backlog > self.backlog_every_s:
                    last_backlog = time.monotonic()
                    self.beat_with_backlog(conn)
                else:
                    self.beat()
                if published == 0:
                    self.stop.wait(self.idle_wait_s)
            # A connection lost mid-run is closed without this; PostgreSQL then frees the lock itself.
            conn.execute(sa.text("select pg_advisory_unlock_all()"))
            conn.commit()


def relay_loop(engine: sa.Engine, table: sa.Table, lock_key: int, make_producer: Callable[[], EventProducer],
               stop: threading.Event, before: Callable[[], None] | None = None):
    """A Supervisor's build function for a relay: `before` (e.g. making sure the topics exist),
    then a fresh producer and relay each time it is (re)started; the producer closes with it."""

    def build(beat: Callable[..., None]) -> Callable[[], None]:
        if before is not None:
            before()
        producer = make_producer()
        relay = OutboxRelay(engine, table, producer, lock_key, stop, beat=beat)

        def run() -> None:
            try:
                relay.run()
            finally:
                producer.close(timeout_s=1)
        return run

    return build


def supervise_relay(supervisor, service: str, engine: sa.Engine, table: sa.Table, lock_key: int,
                    make_producer: Callable[[], EventProducer], stop: threading.Event, bootstrap: str) -> None:
    """Add `<service>-outbox-relay` to a service's Supervisor: topics made sure of, then a relay
    with a fresh producer on every (re)start; not ready after 30 s without progress."""
    from hub.messaging.topics import ensure_topics

    supervisor.add(f"{service}-outbox-relay",
                   relay_loop(engine, table, lock_key, make_producer, stop, before=lambda: ensure_topics(bootstrap)),
                   stale_after_s=30)
