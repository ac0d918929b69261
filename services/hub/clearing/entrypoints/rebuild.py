"""`hub clearing rebuild`'s Kafka side: the statements topic read whole (what clearing published,
as the entries the rebuild carries out again), and the settlement topic read from offset 0 up to
the offsets each close names, then to the ends it had when the rebuild began. Undecodable
messages are passed over, as the live consumer dead-letters them."""

from __future__ import annotations

import logging
import time
from typing import Iterator, Mapping

from kafka import KafkaConsumer, TopicPartition

from hub.clearing.adapters import journal_log
from hub.clearing.service_layer.rebuilding import Rebuilder, RebuildRefused, Rebuilt
from hub.messaging import AvroCodec, Message, UndecodableMessage

log = logging.getLogger(__name__)
STALL_S = 60.0  # no message for this long while one is still due: the log is not what it said


class _Reader:
    """One topic's partitions, assigned (no group: nothing committed), from their beginnings."""

    def __init__(self, bootstrap: str, topic: str, codec: AvroCodec, from_zero: bool):
        self.codec, self.topic = codec, topic
        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                      client_id="clearing-rebuild", max_poll_records=5000)
        deadline = time.monotonic() + STALL_S
        while not (partitions := self.consumer.partitions_for_topic(topic)):
            if time.monotonic() > deadline:
                raise RebuildRefused(f"topic {topic} does not exist on {bootstrap}")
            time.sleep(0.5)
        self.tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        self.consumer.assign(self.tps)
        begins = self.consumer.beginning_offsets(self.tps)
        if from_zero and any(off > 0 for off in begins.values()):
            gone = ", ".join(f"{tp.partition}: {off}" for tp, off in sorted(begins.items()) if off > 0)
            raise RebuildRefused(f"{topic} no longer holds its first events (retention; partition: first offset "
                                 f"{gone}): restore clearing's database from its backup instead")
        self.ends = {(tp.topic, tp.partition): off for tp, off in self.consumer.end_offsets(self.tps).items()}
        self.consumer.seek_to_beginning(*self.tps)
        self.held: dict[tuple[str, int], list[Message]] = {}  # read past a target: handed out later
        self.undecodable = 0

    def until(self, targets: Mapping[tuple[str, int], int]) -> Iterator[list[Message]]:
        goal = {tp: min(targets.get((tp.topic, tp.partition), 0), self.ends[(tp.topic, tp.partition)])
                for tp in self.tps}
        held = [m for tp in self.tps for m in self._take_held(tp, goal[tp])]
        if held:
            yield held
        while True:
            due = [tp for tp in self.tps if self._next(tp) < goal[tp]]
            if not due:
                return
            self.consumer.pause(*[tp for tp in self.tps if tp not in due])
            self.consumer.resume(*due)
            batch = self._poll(due, goal)
            if batch:
                yield batch

    def rest(self) -> Iterator[list[Message]]:
        return self.until(self.ends)

    def close(self) -> None:
        self.consumer.close(autocommit=False)

    def _next(self, tp: TopicPartition) -> int:
        held = self.held.get((tp.topic, tp.partition))
        return held[0].offset if held else self.consumer.position(tp)

    def _take_held(self, tp: TopicPartition, goal: int) -> list[Message]:
        held = self.held.get((tp.topic, tp.partition), [])
        out = [m for m in held if m.offset < goal]
        self.held[(tp.topic, tp.partition)] = [m for m in held if m.offset >= goal]
        return out

    def _poll(self, due: list[TopicPartition], goal: dict[TopicPartition, int]) -> list[Message]:
        deadline = time.monotonic() + STALL_S
        while True:
            polled = self.consumer.poll(timeout_ms=1000)
            if polled:
                break
            if time.monotonic() > deadline:
                raise RebuildRefused(f"{self.topic} gave nothing for {STALL_S:.0f} s while partitions "
                                     f"{[tp.partition for tp in due]} had events still to read")
        out = []
        for tp, records in polled.items():
            for record in records:
                message = self._decoded(record)
                if message is None:
                    continue
                if record.offset < goal[tp]:
                    out.append(message)
                else:
                    self.held.setdefault((tp.topic, tp.partition), []).append(message)
        return out

    def _decoded(self, record) -> Message | None:
        try:
            decoded = self.codec.decode(record.value)
        except UndecodableMessage as exc:
            self.undecodable += 1
            log.warning("passing over %s[%d]@%d: %s (the live consumer dead-letters it)", record.topic,
                        record.partition, record.offset, exc)
            return None
        return Message.read(record, decoded)


def journal(bootstrap: str, topic: str, codec: AvroCodec) -> list[journal_log.Entry]:
    """Everything clearing published on its statements topic, as entries in the order they happened."""
    reader = _Reader(bootstrap, topic, codec, from_zero=True)
    try:
        messages = [m for batch in reader.rest() for m in batch]
    finally:
        reader.close()
    return journal_log.entries(sorted(messages, key=lambda m: (m.partition, m.offset)))


def settlement_log(bootstrap: str, topic: str, codec: AvroCodec) -> _Reader:
    """The settlement topic from offset 0 (refused if retention has taken its first events)."""
    return _Reader(bootstrap, topic, codec, from_zero=True)


def rebuild(clearing, progress=lambda _what, _n: None) -> Rebuilt:
    """Clearing (bootstrapped on an empty database) rebuilt from its topics."""
    s, service = clearing.settings, clearing.service
    entries = journal(s.kafka_bootstrap, s.statements_topic, clearing.codec)
    settlement = settlement_log(s.kafka_bootstrap, s.topic, service.events)
    try:
        return Rebuilder(service.repository, clearing.codec, service.publishing, service.advance_rule,
                         service.anomaly_rule).run(entries, settlement, progress)
    finally:
        settlement.close()
