"""registration against real PostgreSQL and Kafka, through its HTTP API and its outbox."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from kafka import KafkaConsumer, TopicPartition

from hub.messaging.outbox import OutboxRelay
from hub.messaging.topics import REGISTRATION_EVENTS
from hub.privacy import person_ref
from hub.registration.adapters import database as db
from hub.registration.bootstrap import Settings, bootstrap
from hub.registration.entrypoints.http import create_app
from hub.registration.service_layer.enrolments import bulk_rows

from .settlement_helpers import PERSON_KEY, REPO, http_ready, new_psn_no, setup_topics, wait_for

POOL = "360400"
OTHER = "999903"


@pytest.fixture
def reg(servers, scratch_database):
    setup_topics(servers.kafka_bootstrap)
    settings = Settings(postgres_url=scratch_database, kafka_bootstrap=servers.kafka_bootstrap,
                        database=sa.make_url(scratch_database).database, person_key=PERSON_KEY,
                        bureaus_file=REPO / "reference" / "bureaus.yaml")
    r = bootstrap(settings)
    r.env = {"HUB_POSTGRES_URL": scratch_database, "HUB_KAFKA_BOOTSTRAP": servers.kafka_bootstrap,
             "HUB_REGISTRATION_DATABASE": settings.database, "HUB_PERSON_KEY": PERSON_KEY.decode(),
             "HUB_BUREAUS_FILE": str(settings.bureaus_file)}
    yield r
    r.engine.dispose()


def bureau(reg, pool: str = POOL) -> TestClient:
    http = TestClient(create_app(reg))
    http.headers["Authorization"] = f"Bearer dev-bureau-{pool}"
    return http


def snapshot(n: int, bad_every: int, seed: int) -> tuple[str, set[str], int]:
    """A CSV of n rows where every `bad_every`-th row is wrong in one of several ways."""
    rnd = random.Random(seed)
    rows, good_ids, bad = [], set(), 0
    breakers = [lambda r: r.update(insutype="999"), lambda r: r.update(enrolled_from="2020-02-30"),
                lambda r: r.update(enrolled_to="2000-01-01"), lambda r: r.update(psn_no=""),
                lambda r: r.update(special_populations="NOBODY")]
    for i in range(n):
        psn = f"3604{seed:02d}{i:012d}"
        row = {"psn_no": psn, "insutype": rnd.choice(["390", "310"]), "enrolled_from": "2018-01-01",
               "enrolled_to": "", "benefits_from": "", "special_populations": ""}
        if i % bad_every == bad_every - 1:
            rnd.choice(breakers)(row)
            bad += 1
        else:
            good_ids.add(psn)
        rows.append(row)
    return bulk_rows(rows), good_ids, bad


def registration_events(bootstrap_servers: str, codec, refs: set[str]) -> dict[str, int]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False, group_id=None)
    try:
        tps = [TopicPartition(REGISTRATION_EVENTS.name, p) for p in consumer.partitions_for_topic(REGISTRATION_EVENTS.name)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        counts: dict[str, int] = {}
        deadline = time.monotonic() + 120
        while any(consumer.position(tp) < ends[tp] for tp in tps) and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500, max_records=10000).values():
                for record in batch:
                    key = record.key.decode()
                    if key in refs:
                        counts[key] = counts.get(key, 0) + 1
        return counts
    finally:
        consumer.close()


def publish_all(reg) -> int:
    relay = OutboxRelay(reg.engine, db.outbox, reg.producer("t-relay"), db.OUTBOX_RELAY_LOCK)
    total = 0
    with reg.engine.connect() as conn:
        while (n := relay.publish_batch(conn)):
            total += n
    return total


def test_a_50000_row_import_lands_exactly_the_good_rows_once(reg, servers):
    text, good_ids, bad = snapshot(50_000, bad_every=100, seed=int(time.time()) % 90 + 10)
    http = bureau(reg)
    response = http.post("/v1/enrolments/import", content=text.encode(), headers={"content-type": "text/csv"})
    assert response.status_code == 200
    report = response.json()
    assert (report["rows_total"], report["rows_changed"], report["rows_bad"]) == (50_000, len(good_ids), bad)
    assert bad == 500
    assert {r["code"] for r in report["bad_rows"]} >= {"invalid_insutype", "invalid_date", "dates_out_of_order"}
    assert all("*" in r["person_id_masked"] or r["person_id_masked"] == "" for r in report["bad_rows"])
    assert all(r["line"] % 100 == 1 for r in report["bad_rows"])  # header is line 1: row i is line i + 2

    refs = {person_ref(PERSON_KEY, psn) for psn in good_ids}
    with reg.engine.connect() as conn:
        stored = set(conn.execute(sa.select(db.persons.c.person_ref)).scalars())
    assert stored == refs

    again = http.post("/v1/enrolments/import", content=text.encode()).json()
    assert (again["rows_changed"], again["rows_unchanged"], again["rows_bad"]) == (0, len(good_ids), bad)

    assert publish_all(reg) == len(good_ids)
    counts = registration_events(servers.kafka_bootstrap, reg.codec, refs)
    assert len(counts) == len(refs) and set(counts.values()) == {1}


def test_filings_change_and_a_bureau_cannot_touch_another_pools_person(reg, servers):
    psn, outsider = new_psn_no(), "6110" + new_psn_no()[4:]
    reg.service.import_snapshot(POOL, bulk_rows([{"psn_no": psn, "insutype": "390", "enrolled_from": "2015-01-01"}]))
    reg.service.import_snapshot(OTHER, bulk_rows([{"psn_no": outsider, "insutype": "390", "enrolled_from": "2015-01-01"}]))
    http = bureau(reg)

    created = http.post("/v1/filings", json={"psn_no": psn, "filing_type": "REFERRAL", "target_pool": "440100",
                                             "valid_from": "2026-03-01"})
    assert created.status_code == 201, created.text
    filing = created.json()
    assert filing["valid_to"] == "2026-08-30"
    status = http.post("/v1/status", json={"psn_no": psn, "region": "440100", "date": "2026-04-01"}).json()
    assert status["off_site_status"] == "FILED" and status["enrolled"]
    assert psn not in str(status)

    changed = http.patch(f"/v1/filings/{filing['filing_id']}", json={"valid_to": "2026-12-31"})
    assert changed.status_code == 200 and changed.json()["valid_to"] == "2026-12-31"
    assert http.post(f"/v1/filings/{filing['filing_id']}/revoke").status_code == 200
    again = http.post(f"/v1/filings/{filing['filing_id']}/revoke")
    assert (again.status_code, again.json()["error"]["code"]) == (409, "filing_revoked")
    status = http.post("/v1/status", json={"psn_no": psn, "region": "440100", "date": "2026-04-01"}).json()
    assert status["off_site_status"] == "UNREGISTERED"

    for request in (
        lambda: http.post("/v1/filings", json={"psn_no": outsider, "filing_type": "REFERRAL", "target_pool": "440100",
                                               "valid_from": "2026-03-01"}),
        lambda: http.post("/v1/status", json={"psn_no": outsider, "region": "440100", "date": "2026-04-01"}),
    ):
        response = request()
        assert (response.status_code, response.json()["error"]["code"]) == (403, "person_of_another_pool")
    other_filing = bureau(reg, OTHER).post("/v1/filings", json={"psn_no": outsider, "filing_type": "EMERGENCY",
                                                                "target_pool": "440100", "valid_from": "2026-03-01"}).json()
    response = http.post(f"/v1/filings/{other_filing['filing_id']}/revoke")
    assert (response.status_code, response.json()["error"]["code"]) == (403, "person_of_another_pool")
    assert TestClient(create_app(reg)).post("/v1/status", json={}).status_code == 401
    bad = http.post("/v1/filings", json={"psn_no": psn, "filing_type": "REFERRAL", "target_pool": "440100",
                                         "valid_from": "not a date"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_request"

    # enrolled x 2, created, changed, revoked, and the other pool's created: six changes, six events.
    assert publish_all(reg) == 6
    counts = registration_events(servers.kafka_bootstrap, reg.codec,
                                 {person_ref(PERSON_KEY, psn), person_ref(PERSON_KEY, outsider)})
    assert counts == {person_ref(PERSON_KEY, psn): 4, person_ref(PERSON_KEY, outsider): 2}


def test_a_killed_service_loses_no_change(reg, servers):
    psn = new_psn_no()
    reg.service.import_snapshot(POOL, bulk_rows([{"psn_no": psn, "insutype": "310", "enrolled_from": "2010-01-01"}]))
    publish_all(reg)
    port = 19000 + os.getpid() % 1000
    env = {**os.environ, **reg.env}
    api = subprocess.Popen([sys.executable, "-m", "hub.cli", "registration", "serve", "--port", str(port), "--no-relay"],
                           env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        import httpx

        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: http_ready(base + "/health/ready"), "the registration API")
        created = httpx.post(base + "/v1/filings", headers={"Authorization": f"Bearer dev-bureau-{POOL}"},
                             json={"psn_no": psn, "filing_type": "POSTED_WORKER", "target_pool": "440100",
                                   "valid_from": "2026-01-01"})
        assert created.status_code == 201, created.text
    finally:
        api.send_signal(signal.SIGKILL)
        api.wait(timeout=30)
    relay = subprocess.Popen([sys.executable, "-m", "hub.cli", "registration", "relay"], env=env, cwd=REPO,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        with reg.engine.connect() as conn:
            wait_for(lambda: conn.execute(sa.select(sa.func.count()).select_from(db.outbox)
                                          ).scalar_one() == 0 or None,
                     "the relay")
    finally:
        relay.send_signal(signal.SIGTERM)
        relay.wait(timeout=30)
    counts = registration_events(servers.kafka_bootstrap, reg.codec, {person_ref(PERSON_KEY, psn)})
    assert counts == {person_ref(PERSON_KEY, psn): 2}  # enrolled, then the filing: each once


def test_the_bureau_cli_files_changes_revokes_and_answers_status(reg):
    import json

    psn = new_psn_no()
    reg.service.import_snapshot(POOL, bulk_rows([{"psn_no": psn, "insutype": "390", "enrolled_from": "2015-01-01"}]))
    env = {**os.environ, **reg.env}

    def hub(*args):
        done = subprocess.run([sys.executable, "-m", "hub.cli", "registration", *args], env=env, cwd=REPO,
                              capture_output=True, text=True, timeout=120)
        return done.returncode, json.loads(done.stdout)

    rc, filing = hub("file", "--pool", POOL, "--psn-no", psn, "--type", "TEMPORARY_TRIP", "--target", "440100",
                     "--from", "2026-02-01", "--to", "2026-02-28")
    assert rc == 0 and filing["valid_to"] == "2026-02-28"
    rc, status = hub("status", "--pool", POOL, "--psn-no", psn, "--region", "440100", "--date", "2026-03-05")
    assert status["off_site_status"] == "UNREGISTERED" and status["filings_expired"] == [filing["filing_id"]]
    rc, changed = hub("change-filing", filing["filing_id"], "--pool", POOL, "--to", "2026-03-31")
    assert rc == 0 and changed["valid_to"] == "2026-03-31"
    rc, status = hub("status", "--pool", POOL, "--psn-no", psn, "--region", "440100", "--date", "2026-03-05")
    assert status["off_site_status"] == "FILED"
    rc, revoked = hub("revoke-filing", filing["filing_id"], "--pool", POOL)
    assert rc == 0 and revoked["revoked"]
    rc, error = hub("revoke-filing", filing["filing_id"], "--pool", OTHER)
    assert rc == 1 and error["error"]["code"] == "person_of_another_pool"


def test_a_person_is_registered_with_resident_id_and_name_sealed_and_gets_e_vouchers(reg):
    from hub import vouchers
    from hub.privacy import credential_ref, unseal

    psn = new_psn_no()
    certno, name = "11010519491231002X", "张三"
    text = bulk_rows([{"psn_no": psn, "insutype": "390", "enrolled_from": "2020-01-01", "certno": certno,
                       "psn_name": name, "special_populations": "EXTREME_POVERTY:2026-01-01:"}])
    report = bureau(reg).post("/v1/enrolments/import", content=text.encode(), headers={"content-type": "text/csv"}).json()
    assert (report["rows_changed"], report["rows_bad"]) == (1, 0), report
    again = bureau(reg).post("/v1/enrolments/import", content=text.encode(), headers={"content-type": "text/csv"}).json()
    assert again["rows_unchanged"] == 1  # sealed afresh each time, yet the same details: unchanged
    other = bulk_rows([{"psn_no": new_psn_no(), "insutype": "390", "enrolled_from": "2020-01-01", "certno": certno}])
    refused = bureau(reg).post("/v1/enrolments/import", content=other.encode(), headers={"content-type": "text/csv"}).json()
    assert [b["code"] for b in refused["bad_rows"]] == ["duplicate_credential"]  # one resident id, one person

    ref = person_ref(PERSON_KEY, psn)
    with reg.engine.connect() as conn:
        dump = " ".join(str(tuple(r)) for t in (db.persons, db.credentials, db.outbox)
                        for r in conn.execute(sa.select(t)))
        assert psn not in dump and certno not in dump and name not in dump  # nothing in clear at rest
        held = conn.execute(sa.select(db.credentials.c.person_ref)
                            .where(db.credentials.c.credential_ref == credential_ref(PERSON_KEY, "02", certno))).scalar()
        payload = conn.execute(sa.select(db.outbox.c.payload).where(db.outbox.c.message_key == ref)
                               .order_by(db.outbox.c.id.desc())).scalars().first()
    assert held == ref
    event = reg.codec.decode(payload).value
    assert unseal(PERSON_KEY, event["person_sealed"])["certno"] == certno
    assert event["credential_refs"] == [credential_ref(PERSON_KEY, "02", certno)]
    assert event["enrolment"]["identities"][0]["population"] == "EXTREME_POVERTY"

    issued = bureau(reg).post("/v1/vouchers", json={"psn_no": psn})
    assert issued.status_code == 200, issued.text
    voucher = vouchers.verify(reg.settings.voucher_key, issued.json()["ec_token"], time.time())
    assert (voucher.person_ref, voucher.home_pool) == (ref, POOL)
    assert bureau(reg, OTHER).post("/v1/vouchers", json={"psn_no": psn}).status_code == 403  # not its person
    assert bureau(reg).post("/v1/vouchers", json={"psn_no": "nobody"}).status_code == 404
