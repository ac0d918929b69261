"""Clearing rebuilt from the log on real Kafka and PostgreSQL (issue 28, item 3): a month of clearing
— settlements of three days across 30 pools on six partitions, reversals, late events, redeliveries,
deposits, bureaus' confirmations, a monthly statement issued, disputed, confirmed, closed and its
dispute resolved — is published through the outbox; then the clearing database is dropped and made
again empty, and `hub clearing rebuild` (the command, as an operator runs it) brings it back from
the two topics: every closed day's files and the statement's files byte for byte, signatures
included, the advances, the confirmations and the statement's lines as they were."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import uuid
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import sqlalchemy as sa

from hub.clearing.adapters import database as db
from hub.clearing.bootstrap import Settings, bootstrap
from hub.messaging.outbox import OutboxRelay

from .settlement_helpers import REPO, lose_database
from .test_clearing_service import consume, reversal, send, settled

DAYS = [date(2026, 3, 14), date(2026, 3, 15), date(2026, 3, 16)]
MONTH = "2026-03"


def clearing_on(url: str, servers, topics: tuple[str, str], out: Path, now: list[datetime]):
    settings = Settings(postgres_url=url, kafka_bootstrap=servers.kafka_bootstrap, database=sa.make_url(url).database,
                        out_dir=out, grace_s=0, group_id=f"g-{uuid.uuid4().hex[:8]}", topic=topics[0],
                        statements_topic=topics[1], bureaus_file=REPO / "reference" / "bureaus.yaml")
    c = bootstrap(settings)
    c.service.clock = lambda: now[0]
    return c


def publish_outbox(c) -> int:
    with c.producer("test-outbox") as producer, c.engine.connect() as conn:
        relay = OutboxRelay(c.engine, db.outbox, producer, db.OUTBOX_RELAY_LOCK)
        total = 0
        while (sent := relay.publish_batch(conn)):
            total += sent
    return total


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def a_month(c, producer, now: list[datetime]) -> None:
    rnd = random.Random(28)
    topic, n = c.settings.topic, 0
    for i, day in enumerate(DAYS):
        events = [settled(rnd, n + k, day) for k in range(1_500)]
        n += 1_500
        if i:  # late ones of the day before, and reversals of its settlements
            events += [settled(rnd, n + k, DAYS[i - 1]) for k in range(40)]
            n += 40
        events += [reversal(e, day) for e in rnd.sample(events, 30)]
        events += rnd.sample(events, 50)  # redelivered
        rnd.shuffle(events)
        send(producer, topic, events)
        consume(c)
        pools = sorted({e["home_pool"] for e in events})
        c.service.deposit(pools[i], f"BANK-{i}", 5_000_000 + i, "ops")
        now[0] = datetime(day.year, day.month, day.day, 17, 0, 0, 250_000 + i, tzinfo=timezone.utc)
        c.service.close_day(day)
        now[0] += timedelta(minutes=40, microseconds=17)
        c.service.confirm(day, pools[-1], f"B{pools[-1]}")
    now[0] = datetime(2026, 4, 2, 2, 0, 0, 123_456, tzinfo=timezone.utc)
    issued = c.service.months.issue(MONTH, "ops")
    pool = issued[0]["bureau_pool"]
    lines = c.service.months.show(MONTH, pool)["lines"]
    now[0] += timedelta(hours=2, microseconds=3)
    c.service.months.act(MONTH, pool, "dispute", [lines[0]["event_id"]], "not our insured", "clerk")
    c.service.months.act(MONTH, pool, "confirm", None, "", "clerk", all_pending=True)
    now[0] += timedelta(minutes=3)
    c.service.months.close(MONTH, pool, "clerk")
    now[0] += timedelta(days=1)
    c.service.months.resolve(MONTH, pool, lines[0]["event_id"], "paid after all", "ops")
    send(producer, topic, [settled(rnd, n, date(2026, 4, 2))])  # a day still open
    consume(c)


def test_clearing_dropped_and_rebuilt_from_the_log_comes_back_byte_for_byte(servers, scratch_database, topic_factory,
                                                                             producer, tmp_path):
    topics = (topic_factory(partitions=6), topic_factory(partitions=3))
    now = [datetime(2026, 3, 14, 9, tzinfo=timezone.utc)]
    c = clearing_on(scratch_database, servers, topics, tmp_path / "original", now)
    a_month(c, producer, now)
    assert publish_outbox(c) > 3 * 25
    before = {day: c.service.render_day(day) for day in DAYS}
    with c.engine.connect() as conn:
        ledger = conn.execute(sa.select(db.advance_ledger).order_by(db.advance_ledger.c.pool_code,
                                                                    db.advance_ledger.c.reference)).all()
        advances = conn.execute(sa.select(db.advances).order_by(db.advances.c.pool_code)).all()
        statements = conn.execute(sa.select(db.statements).order_by(db.statements.c.clearing_date,
                                                                    db.statements.c.pool_code)).all()
        applied = conn.execute(sa.select(db.applied_events).order_by(db.applied_events.c.event_id)).all()
    shown = {s: c.service.months.show(MONTH, s) for s in sorted({r.home_pool for r in applied})}
    c.engine.dispose()

    lose_database(servers.postgres_url, scratch_database)

    env = {**os.environ, "HUB_POSTGRES_URL": scratch_database, "HUB_KAFKA_BOOTSTRAP": servers.kafka_bootstrap,
           "HUB_CLEARING_DATABASE": sa.make_url(scratch_database).database,
           "HUB_CLEARING_OUT": str(tmp_path / "rebuilt"), "HUB_SETTLEMENT_TOPIC": topics[0],
           "HUB_CLEARING_STATEMENTS_TOPIC": topics[1]}
    run = subprocess.run([sys.executable, "-m", "hub.cli", "clearing", "rebuild"], env=env, cwd=REPO,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "rebuilt: 3 days closed" in run.stdout, run.stdout

    original, rebuilt = files(tmp_path / "original"), files(tmp_path / "rebuilt")
    assert rebuilt == original  # every file, signatures included
    assert any(name.startswith("months/") for name in rebuilt) and len(rebuilt) > 3 * 30 * 5
    after = clearing_on(scratch_database, servers, topics, tmp_path / "again", now)
    try:
        assert {day: after.service.render_day(day) for day in DAYS} == before  # the confirmations in the summary
        with after.engine.connect() as conn:
            assert conn.execute(sa.select(db.advance_ledger).order_by(
                db.advance_ledger.c.pool_code, db.advance_ledger.c.reference)).all() == ledger
            assert conn.execute(sa.select(db.advances).order_by(db.advances.c.pool_code)).all() == advances
            assert conn.execute(sa.select(db.statements).order_by(
                db.statements.c.clearing_date, db.statements.c.pool_code)).all() == statements
            assert conn.execute(sa.select(db.applied_events).order_by(db.applied_events.c.event_id)).all() == applied
            assert conn.execute(sa.select(sa.func.count()).select_from(db.outbox)).scalar_one() == 0
        assert {s: after.service.months.show(MONTH, s) for s in shown} == shown
    finally:
        after.engine.dispose()
