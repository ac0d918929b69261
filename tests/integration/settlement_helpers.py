"""Shared set-up for settle-at-treatment integration tests: real Kafka, Redis, PostgreSQL."""

from __future__ import annotations

import time
import uuid
from datetime import date, datetime
from pathlib import Path

import sqlalchemy as sa
from kafka import KafkaConsumer, TopicPartition

from hub.messaging import AvroCodec, EventProducer, ensure_topics
from hub.messaging.topics import REGISTRATION_EVENTS, SETTLEMENT_EVENTS
from tests.fixtures.people import registration_record

REPO = Path(__file__).resolve().parents[2]
PERSON_KEY = b"integration-test-person-key"
TIME_LIMIT_S = 60


def new_psn_no() -> str:
    return f"3604{uuid.uuid4().int % 10**14:014d}"


def register(producer: EventProducer, psn_no: str, home_pool: str = "360400", filings: list[dict] | None = None,
             insurance: str = "RESIDENT", version: int = 1, topic: str = REGISTRATION_EVENTS.name, **details) -> str:
    """Publish a person's registration as the registration service would (tests.fixtures.people).
    Without `filings`, a 九江 person is filed (REFERRAL) to 广州, where the tests' hospitals are:
    九江 settles off-site at the counter only after filing. Others have no filing."""
    if filings is None and home_pool == "360400":
        filings = [{"filing_id": f"F-{psn_no}", "filing_type": "REFERRAL", "target_pool": "440100",
                    "valid_from": date(2026, 1, 1), "valid_to": None, "revoked": False}]
    record = registration_record(PERSON_KEY, psn_no, home_pool, insurance, filings, version, **details)
    producer.publish(topic, record["person_ref"], "RegistrationChanged", record)
    return record["person_ref"]


def wait_for(check, what: str, limit_s: float = TIME_LIMIT_S):
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def settlement_events(bootstrap: str, codec: AvroCodec, settlement_id: str, expect: int, wait_s: float = 15,
                      field: str = "settlement_id") -> list[dict]:
    """Every event on settlement.events about one settlement (reads the topic from the start);
    `field` "claim_no": about one manual claim."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    try:
        tps = [TopicPartition(SETTLEMENT_EVENTS.name, p) for p in consumer.partitions_for_topic(SETTLEMENT_EVENTS.name)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        found: list[dict] = []
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=300, max_records=5000).values():
                for record in batch:
                    value = codec.decode(record.value).value
                    if value.get(field) == settlement_id:  # a ManualClaimSettled has no settlement_id
                        found.append(value)
            ends = consumer.end_offsets(tps)
            if len(found) >= expect and all(consumer.position(tp) >= ends[tp] for tp in tps):
                break
        return found
    finally:
        consumer.close()


class Envelope:
    """Builds national-convention requests for one hospital."""

    def __init__(self, code: str, pool: str):
        self.code, self.pool, self.n = code, pool, 0

    def __call__(self, infno: str, payload: dict, msgid: str | None = None) -> dict:
        self.n += 1
        return {"infno": infno, "msgid": msgid or f"{self.code}{datetime.now():%Y%m%d%H%M%S}{self.n:04d}{uuid.uuid4().hex[:6]}",
                "mdtrtarea_admvs": self.pool, "insuplc_admdvs": "", "fixmedins_code": self.code, "opter": "t01",
                "inf_time": f"{datetime.now():%Y-%m-%d %H:%M:%S}", "input": payload}


def setup_topics(bootstrap: str) -> None:
    ensure_topics(bootstrap)


def http_ready(url: str) -> bool:
    """True once `url` answers 200 (a service process started by a test)."""
    import httpx

    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def lose_database(admin_url: str, url: str) -> None:
    """The database at `url` lost (dropped, its sessions ended) and made again, empty."""
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = sa.make_url(url).database
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'drop database "{name}" with (force)'))
            conn.execute(sa.text(f'create database "{name}"'))
    finally:
        admin.dispose()
