"""The health answers every service shares, and the settle service's rehearsal clock."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from fastapi import FastAPI
from fastapi.testclient import TestClient

from hub.operations.health import add_health_routes
from hub.settlement.bootstrap import Settings


def test_readiness_shows_its_notes_whether_ready_or_not():
    state = {"problem": None}
    app = FastAPI()
    add_health_routes(app, lambda: state["problem"], notes=("business clock shifted -1 days",))
    client = TestClient(app)
    assert client.get("/health/ready").json() == {"status": "ready", "notes": ["business clock shifted -1 days"]}
    state["problem"] = "the read model is rebuilding"
    answer = client.get("/health/ready")
    assert answer.status_code == 503
    assert answer.json()["notes"] == ["business clock shifted -1 days"]
    assert answer.json()["reasons"] == ["the read model is rebuilding"]


def test_without_notes_readiness_answers_as_before():
    app = FastAPI()
    add_health_routes(app, lambda: None)
    assert TestClient(app).get("/health/ready").json() == {"status": "ready"}


def test_the_settlement_clock_runs_on_the_real_one_unless_a_rehearsal_shifts_it():
    real = datetime.now(timezone.utc)
    assert abs(Settings(clock_shift_days=0).clock()() - real) < timedelta(seconds=5)
    behind = Settings(clock_shift_days=-1).clock()()
    assert abs(behind - (real - timedelta(days=1))) < timedelta(seconds=5)
