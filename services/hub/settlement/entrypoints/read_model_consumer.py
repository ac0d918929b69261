"""Builds the settle service's Redis read model from registration.events and reference.*, on
the kernel's consumer loop (decoding, dead letters, poison isolation, partitions followed).

Positions live in Redis beside the data (the read model is the loop's PositionStore), not in a
consumer group: when Redis is flushed the epoch key vanishes, and the loop is rewound to the
beginning of the compacted topics. The model is marked ready once every partition has caught
up. The loop raises on any fault of a server; the service's Supervisor builds it anew.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from typing import Callable

from hub.messaging import AvroCodec, EventProducer
from hub.messaging.consumer import ConsumerLoop, ConsumerSettings, Message
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
        self.stop = stop or threading.Event()
        self._loop_stop = threading.Event()  # ends the loop: on `stop`, or once ready with until_ready
        self.until_ready = False
        self.epoch: str | None = None
        self.rebuilds = 0
        self._last_check = 0.0
        settings = ConsumerSettings(group_id=GROUP_NAME, topics=topics, client_id=GROUP_NAME,
                                    max_batch_records=max_batch_records, poll_timeout_ms=poll_timeout_ms,
                                    rescan_s=rescan_s)
        self.loop = ConsumerLoop(bootstrap, settings, self._apply, codec, dead_letters, self._loop_stop,
                                 beat=beat, after_poll=self._after_poll, positions=read_model)

    def run(self, until_ready: bool = False) -> None:
        self.until_ready = until_ready
        self._check_epoch()
        self.loop.run()

    def _apply(self, messages: list[Message]) -> None:
        self.read_model.apply([(m.record_name, m.value, m.raw) for m in messages])

    def _check_epoch(self) -> bool:
        """True when the read model is not the one being built (Redis was flushed): a new epoch
        is started, to be built from the beginning."""
        epoch = self.read_model.epoch()
        if epoch is not None and epoch == self.epoch:
            return False
        if epoch is None:
            epoch = uuid.uuid4().hex
            self.read_model.start_epoch(epoch)
            self.rebuilds += 1
            log.info("read model empty: rebuilding from the start of %s", ", ".join(self.loop.settings.topics))
        self.epoch = epoch
        return True

    def _after_poll(self) -> None:
        if self.stop.is_set():
            self._loop_stop.set()
            return
        if self._check_epoch():
            self.loop.rewind()  # Redis was flushed under us
            return
        now = time.monotonic()
        if now - self._last_check < 1.0:
            return
        self._last_check = now
        if self.loop.caught_up():
            if not self.read_model.ready() and self.read_model.mark_ready(self.epoch):
                log.info("read model ready")
            if self.until_ready:
                self._loop_stop.set()
