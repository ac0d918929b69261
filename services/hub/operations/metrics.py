"""Prometheus metrics every service exposes on /metrics, and the lag sampler that feeds the
consumer-lag gauges. One registry per process; names carry their unit last."""

from __future__ import annotations

import logging
import math
import threading

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

log = logging.getLogger(__name__)

CONSUMED = Counter("hub_consumer_messages_total", "Messages a consumer loop handled or dead-lettered",
                   ["group", "topic", "outcome"])
DEAD_LETTERS = Counter("hub_dead_letters_total", "Messages sent to a dead-letter topic", ["group", "topic", "code"])
REQUEST_SECONDS = Histogram("hub_request_seconds", "Interface requests by transaction and HTTP status",
                            ["service", "infno", "status"],
                            buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5))
SETTLE_GROUP_SIZE = Histogram("hub_settle_group_size", "Hospital-interface requests decided together in one group transaction",
                              buckets=(1, 2, 4, 8, 16, 32, 64, 128))
SETTLE_GROUP_SECONDS = Histogram("hub_settle_group_seconds", "Time to decide and commit one group",
                                 buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1))
OUTBOX_PUBLISHED = Counter("hub_outbox_published_total", "Outbox rows published to Kafka", ["table"])
CLEARING_APPLIED = Counter("hub_clearing_events_applied_total", "Settlement events applied (new, by event id)")
CLEARING_DAYS_CLOSED = Counter("hub_clearing_days_closed_total", "Clearing days closed")
FUND_RISK_RATIO = Gauge("hub_fund_risk_ratio_pct", "A pool's off-site spending this year as a percentage of the "
                        "pro-rata share of its yearly off-site budget", ["pool", "fund_pay_type"])
FUND_RISK_LEVEL = Gauge("hub_fund_risk_level", "0 OK, 1 WARN, 2 ALARM (the fund-risk watch's thresholds)",
                        ["pool", "fund_pay_type"])
ADVANCE_BALANCE = Gauge("hub_clearing_advance_balance_yuan", "A bureau's advance (预付金) at the clearing centre", ["pool"])
ADVANCE_REQUIRED = Gauge("hub_clearing_advance_required_yuan", "The advance the rule asks a bureau to hold", ["pool"])
ADVANCE_WARNING = Gauge("hub_clearing_advance_warning", "1 while a bureau's advance is under the warning share of "
                        "what it should hold", ["pool"])
CLEARING_QUARANTINED = Gauge("hub_clearing_quarantined_events", "Quarantined settlement events no operator has "
                             "resolved yet (each blocks closing its day)")
LAG_MESSAGES = Gauge("hub_consumer_lag_messages", "Committed-offset lag", ["group", "topic", "partition"])
LAG_STATE = Gauge("hub_consumer_lag_state", "1 for the partition's current lag state", ["group", "topic", "partition", "state"])
LAG_ETA_SECONDS = Gauge("hub_consumer_lag_eta_seconds", "Seconds to catch up at the current rate (+Inf: never)",
                        ["group", "topic", "partition"])


def add_metrics_route(app) -> None:
    """Serve this process's metrics at exactly /metrics (a mounted app would redirect to /metrics/)."""
    from fastapi.responses import Response

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def sample_lag_forever(bootstrap: str, groups: list[str] | None, stop: threading.Event, interval_s: float = 15.0,
                       samples: int = 4, beat=lambda **_: None) -> None:
    """Keep the lag gauges of `groups` current until `stop` is set; raises on a fault (it runs
    under a Supervisor)."""
    from hub.operations.lag import LagState, sample_groups

    while not stop.is_set():
        for row in sample_groups(bootstrap, groups, samples=samples, interval_s=interval_s / samples):
            labels = (row.group, row.topic, str(row.partition))
            LAG_MESSAGES.labels(*labels).set(row.lag)
            LAG_ETA_SECONDS.labels(*labels).set(math.inf if row.eta_s is None else row.eta_s)
            for state in LagState:
                LAG_STATE.labels(*labels, state.value).set(1 if row.state is state else 0)
        beat()


def supervise_lag_sampler(supervisor, service: str, bootstrap: str, stop: threading.Event, interval_s: float) -> None:
    """Add `<service>-lag-sampler` (every group's lag gauges) to a service's Supervisor; it
    shows in the metrics but not in readiness."""
    supervisor.add(f"{service}-lag-sampler",
                   lambda beat: lambda: sample_lag_forever(bootstrap, None, stop, interval_s, beat=beat),
                   stale_after_s=interval_s * 4, critical=False)
