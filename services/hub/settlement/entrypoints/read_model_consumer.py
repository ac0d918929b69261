"""Builds the settle service's Redis read model from registration.events and reference.*.

Positions live in Redis beside the data (see adapters/read_model.py), not in a consumer group:
when Redis is flushed the epoch key vanishes, and this loop starts again from the beginning
of the compacted topics. It marks the model ready once every partition has caught up.

It follows the topics' partitions (re-read every `rescan_s`): a topic created, or given more
partitions, after the loop started is read too. It raises on any fault; the service's
Supervisor builds it anew after a backoff.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from typing import Callable

from kafka import KafkaConsumer, TopicPartition

from hub.messaging import AvroCodec, EventProducer, UndecodableMessage, send_dead_letter
from hub.messaging.topics import REFERENCE_CATALOGUE, REFERENCE_POLICIES, REGISTRATION_EVENTS
from hub.settlement.adapters.read_model import ReadModel

log = logging.getLogger(__name__)
TOPICS = (REGISTRATION_EVENTS.name, REFERENCE_POLICIES.name, REFERENCE_CATALOGUE.name)
GROUP_NAME = "settlement-read-model"


class ReadModelConsumer:
    def __init__(self, bootstrap: str, read_model: ReadModel, codec: AvroCodec, dead_letters: EventProducer,
                 stop: threading.Event | None = None, max_batch_records: int = 2000, poll_timeout_ms: int = 200,
                 beat: Callable[..., None] = lambda **_: None, rescan_s: float = 5.0,
                 topics: tuple[str, ...] = TOPICS):
        self.read_model = read_model
        self.codec = codec
        self.dead_letters = dead_letters
        self.stop = stop or threading.Event()
        self.max_batch_records = max_batch_records
        self.poll_timeout_ms = poll_timeout_ms
        self.beat = beat
        self.rescan_s = rescan_s
        self.topics = topics
        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
                                      client_id=GROUP_NAME, auto_offset_reset="earliest")
        self.epoch: str | None = None
        self.rebuilds = 0

    def _partitions(self) -> list[TopicPartition]:
        tps = []
        for topic in self.topics:
            for p in sorted(self.consumer.partitions_for_topic(topic) or ()):
                tps.append(TopicPartition(topic, p))
        return tps

    def _start(self) -> None:
        """Assign every partition and seek to the positions stored with the data (or the start)."""
        tps = self._partitions()
        self.consumer.assign(tps)
        stored = self.read_model.offsets() if self.read_model.epoch() else {}
        if not stored:
            self.epoch = uuid.uuid4().hex
            self.read_model.start_epoch(self.epoch)
            self.rebuilds += 1
            log.info("read model empty: rebuilding from the start of %s", ", ".join(self.topics))
        else:
            self.epoch = self.read_model.epoch()
        self._seek(tps, stored)

    def _seek(self, tps: list[TopicPartition], stored: dict[str, int]) -> None:
        """Each partition to the position stored with the data, or to its start."""
        for tp in tps:
            key = f"{tp.topic}:{tp.partition}"
            if key in stored:
                self.consumer.seek(tp, stored[key])
            else:
                self.consumer.seek_to_beginning(tp)

    def _follow_partitions(self) -> None:
        """Read partitions that appeared since the last look, from their stored position or the start."""
        self.consumer.topics()  # refreshes the metadata from the broker
        tps = self._partitions()
        added = [tp for tp in tps if tp not in self.consumer.assignment()]
        if not added:
            return
        self.consumer.assign(tps)  # kept partitions keep their positions
        self._seek(added, self.read_model.offsets())
        log.info("read model: reading %d more partition(s): %s", len(added),
                 ", ".join(f"{tp.topic}[{tp.partition}]" for tp in added))

    def _caught_up(self) -> bool:
        tps = list(self.consumer.assignment())
        ends = self.consumer.end_offsets(tps)
        return all(self.consumer.position(tp) >= ends[tp] for tp in tps)

    def run(self, until_ready: bool = False) -> None:
        self._start()
        last_check = last_scan = time.monotonic()
        try:
            while not self.stop.is_set():
                if self.read_model.epoch() != self.epoch:
                    self._start()  # Redis was flushed under us
                polled = self.consumer.poll(timeout_ms=self.poll_timeout_ms, max_records=self.max_batch_records)
                records = [r for batch in polled.values() for r in batch]
                if records:
                    self._apply(records)
                self.beat()
                now = time.monotonic()
                if now - last_scan > self.rescan_s:
                    last_scan = now
                    self._follow_partitions()
                if not records or now - last_check > 1.0:
                    last_check = now
                    if self._caught_up():
                        if not self.read_model.ready():
                            self.read_model.mark_ready()
                            log.info("read model ready")
                        if until_ready:
                            return
        finally:
            self.consumer.close()

    def _apply(self, records) -> None:
        decoded, dead = [], 0
        for record in records:
            try:
                d = self.codec.decode(record.value)
            except UndecodableMessage as exc:
                send_dead_letter(self.dead_letters, record, exc, GROUP_NAME, GROUP_NAME)
                dead += 1
                continue
            decoded.append((d.record_name, d.value, record.value))
        if dead:
            self.dead_letters.flush()
        offsets: dict[str, int] = {}
        for record in records:
            key = f"{record.topic}:{record.partition}"
            offsets[key] = max(offsets.get(key, 0), record.offset + 1)
        self.read_model.apply(decoded, offsets)
