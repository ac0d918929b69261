"""Start, check and stop the hub's servers on this machine without a Docker engine.

Apache Kafka runs from its Maven Central jars on the JDK (KRaft, one broker+controller),
Redis and PostgreSQL from Debian's packages. Everything listens on 127.0.0.1 only. State
(data, logs, pid files) lives in a state directory outside the repository, downloads in a
cache directory, so a fresh clone starts fast once the cache is warm.

Each server is started only if it is not already running from the same state directory,
and `down` stops only the processes this launcher started (found by their pid files and
checked by their command line, so a recycled pid is never killed).
"""

from __future__ import annotations

import os
import signal
import time
from typing import Callable


from hub.development.kafka import KAFKA_VERSION, Kafka, new_cluster_id
# The launcher's names, for its callers (the CLI, the day, tests and benches):
from hub.development.process import (REPO_ROOT, LocalServiceError, LocalSettings, ServerState,  # noqa: F401
                                     free_ports, wait_for_exit)
from hub.development.servers import Postgres, Redis

__all__ = ["KAFKA_VERSION", "REPO_ROOT", "Kafka", "LocalServiceError", "LocalSettings", "Postgres", "Redis",
           "ServerState", "down", "free_ports", "new_cluster_id", "servers", "status", "up", "wait_for_exit"]


def servers(settings: LocalSettings | None = None) -> list[Postgres | Redis | Kafka]:
    settings = settings or LocalSettings()
    return [Postgres(settings), Redis(settings), *(Kafka(settings, n) for n in range(1, settings.kafka_brokers + 1))]


def up(settings: LocalSettings | None = None, report: Callable[[str], None] = print) -> list[str]:
    """Install what is missing, start what is not running, wait until each answers.

    Returns the names of the servers this call started (empty when all were already up).
    """
    settings = settings or LocalSettings()
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(settings.state_dir, 0o755)
    started = []
    cluster_id = new_cluster_id()  # one id for every node of a cluster formatted now
    starting: list[tuple[Kafka, float]] = []
    for server in servers(settings):
        t0 = time.monotonic()
        server.install()
        if isinstance(server, Kafka) and settings.kafka_brokers > 1:
            if server.start(wait=False, cluster_id=cluster_id):
                starting.append((server, t0))
            else:
                report(f"{server.name:<11} running   on {server.state().where}")
            continue
        if server.start():
            started.append(server.name)
            report(f"{server.name:<11} started   on {server.state().where}  ({time.monotonic() - t0:.1f} s)")
        else:
            if isinstance(server, Postgres):
                server.create_databases()
            report(f"{server.name:<11} running   on {server.state().where}")
    for server, t0 in starting:  # a cluster answers once a majority of its controllers runs
        server.wait()
        started.append(server.name)
        report(f"{server.name:<11} started   on {server.state().where}  ({time.monotonic() - t0:.1f} s)")
    (settings.state_dir / "kafka.brokers").write_text(str(settings.kafka_brokers))  # what down and status act on
    return started


def down(settings: LocalSettings | None = None, report: Callable[[str], None] = print) -> list[str]:
    """Stop the servers this launcher started; leave anything else alone."""
    stopped = []
    running = servers(settings)
    nodes = [s for s in running if isinstance(s, Kafka)]
    signalled = set()
    if len(nodes) > 1:  # a cluster's nodes are told to stop together: the last alone would wait for a quorum
        for node in nodes:
            if (pid := node.pid()) is not None:
                os.kill(pid, signal.SIGTERM)
                signalled.add(node.name)
    for server in reversed(running):
        if server.stop() or server.name in signalled:
            stopped.append(server.name)
            report(f"{server.name:<11} stopped")
        else:
            report(f"{server.name:<11} was not running from this state directory")
    return stopped


def status(settings: LocalSettings | None = None) -> list[ServerState]:
    return [server.state() for server in servers(settings)]

