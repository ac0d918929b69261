"""deploy/local's launcher: idempotent up, honest status, down stops only its own servers,
and a broker that cannot start says why instead of hanging. Runs a second set of servers
from a throwaway state directory on other ports, so the session's servers are untouched."""

from __future__ import annotations

import shutil
import socket
import time
import uuid
from pathlib import Path

import pytest

from hub.development import local_services
from hub.development.local_services import Kafka, LocalServiceError, LocalSettings


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def settings():
    state = Path(f"/var/tmp/hub-test-{uuid.uuid4().hex[:8]}")
    s = LocalSettings(state_dir=state, kafka_port=_free_port(), kafka_controller_port=_free_port(),
                      redis_port=_free_port(), postgres_port=_free_port(), start_timeout_s=90,
                      kafka_heap_mb=384)
    yield s
    local_services.down(s, report=lambda _l: None)
    shutil.rmtree(state, ignore_errors=True)


def test_up_twice_status_and_down(settings, servers):
    lines: list[str] = []
    started = local_services.up(settings, report=lines.append)
    assert started == ["postgresql", "redis", "kafka"]
    assert all(s.running for s in local_services.status(settings))

    again = local_services.up(settings, report=lines.append)
    assert again == []
    assert sum("running" in line for line in lines) == 3
    assert [s.where for s in local_services.status(settings)] == [
        f"127.0.0.1:{settings.postgres_port}", f"127.0.0.1:{settings.redis_port}", settings.kafka_bootstrap,
    ]

    stopped = local_services.down(settings, report=lines.append)
    assert stopped == ["kafka", "redis", "postgresql"]
    assert not any(s.running for s in local_services.status(settings))
    assert local_services.down(settings, report=lines.append) == []
    # The servers the test session runs on were not touched.
    assert local_services.Kafka(LocalSettings()).answers() or servers.source != "deploy/local"


def test_a_port_taken_by_another_server_is_refused_with_a_clear_message(settings):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", settings.kafka_port))
        squatter.listen()
        kafka = Kafka(settings)
        kafka.install()
        with pytest.raises(LocalServiceError, match=f"port {settings.kafka_port} is taken"):
            kafka.start()


def test_a_broker_that_fails_to_start_says_why_quickly(settings):
    kafka = Kafka(settings)
    kafka.install()
    kafka.data.mkdir(parents=True)
    # Storage that claims to be formatted but is not: the broker exits at start-up.
    (kafka.data / "meta.properties").write_text("version=1\nnode.id=7\ncluster.id=not-a-cluster\n")
    t0 = time.monotonic()
    with pytest.raises(LocalServiceError, match="Kafka exited during start-up") as err:
        kafka.start()
    assert time.monotonic() - t0 < settings.start_timeout_s
    assert "Last lines of" in str(err.value)
    assert "Exiting Kafka due to fatal exception" in str(err.value)
    assert kafka.pid() is None
