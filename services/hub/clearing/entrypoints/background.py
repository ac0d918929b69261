"""The clearing service's background loops: the settlement-event consumer (which also closes due
days), the outbox relay, and the status and lag samplers, under one Supervisor."""

from __future__ import annotations

from hub.clearing.adapters import database as db
from hub.clearing.bootstrap import Clearing
from hub.clearing.entrypoints.consumer import ClearingConsumer
from hub.messaging import ensure_topics
from hub.messaging.outbox import supervise_relay
from hub.operations.metrics import supervise_lag_sampler
from hub.operations.status import sample_status_forever
from hub.operations.supervision import Supervisor


def background(clearing: Clearing, stop, history, consume: bool = True, relay: bool = True,
               interval_s: float = 15.0):
    """The service's background loops under one Supervisor (not started): the settlement-event
    consumer (which also closes due days), the outbox relay, and the status and lag samplers."""
    bootstrap_servers = clearing.settings.kafka_bootstrap
    supervisor = Supervisor(stop)

    def consumer_loop(beat):
        ensure_topics(bootstrap_servers)
        return ClearingConsumer(clearing, stop, beat=beat).run

    if consume:
        # Closing a large day happens inside this loop: it may be silent for minutes.
        supervisor.add("clearing-consumer", consumer_loop, stale_after_s=300)
    if relay:
        supervise_relay(supervisor, "clearing", clearing.engine, db.outbox, db.OUTBOX_RELAY_LOCK,
                        lambda: clearing.producer("clearing-outbox"), stop, bootstrap_servers)
    supervisor.add("clearing-status-sampler",
                   lambda beat: lambda: sample_status_forever(bootstrap_servers, history, stop, interval_s, beat=beat),
                   stale_after_s=interval_s * 4 + 10, critical=False)
    supervise_lag_sampler(supervisor, "clearing", bootstrap_servers, stop, interval_s)
    return supervisor
