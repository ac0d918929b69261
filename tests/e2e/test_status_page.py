"""The operators' status page renders in headless Chromium with non-empty charts, quarantined
events and the background loops."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import sqlalchemy as sa

from tests.fixtures.avro.samples import SAMPLES
from tests.integration.settlement_helpers import http_ready, wait_for

REPO = Path(__file__).resolve().parents[2]
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def test_the_status_page_shows_lag_and_throughput_charts(servers, producer, tmp_path):
    from kafka.admin import KafkaAdminClient, NewTopic

    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium package is installed by deploy/local/setup.sh"
    topic = f"test.{uuid.uuid4().hex[:12]}"
    admin = KafkaAdminClient(bootstrap_servers=servers.kafka_bootstrap)
    admin.create_topics([NewTopic(topic, 2, 1)])
    admin.close()
    database = f"status_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(servers.postgres_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f'create database "{database}"'))
    port = 20000 + os.getpid() % 1000
    group = f"status-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "HUB_KAFKA_BOOTSTRAP": servers.kafka_bootstrap, "HUB_POSTGRES_URL": servers.postgres_url,
           "HUB_CLEARING_DATABASE": database, "HUB_SETTLEMENT_TOPIC": topic, "HUB_CLEARING_GROUP": group,
           "HUB_STATUS_INTERVAL_S": "1", "HUB_CLEARING_OUT": str(tmp_path / "out")}
    service = subprocess.Popen([sys.executable, "-m", "hub.cli", "clearing", "serve", "--port", str(port)],
                               env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: http_ready(base + "/health/live"), "the clearing service")
        deadline = time.monotonic() + 12
        while time.monotonic() < deadline:  # a stream of settlements while the page's sampler runs
            for _ in range(20):
                producer.send(topic, "360400", "SettlementCompleted",
                              dict(SAMPLES["cn.hub.settlement.SettlementCompleted"], event_id=uuid.uuid4()))
            producer.flush()
            time.sleep(0.5)
        # One poison event (an amount no bill can have): quarantined, it shows on the page.
        poison = dict(SAMPLES["cn.hub.settlement.SettlementCompleted"], event_id=uuid.uuid4(), hifp_pay_fen=5 * 10**17)
        producer.send(topic, "360400", "SettlementCompleted", poison)
        producer.flush()
        wait_for(lambda: httpx.get(f"{base}/status.json", headers={"Authorization": "Bearer dev-operator"},
                                   timeout=5).json()["quarantined"], "the poison event to be quarantined")
        url = f"{base}/status?token=dev-operator"
        profile = tmp_path / "profile"
        dom = subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=10000",
                              "--dump-dom", url], capture_output=True, text=True, timeout=120).stdout
        shot = tmp_path / "status.png"
        subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=10000",
                        "--window-size=1200,1400", f"--screenshot={shot}", url], capture_output=True, timeout=120)
    finally:
        service.terminate()
        service.wait(timeout=30)
        with engine.connect() as conn:
            conn.execute(sa.text(f'drop database "{database}" with (force)'))
        engine.dispose()
    def chart_after(marker: str) -> list[str]:
        """The points of the first chart drawn after `marker` in the rendered page."""
        assert marker in dom, dom[-2000:]
        rest = dom[dom.index(marker):]
        return rest.split('points="', 1)[1].split('"', 1)[0].split()

    # Our group's lag line and our topic's throughput line, each drawn from several samples.
    assert len(chart_after(f"<td>{group}</td>")) >= 3
    throughput = chart_after(f"<b>{topic}</b>")
    assert len(throughput) >= 3
    assert len({p.split(",")[1] for p in throughput}) >= 2  # not a flat line: messages flowed
    assert shot.exists() and shot.stat().st_size > 20_000
    quarantined = dom[dom.index('id="quarantined"'):]
    assert f"<td>{topic}:" in quarantined and "amount_out_of_bounds" in quarantined
    loops = dom[dom.index('id="loops"'):]
    assert "<td>clearing-consumer</td>" in loops and ">running<" in loops
    (REPO / "out").mkdir(exist_ok=True)
    shutil.copy(shot, REPO / "out" / "status-page.png")  # for a person to look at
