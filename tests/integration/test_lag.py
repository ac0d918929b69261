"""`hub lag` sees a stopped consumer's lag grow and its recovery after restart."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import sqlalchemy as sa

from tests.fixtures.avro.samples import SAMPLES
from tests.integration.settlement_helpers import wait_for


REPO = Path(__file__).resolve().parents[2]


def hub_lag(servers, group: str) -> tuple[int, list[dict]]:
    env = {**os.environ, "HUB_KAFKA_BOOTSTRAP": servers.kafka_bootstrap}
    done = subprocess.run([sys.executable, "-m", "hub.cli", "lag", "--group", group, "--samples", "3",
                           "--interval", "1", "--json"], env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
    return done.returncode, json.loads(done.stdout)


def lag_metrics(base: str, group: str) -> tuple[float, str]:
    """(lag, state) of the group's partition 0 as the service's /metrics reports them."""
    import httpx

    lag, state = None, None
    for line in httpx.get(base + "/metrics", timeout=5).text.splitlines():
        if line.startswith("hub_consumer_lag_messages{") and f'group="{group}"' in line:
            lag = float(line.rsplit(" ", 1)[1])
        if line.startswith("hub_consumer_lag_state{") and f'group="{group}"' in line and line.endswith(" 1.0"):
            state = line.split('state="', 1)[1].split('"', 1)[0]
    return lag, state


def test_lag_grows_while_a_consumer_is_stopped_and_recovers_after_restart(servers, producer, topic_factory,
                                                                         scratch_database):
    topic = topic_factory()
    group = f"g-{uuid.uuid4().hex[:8]}"
    # A service process whose /metrics carries every group's lag, sampled every second.
    port = 21000 + os.getpid() % 1000
    base = f"http://127.0.0.1:{port}"
    metrics_env = {**os.environ, "HUB_KAFKA_BOOTSTRAP": servers.kafka_bootstrap, "HUB_POSTGRES_URL": servers.postgres_url,
                   "HUB_CLEARING_DATABASE": sa.make_url(scratch_database).database, "HUB_STATUS_INTERVAL_S": "1",
                   "HUB_SETTLEMENT_TOPIC": topic_factory(), "HUB_CLEARING_GROUP": f"m-{group}"}
    service = subprocess.Popen([sys.executable, "-m", "hub.cli", "clearing", "serve", "--port", str(port)],
                               env=metrics_env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

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

    try:
        _scenario(servers, group, send, consume_once, base)
    finally:
        service.terminate()
        service.wait(timeout=30)


def _scenario(servers, group, send, consume_once, base):
    send(5)
    consume_once()  # the group exists and is caught up
    rc, rows = hub_lag(servers, group)
    assert rc == 0 and [(r["lag"], r["state"]) for r in rows] == [(0, "OK")]
    wait_for(lambda: lag_metrics(base, group) == (0.0, "OK"), "the metrics to show the group caught up")

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
        stalled = wait_for(lambda: (lambda m: m if m[0] and m[0] > 0 and m[1] == "STALLED" else None)(
            lag_metrics(base, group)), "the metrics to show the lag growing")
    finally:
        stop.set()
        sender.join()
    assert rc == 1 and rows[0]["state"] == "STALLED" and rows[0]["lag"] > 0
    assert stalled[0] > 0
    rc, rows = hub_lag(servers, group)
    assert rows[0]["state"] == "STOPPED" and rows[0]["lag"] > 0  # nothing new, nothing consumed

    consume_once()
    rc, rows = hub_lag(servers, group)
    assert rc == 0 and [(r["lag"], r["state"]) for r in rows] == [(0, "OK")]
    wait_for(lambda: lag_metrics(base, group) == (0.0, "OK"), "the metrics to show the recovery")
