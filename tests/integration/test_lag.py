"""`hub lag` sees a stopped consumer's lag grow and its recovery after restart."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

from tests.fixtures.avro.samples import SAMPLES


REPO = Path(__file__).resolve().parents[2]


def hub_lag(servers, group: str) -> tuple[int, list[dict]]:
    env = {**os.environ, "HUB_KAFKA_BOOTSTRAP": servers.kafka_bootstrap}
    done = subprocess.run([sys.executable, "-m", "hub.cli", "lag", "--group", group, "--samples", "3",
                           "--interval", "1", "--json"], env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
    return done.returncode, json.loads(done.stdout)


def test_lag_grows_while_a_consumer_is_stopped_and_recovers_after_restart(servers, producer, topic_factory,
                                                                         scratch_database):
    topic = topic_factory()
    group = f"g-{uuid.uuid4().hex[:8]}"

    def consume_once():
        done = subprocess.run([sys.executable, "-m", "tests.integration.consumer_process", servers.kafka_bootstrap,
                               topic, group, scratch_database, "until-idle"], cwd=REPO, capture_output=True,
                              text=True, timeout=180)
        assert done.returncode == 0, done.stderr[-2000:]

    def send(n):
        for _ in range(n):
            producer.send(topic, "360400", "SettlementCompleted",
                          dict(SAMPLES["cn.hub.settlement.SettlementCompleted"], event_id=uuid.uuid4()))
        producer.flush()

    send(5)
    consume_once()  # the group exists and is caught up
    rc, rows = hub_lag(servers, group)
    assert rc == 0 and [(r["lag"], r["state"]) for r in rows] == [(0, "OK")]

    # Stopped consumer, messages still arriving: lag grows, the group is STALLED.
    import threading
    stop = threading.Event()

    def keep_sending():
        while not stop.is_set():
            send(3)
            stop.wait(0.3)

    sender = threading.Thread(target=keep_sending)
    sender.start()
    try:
        rc, rows = hub_lag(servers, group)
    finally:
        stop.set()
        sender.join()
    assert rc == 1 and rows[0]["state"] == "STALLED" and rows[0]["lag"] > 0
    rc, rows = hub_lag(servers, group)
    assert rows[0]["state"] == "STOPPED" and rows[0]["lag"] > 0  # nothing new, nothing consumed

    consume_once()
    rc, rows = hub_lag(servers, group)
    assert rc == 0 and [(r["lag"], r["state"]) for r in rows] == [(0, "OK")]
