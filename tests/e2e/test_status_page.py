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
        deposit = httpx.post(f"{base}/v1/advances/360400/deposits", headers={"Authorization": "Bearer dev-operator"},
                             json={"reference": "E2E-1", "amount_yuan": "1000.00"}, timeout=10)
        assert deposit.status_code == 200, deposit.text
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
    advances = dom[dom.index('id="advances"'):]
    first_pool = advances.split("</div>")[0]  # the deposit, and the day the service closed by itself
    assert "<b>360400</b> balance" in first_pool and "<polyline" in first_pool
    loops = dom[dom.index('id="loops"'):]
    assert "<td>clearing-consumer</td>" in loops and ">running<" in loops
    (REPO / "out").mkdir(exist_ok=True)
    shutil.copy(shot, REPO / "out" / "status-page.png")  # for a person to look at


def test_the_clearing_summary_shows_the_pool_names_in_chinese(tmp_path):
    """The day's summary names pools in Chinese: rendered by headless Chromium with the CJK font
    deploy/local/setup.sh installs (fonts-noto-cjk), the names are drawn — the screenshot differs
    from one where the same places hold characters no font has (which would be boxes either way
    without a CJK font)."""
    from datetime import date, datetime, timezone
    from fractions import Fraction

    from hub.clearing.adapters.files import DayHeader, render_summary
    from hub.clearing.domain.netting import Obligation, net

    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium package is installed by deploy/local/setup.sh"
    fonts = subprocess.run(["fc-list", ":lang=zh", "family"], capture_output=True, text=True).stdout
    assert "CJK" in fonts, "Debian's fonts-noto-cjk is installed by deploy/local/setup.sh"
    result = net([Obligation("360400", "440100", 123_400, 0, 0, 3), Obligation("999903", "440100", 55_000, 0, 0, 1)])

    def shot(names: dict[str, str], name: str) -> bytes:
        header = DayHeader(date(2026, 3, 14), "2026-03-14.1", datetime(2026, 3, 15, tzinfo=timezone.utc), names)
        page = tmp_path / f"{name}.html"
        page.write_bytes(render_summary(header, result.positions, result.gross_fen, result.net_abs_fen,
                                        Fraction(0), {}))
        png = tmp_path / f"{name}.png"
        subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1000,700",
                        f"--screenshot={png}", page.as_uri()], capture_output=True, timeout=120)
        assert png.exists()
        return png.read_bytes()

    chinese = {"360400": "九江市", "440100": "广州市", "999903": "示例市"}
    no_glyphs = {code: "\U000f0000" * len(name) for code, name in chinese.items()}  # private use: no font has them
    drawn = shot(chinese, "chinese")
    assert drawn != shot(no_glyphs, "boxes")
    (REPO / "out").mkdir(exist_ok=True)
    (REPO / "out" / "clearing-summary.png").write_bytes(drawn)  # for a person to look at
