"""Fixtures shared by the integration and end-to-end tests: real servers found once per
session (tests/servers.py), and per-test uuid topics and scratch databases. Unit tests request
none of them, so they need no server."""

from __future__ import annotations

import os
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Iterator

import pytest
import sqlalchemy as sa

from hub.messaging import AvroCodec, EventProducer, SchemaRegistry
from tests.servers import Servers, find_servers

# The tests run the hub in its explicit development mode (sample secrets allowed) unless a test
# says otherwise: tests/integration/test_secrets.py starts each service outside it.
os.environ.setdefault("HUB_ENV", "development")


@pytest.fixture(scope="session")
def servers() -> Iterator[Servers]:
    with ExitStack() as stack:
        yield find_servers(stack)


@pytest.fixture(scope="session")
def codec() -> AvroCodec:
    return AvroCodec(SchemaRegistry())


@pytest.fixture
def producer(servers, codec) -> Iterator[EventProducer]:
    with EventProducer(servers.kafka_bootstrap, codec, client_id=f"test-{uuid.uuid4().hex[:8]}") as p:
        yield p


@pytest.fixture
def topic_factory(servers):
    """Fresh uuid-named topics per test, so tests never see each other's messages."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    admin = KafkaAdminClient(bootstrap_servers=servers.kafka_bootstrap)
    created: list[str] = []

    def make(partitions: int = 1) -> str:
        name = f"test.{uuid.uuid4().hex[:12]}"
        admin.create_topics([NewTopic(name, partitions, 1), NewTopic(f"{name}.dlq", 1, 1)])
        created.extend([name, f"{name}.dlq"])
        return name

    yield make
    admin.delete_topics(created)
    admin.close()


@pytest.fixture
def scratch_database(servers) -> Iterator[str]:
    """A throwaway PostgreSQL database for one test; its URL."""
    admin = sa.create_engine(servers.postgres_url, isolation_level="AUTOCOMMIT")
    name = f"test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'create database "{name}"'))
    url = sa.make_url(servers.postgres_url).set(database=name)
    yield url.render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(sa.text(f'drop database "{name}" with (force)'))
    admin.dispose()
