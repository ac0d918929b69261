"""The consumer loop every service runs: decode, hand a batch over, commit only after the effect.

Four failure paths, as STYLE.md asks:
- undecodable bytes go to `<topic>.dlq` (original bytes, reason in headers and envelope),
  and their offset is committed with the batch: retrying bytes that cannot be read helps nobody;
- a business rejection is the handler's to record (it is an effect like any other);
- an infrastructure fault in the handler (a lost database, broker or Redis: `is_transient`)
  propagates: no offsets are committed, and the service's Supervisor builds the loop anew after
  a backoff, so the batch is delivered again. Handlers therefore make every effect idempotent
  by event id;
- any other handler failure is a poison suspect: the batch is handed over again message by
  message, and a message that fails `poison_attempts` times in a row is dead-lettered with its
  reason and given to `on_poison` (the service records it for operators), and the partition
  moves on. One bad event never stops the others.

Positions are the consumer group's committed offsets — or, for a consumer that keeps its
positions beside its data (the settle service's Redis read model), a `PositionStore`: then the
loop reads every partition of its topics itself (no group), starts each where the store says
(or at the beginning), follows partitions added later, and saves positions after each batch.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Protocol

from kafka import KafkaConsumer, TopicPartition
from kafka.structs import OffsetAndMetadata

from hub.messaging.codec import AvroCodec
from hub.messaging.errors import HandlerFailed, UndecodableMessage
from hub.messaging.producer import EventProducer
from hub.messaging.topics import dead_letter_topic
from hub.operations.metrics import CONSUMED, DEAD_LETTERS
from hub.operations.supervision import is_transient

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
    raw: bytes = b""  # the bytes as read, for dead letters and quarantine

    @classmethod
    def read(cls, record: Any, decoded: Any) -> "Message":
        """A Kafka consumer record and what the codec decoded of its value."""
        return cls(record.topic, record.partition, record.offset, record.key, decoded.record_name,
                   decoded.writer_version, decoded.value, record.timestamp, tuple(record.headers or ()), record.value)


BatchHandler = Callable[[list[Message]], None]
PoisonHandler = Callable[[Message, Exception], None]


class PositionStore(Protocol):
    """Where a group-less consumer keeps its positions: "topic:partition" -> the next offset."""

    def load(self) -> dict[str, int]:
        """The stored positions ({}: none, read every partition from its beginning)."""

    def save(self, positions: dict[str, int]) -> None:
        """Store positions after their batch took effect (a crash in between re-handles the batch)."""


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
    poison_attempts: int = 3
    metadata_max_age_ms: int = 30_000  # how soon added partitions are seen
    rescan_s: float = 5.0  # with a PositionStore: how often to look for added partitions


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
        on_poison: PoisonHandler | None = None,
        beat: Callable[..., None] = lambda **_: None,
        after_poll: Callable[[], None] | None = None,
        positions: PositionStore | None = None,
    ):
        self.settings = settings
        self.handler = handler
        self.codec = codec
        self.dead_letters = dead_letters
        self.stop = stop or threading.Event()
        self.handled = 0
        self.dead_lettered = 0
        self.poisoned = 0
        self.on_poison = on_poison
        self.beat = beat
        self.after_poll = after_poll  # runs after every poll and its commit (e.g. closing due days)
        self.positions = positions
        self._last_scan = 0.0
        self._consumer = KafkaConsumer(
            *(() if positions else settings.topics),
            bootstrap_servers=bootstrap,
            group_id=None if positions else settings.group_id,
            client_id=settings.client_id,
            enable_auto_commit=False,
            auto_offset_reset=settings.auto_offset_reset,
            max_poll_records=settings.max_batch_records,
            max_poll_interval_ms=settings.max_poll_interval_ms,
            session_timeout_ms=settings.session_timeout_ms,
            metadata_max_age_ms=settings.metadata_max_age_ms,
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
            if self.positions is not None:
                self.rewind()
            while not self.stop.is_set():
                polled = self._consumer.poll(timeout_ms=self.settings.poll_timeout_ms,
                                             max_records=self.settings.max_batch_records)
                records = [r for batch in polled.values() for r in batch]
                self.beat()
                if self.positions is not None and time.monotonic() - self._last_scan > self.settings.rescan_s:
                    self._follow_partitions()
                if records:
                    idle_since = None
                    self.process(records)
                if self.after_poll is not None:
                    self.after_poll()
                if not records and max_idle_s is not None and self._consumer.assignment():
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
            messages.append(Message.read(record, decoded))
        if dead:
            # The dead letters must be on the broker before their offsets are committed.
            self.dead_letters.flush()
            self.dead_lettered += len(dead)
            CONSUMED.labels(self.settings.group_id, dead[0].topic, "dead_lettered").inc(len(dead))
        if messages:
            try:
                self.handler(messages)
            except Exception as exc:
                if is_transient(exc):
                    raise HandlerFailed(f"handler failed on a batch of {len(messages)}; offsets not committed") from exc
                log.warning("handler failed on a batch of %d (%s): handling it message by message",
                            len(messages), type(exc).__name__)
                self._one_by_one(messages, {(r.topic, r.partition, r.offset): r for r in records})
            self.handled += len(messages)
            CONSUMED.labels(self.settings.group_id, messages[0].topic, "handled").inc(len(messages))
        self._commit(records)

    def _one_by_one(self, messages: list[Message], records: dict[tuple[str, int, int], Any]) -> None:
        """Handle each message alone; quarantine the ones that keep failing (see the module's docstring)."""
        for message in messages:
            for attempt in range(1, self.settings.poison_attempts + 1):
                try:
                    self.handler([message])
                    break
                except Exception as exc:
                    if is_transient(exc):
                        raise HandlerFailed("handler failed on a transient fault; offsets not committed") from exc
                    if attempt < self.settings.poison_attempts:
                        self.stop.wait(0.2 * attempt)
                        continue
                    self._poison(message, records[(message.topic, message.partition, message.offset)], exc)

    def _poison(self, message: Message, record: Any, exc: Exception) -> None:
        reason = UndecodableMessage("handler_failed", f"{type(exc).__name__}: {exc}")
        log.error("quarantining %s[%d]@%d after %d failures: %s", message.topic, message.partition, message.offset,
                  self.settings.poison_attempts, reason.message[:500])
        if self.on_poison is not None:
            self.on_poison(message, exc)  # recorded before the dead letter: a crash between repeats both, harmlessly
        send_dead_letter(self.dead_letters, record, reason, self.settings.group_id, self.settings.client_id)
        self.dead_letters.flush()
        self.poisoned += 1
        CONSUMED.labels(self.settings.group_id, message.topic, "quarantined").inc()

    def _commit(self, records: list[Any]) -> None:
        next_offsets: dict[TopicPartition, int] = {}
        for record in records:
            tp = TopicPartition(record.topic, record.partition)
            next_offsets[tp] = max(next_offsets.get(tp, 0), record.offset + 1)
        if self.positions is not None:
            self.positions.save({f"{tp.topic}:{tp.partition}": off for tp, off in next_offsets.items()})
        else:
            self._consumer.commit({tp: OffsetAndMetadata(off, "", -1) for tp, off in next_offsets.items()})

    # ------------------------------------------------------------------ with a PositionStore

    def rewind(self) -> None:
        """Read every partition of the topics from the positions the store holds now (or from
        the beginning): at the start, and when the store was emptied under the loop."""
        self._last_scan = time.monotonic()
        tps = self._partitions()
        self._consumer.assign(tps)
        self._seek(tps, self.positions.load())

    def _partitions(self) -> list[TopicPartition]:
        return [TopicPartition(topic, p) for topic in self.settings.topics
                for p in sorted(self._consumer.partitions_for_topic(topic) or ())]

    def _seek(self, tps: list[TopicPartition], stored: dict[str, int]) -> None:
        for tp in tps:
            position = stored.get(f"{tp.topic}:{tp.partition}")
            if position is None:
                self._consumer.seek_to_beginning(tp)
            else:
                self._consumer.seek(tp, position)

    def _follow_partitions(self) -> None:
        """Read partitions that appeared since the last look (a topic created, or grown, later)."""
        self._last_scan = time.monotonic()
        self._consumer.topics()  # refreshes the metadata from the broker
        tps = self._partitions()
        added = [tp for tp in tps if tp not in self._consumer.assignment()]
        if added:
            self._consumer.assign(tps)  # kept partitions keep their positions
            self._seek(added, self.positions.load())
            log.info("%s: reading %d more partition(s): %s", self.settings.group_id, len(added),
                     ", ".join(f"{tp.topic}[{tp.partition}]" for tp in added))

    def caught_up(self) -> bool:
        """Every assigned partition read to its end (as the broker knows it now)."""
        tps = list(self._consumer.assignment())
        ends = self._consumer.end_offsets(tps)
        return all(self._consumer.position(tp) >= ends[tp] for tp in tps)

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
