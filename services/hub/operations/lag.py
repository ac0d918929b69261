"""Consumer lag per group, topic and partition, judged by its trend over a window (as Burrow
does) rather than by a fixed number.

    evaluate(samples) -> (state, eta_s)      pure: no I/O
    sample_groups(bootstrap, ...)            reads committed and end offsets from Kafka

States: OK (caught up, or catching up), GROWING (lag rose in every interval while the group
commits), STALLED (the group commits nothing while new messages arrive), STOPPED (the group
commits nothing, lag > 0, nothing new arrives either), REWOUND (a committed offset went back).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from enum import Enum
from typing import Iterable


class LagState(str, Enum):
    OK = "OK"
    GROWING = "GROWING"
    STALLED = "STALLED"
    STOPPED = "STOPPED"
    REWOUND = "REWOUND"


@dataclass(frozen=True)
class Sample:
    at_s: float
    committed: int  # the group's committed offset (-1: none yet, read as 0)
    end: int  # the partition's log-end offset

    @property
    def lag(self) -> int:
        return max(0, self.end - max(self.committed, 0))


def evaluate(samples: list[Sample]) -> tuple[LagState, float | None]:
    """The partition's state over the window and the seconds to catch up (None: never, at this rate)."""
    if not samples:
        raise ValueError("no samples")
    last = samples[-1]
    pairs = list(zip(samples, samples[1:]))
    if any(b.committed < a.committed for a, b in pairs):
        return LagState.REWOUND, None
    if last.lag == 0:
        return LagState.OK, 0.0
    if len(samples) < 2:
        return LagState.OK, None
    first = samples[0]
    if last.committed == first.committed:
        return (LagState.STALLED if last.end > first.end else LagState.STOPPED), None
    if all(b.lag > a.lag for a, b in pairs):
        return LagState.GROWING, None
    elapsed = last.at_s - first.at_s
    consumed_per_s = (last.committed - first.committed) / elapsed if elapsed > 0 else 0.0
    produced_per_s = (last.end - first.end) / elapsed if elapsed > 0 else 0.0
    net = consumed_per_s - produced_per_s
    return LagState.OK, (last.lag / net if net > 0 else math.inf)


@dataclass(frozen=True)
class PartitionLag:
    group: str
    topic: str
    partition: int
    committed: int
    end: int
    lag: int
    state: LagState
    eta_s: float | None


def sample_groups(bootstrap: str, groups: Iterable[str] | None = None, samples: int = 5,
                  interval_s: float = 2.0) -> list[PartitionLag]:
    """Sample every (or the named) consumer group's committed and end offsets `samples` times."""
    from kafka import KafkaAdminClient, KafkaConsumer

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="hub-lag")
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    try:
        # kafka-python 3: list_groups() gives dicts; list_group_offsets() takes every group at once.
        names = sorted(groups) if groups else sorted(g["group_id"] for g in admin.list_groups()
                                                     if g.get("protocol_type") in ("consumer", ""))
        history: dict[tuple[str, str, int], list[Sample]] = {}
        for n in range(samples):
            if n:
                time.sleep(interval_s)
            now = time.monotonic()
            by_group = admin.list_group_offsets(names) if names else {}
            # A group may still hold offsets of a topic deleted since (asking its end would time out).
            live = {t: consumer.partitions_for_topic(t) for t in consumer.topics()}
            partitions = {tp for offsets in by_group.values() for tp in offsets if tp.partition in live.get(tp.topic, ())}
            ends = consumer.end_offsets(list(partitions)) if partitions else {}
            for group, offsets in by_group.items():
                for tp, meta in offsets.items():
                    if tp not in ends:  # a topic deleted, or a partition without a leader, just now
                        continue
                    history.setdefault((group, tp.topic, tp.partition), []).append(Sample(now, meta.offset, ends[tp]))
    finally:
        consumer.close()
        admin.close()
    out = []
    for (group, topic, partition), series in sorted(history.items()):
        state, eta = evaluate(series)
        last = series[-1]
        out.append(PartitionLag(group, topic, partition, last.committed, last.end, last.lag, state, eta))
    return out
