"""The consumer loop every service runs: decode, hand a batch over, commit only after the effect.

Three failure paths, as STYLE.md asks:
- undecodable bytes go to `<topic>.dlq` (original bytes, reason in headers and envelope),
  and their offset is committed with the batch: retrying bytes that cannot be read helps nobody;
- a business rejection is the handler's to record (it is an effect like any other);
- an infrastructure fault in the handler propagates: no offsets are committed, the loop
  stops, and the batch is delivered again when a consumer of the group restarts. Handlers
  therefore make every effect idempotent by event id.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from kafka import KafkaConsumer, TopicPartition
from kafka.structs import OffsetAndMetadata

from hub.messaging.codec import AvroCodec
from hub.messaging.errors import HandlerFailed, UndecodableMessage
from hub.messaging.producer import EventProducer
from hub.messaging.topics import dead_letter_topic
from hub.operations.metrics import CONSUMED, DEAD_LETTERS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Message:
    """One decoded message as a handler sees it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    record_name: str
    writer_version: int
    value: dict[str, Any]
    timestamp_ms: int
    headers: tuple[tuple[str, bytes], ...]


BatchHandler = Callable[[list[Message]], None]


@dataclass(frozen=True)
class ConsumerSettings:
    group_id: str
    topics: tuple[str, ...]
    client_id: str = "hub-consumer"
    max_batch_records: int = 500
    poll_timeout_ms: int = 500
    max_poll_interval_ms: int = 300_000
    session_timeout_ms: int = 10_000
    auto_offset_reset: str = "earliest"


class ConsumerLoop:
    """Polls batches, hands decoded messages to `handler`, then commits their offsets."""

    def __init__(
        self,
        bootstrap: str,
        settings: ConsumerSettings,
        handler: BatchHandler,
        codec: AvroCodec,
        dead_letters: EventProducer,
        stop: threading.Event | None = None,
    ):
        self.settings = settings
        self.handler = handler
        self.codec = codec
        self.dead_letters = dead_letters
        self.stop = stop or threading.Event()
        self.handled = 0
        self.dead_lettered = 0
        self._consumer = KafkaConsumer(
            *settings.topics,
            bootstrap_servers=bootstrap,
            group_id=settings.group_id,
            client_id=settings.client_id,
            enable_auto_commit=False,
            auto_offset_reset=settings.auto_offset_reset,
            max_poll_records=settings.max_batch_records,
            max_poll_interval_ms=settings.max_poll_interval_ms,
            session_timeout_ms=settings.session_timeout_ms,
        )

    def stop_on_signals(self, signals: Iterable[int] = (signal.SIGTERM, signal.SIGINT)) -> None:
        """Finish the batch in hand, commit it, and return from `run` on SIGTERM or SIGINT."""

        def request_stop(signum: int, _frame: object) -> None:
            log.info("signal %s: stopping after the current batch", signum)
            self.stop.set()

        for sig in signals:
            signal.signal(sig, request_stop)

    def run(self, max_idle_s: float | None = None) -> None:
        """Consume until stopped (or, with `max_idle_s`, until nothing arrived for that long)."""
        idle_since: float | None = None
        try:
            while not self.stop.is_set():
                polled = self._consumer.poll(timeout_ms=self.settings.poll_timeout_ms,
                                             max_records=self.settings.max_batch_records)
                records = [r for batch in polled.values() for r in batch]
                if records:
                    idle_since = None
                    self.process(records)
                elif max_idle_s is not None and self._consumer.assignment():
                    # Idle time counts only once the group has given this member partitions:
                    # a join can wait out a dead member's session first.
                    idle_since = idle_since or time.monotonic()
                    if time.monotonic() - idle_since > max_idle_s:
                        return
        finally:
            self._consumer.close(autocommit=False)

    def process(self, records: list[Any]) -> None:
        """Decode, dead-letter, handle and commit one polled batch."""
        messages: list[Message] = []
        dead: list[Any] = []
        for record in records:
            try:
                decoded = self.codec.decode(record.value)
            except UndecodableMessage as exc:
                self._dead_letter(record, exc)
                dead.append(record)
                continue
            messages.append(Message(record.topic, record.partition, record.offset, record.key,
                                    decoded.record_name, decoded.writer_version, decoded.value,
                                    record.timestamp, tuple(record.headers or ())))
        if dead:
            # The dead letters must be on the broker before their offsets are committed.
            self.dead_letters.flush()
            self.dead_lettered += len(dead)
            CONSUMED.labels(self.settings.group_id, dead[0].topic, "dead_lettered").inc(len(dead))
        if messages:
            try:
                self.handler(messages)
            except Exception as exc:
                raise HandlerFailed(f"handler failed on a batch of {len(messages)}; offsets not committed") from exc
            self.handled += len(messages)
            CONSUMED.labels(self.settings.group_id, messages[0].topic, "handled").inc(len(messages))
        self._commit(records)

    def _commit(self, records: list[Any]) -> None:
        next_offsets: dict[TopicPartition, int] = {}
        for record in records:
            tp = TopicPartition(record.topic, record.partition)
            next_offsets[tp] = max(next_offsets.get(tp, 0), record.offset + 1)
        self._consumer.commit({tp: OffsetAndMetadata(off, "", -1) for tp, off in next_offsets.items()})

    def _dead_letter(self, record: Any, exc: UndecodableMessage) -> None:
        send_dead_letter(self.dead_letters, record, exc, self.settings.group_id, self.settings.client_id)

    def close(self) -> None:
        self.stop.set()


def send_dead_letter(producer: EventProducer, record: Any, exc: UndecodableMessage, group: str, client_id: str) -> None:
    """Queue `record` on `<topic>.dlq` with the reason in the envelope and the headers.
    The caller flushes the producer before it commits the record's offset."""
    log.warning("dead-lettering %s[%d]@%d: %s", record.topic, record.partition, record.offset, exc.code)
    DEAD_LETTERS.labels(group, record.topic, exc.code).inc()
    envelope = {
        "event_id": str(uuid.uuid4()),
        "event_time": int(time.time() * 1000),
        "producer": client_id,
        "schema_version": 1,
        "source_topic": record.topic,
        "source_partition": record.partition,
        "source_offset": record.offset,
        "consumer_group": group,
        "source_key": record.key,
        "source_value": record.value,
        "error_code": exc.code,
        "error_message": exc.message[:2000],
    }
    headers = [
        ("dlq.source.topic", record.topic.encode()),
        ("dlq.source.partition", str(record.partition).encode()),
        ("dlq.source.offset", str(record.offset).encode()),
        ("dlq.error.code", exc.code.encode()),
        ("dlq.error.message", exc.message[:500].encode()),
    ]
    producer.send(dead_letter_topic(record.topic), record.key, "cn.hub.messaging.DeadLetter", envelope, headers)
