"""The Supervisor keeps loops running and tells the truth about them (no servers needed)."""

from __future__ import annotations

import json
import threading
import time

import psycopg
import redis
import sqlalchemy.exc as sa_exc
from kafka.errors import KafkaConnectionError

from hub.operations.supervision import LoopCollector, LoopStateFile, Supervisor, is_transient, write_state_file


def wait_until(check, limit_s: float = 10.0):
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.01)
    raise AssertionError("condition not reached")


def test_a_failing_loop_is_restarted_reported_and_recovers():
    stop = threading.Event()
    supervisor = Supervisor(stop, backoff_s=(0.01, 0.05))
    attempts = []
    recovered = threading.Event()

    def build(beat):
        attempts.append(1)

        def run():
            if len(attempts) <= 3:
                raise psycopg.OperationalError("terminating connection due to administrator command")
            beat(outbox_backlog_rows=7)
            recovered.set()
            stop.wait()
        return run

    supervisor.add("relay", build, stale_after_s=60)
    supervisor.start()
    try:
        wait_until(lambda: supervisor.loops["relay"].restarts >= 1)
        assert recovered.wait(10)
        state = supervisor.loops["relay"]
        assert state.restarts == 3 and state.state == "running"
        assert supervisor.problems() == []
        assert state.detail == {"outbox_backlog_rows": 7}
    finally:
        stop.set()
        supervisor.join()
    assert supervisor.loops["relay"].state == "stopped"


def test_readiness_names_a_failing_loop_and_a_stalled_one_but_not_a_sampler():
    stop = threading.Event()
    supervisor = Supervisor(stop, backoff_s=(5.0, 5.0))

    def failing(beat):
        def run():
            raise RuntimeError("boom")
        return run

    def stalled(beat):
        return lambda: stop.wait()  # never beats

    supervisor.add("consumer", failing)
    supervisor.add("read-model", stalled, stale_after_s=0.05)
    supervisor.add("lag-sampler", failing, critical=False)
    supervisor.start()
    try:
        wait_until(lambda: len(supervisor.problems()) == 2)
        problems = " | ".join(supervisor.problems())
        assert "consumer is failing" in problems and "RuntimeError: boom" in problems
        assert "read-model has made no progress" in problems
        assert "lag-sampler" not in problems
        metrics = {m.name: {s.labels["loop"]: s.value for s in m.samples} for m in LoopCollector(supervisor).collect()}
        assert metrics["hub_loop_up"] == {"consumer": 0, "read-model": 0, "lag-sampler": 0}
        assert metrics["hub_loop_restarts"]["consumer"] >= 1
    finally:
        stop.set()


def test_a_loop_that_returns_without_being_stopped_counts_as_a_failure():
    stop = threading.Event()
    supervisor = Supervisor(stop, backoff_s=(0.01, 0.01))
    supervisor.add("quitter", lambda beat: lambda: None)
    supervisor.start()
    try:
        wait_until(lambda: supervisor.loops["quitter"].restarts >= 2)
        assert "returned without being stopped" in supervisor.loops["quitter"].last_error
    finally:
        stop.set()


def test_workers_read_the_main_process_state_file_and_notice_when_it_goes_stale(tmp_path):
    path = tmp_path / "loops.json"
    reader = LoopStateFile(path, stale_after_s=0.2)
    assert reader.problems() == ["the main process has not reported its background loops yet"]
    write_state_file(path, [{"name": "relay", "stale_after_s": 30, "critical": True, "state": "failing",
                             "restarts": 2, "failures_in_a_row": 2, "last_error": "OperationalError: gone",
                             "last_progress": time.time(), "detail": {}}])
    assert reader.problems()[0].startswith("relay is failing")
    doc = json.loads(path.read_text())
    doc["loops"][0]["state"] = "running"
    doc["written_at"] = time.time() - 10
    path.write_text(json.dumps(doc))
    assert "stopped reporting" in reader.problems()[0]


def test_transient_faults_are_told_from_faults_of_the_data():
    assert is_transient(psycopg.OperationalError("server closed the connection"))
    assert is_transient(sa_exc.OperationalError("select 1", {}, psycopg.OperationalError("x")))
    assert is_transient(redis.ConnectionError("refused"))
    assert is_transient(KafkaConnectionError("no brokers"))
    assert not is_transient(sa_exc.DataError("insert", {}, psycopg.errors.NumericValueOutOfRange("bigint out of range")))
    assert not is_transient(KeyError("home_pool"))
    assert not is_transient(ValueError("bad"))
