"""Consumes settlement.events into the clearing tables and closes days at their cut-off.

The Kafka loop is the kernel's ConsumerLoop: offsets are committed only after a batch's
effect is committed, and every effect is applied once by event id; an event that keeps
failing is quarantined (`ClearingService.quarantine`, the row made by adapters/wire.py) and blocks its day's close until an
operator resolves it. Every `check_every_s` it also closes the days whose cut-off has passed
on every partition.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

from hub.clearing.adapters import wire
from hub.clearing.bootstrap import Clearing
from hub.clearing.service_layer.closing import DayBlocked
from hub.messaging import ConsumerLoop, ConsumerSettings

log = logging.getLogger(__name__)


class ClearingConsumer:
    def __init__(self, clearing: Clearing, stop: threading.Event | None = None, check_every_s: float = 5.0,
                 auto_close: bool = True, beat: Callable[..., None] = lambda **_: None):
        self.clearing = clearing
        self.stop = stop or threading.Event()
        self.check_every_s = check_every_s
        self.auto_close = auto_close
        self._last_check = 0.0
        # Batches of up to 5,000 events: a batch's cost is mostly fixed (one transaction, two COPYs,
        # one offset commit), so bigger batches read closer to Kafka's own pace.
        settings = ConsumerSettings(group_id=clearing.settings.group_id, topics=(clearing.settings.topic,),
                                    client_id="interregion-clearing", max_batch_records=5000)
        service = clearing.service
        self.loop = ConsumerLoop(clearing.settings.kafka_bootstrap, settings,
                                 lambda batch: service.apply([wire.record(m) for m in batch]), service.events,
                                 clearing.producer("clearing-dlq"), self.stop,
                                 on_poison=lambda m, exc: service.quarantine(wire.quarantined(m, exc, service.clock())),
                                 beat=beat, after_poll=self._maybe_close)
        self._offsets = KafkaConsumer(bootstrap_servers=clearing.settings.kafka_bootstrap, group_id=None)
        self._admin = KafkaAdminClient(bootstrap_servers=clearing.settings.kafka_bootstrap, client_id="clearing-close")

    def _maybe_close(self) -> None:
        if not self.auto_close or time.monotonic() - self._last_check < self.check_every_s:
            return
        self._last_check = time.monotonic()
        topic = self.clearing.settings.topic
        tps = [TopicPartition(topic, p) for p in sorted(self._offsets.partitions_for_topic(topic) or ())]
        ends = {(tp.topic, tp.partition): off for tp, off in self._offsets.end_offsets(tps).items()}
        group = self.clearing.settings.group_id
        committed = {(tp.topic, tp.partition): meta.offset for tp, meta in
                     self._admin.list_group_offsets([group]).get(group, {}).items() if tp.topic == topic}
        for day in self.clearing.service.due_days(ends, committed):
            try:
                result = self.clearing.service.close_day(day)
            except DayBlocked as exc:  # quarantined since due_days looked: shown on the status page
                log.warning("%s", exc)
                return
            if not result.already_closed:  # another replica may have closed it a moment before
                log.info("closed clearing day %s (cycle %s; %s)", day, result.cycle_id,
                         ", ".join(f"{step} {seconds:.1f} s" for step, seconds in result.phases.items()))

    def run(self, max_idle_s: float | None = None) -> None:
        try:
            self.loop.run(max_idle_s=max_idle_s)
        finally:
            self._offsets.close()
            self._admin.close()
