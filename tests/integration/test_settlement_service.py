"""settle-at-treatment against real PostgreSQL, Redis and Kafka, through its HTTP API."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime
from zoneinfo import ZoneInfo
from pathlib import Path

import psycopg
import pytest
import redis
import sqlalchemy as sa

from hub import migrations
from fastapi.testclient import TestClient

from hub.messaging import AvroCodec
from hub.money import fen_to_yuan, yuan_to_fen
from hub.registration.entrypoints.reference_load import load_reference
from hub.settlement.adapters import database as db
from hub.settlement.bootstrap import Settings, bootstrap
from hub.settlement.entrypoints.http import CONVENTION_PATH, create_app, status_of
from hub.messaging.outbox import OutboxRelay
from hub.settlement.entrypoints.read_model_consumer import ReadModelConsumer
from hub.settlement.service_layer.envelope import Request

from .settlement_helpers import (PERSON_KEY, REPO, Envelope, http_ready, new_psn_no, register, settlement_events,
                                 setup_topics, wait_for)

GZ_A = ("H44010000001", "440100")  # tertiary
GZ_B = ("H44010000002", "440100")  # level 2


@pytest.fixture(scope="module")
def reference_loaded(servers):
    setup_topics(servers.kafka_bootstrap)
    load_reference(REPO / "reference", servers.kafka_bootstrap, AvroCodec())


@pytest.fixture
def stack(servers, scratch_database, reference_loaded, tmp_path):
    """The service wired to a scratch database and its own Redis database, read model running."""
    redis_url = servers.redis_url.rsplit("/", 1)[0] + "/5"
    redis.Redis.from_url(redis_url).flushdb()
    env = {"HUB_POSTGRES_URL": scratch_database, "HUB_REDIS_URL": redis_url,
           "HUB_KAFKA_BOOTSTRAP": servers.kafka_bootstrap, "HUB_PERSON_KEY": PERSON_KEY.decode(),
           "HUB_SETTLEMENT_DATABASE": sa.make_url(scratch_database).database,
           "HUB_HOSPITALS_FILE": str(REPO / "reference" / "hospitals.yaml")}
    settings = Settings(postgres_url=scratch_database, redis_url=redis_url, kafka_bootstrap=servers.kafka_bootstrap,
                        database=env["HUB_SETTLEMENT_DATABASE"], person_key=PERSON_KEY,
                        hospitals_file=Path(env["HUB_HOSPITALS_FILE"]))
    hub = bootstrap(settings)
    stop = threading.Event()
    consumer = ReadModelConsumer(servers.kafka_bootstrap, hub.read_model, hub.codec, hub.producer("t-dlq"), stop)
    thread = threading.Thread(target=consumer.run, daemon=True)
    thread.start()
    wait_for(hub.read_model.ready, "the read model")
    hub.env = env
    hub.stop = stop
    hub.consumer = consumer
    yield hub
    stop.set()
    thread.join(timeout=30)  # the next test flushes this Redis database: this consumer must be gone
    hub.engine.dispose()


def client(hub, hospital: tuple[str, str]):
    code, pool = hospital
    http = TestClient(create_app(hub))
    http.headers["Authorization"] = f"Bearer dev-{code}"
    return http, Envelope(code, pool)


def call(http, envelope: dict):
    response = http.post(CONVENTION_PATH, json=envelope)
    return response.status_code, response.json()


def open_and_upload(http, env, psn_no: str, fees: list[tuple[str, str, str]], begn="2026-03-10 09:00:00") -> str:
    status, body = call(http, env("2401", {"mdtrtinfo": {"psn_no": psn_no, "med_type": "21", "begntime": begn}}))
    assert status == 200, body
    mdtrt_id = body["output"]["result"]["mdtrt_id"]
    status, body = call(http, env("2301", {"feedetail": [
        {"feedetl_sn": str(n), "mdtrt_id": mdtrt_id, "med_list_codg": code, "cnt": cnt, "pric": pric}
        for n, (code, cnt, pric) in enumerate(fees, 1)]}))
    assert status == 200, body
    return mdtrt_id


JIA_DRUG = "XJ01CAA001A001010101001"  # 甲 in 440100's sample catalogue


def wait_registered(hub, psn_no: str):
    from hub.settlement.service_layer.identity import person_ref
    wait_for(lambda: hub.read_model.registration_bytes(person_ref(PERSON_KEY, psn_no)), "the registration")


def enrolled_person(hub, producer, **registration) -> tuple[str, str]:
    """A new person, enrolled through registration.events and in the read model: (psn_no, person_ref)."""
    psn = new_psn_no()
    ref = register(producer, psn, **registration)
    wait_registered(hub, psn)
    return psn, ref


def test_open_upload_preview_settle_and_the_event(stack, producer):
    psn, _ = enrolled_person(stack, producer, filings=[{
        "filing_id": "F1", "filing_type": "REFERRAL", "target_pool": "440100", "valid_from": date(2026, 1, 1),
        "valid_to": None, "revoked": False}])
    http, env = client(stack, GZ_A)
    mdtrt = open_and_upload(http, env, psn, [(JIA_DRUG, "1", "10000.00")])

    status, preview = call(http, env("2303", {"data": {"mdtrt_id": mdtrt, "endtime": "2026-03-15 10:00:00"}}))
    assert status == 200, preview
    # 九江 resident with a referral outside the city: (10000 - 600) x 50 % = 4700
    assert preview["output"]["setlinfo"]["hifp_pay"] == "4700.00"
    status, settled = call(http, env("2304", {"data": {"mdtrt_id": mdtrt, "endtime": "2026-03-15 10:00:00",
                                                       "medfee_sumamt": "10000.00"}}))
    assert status == 200, settled
    info = settled["output"]["setlinfo"]
    assert {k: info[k] for k in ("hifp_pay", "psn_part_amt")} == {"hifp_pay": "4700.00", "psn_part_amt": "5300.00"}
    assert psn not in str(settled)

    relay = OutboxRelay(stack.engine, db.outbox, stack.producer("t-relay"), db.OUTBOX_RELAY_LOCK)
    with stack.engine.connect() as conn:
        relay.publish_batch(conn)
    events = settlement_events(stack.settings.kafka_bootstrap, stack.codec, info["setl_id"], expect=1)
    assert len(events) == 1
    assert (events[0]["home_pool"], events[0]["hifp_pay_fen"], events[0]["psn_part_amt_fen"]) == ("360400", 470000, 530000)


def test_replays_answer_the_same_and_conflicting_replays_are_refused(stack, producer):
    psn, _ = enrolled_person(stack, producer)
    http, env = client(stack, GZ_A)
    mdtrt = open_and_upload(http, env, psn, [(JIA_DRUG, "2", "50.00")])
    request = env("2304", {"data": {"mdtrt_id": mdtrt}})
    first = call(http, request)
    again = call(http, request)
    assert first == again and first[0] == 200
    conflicting = dict(request, input={"data": {"mdtrt_id": mdtrt, "medfee_sumamt": "1.00"}})
    status, body = call(http, conflicting)
    assert (status, body["infcode"], body["err_code"]) == (200, "-1", "msgid_reused_with_different_content")
    # A new msgid for the same visit: the visit is already settled.
    status, body = call(http, env("2304", {"data": {"mdtrt_id": mdtrt}}))
    assert (status, body["infcode"], body["err_code"]) == (200, "-1", "visit_already_settled")
    with stack.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(db.settlements)).scalar_one() == 1
        assert conn.execute(sa.select(sa.func.count()).select_from(db.outbox)).scalar_one() == 1


def test_bad_input_gets_a_clear_refusal_in_the_envelope_and_changes_nothing(stack, producer):
    """As the platform answers: HTTP 200, infcode "-1", err_msg led by the stable reason code."""
    http, env = client(stack, GZ_A)
    cases = [
        (env("9999", {}), "unknown_infno"),
        (dict(env("2401", {}), msgid=""), "invalid_msgid"),
        (env("2401", {"mdtrtinfo": {"psn_no": new_psn_no(), "med_type": "21", "begntime": "2026-03-10"}}), "person_not_enrolled"),
        (env("2401", {"mdtrtinfo": {"psn_no": "x", "med_type": "77", "begntime": "2026-03-10"}}), "invalid_field"),
        (env("2301", {"feedetail": [{"mdtrt_id": "nope", "med_list_codg": "A", "cnt": "1", "pric": "1"}]}), "visit_not_found"),
        (dict(env("2304", {}), fixmedins_code="H36040000001"), "hospital_mismatch"),
    ]
    for request, code in cases:
        got_status, body = call(http, request)
        assert (got_status, body["infcode"], body["err_code"], body["output"]) == (200, "-1", code, None), body
        assert body["err_msg"].startswith(f"[{code}] ")
    response = http.post(CONVENTION_PATH, content=b"{not json")
    assert (response.status_code, response.json()["err_code"]) == (200, "invalid_json")
    unsigned = TestClient(create_app(stack)).post(CONVENTION_PATH, json={})
    assert (unsigned.status_code, unsigned.json()["err_code"]) == (401, "unauthenticated")  # the transport's own
    with stack.engine.connect() as conn:
        for table in (db.visits, db.settlements, db.outbox):
            assert conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one() == 0


def test_a_hospital_reverses_only_its_own_settlements_and_reversal_restores_accumulators(stack, producer):
    psn, ref = enrolled_person(stack, producer)
    http_a, env_a = client(stack, GZ_A)
    http_b, env_b = client(stack, GZ_B)
    mdtrt = open_and_upload(http_a, env_a, psn, [(JIA_DRUG, "1", "3000.00")])
    status, body = call(http_a, env_a("2304", {"data": {"mdtrt_id": mdtrt}}))
    setl_id = body["output"]["setlinfo"]["setl_id"]

    status, body = call(http_b, env_b("2305", {"data": {"setl_id": setl_id}}))
    assert (status, body["err_code"]) == (200, "settlement_of_another_hospital")
    status, body = call(http_b, env_b("2301", {"feedetail": [{"mdtrt_id": mdtrt, "med_list_codg": JIA_DRUG, "cnt": "1", "pric": "1"}]}))
    assert (status, body["err_code"]) == (200, "visit_of_another_hospital")

    with stack.engine.connect() as conn:
        before = conn.execute(sa.select(db.accumulators).where(db.accumulators.c.person_ref == ref)).one()
    assert before.admissions == 1 and before.inpatient_fund_paid > 0
    status, body = call(http_a, env_a("2305", {"data": {"setl_id": setl_id}}))
    assert status == 200 and body["output"]["hub_reversal"]["status"] == "REVERSED"
    status, body = call(http_a, env_a("2305", {"data": {"setl_id": setl_id}}))
    assert (status, body["err_code"]) == (200, "settlement_already_reversed")
    with stack.engine.connect() as conn:
        after = conn.execute(sa.select(db.accumulators).where(db.accumulators.c.person_ref == ref)).one()
        kinds = conn.execute(sa.select(sa.func.count()).select_from(db.outbox)).scalar_one()
    assert (after.admissions, after.inpatient_fund_paid) == (0, 0)
    assert kinds == 2  # completed and reversed


def test_two_hospitals_settling_one_person_at_once_never_exceed_the_cap(stack, producer):
    """示例市 resident, annual cap 130,000: eight bills of 100,000 at once, from two hospitals."""
    psn, ref = enrolled_person(stack, producer, home_pool="999903")
    visits = []
    for hospital in (GZ_A, GZ_B) * 4:
        http, env = client(stack, hospital)
        visits.append((http, env, open_and_upload(http, env, psn, [(JIA_DRUG, "1", "100000.00")])))

    def settle(v):
        http, env, mdtrt = v
        return call(http, env("2304", {"data": {"mdtrt_id": mdtrt}}))

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(settle, visits))
    assert all(status == 200 for status, _ in results), results
    paid = sum(int(float(b["output"]["setlinfo"]["hifp_pay"]) * 100 + 0.5) for _, b in results)
    assert paid == 130_000_00
    with stack.engine.connect() as conn:
        row = conn.execute(sa.select(db.accumulators).where(db.accumulators.c.person_ref == ref)).one()
    assert row.inpatient_fund_paid == 130_000_00 and row.admissions == 8


def _figures(body: dict) -> dict:
    """A (pre-)settlement's answer without what differs from one request to the next."""
    output = body["output"]
    return {**output, "setlinfo": {k: v for k, v in output["setlinfo"].items() if k not in ("setl_time", "medins_setl_id")}}


def test_flushing_redis_never_changes_a_result(stack, producer):
    psn, _ = enrolled_person(stack, producer, home_pool="371525")
    http, env = client(stack, GZ_A)
    mdtrt = open_and_upload(http, env, psn, [(JIA_DRUG, "3", "1234.56"), ("110001000020000", "4", "70.00")])
    preview = call(http, env("2303", {"data": {"mdtrt_id": mdtrt}}))
    assert preview[0] == 200

    stack.read_model.redis.flushdb()
    during = call(http, env("2303", {"data": {"mdtrt_id": mdtrt}}))
    assert during[0] == 200  # hub_not_ready while rebuilding, never a different answer
    if during[1]["infcode"] == "0":
        assert _figures(during[1]) == _figures(preview[1])
    else:
        assert during[1]["err_code"] == "hub_not_ready"
    wait_for(stack.read_model.ready, "the rebuilt read model")
    stack.service.reference._checked = 0  # do not wait for the cache's refresh period
    after = call(http, env("2303", {"data": {"mdtrt_id": mdtrt}}))
    assert after[0] == 200 and _figures(after[1]) == _figures(preview[1])
    assert stack.consumer.rebuilds >= 2


def test_a_service_killed_between_commit_and_publish_loses_no_event(stack, producer, servers):
    """The API runs as its own process without a relay and is killed after it answered; the
    relay started afterwards publishes the committed settlement exactly once."""
    psn, _ = enrolled_person(stack, producer)
    port = 18000 + os.getpid() % 1000
    env = {**os.environ, **stack.env}
    api = subprocess.Popen([sys.executable, "-m", "hub.cli", "settlement", "serve", "--port", str(port), "--no-relay"],
                           env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        import httpx

        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: http_ready(base + "/health/ready"), "the API process")
        code, pool = GZ_A
        envelope = Envelope(code, pool)
        headers = {"Authorization": f"Bearer dev-{code}"}
        body = httpx.post(base + CONVENTION_PATH, headers=headers, json=envelope(
            "2401", {"mdtrtinfo": {"psn_no": psn, "med_type": "21", "begntime": "2026-03-10"}})).json()
        mdtrt = body["output"]["result"]["mdtrt_id"]
        httpx.post(base + CONVENTION_PATH, headers=headers, json=envelope(
            "2301", {"feedetail": [{"mdtrt_id": mdtrt, "med_list_codg": JIA_DRUG, "cnt": "1", "pric": "1800.00"}]}))
        settled = httpx.post(base + CONVENTION_PATH, headers=headers, json=envelope("2304", {"data": {"mdtrt_id": mdtrt}})).json()
        setl_id = settled["output"]["setlinfo"]["setl_id"]
    finally:
        api.send_signal(signal.SIGKILL)
        api.wait(timeout=30)

    assert settlement_events(servers.kafka_bootstrap, stack.codec, setl_id, expect=1, wait_s=2) == []
    relay = subprocess.Popen([sys.executable, "-m", "hub.cli", "settlement", "relay"], env=env, cwd=REPO,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        with stack.engine.connect() as conn:
            wait_for(lambda: conn.execute(sa.select(sa.func.count()).select_from(db.outbox)
                                          ).scalar_one() == 0 or None,
                     "the relay to publish")
    finally:
        relay.send_signal(signal.SIGTERM)
        relay.wait(timeout=30)
    events = settlement_events(servers.kafka_bootstrap, stack.codec, setl_id, expect=1)
    # 九江 resident filed to 广州 (referral): (1800 - 600) x 50 % = 600 yuan
    assert len(events) == 1 and events[0]["hifp_pay_fen"] == 600_00


def test_hospital_reconciliation_totals_and_detail(stack, producer):
    psn, _ = enrolled_person(stack, producer)
    http, env = client(stack, GZ_B)
    setl = []
    for price in ("1000.00", "2500.00", "4000.00"):
        mdtrt = open_and_upload(http, env, psn, [(JIA_DRUG, "1", price)])
        setl.append(call(http, env("2304", {"data": {"mdtrt_id": mdtrt}}))[1]["output"]["setlinfo"])
    call(http, env("2305", {"data": {"setl_id": setl[2]["setl_id"]}}))  # reversed: no longer standing
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date().isoformat()  # the business date of these settlements
    medfee = "3500.00"
    fund = fen_to_yuan(yuan_to_fen(setl[0]['fund_pay_sumamt']) + yuan_to_fen(setl[1]['fund_pay_sumamt']))
    span = {"stmt_begndate": today, "stmt_enddate": today}

    status, body = call(http, env("3201", {"data": {**span, "medfee_sumamt": medfee, "fund_pay_sumamt": fund,
                                                    "fixmedins_setl_cnt": 2}}))
    assert status == 200 and body["output"]["stmtinfo"]["stmt_rslt"] == "0", body
    status, body = call(http, env("3201", {"data": {**span, "medfee_sumamt": "7500.00", "fund_pay_sumamt": fund,
                                                    "fixmedins_setl_cnt": 3}}))
    assert body["output"]["stmtinfo"]["stmt_rslt"] == "1"
    assert "medfee_sumamt" in body["output"]["stmtinfo"]["stmt_rslt_dscr"]

    details = [{"setl_id": s["setl_id"], "medfee_sumamt": s["medfee_sumamt"], "fund_pay_sumamt": s["fund_pay_sumamt"]}
               for s in setl]
    details[1]["medfee_sumamt"] = "2499.99"
    status, body = call(http, env("3202", {"data": {**span, "details": details}}))
    assert body["output"]["stmtinfo"]["stmt_rslt"] == "1"
    assert {(d["setl_id"], d["reason"]) for d in body["output"]["differences"]} == {
        (setl[1]["setl_id"], "amounts_differ"), (setl[2]["setl_id"], "not_standing_at_hub")}


def test_one_group_commit_decides_each_settlement_as_if_it_were_alone(stack, producer):
    """run_group with a real group in one transaction: one person's bills in arrival order
    against the accumulators the earlier ones left (示例市 annual cap 130,000), a repeated msgid
    answered like its first, a reused msgid with other content refused, a visit settled twice
    in the group, another hospital's visit — each answered as alone, nothing else written."""
    psn, ref = enrolled_person(stack, producer, home_pool="999903")
    http_a, env_a = client(stack, GZ_A)
    http_b, env_b = client(stack, GZ_B)
    visits = [open_and_upload(http_a, env_a, psn, [(JIA_DRUG, "1", "100000.00")]) for _ in range(3)]
    foreign = open_and_upload(http_b, env_b, psn, [(JIA_DRUG, "1", "10.00")])
    hospital_a = stack.hospitals.by_code[GZ_A[0]]
    service = stack.service

    def request(msgid: str, mdtrt_id: str, **extra):
        checked = service.check(hospital_a, {"infno": "2304", "msgid": msgid, "input": {"data": {"mdtrt_id": mdtrt_id,
                                                                                             **extra}}})
        assert isinstance(checked, Request), checked
        return checked

    status, preview = call(http_a, env_a("2303", {"data": {"mdtrt_id": visits[0]}}))
    assert (status, preview["output"]["setlinfo"]["hifp_pay"]) == (200, "54780.00")  # one such bill alone
    group = [request("G-1", visits[0]), request("G-2", visits[1]), request("G-1", visits[0]),
             request("G-3", visits[2]), request("G-4", visits[0]), request("G-5", foreign),
             request("G-2", visits[1], medfee_sumamt="1.00")]
    replies = service.run_group(group)
    assert [r.body["infcode"] for r in replies] == ["0", "0", "0", "0", "-1", "-1", "-1"], [r.body.get("err_code") for r in replies]
    assert {status_of(r) for r in replies} == {200}  # refusals are answered in the envelope
    assert replies[2].body == replies[0].body  # the repeated msgid: the first one's answer
    assert [replies[i].body["err_code"] for i in (4, 5, 6)] == [
        "visit_already_settled", "visit_of_another_hospital", "msgid_reused_with_different_content"]
    paid = [yuan_to_fen(replies[i].body["output"]["setlinfo"]["hifp_pay"]) for i in (0, 1, 3)]
    # Alone, a 100,000 bill gets 54,780 from the fund (the preview above); the third in
    # the group gets only what the annual cap leaves: 130,000 - 2 x 54,780 = 20,440.
    assert paid == [54_780_00, 54_780_00, 20_440_00]
    for i in (0, 1, 3):
        info = replies[i].body["output"]["setlinfo"]
        parts = sum(yuan_to_fen(info[k]) for k in ("hifp_pay", "hifmi_pay", "maf_pay", "psn_part_amt"))
        assert parts == yuan_to_fen(info["medfee_sumamt"])  # balances to the fen
    with stack.engine.connect() as conn:
        acc = conn.execute(sa.select(db.accumulators).where(db.accumulators.c.person_ref == ref)).one()
        assert (acc.inpatient_fund_paid, acc.admissions) == (130_000_00, 3)
        assert conn.execute(sa.select(sa.func.count()).select_from(db.settlements)).scalar_one() == 3
        assert conn.execute(sa.select(sa.func.count()).select_from(db.outbox)).scalar_one() == 3
        assert conn.execute(sa.select(db.visits.c.status).where(db.visits.c.mdtrt_id == foreign)).scalar_one() == "OPEN"
    # Each answer was remembered with its msgid: asked again, one at a time, the same answers.
    again = [service.handle(hospital_a, {"infno": "2304", "msgid": m, "input": {"data": {"mdtrt_id": v}}})
             for m, v in (("G-1", visits[0]), ("G-4", visits[0]), ("G-5", foreign))]
    assert [r.body for r in again] == [replies[0].body, replies[4].body, replies[5].body]


def test_a_lost_database_answers_503_in_the_envelope_and_a_retry_settles_once(stack, producer, monkeypatch):
    psn, _ = enrolled_person(stack, producer)
    http, env = client(stack, GZ_A)
    mdtrt = open_and_upload(http, env, psn, [(JIA_DRUG, "1", "100.00")])
    request = env("2304", {"data": {"mdtrt_id": mdtrt}})
    repository = stack.service.repository
    real = repository.transaction

    def database_gone():
        raise psycopg.OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(repository, "transaction", database_gone)
    status, body = call(http, request)
    assert (status, body["infcode"], body["err_code"]) == (503, "-1", "hub_unavailable")
    monkeypatch.setattr(repository, "transaction", real)
    status, body = call(http, request)
    assert status == 200 and call(http, request) == (200, body)
    with stack.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(db.settlements)).scalar_one() == 1


def test_a_chronic_visits_2203_diagnosis_and_medical_type_reach_the_rules(stack, producer):
    """2201 opens an outpatient visit; 2203 names it a chronic-disease visit (med_type 14) with
    the 病种 dialysis: 冠县 pays it within the inpatient cap, not the other diseases' 10,000
    (READINGS.md 33) — read back from PostgreSQL at settlement."""
    psn, _ = enrolled_person(stack, producer, home_pool="371525", filings=[{
        "filing_id": "F-LT", "filing_type": "LONG_TERM_RESIDENT", "target_pool": "440100",
        "valid_from": date(2026, 1, 1), "valid_to": None, "revoked": False}])  # no off-site reduction
    http, env = client(stack, GZ_A)

    def chronic_bill(diagnosis: str) -> dict:
        status, body = call(http, env("2201", {"data": {"psn_no": psn, "begntime": "2026-03-10 09:00:00"}}))
        assert status == 200, body
        mdtrt = body["output"]["data"]["mdtrt_id"]
        status, body = call(http, env("2203", {
            "mdtrtinfo": {"mdtrt_id": mdtrt, "psn_no": psn, "med_type": "14", "begntime": "2026-03-10 09:00:00",
                          "dise_codg": diagnosis, "dise_name": "门诊慢特病"},
            "diseinfo": [{"diag_type": "1", "diag_srt_no": "1", "diag_code": diagnosis, "diag_name": "诊断"}]}))
        assert status == 200 and body["infcode"] == "0", body
        status, body = call(http, env("2204", {"feedetail": [
            {"feedetl_sn": "1", "mdtrt_id": mdtrt, "med_list_codg": JIA_DRUG, "cnt": "1", "pric": "20000.00"}]}))
        assert status == 200 and body["infcode"] == "0", body
        status, body = call(http, env("2207", {"data": {"mdtrt_id": mdtrt, "psn_no": psn, "med_type": "14",
                                                        "medfee_sumamt": "20000.00"}}))
        assert status == 200 and body["infcode"] == "0", body
        with stack.engine.connect() as conn:
            row = conn.execute(sa.text("select med_type, diagnoses from visits where mdtrt_id = :m"), {"m": mdtrt}).one()
        assert (row.med_type, row.diagnoses) == ("14", diagnosis)
        return body["output"]["setlinfo"]

    # 冠心病 first: 20000 x 65% = 13000, held to the other diseases' 10000
    assert chronic_bill("I25.103")["hifp_pay"] == "10000.00"
    # dialysis next: 13000, bounded by the inpatient cap only (the 10000 is used up, and not its)
    assert chronic_bill("N18.500")["hifp_pay"] == "13000.00"


def test_a_database_made_before_a_column_was_added_gets_it_in_place(scratch_database):
    """Columns added after a table's first schema (ADDED_COLUMNS) are added to an existing
    database, with their defaults, and existing rows keep working: a database made before the
    schema's history began (no alembic_version) is brought to its head by the baseline revision."""
    engine = sa.create_engine(scratch_database)
    try:
        db.create_schema(engine)
        with engine.begin() as conn:
            conn.execute(sa.text("drop table alembic_version"))  # as the create-at-start code left it
            conn.execute(sa.text("alter table visits drop column diagnoses"))
            conn.execute(sa.text("alter table accumulators drop column accident_outpatient_fund_paid"))
            conn.execute(sa.text("insert into visits (mdtrt_id, hospital_code, person_ref, person_id_masked, med_type,"
                                 " insutype, begntime, status) values ('M1', 'H', 'p', 'm', '11', '390', '2026-03-10',"
                                 " 'OPEN')"))
        db.create_schema(engine)
        db.create_schema(engine)  # and again: nothing to add
        with engine.connect() as conn:
            assert conn.execute(sa.text("select diagnoses from visits where mdtrt_id = 'M1'")).scalar_one() == ""
            columns = {r[0] for r in conn.execute(sa.text(
                "select column_name from information_schema.columns where table_name = 'accumulators'"))}
        assert "accident_outpatient_fund_paid" in columns
        assert migrations.current(engine) == migrations.head(db.MIGRATIONS)
    finally:
        engine.dispose()


def test_a_draft_policy_replayed_over_settled_bills_with_the_same_engine(stack, producer, tmp_path):
    """`hub policy replay`: 九江's settled off-site bills and a paid manual claim re-priced under a
    draft that raises the referral ratio from 50 % to 60 %, accumulators replayed; the report's
    totals computed by hand, a bill of another pool's insured left alone."""
    import json

    import yaml

    psn, _ = enrolled_person(stack, producer)  # 九江, a referral to 广州
    other, _ = enrolled_person(stack, producer, home_pool="371525")
    http, env = client(stack, GZ_A)
    for n, person in enumerate([psn, psn, other, psn]):
        mdtrt = open_and_upload(http, env, person, [(JIA_DRUG, "1", "10000.00")], begn=f"2026-03-1{n} 09:00:00")
        status, body = call(http, env("2304", {"data": {"mdtrt_id": mdtrt, "endtime": f"2026-03-1{n} 10:00:00"}}))
        assert status == 200 and body["infcode"] == "0", body
    # and a manual claim (零星报销) the home bureau paid: a bill too, in the same accumulators
    claim = {"claim_no": f"LX-R-{psn[-8:]}", "psn_no": psn, "med_type": "21", "treatment_pool": "440100",
             "hospital_code": GZ_A[0], "begntime": "2026-03-20", "endtime": "2026-03-21",
             "reason": "COUNTER_DOWN", "feedetail": [{"feedetl_sn": "1", "med_list_codg": JIA_DRUG, "cnt": "1",
                                                      "pric": "10000.00"}]}
    paid = TestClient(create_app(stack)).post("/v1/claims", json=claim,
                                              headers={"Authorization": "Bearer dev-bureau-360400"})
    assert paid.status_code == 201 and paid.json()["hifp_pay"] == "4700.00", paid.text
    document = yaml.safe_load((REPO / "reference" / "policies" / "360400-RESIDENT-2020.2.yaml").read_text("utf-8"))
    document["policy_version"] = "360400-RESIDENT-DRAFT.1"
    document["off_site"]["rules"]["REFERRAL"]["ratio_by_level"] = {"1": 60, "2": 60, "3": 60}
    draft = tmp_path / "draft.yaml"
    draft.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date().isoformat()
    # the replay answers no hospital: it runs where their gateway secrets are not (env:... unset)
    hospitals = tmp_path / "hospitals.yaml"
    hospitals.write_text((REPO / "reference" / "hospitals.yaml").read_text("utf-8")
                         .replace('paas_token_ref: "sample:"', 'paas_token_ref: "env:HUB_PAAS_TOKEN_NOT_HERE"'), "utf-8")
    done = subprocess.run([sys.executable, "-m", "hub.cli", "policy", "replay", "--policy", str(draft),
                           "--from", today, "--to", today, "--out", str(tmp_path / "out")],
                          env={**os.environ, **stack.env, "HUB_HOSPITALS_FILE": str(hospitals)}, cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    [report_path] = (tmp_path / "out").glob("replay_*.json")
    report = json.loads(report_path.read_text())
    # as settled: 4 bills (3 at the counter, 1 claim) x (10000 - 600) x 50% = 4 x 4,700.00;
    # under the draft: 4 x 9,400 x 60% = 4 x 5,640.00
    assert report["total"]["before"]["funds"]["390100"] == 4 * 470_000
    assert report["total"]["after"]["funds"]["390100"] == 4 * 564_000
    assert report["total"]["after"]["psn_part_amt_fen"] == 4 * (1_000_000 - 564_000)
    assert report["by_treatment_pool"]["440100"]["after"]["bills"] == 4  # the 冠县 insured's bill is not 九江's
    assert [c["change_fen"] for c in report["largest_changes"]] == [94_000] * 4
    assert f"claim:{claim['claim_no']}" in {c["setl_id"] for c in report["largest_changes"]}
    assert report["patient_share_tenths"]["before"][5] == 4 and report["patient_share_tenths"]["after"][4] == 4
    page = report_path.with_suffix(".html").read_text()
    assert "<svg" in page and "360400-RESIDENT-DRAFT.1" in page
    assert "re-priced under 360400-RESIDENT-DRAFT.1" in done.stdout


def test_manual_claims_priced_at_home_idempotent_shared_accumulators_one_event_each(stack, producer):
    """零星报销 over the bureaus' API with the real database: an unfiled 九江 resident (the counter
    refuses them: filing_required) claims at home; the same claim again answers the same; an
    agency lodges a second claim and the home bureau approves it; the person-year holds both;
    each claim's event is published once; no person id in clear is kept or answered."""
    psn, ref = enrolled_person(stack, producer, filings=[])
    http, env = client(stack, GZ_A)
    mdtrt = open_and_upload(http, env, psn, [(JIA_DRUG, "1", "10000.00")])
    _, refused_at_counter = call(http, env("2304", {"data": {"mdtrt_id": mdtrt, "endtime": "2026-03-15 10:00:00"}}))
    assert refused_at_counter["err_code"] == "filing_required"

    bureau = {"Authorization": "Bearer dev-bureau-360400"}
    body = {"claim_no": f"LX-{psn[-8:]}", "psn_no": psn, "med_type": "21", "treatment_pool": "440100",
            "hospital_code": GZ_A[0], "begntime": "2026-03-10", "endtime": "2026-03-15", "reason": "NOT_FILED",
            "feedetail": [{"feedetl_sn": "1", "med_list_codg": JIA_DRUG, "cnt": "1", "pric": "10000.00"}]}
    api = TestClient(create_app(stack))
    first = api.post("/v1/claims", json=body, headers=bureau)
    assert first.status_code == 201, first.text
    # unfiled: 800 yuan deductible, 40 %: (10,000 - 800) x 40 % = 3,680.00
    assert (first.json()["hifp_pay"], first.json()["psn_part_amt"]) == ("3680.00", "6320.00")
    again = api.post("/v1/claims", json=body, headers=bureau)
    assert again.status_code == 200 and again.json() == first.json()
    reused = api.post("/v1/claims", json={**body, "endtime": "2026-03-14"}, headers=bureau)
    assert reused.status_code == 409 and reused.json()["error"]["code"] == "claim_number_reused"
    assert api.post("/v1/claims", json=body).status_code == 401

    lodged = api.post("/v1/claims", json={**body, "claim_no": body["claim_no"] + "-2", "home_pool": "360400",
                                          "begntime": "2026-04-01", "endtime": "2026-04-03"},
                      headers={"Authorization": "Bearer dev-agency-A440100"})
    assert lodged.status_code == 202 and lodged.json()["status"] == "LODGED"
    second = body["claim_no"] + "-2"
    assert api.get(f"/v1/claims/360400/{second}", headers={"Authorization": "Bearer dev-agency-A510900"}).status_code == 404
    decided = api.post(f"/v1/claims/360400/{second}/decision", json={"decision": "APPROVE"}, headers=bureau)
    assert decided.status_code == 200 and decided.json()["status"] == "SETTLED"

    total = sum(round(float(r.json()["hifp_pay"]) * 100) for r in (first, decided))
    year = stack.service.repository.year_accumulators(ref, 2026)
    assert year.inpatient_fund_paid == total and year.admissions == 2
    mine = api.get("/v1/claims", headers={"Authorization": "Bearer dev-agency-A440100"}).json()["claims"]
    assert [c["claim_no"] for c in mine] == [second]

    relay = OutboxRelay(stack.engine, db.outbox, stack.producer("t-relay"), db.OUTBOX_RELAY_LOCK)
    with stack.engine.connect() as conn:
        relay.publish_batch(conn)
    for claim_no, answer in ((body["claim_no"], first), (second, decided)):
        events = settlement_events(stack.settings.kafka_bootstrap, stack.codec, claim_no, expect=1, field="claim_no")
        assert [e["hifp_pay_fen"] for e in events] == [round(float(answer.json()["hifp_pay"]) * 100)]
    with stack.engine.connect() as conn:
        kept = conn.execute(sa.text("select manual_claims::text from manual_claims")).scalars().all()
    assert len(kept) == 2 and not any(psn in row for row in kept) and psn not in first.text


def test_the_manual_claims_api_never_answers_5xx(stack):
    """Schemathesis over the claims routes (as a bureau and as an agency), on the real database:
    whatever is sent to them is answered, at worst with a 4xx. Bodies are fuzzed in
    tests/unit/settlement/test_claims.py (the routes read them as raw JSON)."""
    import schemathesis

    from .test_bureau_api_schema import every_operation_never_answers_5xx

    app = create_app(stack)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app.fallback).include(path_regex="^/v1/claims")
    assert every_operation_never_answers_5xx(schema, 40, {"Authorization": "Bearer dev-bureau-360400"}) == 4
    assert every_operation_never_answers_5xx(schema, 20, {"Authorization": "Bearer dev-agency-A440100"}) == 4
