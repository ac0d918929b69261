"""The hub's messaging on a replicated cluster: three local KRaft brokers (`hub services up
--brokers 3`'s launcher, on ports of its own), its topics made with replication 3 and
min.insync.replicas 2, and the hub's idempotent acks=all producer losing and doubling nothing while
the leader of the partitions it writes is killed with SIGKILL — then the broker comes back and
catches up from its peers."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

from hub.development import local_services
from hub.messaging import AvroCodec, EventProducer, ensure_topics
from hub.messaging.topics import SETTLEMENT_EVENTS
from tests.fixtures.avro.samples import SAMPLES

@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    base = local_services.free_ports(int(os.environ.get("HUB_TEST_CLUSTER_PORT", "29192")), 6)
    settings = local_services.LocalSettings(state_dir=tmp_path_factory.mktemp("cluster"), kafka_port=base,
                                            kafka_controller_port=base + 1, kafka_brokers=3, kafka_heap_mb=384)
    nodes = [local_services.Kafka(settings, n) for n in (1, 2, 3)]
    cluster_id = local_services.new_cluster_id()
    try:
        for node in nodes:
            node.install()
            node.start(wait=False, cluster_id=cluster_id)
        for node in nodes:
            node.wait()
        yield settings, nodes
    finally:  # a throwaway cluster: killed, not shut down (its last node would wait for a quorum that is gone)
        for node in nodes:
            if (pid := node.pid()) is not None:
                os.kill(pid, signal.SIGKILL)


def described(bootstrap: str, topic: str, limit_s: float = 60) -> dict[int, dict]:
    """The topic's partitions once the cluster describes every one with its leader: just after
    create_topics, the broker asked may not know the new topic's partitions yet (seen once in CI:
    an empty description)."""
    deadline = time.monotonic() + limit_s
    while True:
        found = partitions(bootstrap, topic)
        if found and all(p["leader_id"] >= 0 and p["replica_nodes"] for p in found.values()):
            return found
        if time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def partitions(bootstrap: str, topic: str) -> dict[int, dict]:
    """Each partition of the topic as the cluster describes it (leader_id, replica_nodes, isr_nodes)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        (described,) = admin.describe_topics([topic])
        return {p["partition_index"]: p for p in described["partitions"]}
    finally:
        admin.close()


def test_the_topics_are_replicated_three_times_and_a_killed_leader_loses_and_doubles_nothing(cluster):
    settings, nodes = cluster
    bootstrap = settings.kafka_bootstrap
    ensure_topics(bootstrap)
    assert {len(p["replica_nodes"]) for p in described(bootstrap, SETTLEMENT_EVENTS.name).values()} == {3}

    codec = AvroCodec()
    producer = EventProducer(bootstrap, codec, client_id="cluster-drill")
    record = SAMPLES["cn.hub.settlement.SettlementCompleted"]
    acknowledged: list[int] = []
    lock = threading.Lock()
    victim = nodes[partitions(bootstrap, SETTLEMENT_EVENTS.name)[0]["leader_id"] - 1]  # the leader of partition 0

    def sent(n):
        def done(_metadata):
            with lock:
                acknowledged.append(n)
        return done

    total, killed_at = 3000, 1000
    for n in range(total):
        if n == killed_at:
            producer.flush()
            os.kill(victim.pid(), signal.SIGKILL)  # kill -9 the leader mid-stream
        future = producer.send(SETTLEMENT_EVENTS.name, f"pool-{n % 12}", "SettlementCompleted",
                               dict(record, settlement_id=f"DRILL-{n:05d}"))
        future.add_callback(sent(n))
        if n % 200 == 0:
            time.sleep(0.05)
    producer.flush()
    assert sorted(acknowledged) == list(range(total))  # with 2 of 3 in sync, every write is acknowledged

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    try:
        tps = [TopicPartition(SETTLEMENT_EVENTS.name, p) for p in consumer.partitions_for_topic(SETTLEMENT_EVENTS.name)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        seen: list[str] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and any(consumer.position(tp) < ends[tp] for tp in tps):
            for batch in consumer.poll(timeout_ms=500).values():
                seen += [codec.decode(m.value).value["settlement_id"] for m in batch]
    finally:
        consumer.close()
    drill = [s for s in seen if s.startswith("DRILL-")]
    assert len(drill) == len(set(drill)) == total  # nothing lost, nothing twice

    victim.start()  # the broker comes back and catches up from its peers
    def all_in_sync() -> bool:
        return all(len(p["isr_nodes"]) == 3 for p in partitions(bootstrap, SETTLEMENT_EVENTS.name).values())
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and not all_in_sync():
        time.sleep(1)
    assert all_in_sync()
