"""The messaging kernel against a real Kafka broker (and PostgreSQL for durable effects)."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import sqlalchemy as sa
from kafka import KafkaConsumer, TopicPartition

from hub.messaging import ConsumerLoop, ConsumerSettings, Message
from tests.fixtures.avro.samples import SAMPLES

REPO = Path(__file__).resolve().parents[2]
SETTLED = SAMPLES["cn.hub.settlement.SettlementCompleted"]
TIME_LIMIT_S = 60


def settled(n: int, pool: str = "360400", hifp_pay_fen: int = 100) -> dict:
    return dict(SETTLED, event_id=uuid.uuid4(), settlement_id=f"S{n:08d}", home_pool=pool, hifp_pay_fen=hifp_pay_fen)


def consume_until(servers, codec, producer, topic: str, want: int) -> tuple[list[Message], ConsumerLoop]:
    """Run a consumer loop until `want` messages were handled or the time limit passes."""
    got: list[Message] = []
    settings = ConsumerSettings(group_id=f"g-{uuid.uuid4().hex[:8]}", topics=(topic,))
    loop = ConsumerLoop(servers.kafka_bootstrap, settings, got.extend, codec, producer)
    timer = threading.Timer(TIME_LIMIT_S, loop.stop.set)
    timer.start()

    def handler(batch: list[Message]) -> None:
        got.extend(batch)
        if len(got) >= want:
            loop.stop.set()

    loop.handler = handler
    try:
        loop.run()
    finally:
        timer.cancel()
    return got, loop


def committed(servers, group: str, topic: str, partition: int = 0) -> int | None:
    consumer = KafkaConsumer(bootstrap_servers=servers.kafka_bootstrap, group_id=group, enable_auto_commit=False)
    try:
        return consumer.committed(TopicPartition(topic, partition))
    finally:
        consumer.close()


def test_avro_events_come_back_decoded_and_equal(servers, codec, producer, topic_factory):
    topic = topic_factory(partitions=3)
    sent = [settled(i, pool=("360400", "440100", "999903")[i % 3]) for i in range(30)]
    sent.append(dict(SAMPLES["cn.hub.settlement.SettlementReversed"], event_id=uuid.uuid4()))
    for record in sent:
        name = "SettlementCompleted" if "settled_at" in record else "SettlementReversed"
        producer.send(topic, record["home_pool"], name, record)
    producer.flush()

    got, loop = consume_until(servers, codec, producer, topic, len(sent))

    assert sorted((m.value for m in got), key=lambda v: str(v["event_id"])) == sorted(
        sent, key=lambda v: str(v["event_id"])
    )
    assert {m.record_name for m in got} == {"cn.hub.settlement.SettlementCompleted", "cn.hub.settlement.SettlementReversed"}
    # Messages of one key land on one partition, in the order they were sent.
    by_pool: dict[str, list[int]] = {}
    for m in sorted(got, key=lambda m: (m.partition, m.offset)):
        if m.record_name.endswith("SettlementCompleted"):
            by_pool.setdefault(m.value["home_pool"], []).append(int(m.value["settlement_id"][1:]))
    assert all(ids == sorted(ids) for ids in by_pool.values())
    assert loop.dead_lettered == 0


def test_undecodable_messages_go_to_the_dead_letter_topic_with_the_reason(servers, codec, producer, topic_factory):
    topic = topic_factory()
    good = settled(1)
    garbage = b"this is not avro"
    truncated = codec.encode("SettlementCompleted", settled(2))[:-5]
    producer.send_bytes(topic, b"360400", garbage)
    producer.send_bytes(topic, b"360400", truncated)
    producer.send(topic, "360400", "SettlementCompleted", good)
    producer.flush()

    got, loop = consume_until(servers, codec, producer, topic, 1)
    assert [m.value for m in got] == [good]
    assert loop.dead_lettered == 2
    # The bad messages' offsets were committed with the batch: they are not retried.
    assert committed(servers, loop.settings.group_id, topic) == 3

    dlq = KafkaConsumer(f"{topic}.dlq", bootstrap_servers=servers.kafka_bootstrap,
                        auto_offset_reset="earliest", consumer_timeout_ms=10_000)
    letters = [r for _, r in zip(range(2), dlq)]
    dlq.close()
    assert len(letters) == 2
    by_code = {dict(r.headers)["dlq.error.code"].decode(): r for r in letters}
    assert set(by_code) == {"not_single_object_avro", "corrupt_avro_body"}
    for code, original in (("not_single_object_avro", garbage), ("corrupt_avro_body", truncated)):
        record = by_code[code]
        headers = dict(record.headers)
        assert headers["dlq.source.topic"].decode() == topic
        envelope = codec.decode(record.value, expect="DeadLetter").value
        assert envelope["source_value"] == original
        assert envelope["error_code"] == code
        assert envelope["consumer_group"] == loop.settings.group_id
        assert str(envelope["source_offset"]) == headers["dlq.source.offset"].decode()


def _consumer_process(servers, topic: str, group: str, db_url: str, mode: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.integration.consumer_process", servers.kafka_bootstrap, topic, group, db_url, mode],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def test_a_consumer_killed_between_effect_and_commit_applies_the_effect_once(
    servers, producer, topic_factory, scratch_database
):
    topic = topic_factory()
    group = f"g-{uuid.uuid4().hex[:8]}"
    events = [settled(i, hifp_pay_fen=1000 + i) for i in range(20)]
    for record in events:
        producer.send(topic, record["home_pool"], "SettlementCompleted", record)
    producer.flush()

    crashed = _consumer_process(servers, topic, group, scratch_database, "crash-after-effect")
    crashed.communicate(timeout=120)
    assert crashed.returncode == -signal.SIGKILL
    assert committed(servers, group, topic) is None  # it died before committing anything

    engine = sa.create_engine(scratch_database)
    with engine.connect() as conn:
        first_attempts = conn.execute(sa.text("select count(*) from attempts")).scalar_one()
    assert first_attempts > 0

    again = _consumer_process(servers, topic, group, scratch_database, "until-idle")
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0, err

    with engine.connect() as conn:
        attempts = dict(conn.execute(sa.text("select event_id, count(*) from attempts group by event_id")).all())
        balance = conn.execute(sa.text("select amount_fen from balances where pool = '360400'")).scalar_one()
        applied = conn.execute(sa.text("select count(*) from applied_events")).scalar_one()
    engine.dispose()
    # The first batch was handled twice, every event's effect applied exactly once.
    assert sum(1 for n in attempts.values() if n == 2) == first_attempts
    assert set(attempts) == {str(e["event_id"]) for e in events}
    assert applied == len(events)
    assert balance == sum(e["hifp_pay_fen"] for e in events)
    assert committed(servers, group, topic) == len(events)


def test_a_consumer_stops_cleanly_on_sigterm_and_commits_what_it_handled(
    servers, producer, topic_factory, scratch_database
):
    topic = topic_factory()
    group = f"g-{uuid.uuid4().hex[:8]}"
    proc = _consumer_process(servers, topic, group, scratch_database, "until-signal")
    assert proc.stdout.readline().strip() == "ready"
    for i in range(5):
        producer.send(topic, "360400", "SettlementCompleted", settled(i))
    producer.flush()
    engine = sa.create_engine(scratch_database)
    deadline = time.monotonic() + TIME_LIMIT_S
    applied = 0
    while time.monotonic() < deadline and applied < 5:
        time.sleep(0.3)
        with engine.connect() as conn:
            applied = conn.execute(sa.text("select count(*) from applied_events")).scalar_one()
    engine.dispose()
    assert applied == 5
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "handled 5" in out
    assert committed(servers, group, topic) == 5
