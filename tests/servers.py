"""Find real Kafka, Redis and PostgreSQL for tests, the way DESIGN.md section 8 says:
environment variables first, then testcontainers when a Docker engine answers, otherwise the
local launcher in deploy/local (which installs and starts them on loopback)."""

from __future__ import annotations

import os
from contextlib import ExitStack
from dataclasses import dataclass

ENV_KEYS = ("HUB_KAFKA_BOOTSTRAP", "HUB_REDIS_URL", "HUB_POSTGRES_URL")


@dataclass(frozen=True)
class Servers:
    kafka_bootstrap: str
    redis_url: str
    postgres_url: str
    source: str


def _docker_answers() -> bool:
    try:
        import docker

        client = docker.from_env(timeout=3)
        client.ping()
        return True
    except Exception:  # no engine, no socket, no permission: all mean "use something else"
        return False


def _from_testcontainers(stack: ExitStack) -> Servers:
    from testcontainers.kafka import KafkaContainer
    from testcontainers.postgres import PostgresContainer
    from testcontainers.redis import RedisContainer

    kafka = stack.enter_context(KafkaContainer("confluentinc/cp-kafka:7.6.0"))
    redis = stack.enter_context(RedisContainer("redis:7"))
    postgres = stack.enter_context(PostgresContainer("postgres:15", driver="psycopg"))
    return Servers(
        kafka.get_bootstrap_server(),
        f"redis://{redis.get_container_host_ip()}:{redis.get_exposed_port(6379)}/0",
        postgres.get_connection_url(),
        "testcontainers",
    )


def find_servers(stack: ExitStack) -> Servers:
    if all(os.environ.get(k) for k in ENV_KEYS):
        return Servers(*(os.environ[k] for k in ENV_KEYS), source="environment")
    if _docker_answers():
        return _from_testcontainers(stack)
    from hub.development import local_services

    settings = local_services.LocalSettings()
    started = local_services.up(settings, report=lambda _line: None)
    if started:
        # Leave the machine as the tests found it: stop only what this session started.
        stack.callback(local_services.down, settings, lambda _line: None)
    env = settings.environment()
    return Servers(*(env[k] for k in ENV_KEYS), source="deploy/local")
