"""`hub his-check`, the vendors' kit, run as a vendor runs it: the CLI against the hub's hospital
interface served over real HTTP (uvicorn on a free local port), real Kafka, Redis and PostgreSQL."""

from __future__ import annotations

import json
import socket
import threading
import time

import httpx
import uvicorn
from typer.testing import CliRunner

from hub.cli import app
from hub.settlement.entrypoints.http import create_app
from tests.integration.test_settlement_service import reference_loaded, stack  # noqa: F401  (fixtures)

from .test_his_conformance import referred


def serve(hub) -> tuple[uvicorn.Server, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(hub), host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health/live", timeout=1).status_code == 200:
                return server, url
        except httpx.HTTPError:
            time.sleep(0.1)
    raise AssertionError("the hospital interface did not start")


def test_his_check_runs_a_day_and_a_month_against_a_served_hub_and_reports_each_transaction(stack, producer, tmp_path):
    psn, certno = referred(stack, producer)  # a 冠县 resident filed to 广州
    server, url = serve(stack)
    try:
        report = tmp_path / "report.json"
        result = CliRunner().invoke(app, ["his-check", "--url", url, "--hospital", "H44010000001", "--pool", "440100",
                                          "--psn-no", psn, "--certno", certno, "--home-pool", "371525",
                                          "--item", "XJ01CAA001A001010101001", "--json", str(report)],
                                    env={"HUB_HIS_CHECK_PAAS_TOKEN": "dev-H44010000001"})
        assert result.exit_code == 0, result.output
        steps = {(s["infno"], s["what"]): s for s in json.loads(report.read_text("utf-8"))}
        assert all(not s["failures"] for s in steps.values())
        ok = {infno for (infno, _), s in steps.items() if s["status"] == "ok"}
        assert {"9001", "1101", "2001", "2201", "2204", "2206", "2207", "2208", "2401", "2301", "2303", "2304", "5203",
                "5204", "5270", "5206", "5301", "5302", "5303", "5304", "3201", "3260", "3261", "3262", "3203", "3204",
                "9002"} <= ok, result.output
        assert sum(s["checks"] for s in steps.values()) > 200
        assert "transactions" in result.output and "with failures" in result.output

        forged = CliRunner().invoke(app, ["his-check", "--url", url, "--hospital", "H44010000001", "--pool", "440100",
                                          "--psn-no", psn], env={"HUB_HIS_CHECK_PAAS_TOKEN": "a guess"})
        assert forged.exit_code == 1 and "FAILED" in forged.output  # every answer is a 401: no envelope to accept
    finally:
        server.should_exit = True
