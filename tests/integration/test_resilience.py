"""Nothing stops silently (issue 10's findings, each against real servers): a lost database
connection, a poison event, topics that appear late or with the wrong shape."""

from __future__ import annotations

import threading
import uuid
from datetime import date
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic

from hub.clearing.adapters import database as clearing_db
from hub.clearing.entrypoints.consumer import ClearingConsumer
from hub.clearing.service_layer.closing import DayBlocked
from hub.clearing.domain.refusals import ClearingRefused
from hub.messaging.outbox import define_outbox, relay_loop
from hub.messaging.topics import REFERENCE_CATALOGUE, REFERENCE_POLICIES, Topic, ensure_topics
from hub.operations.supervision import Supervisor
from hub.settlement.adapters.read_model import ReadModel
from hub.settlement.entrypoints.read_model_consumer import ReadModelConsumer

from .settlement_helpers import new_psn_no, register, wait_for
from .test_clearing_service import clearing, consume, send, settled  # noqa: F401  (clearing is a fixture)
from .test_settlement_service import reference_loaded, stack  # noqa: F401  (fixtures)

D1 = date(2026, 3, 14)


def kill_connections(engine: sa.Engine) -> int:
    """What a PostgreSQL restart does to a service's sessions: every other connection to its
    database is terminated ("terminating connection due to administrator command")."""
    with engine.connect() as conn:
        killed = conn.execute(sa.text(
            "select count(pg_terminate_backend(pid)) from pg_stat_activity"
            " where datname = current_database() and pid <> pg_backend_pid()")).scalar_one()
        conn.commit()
    return killed


def topic_messages(bootstrap: str, topic: str) -> list:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    try:
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends, found = consumer.end_offsets(tps), []
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            for batch in consumer.poll(timeout_ms=500).values():
                found.extend(batch)
        return found
    finally:
        consumer.close()


def test_an_outbox_relay_survives_its_database_sessions_being_killed(servers, scratch_database, topic_factory, codec):
    """Finding 1: a PostgreSQL restart killed the relay thread for good while health said ready."""
    topic = topic_factory()
    metadata = sa.MetaData()
    outbox = define_outbox(metadata)
    engine = sa.create_engine(scratch_database, pool_pre_ping=True)
    metadata.create_all(engine)
    stop = threading.Event()
    supervisor = Supervisor(stop, backoff_s=(0.1, 0.5))
    from hub.messaging import EventProducer
    supervisor.add("relay", relay_loop(engine, outbox, 991, lambda: EventProducer(servers.kafka_bootstrap, codec),
                                       stop), stale_after_s=30)

    def write(keys: list[str]) -> None:
        with engine.begin() as conn:
            conn.execute(outbox.insert(), [{"topic": topic, "message_key": k, "payload": k.encode()} for k in keys])

    def backlog() -> int:
        with engine.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(outbox)).scalar_one()

    supervisor.start()
    try:
        first = [f"a{n}" for n in range(200)]
        write(first)
        wait_for(lambda: backlog() == 0, "the first rows to be published")
        assert kill_connections(engine) >= 1
        wait_for(lambda: supervisor.loops["relay"].restarts >= 1, "the relay to notice and restart")
        second = [f"b{n}" for n in range(200)]
        write(second)
        wait_for(lambda: backlog() == 0, "the rows written after the restart to be published")
        wait_for(lambda: supervisor.problems() == [], "readiness to recover")
        assert "OperationalError" in supervisor.loops["relay"].last_error
        assert supervisor.loops["relay"].detail.get("outbox_backlog_rows") is not None
    finally:
        stop.set()
        supervisor.join()
        engine.dispose()
    published = [m.value.decode() for m in topic_messages(servers.kafka_bootstrap, topic)]
    assert set(published) == set(first + second)  # nothing lost (a row published twice would be deduplicated by id)


def test_a_poison_event_is_quarantined_the_rest_is_cleared_and_its_day_waits_for_an_operator(clearing, producer,  # noqa: F811
                                                                                             servers):
    """Finding 2: one event that overflowed a bigint stopped clearing for every pool, for good."""
    import random

    rnd = random.Random(3)
    before = [settled(rnd, n, D1) for n in range(50)]
    large = settled(rnd, 50, D1)
    # One hospital's ten lines of 9,999,999,999.99 yuan x 1,000,000 (the finding) as one event:
    poison = dict(large, event_id=uuid.uuid4(), settlement_id="S-poison", hifp_pay_fen=5 * 10**17)
    after = [dict(settled(rnd, n, D1), home_pool=large["home_pool"], treatment_pool=large["treatment_pool"])
             for n in range(51, 101)]
    send(producer, clearing.settings.topic, before + [large, poison] + after)
    consume(clearing)

    with clearing.engine.connect() as conn:
        applied = conn.execute(sa.select(sa.func.count()).select_from(clearing_db.applied_events)).scalar_one()
    quarantined = clearing.service.quarantined()
    assert applied == 101  # everything but the poison, including what came after it on the same pair
    assert [q["event_id"] for q in quarantined] == [str(poison["event_id"])]
    assert "amount_out_of_bounds: hifp_pay_fen" in quarantined[0]["reason"]
    dead = topic_messages(servers.kafka_bootstrap, clearing.settings.topic + ".dlq")
    assert [dict(m.headers)["dlq.error.code"] for m in dead] == [b"handler_failed"]

    with pytest.raises(DayBlocked, match="resolve them"):
        clearing.service.close_day(D1)
    assert clearing.service.due_days({}) == []  # the automatic close waits too
    with pytest.raises(ClearingRefused) as still:
        clearing.service.resolve(quarantined[0]["source"], "APPLY", "operator-1")
    assert still.value.code == "still_failing"
    with pytest.raises(ClearingRefused):
        clearing.service.resolve(quarantined[0]["source"], "DISCARD", "operator-1")  # a discard says why
    clearing.service.resolve(quarantined[0]["source"], "DISCARD", "operator-1", "test overflow, never a real bill")
    result = clearing.service.close_day(D1)
    assert sum(p.net_fen for p in result.netting.positions) == 0
    assert clearing.service.quarantined() == []
    assert clearing.service.quarantined(include_resolved=True)[0]["resolution"] == "DISCARDED"


def test_a_clearing_consumer_survives_its_database_sessions_being_killed(clearing, producer):  # noqa: F811
    import random

    rnd = random.Random(5)
    stop = threading.Event()
    supervisor = Supervisor(stop, backoff_s=(0.1, 0.5))
    supervisor.add("consumer", lambda beat: ClearingConsumer(clearing, stop, auto_close=False, beat=beat).run)

    def applied() -> int:
        with clearing.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(clearing_db.applied_events)).scalar_one()

    supervisor.start()
    try:
        send(producer, clearing.settings.topic, [settled(rnd, n, D1) for n in range(300)])
        wait_for(lambda: applied() == 300, "the first events")
        kill_connections(clearing.engine)
        send(producer, clearing.settings.topic, [settled(rnd, n, D1) for n in range(300, 600)])
        wait_for(lambda: applied() == 600, "the events sent after the sessions were killed")
        wait_for(lambda: supervisor.problems() == [], "readiness to recover")
    finally:
        stop.set()
        supervisor.join()


def test_the_read_model_reads_a_topic_created_after_it_started(servers, producer, codec):
    """Finding 3: started before registration.events existed, the read model never read it."""
    topic = f"test.{uuid.uuid4().hex[:12]}"  # not created yet (and the broker auto-creates nothing)
    redis_url = servers.redis_url.rsplit("/", 1)[0] + "/6"
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    read_model = ReadModel(client)
    stop = threading.Event()
    consumer = ReadModelConsumer(servers.kafka_bootstrap, read_model, codec, producer, stop, rescan_s=0.5,
                                 topics=(topic, REFERENCE_POLICIES.name, REFERENCE_CATALOGUE.name))
    thread = threading.Thread(target=consumer.run, daemon=True)
    thread.start()
    admin = KafkaAdminClient(bootstrap_servers=servers.kafka_bootstrap)
    try:
        wait_for(read_model.ready, "the read model to be ready without the topic")
        admin.create_topics([NewTopic(topic, 3, 1)])
        ref = register(producer, new_psn_no(), topic=topic)
        wait_for(lambda: read_model.registration_bytes(ref), "the registration on the late topic")
    finally:
        stop.set()
        thread.join(timeout=30)
        admin.delete_topics([topic])
        admin.close()


def test_a_flush_after_the_epoch_check_is_never_marked_ready(servers):
    """Seen in CI: Redis flushed between the read-model consumer's epoch check and its marking ready
    left an empty read model marked ready, and a request was refused person_not_enrolled. Ready is
    now set only while the epoch it was built under is still there."""
    client = redis.Redis.from_url(servers.redis_url.rsplit("/", 1)[0] + "/7")
    client.flushdb()
    read_model = ReadModel(client)
    read_model.start_epoch("e1")
    client.flushdb()  # the flush lands after the consumer looked at its epoch
    assert read_model.mark_ready("e1") is False and not read_model.ready()
    read_model.start_epoch("e2")
    assert read_model.mark_ready("e1") is False and not read_model.ready()  # another epoch's build
    assert read_model.mark_ready("e2") is True and read_model.ready()
    client.flushdb()


def test_ensure_topics_mends_a_topic_made_with_the_wrong_shape(servers):
    """Finding 3: an auto-created registration.events had 3 partitions and cleanup.policy=delete."""
    name = f"test.{uuid.uuid4().hex[:12]}"
    admin = KafkaAdminClient(bootstrap_servers=servers.kafka_bootstrap)
    try:
        admin.create_topics([NewTopic(name, 1, 1, topic_configs={"cleanup.policy": "delete",
                                                                  "retention.ms": "1234567"})])  # an operator's
        wanted = Topic(name, key="k", records=(), partitions=3, compacted=True)
        ensure_topics(servers.kafka_bootstrap, (wanted,))
        ensure_topics(servers.kafka_bootstrap, (wanted,))  # idempotent
        described = admin.describe_topics([name, name + ".dlq"])
        assert {d["name"]: len(d["partitions"]) for d in described} == {name: 3, name + ".dlq": 1}
        configs = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name,
                                                         configs=["cleanup.policy", "retention.ms"])],
                                         config_filter="all")
        assert configs["topic"][name]["cleanup.policy"]["value"] == "compact"
        assert configs["topic"][name]["retention.ms"]["value"] == "1234567"  # mended, not reset
    finally:
        admin.delete_topics([name, name + ".dlq"])
        admin.close()


def _children(pid: int) -> list[int]:
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(stat.parent.name))
    return kids


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_settlement_process_killed_hard_takes_its_workers_with_it_and_restarts_at_once(stack, tmp_path):  # noqa: F811
    """Finding 5: after kill -9 the HTTP workers went on settling without relay or read model,
    and a restart failed with 'Address already in use'. Finding 6: every log line is JSON."""
    import json
    import os
    import signal
    import subprocess
    import sys

    from .settlement_helpers import REPO, http_ready

    port = 19000 + os.getpid() % 1000
    env = {**os.environ, **stack.env, "HUB_STATUS_INTERVAL_S": "2"}
    log_path = tmp_path / "settlement.log"
    command = [sys.executable, "-m", "hub.cli", "settlement", "serve", "--port", str(port), "--workers", "2"]
    base = f"http://127.0.0.1:{port}"
    with open(log_path, "ab") as log_file:
        first = subprocess.Popen(command, env=env, cwd=REPO, stdout=log_file, stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: http_ready(base + "/health/ready"), "two workers reading the main process's loop state")
            workers = _children(first.pid)
            assert len([w for w in workers if _alive(w)]) >= 2
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=30)
        wait_for(lambda: not any(_alive(w) for w in workers), "the orphaned workers to exit", limit_s=15)
        second = subprocess.Popen(command, env=env, cwd=REPO, stdout=log_file, stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: http_ready(base + "/health/ready"), "the restarted service on the same port")
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(timeout=30)
    lines = [line for line in log_path.read_text().splitlines() if line.strip()]
    assert lines, "the service logged nothing"
    for line in lines:
        entry = json.loads(line)  # a traceback or a crafted value never breaks a line
        assert {"time", "level", "logger", "msg"} <= entry.keys()
    assert "Address already in use" not in log_path.read_text()


def test_lag_sampling_survives_a_topic_deleted_under_a_group(servers, producer):
    """Finding 6: the clearing service's lag/status sampler threw KeyError: TopicPartition(...)."""
    from kafka.structs import OffsetAndMetadata

    from hub.operations.lag import sample_groups

    name, group = f"test.{uuid.uuid4().hex[:12]}", f"g-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=servers.kafka_bootstrap)
    try:
        admin.create_topics([NewTopic(name, 2, 1)])
        wait_for(lambda: name in admin.list_topics(), "the topic")
        consumer = KafkaConsumer(bootstrap_servers=servers.kafka_bootstrap, group_id=group, enable_auto_commit=False)
        consumer.commit({TopicPartition(name, 0): OffsetAndMetadata(0, "", -1)})
        consumer.close()
        admin.delete_topics([name])
        wait_for(lambda: name not in admin.list_topics(), "the topic to be deleted")
        rows = sample_groups(servers.kafka_bootstrap, [group], samples=2, interval_s=0.1)
        assert [r for r in rows if r.topic == name] == []
    finally:
        admin.delete_groups([group])
        admin.close()


def test_one_bill_the_database_refuses_never_takes_its_group_down(stack, producer):  # noqa: F811
    """A group commit whose transaction fails on one bill (here the database itself refuses
    that bill's settlement row, by a trigger) settles every other bill of the group; the bad
    one alone fails, and nothing of it is written."""
    from .test_settlement_service import GZ_A, JIA_DRUG, client, enrolled_person, open_and_upload
    from hub.settlement.adapters import database as settlement_db
    from hub.settlement.service_layer.envelope import Request

    psn, ref = enrolled_person(stack, producer)
    http, env = client(stack, GZ_A)
    visits = [open_and_upload(http, env, psn, [(JIA_DRUG, "1", "100.00")]) for _ in range(3)]
    with stack.engine.begin() as conn:
        conn.execute(sa.text(
            "create function refuse_one() returns trigger language plpgsql as $$ begin"
            f" if new.mdtrt_id = '{visits[1]}' then raise exception 'refused by the test trigger'; end if;"
            " return new; end $$"))
        conn.execute(sa.text("create trigger refuse_one before insert on settlements for each row"
                             " execute function refuse_one()"))
    hospital = stack.hospitals.by_code[GZ_A[0]]
    group = [stack.service.check(hospital, {"infno": "2304", "msgid": f"P-{n}", "input": {"data": {"mdtrt_id": v}}})
             for n, v in enumerate(visits)]
    assert all(isinstance(r, Request) for r in group)
    replies = stack.service.run_group(group)
    assert [r.reason for r in (replies[0], replies[2])] == [None, None]  # settled
    assert isinstance(replies[1], Exception) and "refused by the test trigger" in str(replies[1])
    with stack.engine.connect() as conn:
        settled = conn.execute(sa.select(settlement_db.settlements.c.mdtrt_id)).scalars().all()
        assert sorted(settled) == sorted([visits[0], visits[2]])
        assert conn.execute(sa.select(sa.func.count()).select_from(settlement_db.outbox)).scalar_one() == 2
        pending = conn.execute(sa.select(settlement_db.requests.c.msgid)
                               .where(settlement_db.requests.c.msgid == "P-1")).all()
        assert pending == []  # the failed bill left not even its msgid claim: a retry is a new attempt
        acc = conn.execute(sa.select(settlement_db.accumulators.c.admissions)
                           .where(settlement_db.accumulators.c.person_ref == ref)).scalar_one()
        assert acc == 2
