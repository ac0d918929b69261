"""The fault suite's own Kafka cluster (`--brokers 3`): three local KRaft nodes (each broker and
controller) made fresh for a run, on ports of their own, with every topic on three brokers and
min.insync.replicas 2 — and the cluster faults the suite injects into it under load: the leader
of settlement.events' partitions killed, two of the three brokers killed, a broker's data
directory wiped and the broker rejoined (formatted again with the cluster's id)."""

from __future__ import annotations

import os
import shutil
import signal
import time

from kafka import KafkaAdminClient

from hub.development import local_services

CATCH_UP_S = 180.0


class Cluster:
    def __init__(self, local: local_services.LocalSettings, first_port: int = 29192):
        base = local_services.free_ports(first_port, 6)
        self.settings = local_services.LocalSettings(
            state_dir=local.state_dir / "fault-cluster", cache_dir=local.cache_dir, kafka_port=base,
            kafka_controller_port=base + 1, kafka_brokers=3, kafka_heap_mb=512)
        self.nodes = [local_services.Kafka(self.settings, n) for n in (1, 2, 3)]
        self.cluster_id = local_services.new_cluster_id()
        self.down: list[local_services.Kafka] = []

    @property
    def bootstrap(self) -> str:
        return self.settings.kafka_bootstrap

    def start(self) -> None:
        shutil.rmtree(self.settings.state_dir, ignore_errors=True)
        for node in self.nodes:
            node.install()
            node.start(wait=False, cluster_id=self.cluster_id)
        for node in self.nodes:  # a cluster answers once a majority of its controllers runs
            node.wait()

    def stop(self) -> None:
        """Killed, not shut down (its last node would wait for a quorum that is gone), and removed."""
        for node in self.nodes:
            if (pid := node.pid()) is not None:
                os.kill(pid, signal.SIGKILL)
                local_services.wait_for_exit(pid, 30)
        shutil.rmtree(self.settings.state_dir, ignore_errors=True)

    # -- what the cluster says -----------------------------------------------------------------

    def partitions(self, topic: str) -> dict[int, dict]:
        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=10_000)
        try:
            (described,) = admin.describe_topics([topic])
            return {p["partition_index"]: p for p in described["partitions"]}
        finally:
            admin.close()

    def leader_of(self, topic: str, partition: int = 0) -> local_services.Kafka:
        return self.nodes[self.partitions(topic)[partition]["leader_id"] - 1]

    def in_sync(self, topic: str) -> bool:
        """Every partition of the topic has all three replicas in sync."""
        try:
            return all(len(p["isr_nodes"]) == 3 for p in self.partitions(topic).values())
        except Exception:  # a broker just back may not answer metadata yet
            return False

    # -- faults --------------------------------------------------------------------------------

    def kill(self, *nodes: local_services.Kafka) -> None:
        for node in nodes:
            pid = node.pid()
            assert pid is not None, f"{node.name} is not running"
            os.kill(pid, signal.SIGKILL)
            local_services.wait_for_exit(pid, 30)
            self.down.append(node)

    def restart_down(self) -> None:
        """Start the killed nodes again and wait until each answers."""
        nodes, self.down = self.down, []
        for node in nodes:
            node.start(wait=False)
        for node in nodes:
            node.wait()

    def wipe(self, node: local_services.Kafka) -> None:
        """Kill the node, lose its data directory, format it again with the cluster's id, start it."""
        self.kill(node)
        self.down.remove(node)
        shutil.rmtree(node.data)
        node.start(cluster_id=self.cluster_id)

    def deliveries(self, topic: str) -> tuple[int, int]:
        """(messages on the topic, distinct event ids among them): the difference is what the
        outbox relays published again after a fault (clearing counts each once, by id)."""
        from kafka import KafkaConsumer, TopicPartition

        from hub.messaging import AvroCodec

        codec, ids, messages = AvroCodec(logical_types=False), set(), 0
        consumer = KafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False)
        try:
            tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
            consumer.assign(tps)
            consumer.seek_to_beginning(*tps)
            ends = consumer.end_offsets(tps)
            deadline = time.monotonic() + 120
            while any(consumer.position(tp) < ends[tp] for tp in tps) and time.monotonic() < deadline:
                for records in consumer.poll(timeout_ms=1000).values():
                    messages += len(records)
                    ids.update(str(codec.decode(r.value).value["event_id"]) for r in records)
        finally:
            consumer.close()
        return messages, len(ids)

    def wait_in_sync(self, topic: str, limit_s: float = CATCH_UP_S) -> float:
        """Seconds until every partition of the topic has its three replicas in sync again."""
        t0 = time.monotonic()
        while not self.in_sync(topic):
            if time.monotonic() - t0 > limit_s:
                raise RuntimeError(f"{topic} not back to three in-sync replicas within {limit_s:.0f} s")
            time.sleep(1)
        return time.monotonic() - t0
