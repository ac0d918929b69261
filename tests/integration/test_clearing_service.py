"""interregion-clearing against real Kafka and PostgreSQL: exact totals at volume, crash and
restart, late events, file access and byte-identical re-runs."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import uuid
from datetime import date, datetime, timedelta, timezone

import openpyxl
import pytest
import sqlalchemy as sa

from hub import migrations
from fastapi.testclient import TestClient
from kafka import KafkaAdminClient
from kafka.errors import KafkaError

from hub.clearing.adapters import database as db
from hub.clearing.bootstrap import Settings, bootstrap
from hub.clearing.entrypoints.consumer import ClearingConsumer
from hub.clearing.entrypoints.http import create_app
from tests.fixtures.avro.samples import SAMPLES

from .settlement_helpers import REPO, wait_for

D1, D2 = date(2026, 3, 14), date(2026, 3, 15)
POOLS = [f"{p:02d}0100" for p in range(11, 41)]  # 30 pools
SETTLED = SAMPLES["cn.hub.settlement.SettlementCompleted"]
REVERSED = SAMPLES["cn.hub.settlement.SettlementReversed"]


def settled(rnd: random.Random, n: int, day: date) -> dict:
    home, treat = rnd.sample(POOLS, 2)
    fund, serious, assistance = rnd.randint(0, 2_000_000), rnd.choice([0, 0, 0, rnd.randint(1, 500_000)]), 0
    return dict(SETTLED, event_id=uuid.uuid4(), settlement_id=f"S{n:09d}", home_pool=home, treatment_pool=treat,
                hospital_code=f"H{treat}0001", business_date=day,
                settled_at=datetime(day.year, day.month, day.day, 3, tzinfo=timezone.utc),
                hifp_pay_fen=fund, hifmi_pay_fen=serious, maf_pay_fen=assistance,
                fund_pay_sumamt_fen=fund + serious, medfee_sumamt_fen=fund + serious + 1000, psn_part_amt_fen=1000,
                person_id_masked="3604**********1234")


def reversal(of: dict, day: date) -> dict:
    return dict(REVERSED, event_id=uuid.uuid4(), reversal_id="R" + of["settlement_id"][1:],
                settlement_id=of["settlement_id"], home_pool=of["home_pool"], treatment_pool=of["treatment_pool"],
                hospital_code=of["hospital_code"], business_date=day, original_business_date=of["business_date"],
                reversed_at=datetime(day.year, day.month, day.day, 5, tzinfo=timezone.utc),
                medfee_sumamt_fen=of["medfee_sumamt_fen"], hifp_pay_fen=of["hifp_pay_fen"],
                hifmi_pay_fen=of["hifmi_pay_fen"], maf_pay_fen=of["maf_pay_fen"],
                fund_pay_sumamt_fen=of["fund_pay_sumamt_fen"], psn_part_amt_fen=of["psn_part_amt_fen"])


def send(producer, topic: str, events: list[dict]) -> None:
    for e in events:
        name = "SettlementReversed" if "reversal_id" in e else "SettlementCompleted"
        producer.send(topic, e["home_pool"], name, e)
    producer.flush()


def expected_nets(events: list[tuple[dict, date]]) -> dict[date, dict[str, int]]:
    """Recomputed from the events alone: once per event id, reversals negative, in their clearing day."""
    seen, nets = set(), {}
    for e, day in events:
        if e["event_id"] in seen:
            continue
        seen.add(e["event_id"])
        sign = -1 if "reversal_id" in e else 1
        amount = sign * (e["hifp_pay_fen"] + e["hifmi_pay_fen"] + e["maf_pay_fen"])
        day_nets = nets.setdefault(day, {})
        day_nets[e["treatment_pool"]] = day_nets.get(e["treatment_pool"], 0) + amount
        day_nets[e["home_pool"]] = day_nets.get(e["home_pool"], 0) - amount
    return nets


@pytest.fixture
def clearing(servers, scratch_database, topic_factory, tmp_path):
    topic = topic_factory(partitions=6)
    settings = Settings(postgres_url=scratch_database, kafka_bootstrap=servers.kafka_bootstrap,
                        database=sa.make_url(scratch_database).database, out_dir=tmp_path / "out", grace_s=0,
                        group_id=f"g-{uuid.uuid4().hex[:8]}", topic=topic,
                        bureaus_file=REPO / "reference" / "bureaus.yaml")
    c = bootstrap(settings)
    c.env = {"HUB_POSTGRES_URL": scratch_database, "HUB_KAFKA_BOOTSTRAP": servers.kafka_bootstrap,
             "HUB_CLEARING_DATABASE": settings.database, "HUB_CLEARING_OUT": str(settings.out_dir),
             "HUB_CLEARING_GROUP": settings.group_id, "HUB_SETTLEMENT_TOPIC": topic}
    yield c
    c.engine.dispose()


def consume(c) -> int:
    consumer = ClearingConsumer(c, auto_close=False)
    consumer.run(max_idle_s=3)
    return consumer.loop.handled


def statement_nets(c, day: date) -> dict[str, int]:
    with c.engine.connect() as conn:
        return dict(conn.execute(sa.select(db.statements.c.pool_code, db.statements.c.net_position_fen)
                                 .where(db.statements.c.clearing_date == day)).all())


def test_100000_settlements_across_30_pools_give_the_exact_totals(clearing, producer):
    rnd = random.Random(7)
    log: list[tuple[dict, date]] = []
    day1 = [settled(rnd, n, D1) for n in range(55_000)]
    day1_reversals = [reversal(e, D1) for e in rnd.sample(day1, 1_000)]
    duplicates = rnd.sample(day1, 600)  # redelivered: same event ids
    phase1 = day1 + day1_reversals + duplicates
    rnd.shuffle(phase1)
    send(producer, clearing.settings.topic, phase1)
    log += [(e, D1) for e in phase1]
    assert consume(clearing) == len(phase1)
    first = clearing.service.close_day(D1)
    assert not first.already_closed

    day2 = [settled(rnd, n, D2) for n in range(55_000, 97_000)]
    late = [settled(rnd, n, D1) for n in range(97_000, 98_400)]  # business date D1, arriving after its close
    crossing = [reversal(e, D2) for e in rnd.sample(day1, 700)]  # reversals of D1 settlements on D2
    phase2 = day2 + late + crossing + rnd.sample(day2, 400)
    rnd.shuffle(phase2)
    send(producer, clearing.settings.topic, phase2)
    log += [(e, D2) for e in phase2]
    consume(clearing)
    clearing.service.close_day(D2)

    settlements = len({e["settlement_id"] for e, _ in log if "reversal_id" not in e})
    assert settlements == 55_000 + 42_000 + 1_400 and settlements + 1_700 >= 100_000
    expected = expected_nets(log)
    for day in (D1, D2):
        got = statement_nets(clearing, day)
        assert got == expected[day]
        assert sum(got.values()) == 0
    with clearing.engine.connect() as conn:
        late_rows = conn.execute(sa.select(sa.func.count()).select_from(db.applied_events)
                                 .where(db.applied_events.c.late, db.applied_events.c.clearing_date == D2)).scalar_one()
        applied = conn.execute(sa.select(sa.func.count()).select_from(db.applied_events)).scalar_one()
    assert late_rows == 1_400
    assert applied == len({e["event_id"] for e, _ in log})


def test_a_consumer_killed_mid_day_and_restarted_changes_nothing(clearing, producer):
    rnd = random.Random(11)
    events = [settled(rnd, n, D1) for n in range(20_000)]
    events += [reversal(e, D1) for e in rnd.sample(events, 300)]
    send(producer, clearing.settings.topic, events)
    env = {**os.environ, **clearing.env}
    cmd = [sys.executable, "-m", "hub.cli", "clearing", "consume", "--no-auto-close"]
    first = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with clearing.engine.connect() as conn:
            wait_for(lambda: conn.execute(sa.select(sa.func.count()).select_from(db.applied_events)).scalar_one() > 3_000
                     or None, "the first consumer to be mid-day", limit_s=120)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    second = subprocess.run([*cmd, "--max-idle-s", "5"], env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr[-2000:]
    clearing.service.close_day(D1)
    assert statement_nets(clearing, D1) == {p: n for p, n in expected_nets([(e, D1) for e in events])[D1].items()}


def test_two_consumers_in_one_group_count_every_event_once(clearing, producer):
    """The deployment runs several clearing consumers in one group (one a core here: the bench's
    --members 2); their batches commit side by side, and a redelivered event counts once."""
    rnd = random.Random(13)
    events = [settled(rnd, n, D1) for n in range(30_000)]
    events += [reversal(e, D1) for e in rnd.sample(events, 500)]
    events += rnd.sample(events, 400)  # redelivered: same event ids
    rnd.shuffle(events)
    env = {**os.environ, **clearing.env}
    cmd = [sys.executable, "-m", "hub.cli", "clearing", "consume", "--no-auto-close", "--max-idle-s", "10"]
    members = [subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for _ in range(2)]
    admin = KafkaAdminClient(bootstrap_servers=clearing.settings.kafka_bootstrap)
    try:  # both in the group and the group stable (partitions assigned) before the events arrive
        def joined():
            try:
                group = admin.describe_groups([clearing.settings.group_id])[clearing.settings.group_id]
            except KafkaError as exc:  # a fresh broker makes its group coordinator on first use
                if not exc.retriable:
                    raise
                return None
            return group["group_state"] == "Stable" and len(group["members"]) == 2 or None
        wait_for(joined, "two members in a stable group", limit_s=60)
    finally:
        admin.close()
    send(producer, clearing.settings.topic, events)
    outputs = [m.communicate(timeout=300) for m in members]
    assert [m.returncode for m in members] == [0, 0], [err[-2000:] for _, err in outputs]
    handled = [int(out.split()[1]) for out, _ in outputs]  # "handled N events, ..."
    assert all(handled), f"one member had no partitions: {handled}"
    assert sum(handled) >= len(events)
    with clearing.engine.connect() as conn:
        applied = conn.execute(sa.select(sa.func.count()).select_from(db.applied_events)).scalar_one()
    assert applied == len({e["event_id"] for e in events})
    clearing.service.close_day(D1)
    nets = statement_nets(clearing, D1)
    assert nets == expected_nets([(e, D1) for e in events])[D1]
    assert sum(nets.values()) == 0


def test_bureaus_see_only_their_own_files_and_a_closed_day_rerenders_byte_identically(clearing, producer):
    rnd = random.Random(3)
    events = [settled(rnd, n, D1) for n in range(300)]
    events = [dict(e, home_pool=rnd.choice(["360400", "999903"]), treatment_pool="440100") for e in events]
    send(producer, clearing.settings.topic, events)
    consume(clearing)
    first = clearing.service.close_day(D1)
    written = {p.name: p.read_bytes() for p in first.files}
    again = clearing.service.close_day(D1)
    assert again.already_closed
    assert {p.name: p.read_bytes() for p in again.files} == written
    assert clearing.service.render_day(D1) == written  # what the close wrote is what the database re-renders
    assert "summary_2026-03-14.html" in written and "<svg" in written["summary_2026-03-14.html"].decode()

    http = TestClient(create_app(clearing))
    gz = {"Authorization": "Bearer dev-bureau-440100"}
    own = http.get("/v1/clearing/2026-03-14/440100.csv", headers=gz)
    assert own.status_code == 200 and own.content == written["clearing_2026-03-14_440100.csv"]
    assert own.content.startswith("\ufeff".encode()) and "清算文件".encode() in own.content
    # served as written at the close; where this replica holds no file, rendered again, byte-identical
    next(p for p in first.files if p.name == "clearing_2026-03-14_440100.csv").unlink()
    assert http.get("/v1/clearing/2026-03-14/440100.csv", headers=gz).content == own.content
    other = http.get("/v1/clearing/2026-03-14/360400.csv", headers=gz)
    assert (other.status_code, other.json()["error"]["code"]) == (403, "file_of_another_pool")
    assert http.get("/v1/clearing/2026-03-14/440100.csv").status_code == 401
    assert http.post("/v1/clearing/2026-03-14/360400/confirm", headers=gz).status_code == 403

    operator = {"Authorization": "Bearer dev-operator"}
    assert {u["pool_code"] for u in http.get("/v1/clearing/unconfirmed", headers=operator).json()} == {"440100", "360400", "999903"}
    assert http.post("/v1/clearing/2026-03-14/440100/confirm", headers=gz).status_code == 200
    assert {u["pool_code"] for u in http.get("/v1/clearing/unconfirmed", headers=operator).json()} == {"360400", "999903"}
    assert http.get("/v1/clearing/unconfirmed", headers=gz).status_code == 403

    import hashlib
    manifest = written["clearing_2026-03-14_440100.sha256"].decode().splitlines()
    for line in manifest:
        digest, name = line.split("  ")
        assert hashlib.sha256(written[name]).hexdigest() == digest
    net_440100 = sum(e["hifp_pay_fen"] + e["hifmi_pay_fen"] for e in events)
    assert statement_nets(clearing, D1)["440100"] == net_440100


def test_a_day_closes_by_itself_once_every_partition_is_past_its_cut_off_and_statements_are_published(
        clearing, producer, servers):
    from kafka import KafkaConsumer, TopicPartition

    from hub.clearing.service_layer.closing import day_end
    from hub.messaging.outbox import OutboxRelay

    rnd = random.Random(5)
    events = [settled(rnd, n, D1) for n in range(200)]
    send(producer, clearing.settings.topic, events)
    consume(clearing)
    consumer = KafkaConsumer(bootstrap_servers=servers.kafka_bootstrap, group_id=None)
    tps = [TopicPartition(clearing.settings.topic, p) for p in consumer.partitions_for_topic(clearing.settings.topic)]
    ends = {(tp.topic, tp.partition): off for tp, off in consumer.end_offsets(tps).items()}
    consumer.close()

    clearing.service.grace = timedelta(minutes=30)
    clearing.service.clock = lambda: day_end(D1) + timedelta(minutes=29)
    assert clearing.service.due_days(ends) == []  # inside the grace period
    clearing.service.clock = lambda: day_end(D1) + timedelta(minutes=31)
    behind = dict(ends)
    first = next(iter(behind))
    behind[first] += 1  # a partition with an event not yet consumed, older than the cut-off
    assert clearing.service.due_days(behind) == []
    assert clearing.service.due_days(ends) == [D1]

    # The consumer closes it on its own and the statements go out through the outbox.
    ClearingConsumer(clearing, check_every_s=0)._maybe_close()
    with clearing.engine.connect() as conn:
        status = conn.execute(sa.select(db.days.c.status).where(db.days.c.clearing_date == D1)).scalar_one()
    assert status == "CLOSED"
    relay = OutboxRelay(clearing.engine, db.outbox, clearing.producer("t-relay"), db.OUTBOX_RELAY_LOCK)
    with clearing.engine.connect() as conn:
        published = relay.publish_batch(conn)
    assert published == len(statement_nets(clearing, D1)) == len({e["home_pool"] for e in events} | {e["treatment_pool"] for e in events})


def test_a_clearing_database_made_before_the_amount_renames_is_renamed_in_place(scratch_database):
    """Clearing's columns took the names the amounts carry from the engine (fund_fen ->
    hifp_pay_fen ...): a database created before keeps its rows, under the new names."""
    engine = sa.create_engine(scratch_database)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("create table bilateral (clearing_date date, home_pool text, treatment_pool text,"
                                 " fund_fen bigint, serious_illness_fen bigint, assistance_fen bigint,"
                                 " settlement_count bigint, primary key (clearing_date, home_pool, treatment_pool))"))
            conn.execute(sa.text("insert into bilateral values ('2026-03-10', '360400', '440100', 470000, 1200, 300, 2)"))
        db.create_schema(engine)
        db.create_schema(engine)  # and again: nothing left to rename
        with engine.connect() as conn:
            row = conn.execute(sa.select(db.bilateral)).one()
        assert (row.hifp_pay_fen, row.hifmi_pay_fen, row.maf_pay_fen, row.settlement_count) == (470000, 1200, 300, 2)
        assert migrations.current(engine) == migrations.head(db.MIGRATIONS)  # the history began with it
        # and the funds kept apart since: its rows are residents', its key names the insurance type
        assert row.insurance_type == "RESIDENT"
        with engine.begin() as conn:
            db.add_bilateral(conn, [(date(2026, 3, 10), "360400", "440100", "EMPLOYEE", 5, 0, 0, 1)])
            assert conn.execute(sa.select(sa.func.count()).select_from(db.bilateral)).scalar_one() == 2
    finally:
        engine.dispose()


def test_funds_are_kept_apart_and_a_bureau_verifies_the_signed_files(clearing, producer, tmp_path):
    """Employees' and residents' money nets fund by fund (each fund sums to zero); the files say
    which fund every amount is, name the treatment hospitals, come as CSV, JSON and XLSX, and
    carry an SM2 signature that `hub clearing verify` checks — and that a tampered file fails."""
    def bill(n, home, treat, kind, fund, serious=0, assistance=0):
        return dict(settled(random.Random(n), n, D1), home_pool=home, treatment_pool=treat, insurance_type=kind,
                    hospital_code=f"H{treat}000{n % 2}", hifp_pay_fen=fund, hifmi_pay_fen=serious,
                    maf_pay_fen=assistance, fund_pay_sumamt_fen=fund + serious + assistance)
    events = [bill(1, "360400", "440100", "RESIDENT", 100_000, 20_000, 3_000),
              bill(2, "360400", "440100", "RESIDENT", 50_000),
              bill(3, "440100", "360400", "EMPLOYEE", 70_000, 10_000),
              bill(4, "999903", "440100", "EMPLOYEE", 9_000)]
    old_style = dict(reversal(events[1], D1), insurance_type=None)  # a reversal written before v2
    events += [old_style, dict(reversal(events[3], D1), insurance_type="EMPLOYEE")]
    send(producer, clearing.settings.topic, events)
    consume(clearing)
    clearing.service.close_day(D1)
    with clearing.engine.connect() as conn:
        funds = {(r.pool_code, r.insutype, r.fund_pay_type): r.net_fen for r in conn.execute(
            sa.select(db.fund_statements).where(db.fund_statements.c.clearing_date == D1))}
    # 360400's residents owe 440100 100,000 + 20,000 + 3,000 (the second bill reversed); 440100's
    # employees owe 360400 70,000 + 10,000 — they do not offset: each fund moves its own money.
    assert funds == {("360400", "390", "390100"): -100_000, ("360400", "390", "390200"): -20_000,
                     ("360400", "390", "610100"): -3_000, ("360400", "310", "310100"): 70_000,
                     ("360400", "310", "330100"): 10_000,
                     ("440100", "390", "390100"): 100_000, ("440100", "390", "390200"): 20_000,
                     ("440100", "390", "610100"): 3_000, ("440100", "310", "310100"): -70_000,
                     ("440100", "310", "330100"): -10_000}
    by_fund: dict = {}
    for (_, insutype, fund), value in funds.items():
        by_fund[(insutype, fund)] = by_fund.get((insutype, fund), 0) + value
    assert set(by_fund.values()) == {0}  # 999903's employee bill was reversed the same day: nothing left

    out = clearing.settings.out_dir / D1.isoformat()
    document = json.loads((out / "clearing_2026-03-14_440100.json").read_text())
    assert [(f["insutype"], f["fund_pay_type"], f["net_fen"]) for f in document["funds"]] == [
        ("310", "310100", -70_000), ("310", "330100", -10_000), ("390", "390100", 100_000), ("390", "390200", 20_000),
        ("390", "610100", 3_000)]
    assert {(h["hospital_code"], h["insutype"], h["hifp_pay_fen"]) for h in document["hospitals"]} == {
        ("H4401000001", "390", 100_000), ("H4401000000", "390", 0), ("H4401000000", "310", 0)}
    assert {(b["counterparty_pool"], b["insutype"]) for b in document["bilateral"]} == {
        ("360400", "390"), ("360400", "310"), ("999903", "310")}
    csv_text = (out / "clearing_2026-03-14_440100.csv").read_text(encoding="utf-8-sig")
    assert "hifp_pay_yuan" in csv_text and "_fen" not in csv_text  # amounts in yuan are named so
    book = openpyxl.load_workbook(out / "clearing_2026-03-14_440100.xlsx")  # an independent reader
    assert book.sheetnames == ["清算文件", "预付金", "基金", "双边", "本地医院", "异常提示", "明细"]
    assert "城乡居民基本医疗保险基金" in [c.value for c in book["基金"]["C"]]
    assert [c.value for c in book["基金"]["F"]][2:] == [f["net_fen"] / 100 for f in document["funds"]]
    assert book["基金"]["F3"].number_format == "#,##0.00" and book["基金"]["A2"].font.b

    http = TestClient(create_app(clearing))
    public_key = http.get("/v1/clearing/public-key").text.strip()
    assert public_key == clearing.service.signer.public_key_hex
    fetched = tmp_path / "fetched"
    fetched.mkdir()
    gz = {"Authorization": "Bearer dev-bureau-440100"}
    for suffix in ("csv", "json", "xlsx", "sha256", "sig"):
        response = http.get(f"/v1/clearing/2026-03-14/440100.{suffix}", headers=gz)
        assert response.status_code == 200
        (fetched / f"clearing_2026-03-14_440100.{suffix}").write_bytes(response.content)

    def verify(path, key=public_key):
        return subprocess.run([sys.executable, "-m", "hub.cli", "clearing", "verify", str(path), "--public-key", key],
                              capture_output=True, text=True, cwd=REPO, timeout=120)
    good = verify(fetched / "clearing_2026-03-14_440100.xlsx")
    assert good.returncode == 0 and "verified 3 files" in good.stdout, good.stderr
    another_key = verify(fetched / "clearing_2026-03-14_440100.csv", "04" + "1" * 128)
    assert another_key.returncode == 1 and "another key" in another_key.stderr
    tampered = fetched / "clearing_2026-03-14_440100.csv"
    tampered.write_bytes(tampered.read_bytes().replace(b"1000.00", b"9000.00", 1))
    failed = verify(fetched / "clearing_2026-03-14_440100.json")
    assert failed.returncode == 1 and "clearing_2026-03-14_440100.csv was changed" in failed.stderr
    manifest = fetched / "clearing_2026-03-14_440100.sha256"
    manifest.write_bytes(manifest.read_bytes().replace(
        manifest.read_bytes().split(b"  ")[0], hashlib.sha256(tampered.read_bytes()).hexdigest().encode()))
    forged = verify(manifest)  # the manifest made to match the change: the signature no longer does
    assert forged.returncode == 1 and "signature" in forged.stderr


def test_advance_funds_are_drawn_by_daily_nets_and_a_low_one_warns(clearing, producer):
    """预付金: a bureau's deposit is drawn on by its daily net debits and replenished by its
    credits; under half of two months of its average daily payable it is warned, asked for the
    difference (in its file and the API), and a deposit recorded twice counts once."""
    http = TestClient(create_app(clearing))
    operator = {"Authorization": "Bearer dev-operator"}
    paid = http.post("/v1/advances/360400/deposits", headers=operator,
                     json={"reference": "BANK-0001", "amount_yuan": "5000000.00"})
    assert paid.status_code == 200 and paid.json()["balance_fen"] == 500_000_000
    again = http.post("/v1/advances/360400/deposits", headers=operator,
                      json={"reference": "BANK-0001", "amount_yuan": "5000000.00"})
    assert again.json() == paid.json()
    assert http.post("/v1/advances/360400/deposits", headers=operator,
                     json={"reference": "BANK-0001", "amount_yuan": "1.00"}).json()["error"]["code"] == "reference_reused"
    assert http.post("/v1/advances/360400/deposits", headers=operator,
                     json={"reference": "X", "amount_yuan": 1.5}).json()["error"]["code"] == "invalid_amount"
    gz = {"Authorization": "Bearer dev-bureau-440100"}
    assert http.post("/v1/advances/360400/deposits", headers=gz,
                     json={"reference": "X", "amount_yuan": "1.00"}).status_code == 403

    def day_of(day, n0, fund):
        e = dict(settled(random.Random(n0), n0, day), home_pool="360400", treatment_pool="440100",
                 hifp_pay_fen=fund, hifmi_pay_fen=0, maf_pay_fen=0, fund_pay_sumamt_fen=fund,
                 settled_at=datetime(day.year, day.month, day.day, 3, tzinfo=timezone.utc))
        send(producer, clearing.settings.topic, [e])
        consume(clearing)
        clearing.service.close_day(day)

    day_of(D1, 1, 1_000_000_00)  # 360400 pays 1,000,000.00 on day 1
    # required: 2 x 30 x 1,000,000.00 = 60,000,000.00; balance 5,000,000 - 1,000,000 = 4,000,000: under 50% -> warn
    first = http.get("/v1/advances/360400", headers={"Authorization": "Bearer dev-bureau-360400"}).json()
    assert (first["balance_fen"], first["required_fen"], first["warning"]) == (400_000_000, 6_000_000_000, True)
    assert first["top_up_fen"] == 5_600_000_000
    assert [(e["kind"], e["amount_fen"]) for e in first["ledger"]] == [("DEPOSIT", 500_000_000), ("DRAW", -100_000_000)]
    receiving = http.get("/v1/advances/440100", headers=gz).json()
    assert (receiving["balance_fen"], receiving["warning"]) == (100_000_000, False)  # it only receives: required 0
    assert http.get("/v1/advances/360400", headers=gz).status_code == 403
    document = json.loads((clearing.settings.out_dir / "2026-03-14" / "clearing_2026-03-14_360400.json").read_text())
    assert document["advance"] == {"balance_before_fen": 500_000_000, "day_net_fen": -100_000_000,
                                   "balance_fen": 400_000_000, "required_fen": 6_000_000_000, "warning": True,
                                   "top_up_fen": 5_600_000_000, "rule": document["advance"]["rule"]}

    http.post("/v1/advances/360400/deposits", headers=operator, json={"reference": "BANK-0002",
                                                                       "amount_yuan": "56000000.00"})
    day_of(D2, 2, 3_000_000_00)  # day 2: 3,000,000.00; average 2,000,000 -> required 120,000,000
    second = http.get("/v1/advances/360400", headers=operator).json()
    assert (second["balance_fen"], second["required_fen"], second["warning"]) == (5_700_000_000, 12_000_000_000, True)
    status = http.get("/status.json", headers=operator).json()
    by_pool = {a["pool_code"]: a for a in status["advances"]}
    assert [b for _, b in by_pool["360400"]["series"]] == [500_000_000, 400_000_000, 6_000_000_000, 5_700_000_000]
    # re-rendered files carry the same advance section: byte-identical
    assert clearing.service.render_day(D1)["clearing_2026-03-14_360400.json"] == (
        clearing.settings.out_dir / "2026-03-14" / "clearing_2026-03-14_360400.json").read_bytes()


def test_a_month_of_days_a_statement_confirmed_line_by_line_disputes_carried_and_the_advance(clearing, producer,
                                                                                              tmp_path):
    """February 2026 day by day (both insurance types, reversals, one late), every day and the
    month summing to zero per fund; the bureau's statement: lines confirmed, one confirmation
    rolled back, two disputed (withheld), closed, signed and re-rendered byte-identically; a
    dispute resolved and carried into March; the advance drawn under its warning and topped up."""
    http = TestClient(create_app(clearing))
    operator, jj = {"Authorization": "Bearer dev-operator"}, {"Authorization": "Bearer dev-bureau-360400"}
    pools = ["360400", "440100", "999903", "510900"]
    rnd = random.Random(29)
    http.post("/v1/advances/360400/deposits", headers=operator, json={"reference": "INIT", "amount_yuan": "200000.00"})
    feb = [date(2026, 2, d) for d in range(1, 29)]
    n, sent = 0, []
    for day in feb:
        todays = []
        for _ in range(12):
            n += 1
            home, treat = rnd.sample(pools, 2)
            if n % 3 == 0:
                home = "360400"  # the bureau under test pays a good share
            if home == treat:
                treat = "440100" if home != "440100" else "999903"
            todays.append(dict(settled(rnd, n, day), home_pool=home, treatment_pool=treat,
                               insurance_type=rnd.choice(["RESIDENT", "EMPLOYEE"]),
                               settled_at=datetime(day.year, day.month, day.day, 3, tzinfo=timezone.utc)))
        todays += [dict(reversal(e, day), insurance_type=e["insurance_type"]) for e in rnd.sample(todays, 2)]
        if day == date(2026, 2, 10):  # a reversal of a settlement made on 2 Feb, arriving on the 10th
            todays.append(dict(reversal(sent[5], day), insurance_type=sent[5]["insurance_type"]))
        sent += todays
    send(producer, clearing.settings.topic, sent)
    # a manual claim 九江 paid its insured on 12 February: in its statement for its books, no line to confirm
    claim = dict(SAMPLES["cn.hub.settlement.ManualClaimSettled"], event_id=uuid.uuid4(), business_date=date(2026, 2, 12),
                 settled_at=datetime(2026, 2, 12, 3, tzinfo=timezone.utc))
    producer.send(clearing.settings.topic, "360400", "ManualClaimSettled", claim)
    producer.flush()
    consume(clearing)
    for day in feb:
        clearing.service.close_day(day)
    with clearing.engine.connect() as conn:
        per_fund_day = conn.execute(sa.text(
            "select clearing_date, insutype, fund_pay_type, sum(net_fen) from fund_statements"
            " group by 1, 2, 3 having sum(net_fen) <> 0")).all()
        per_fund_month = conn.execute(sa.text(
            "select insutype, fund_pay_type, sum(net_fen) from fund_statements where clearing_date"
            " between '2026-02-01' and '2026-02-28' group by 1, 2 having sum(net_fen) <> 0")).all()
    assert per_fund_day == [] and per_fund_month == []

    assert http.post("/v1/statements/2026-02/issue", headers=jj).status_code == 403
    issued = http.post("/v1/statements/2026-02/issue", headers=operator).json()["issued"]
    assert {s["bureau_pool"] for s in issued} == set(pools)
    assert http.post("/v1/statements/2026-02/issue", headers=operator).json()["issued"] == []  # nothing twice
    statement = http.get("/v1/statements/2026-02/360400", headers=jj).json()
    # the portal's view: a page of the lines, filtered in SQL, with how many match
    page = http.get("/v1/statements/2026-02/360400?limit=5&offset=5", headers=jj).json()
    assert page["lines"] == statement["lines"][5:10] and page["lines_matching"] == len(statement["lines"])
    other = statement["lines"][0]["counterparty_pool"]
    only = http.get(f"/v1/statements/2026-02/360400?counterparty={other}&limit=1000", headers=jj).json()
    assert only["lines"] == [l for l in statement["lines"] if l["counterparty_pool"] == other]
    assert other in only["counterparty_pools"]
    owed = sum(e["hifp_pay_fen"] + e["hifmi_pay_fen"] + e["maf_pay_fen"] for e in sent
               if e["home_pool"] == "360400" and "reversal_id" not in e) - sum(
        e["hifp_pay_fen"] + e["hifmi_pay_fen"] + e["maf_pay_fen"] for e in sent
        if e["home_pool"] == "360400" and "reversal_id" in e)
    assert statement["pending_fen"] == owed and statement["line_count"] == len(statement["lines"])
    assert statement["top_up_fen"] > 0  # 200,000 does not hold two months of what it pays
    assert http.get("/v1/statements/2026-02/360400", headers={"Authorization": "Bearer dev-bureau-440100"}).status_code == 403

    lines = [l["event_id"] for l in statement["lines"] if l["kind"] == "SETTLED"]
    disputed, rolled_back = lines[:2], lines[2]

    def act(action, ids=None, **extra):
        return http.post("/v1/statements/2026-02/360400/lines", headers=jj,
                         json={"action": action, "event_ids": ids or [], **extra})
    assert act("dispute", disputed).json()["error"]["code"] == "reason_required"
    assert act("dispute", disputed, reason="patient not ours that day").json()["changed"] == sorted(disputed)
    assert act("confirm", [*disputed, rolled_back]).json()["error"]["code"] == "invalid_transition"  # none changed
    assert act("confirm", ["no-such-line"]).status_code == 404
    assert act("confirm", all_pending=True).status_code == 200
    assert act("confirm", [rolled_back]).json()["changed"] == []  # idempotent
    assert act("unconfirm", [rolled_back]).json()["changed"] == [rolled_back]
    pending = http.post("/v1/statements/2026-02/360400/close", headers=jj).json()
    assert pending["error"]["code"] == "lines_pending"
    act("confirm", [rolled_back])
    closed = http.post("/v1/statements/2026-02/360400/close", headers=jj).json()
    withheld = sum(l["hifp_pay_fen"] + l["hifmi_pay_fen"] + l["maf_pay_fen"] for l in statement["lines"]
                   if l["event_id"] in disputed)
    assert (closed["status"], closed["disputed_fen"], closed["confirmed_fen"]) == ("CLOSED", withheld, owed - withheld)
    assert act("unconfirm", [rolled_back]).json()["error"]["code"] == "statement_closed"
    assert http.post("/v1/statements/2026-02/360400/close", headers=jj).json() == closed  # closing again: the same

    fetched = tmp_path / "statement"
    fetched.mkdir()
    for suffix in ("csv", "json", "xlsx", "sha256", "sig"):
        body = http.get(f"/v1/statements/2026-02/360400.{suffix}", headers=jj).content
        (fetched / f"statement_2026-02_360400.{suffix}").write_bytes(body)
        written = clearing.settings.out_dir / "months" / "2026-02" / f"statement_2026-02_360400.{suffix}"
        assert body == written.read_bytes()
        written.unlink()  # a replica without the file renders it again: the same bytes
        assert http.get(f"/v1/statements/2026-02/360400.{suffix}", headers=jj).content == body
    from hub.signing import verify_file_set
    key = clearing.service.signer.public_key_hex
    assert verify_file_set(fetched / "statement_2026-02_360400.json", key).ok
    document = json.loads((fetched / "statement_2026-02_360400.json").read_text())
    assert [(c["claim_no"], c["hifp_pay_fen"]) for c in document["manual_claims"]] == [(claim["claim_no"], 600_000)]
    assert claim["claim_no"] not in {l.get("settlement_id") for l in document["lines"]}
    csv_path = fetched / "statement_2026-02_360400.csv"
    csv_path.write_bytes(csv_path.read_bytes().replace(b"CONFIRMED", b"DISPUTED", 1))
    assert not verify_file_set(fetched / "statement_2026-02_360400.json", key).ok

    resolved = http.post(f"/v1/statements/2026-02/360400/lines/{disputed[0]}/resolve", headers=operator,
                         json={"note": "hospital showed the filing; the bill stands"}).json()
    assert resolved["changed"] == [disputed[0]]
    day = date(2026, 3, 2)
    send(producer, clearing.settings.topic, [dict(settled(rnd, 9_999, day), home_pool="360400", treatment_pool="440100",
                                                  settled_at=datetime(2026, 3, 2, 3, tzinfo=timezone.utc))])
    consume(clearing)
    refused = http.post("/v1/statements/2026-03/issue", headers=operator).json()
    assert refused["error"]["code"] == "days_open"  # 2 March is not closed yet
    clearing.service.close_day(day)
    http.post("/v1/statements/2026-03/issue", headers=operator)
    march = http.get("/v1/statements/2026-03/360400", headers=jj).json()
    carried = [l for l in march["lines"] if l["carried_from"] == "2026-02"]
    assert [l["event_id"] for l in carried] == [disputed[0]] and carried[0]["state"] == "PENDING"
    still = http.get("/v1/statements/2026-02/360400", headers=jj).json()
    assert {l["event_id"]: l["state"] for l in still["lines"] if l["event_id"] in disputed} == {
        disputed[0]: "RESOLVED", disputed[1]: "DISPUTED"}

    # the top-up the February statement requested, paid: the advance no longer warns
    top_up = f"{statement['top_up_fen'] // 100}.{statement['top_up_fen'] % 100:02d}"
    after = http.post("/v1/advances/360400/deposits", headers=operator,
                      json={"reference": "TOPUP-2026-02", "amount_yuan": top_up}).json()
    assert after["warning"] is False


def test_the_fund_risk_watch_warns_and_alarms_against_the_pro_rata_budget(clearing, producer):
    """基金运行风险预警: after a day closes, each budgeted pool's spending this year per fund is held
    against its budget's share of the year so far; over it WARN, 20 % over it ALARM; a pool just
    under stays OK."""
    from hub.reference.budget import Budget

    clearing.service.budgets = [
        Budget(pool_code="360400", budget_version="360400-2026.1", year=2026, source="test",
               funds={"390100": "365000.00", "310100": "36500.00"}),
        Budget(pool_code="999903", budget_version="999903-2026.1", year=2026, source="test", funds={"390100": "365000.00"}),
    ]

    def bill(n, home, kind, fund):
        return dict(settled(random.Random(n), n, D1), home_pool=home, treatment_pool="440100", insurance_type=kind,
                    hifp_pay_fen=fund, hifmi_pay_fen=0, maf_pay_fen=0, fund_pay_sumamt_fen=fund)
    # 14 March is day 73 of 2026: the pro-rata budgets are 73,000.00 and 7,300.00
    send(producer, clearing.settings.topic, [bill(1, "360400", "RESIDENT", 8_000_000),   # 80,000.00: 109.6 % -> WARN
                                             bill(2, "360400", "EMPLOYEE", 900_000),     # 9,000.00: 123.3 % -> ALARM
                                             bill(3, "999903", "RESIDENT", 7_299_999)])  # 72,999.99: just under -> OK
    consume(clearing)
    clearing.service.close_day(D1)
    http = TestClient(create_app(clearing))
    risk = http.get("/v1/fund-risk/360400", headers={"Authorization": "Bearer dev-bureau-360400"}).json()
    assert risk["level"] == "ALARM" and risk["as_of"] == "2026-03-14"
    assert {f["fund_pay_type"]: (f["prorata_fen"], f["spent_fen"], f["level"]) for f in risk["funds"]} == {
        "310100": (730_000, 900_000, "ALARM"), "390100": (7_300_000, 8_000_000, "WARN")}
    assert risk["funds"][1]["months"] == [{"month": "2026-03", "spent_fen": 8_000_000}]
    illustrative = http.get("/v1/fund-risk/999903", headers={"Authorization": "Bearer dev-operator"}).json()
    assert illustrative["level"] == "OK"
    assert illustrative["funds"][0]["spent_fen"] == 7_299_999 and illustrative["funds"][0]["level"] == "OK"
    assert http.get("/v1/fund-risk/999903", headers={"Authorization": "Bearer dev-bureau-360400"}).status_code == 403
    assert http.get("/v1/fund-risk/440100", headers={"Authorization": "Bearer dev-operator"}).status_code == 404
    metrics = http.get("/metrics").text
    assert 'hub_fund_risk_level{fund_pay_type="310100",pool="360400"} 2.0' in metrics
    assert 'hub_fund_risk_level{fund_pay_type="390100",pool="999903"} 0.0' in metrics
    overview = http.get("/status.json", headers={"Authorization": "Bearer dev-operator"}).json()["fund_risk"]
    assert [(p["pool_code"], p["level"]) for p in overview] == [("360400", "ALARM"), ("999903", "OK")]


def test_anomaly_flags_for_the_home_bureau_with_their_near_misses(clearing, producer):
    """Each pattern built from settlement events on real Kafka and PostgreSQL, flagged at the
    day's close in the home bureau's file and API, naming the settlements; near misses (and a
    reversed bill) are not flagged."""
    n = iter(range(1, 1000))

    def bill(person, treat, hospital, kind, begin, end, fee, day=D1):
        i = next(n)
        return dict(settled(random.Random(i), i, day), home_pool="360400", treatment_pool=treat, hospital_code=hospital,
                    person_ref=person, visit_type=kind, begntime=begin, endtime=end, medfee_sumamt_fen=fee,
                    hifp_pay_fen=fee // 2, hifmi_pay_fen=0, maf_pay_fen=0, fund_pay_sumamt_fen=fee // 2,
                    settled_at=datetime(day.year, day.month, day.day, 3, tzinfo=timezone.utc))
    d = lambda day: date(2026, 3, day)  # noqa: E731
    stay = bill("p_overlap", "440100", "H4401000001", "INPATIENT", d(10), d(14), 800_000)
    elsewhere = bill("p_overlap", "510900", "H5109000001", "GENERAL_OUTPATIENT", d(12), d(12), 30_000)
    first = bill("p_readmit", "440100", "H4401000001", "INPATIENT", d(1), d(5), 500_000, day=d(5))
    again = bill("p_readmit", "440100", "H4401000002", "INPATIENT", d(12), d(14), 500_000)
    under = [bill(f"p_under{i}", "440100", "H4401000003", "GENERAL_OUTPATIENT", d(14), d(14), 990_000) for i in range(3)]
    before = [bill(f"p_base{i}", "999903", "H9999030004", "GENERAL_OUTPATIENT", d(10), d(10), 400_000, day=d(10))
              for i in range(3)]
    jumped = [bill(f"p_jump{i}", "999903", "H9999030004", "GENERAL_OUTPATIENT", d(14), d(14), 600_000) for i in range(3)]
    near = [bill("p_near", "440100", "H4401000001", "INPATIENT", d(1), d(13), 700_000, day=d(13)),
            bill("p_near", "510900", "H5109000001", "GENERAL_OUTPATIENT", d(14), d(14), 20_000)]  # the next day
    cancelled = bill("p_cancel", "510900", "H5109000001", "GENERAL_OUTPATIENT", d(12), d(12), 30_000)
    cancelled_stay = bill("p_cancel", "440100", "H4401000001", "INPATIENT", d(10), d(14), 30_000)
    events = [stay, elsewhere, first, again, *under, *before, *jumped, *near, cancelled, cancelled_stay,
              dict(reversal(cancelled, D1), insurance_type="RESIDENT")]
    send(producer, clearing.settings.topic, events)
    consume(clearing)
    clearing.service.close_day(D1)
    http = TestClient(create_app(clearing))
    found = http.get("/v1/anomalies/360400", headers={"Authorization": "Bearer dev-bureau-360400"}).json()
    flags = {(f["kind"], f["subject"]): set(f["settlement_ids"]) for f in found["flags"]}
    assert flags == {
        ("OVERLAPPING_REGIONS", "p_overlap"): {stay["settlement_id"], elsewhere["settlement_id"]},
        ("READMISSION", "p_readmit"): {first["settlement_id"], again["settlement_id"]},
        ("JUST_UNDER_THRESHOLD", "H4401000003"): {b["settlement_id"] for b in under},
        ("HOSPITAL_JUMP", "H9999030004"): {b["settlement_id"] for b in jumped},
    }
    document = json.loads((clearing.settings.out_dir / "2026-03-14" / "clearing_2026-03-14_360400.json").read_text())
    assert [a["kind"] for a in document["anomalies"]] == [a["kind"] for a in found["flags"]]
    assert http.get("/v1/anomalies/360400", headers={"Authorization": "Bearer dev-bureau-440100"}).status_code == 403
    assert clearing.service.render_day(D1)["clearing_2026-03-14_360400.json"] == (
        clearing.settings.out_dir / "2026-03-14" / "clearing_2026-03-14_360400.json").read_bytes()


def test_manual_claims_are_in_the_home_bureaus_file_and_the_fund_risk_watch_but_never_netted(clearing, producer):
    """A manual claim (零星报销) is paid by the home fund to its insured: the day's nets are those of
    the settlements alone and sum to zero; the home bureau's files list the claim (once, though it
    was delivered twice) in a section of their own; the fund-risk watch counts what it paid."""
    from hub.reference.budget import Budget

    clearing.service.budgets = [Budget(pool_code="360400", budget_version="360400-2026.1", year=2026, source="test",
                                       funds={"390100": "365000.00"})]
    rnd = random.Random(11)
    bills = [dict(settled(rnd, n, D1), home_pool="360400", treatment_pool="440100", insurance_type="RESIDENT")
             for n in range(3)]
    claim = dict(SAMPLES["cn.hub.settlement.ManualClaimSettled"], event_id=uuid.uuid4(), business_date=D1,
                 settled_at=datetime(2026, 3, 14, 4, tzinfo=timezone.utc))
    send(producer, clearing.settings.topic, bills)
    for _ in range(2):  # redelivered: one claim
        producer.send(clearing.settings.topic, "360400", "ManualClaimSettled", claim)
    producer.flush()
    consume(clearing)
    clearing.service.close_day(D1)

    nets = statement_nets(clearing, D1)
    assert nets == expected_nets([(b, D1) for b in bills])[D1] and sum(nets.values()) == 0
    out = clearing.settings.out_dir / D1.isoformat()
    document = json.loads((out / f"clearing_{D1.isoformat()}_360400.json").read_text())
    assert [(c["claim_no"], c["hifp_pay_fen"], c["psn_part_amt_fen"]) for c in document["manual_claims"]] == [
        (claim["claim_no"], 600_000, 650_000)]
    csv_text = (out / f"clearing_{D1.isoformat()}_360400.csv").read_text(encoding="utf-8-sig")
    assert "零星报销 manual claims" in csv_text and f"{claim['claim_no']},390,440100" in csv_text
    assert "manual_claims" not in json.loads((out / f"clearing_{D1.isoformat()}_440100.json").read_text())
    risk = clearing.service.fund_risk("360400", D1)
    spent = {f["fund_pay_type"]: f["spent_fen"] for f in risk["funds"]}
    assert spent["390100"] == sum(b["hifp_pay_fen"] for b in bills) + 600_000


def test_one_month_seen_from_both_sides_the_hospitals_confirmations_beside_the_bureaus_lines(clearing, producer):
    """HospitalMonthChanged events (the settle service's 3261/3262/3203) beside the settlement
    events of February: the home bureau's statement shows each line's hospital confirmation, the
    treatment bureau sees what its hospital confirmed and applied for; the newest event wins,
    whatever order or repetition they arrive in."""
    http = TestClient(create_app(clearing))
    operator = {"Authorization": "Bearer dev-operator"}
    rnd = random.Random(5)
    day = date(2026, 2, 3)
    bills = [dict(settled(rnd, 900 + n, day), home_pool="360400", treatment_pool="440100", hospital_code="H44010000001")
             for n in range(4)]
    undone = reversal(bills[3], day)
    send(producer, clearing.settings.topic, [*bills, undone])
    month = dict(SAMPLES["cn.hub.settlement.HospitalMonthChanged"], hospital_code="H44010000001", month="202602")

    def line(e: dict, flag: str) -> dict:
        reversed_ = "reversal_id" in e
        fund = e["hifp_pay_fen"] + e["hifmi_pay_fen"] + e["maf_pay_fen"]
        return {"setl_sn": e["reversal_id"] if reversed_ else e["settlement_id"], "settlement_id": e["settlement_id"],
                "kind": "REVERSED" if reversed_ else "COMPLETED", "home_pool": "360400", "cnfm_flag": flag,
                "medfee_sumamt_fen": (-1 if reversed_ else 1) * e["medfee_sumamt_fen"],
                "fund_pay_sumamt_fen": (-1 if reversed_ else 1) * fund}

    t = datetime(2026, 3, 2, 1, tzinfo=timezone.utc)
    confirmed = dict(month, event_id=uuid.uuid4(), event_time=t, action="LINES_CONFIRMED",
                     lines=[line(bills[0], "1"), line(bills[1], "1"), line(bills[2], "0"), line(undone, "1")])
    rolled = dict(month, event_id=uuid.uuid4(), event_time=t + timedelta(minutes=5), action="LINES_ROLLED_BACK",
                  lines=[line(bills[1], "")])
    applied = dict(month, event_id=uuid.uuid4(), event_time=t + timedelta(minutes=9), action="CLEARING_APPLIED",
                   lines=[], application={"clr_appy_evt_id": "CA1", "clr_type": "21", "psntime": 3,
                                          "medfee_sumamt_fen": 1, "fund_appy_sum_fen": 2})
    poison = dict(month, event_id=uuid.uuid4(), event_time=t, month="202613", action="LINES_CONFIRMED", lines=[])
    for event in (rolled, confirmed, applied, rolled, poison):  # out of order, one twice, one of no month
        producer.send(clearing.settings.topic, "H44010000001", "HospitalMonthChanged", event)
    producer.flush()
    consume(clearing)
    quarantined = clearing.service.quarantined()
    assert [(q["record_name"].rsplit(".", 1)[-1], q["reason"].split(":")[0]) for q in quarantined] == [
        ("HospitalMonthChanged", "EventRefused")]
    for d in (date(2026, 2, n) for n in range(1, 29)):  # it moves no money: it holds back no day
        clearing.service.close_day(d)
    http.post("/v1/statements/2026-02/issue", headers=operator)
    statement = http.get("/v1/statements/2026-02/360400", headers={"Authorization": "Bearer dev-bureau-360400"}).json()
    flags = {(l["settlement_id"], l["kind"]): l["hospital_cnfm"] for l in statement["lines"]}
    assert flags == {(bills[0]["settlement_id"], "SETTLED"): "1", (bills[1]["settlement_id"], "SETTLED"): "",
                     (bills[2]["settlement_id"], "SETTLED"): "0", (bills[3]["settlement_id"], "SETTLED"): "",
                     (bills[3]["settlement_id"], "REVERSED"): "1"}

    gz = http.get("/v1/hospital-months/2026-02/440100", headers={"Authorization": "Bearer dev-bureau-440100"}).json()
    (hospital,) = gz["hospitals"]
    fund = {k: bills[k]["hifp_pay_fen"] + bills[k]["hifmi_pay_fen"] + bills[k]["maf_pay_fen"] for k in range(4)}
    assert (hospital["hospital_code"], hospital["lines"], hospital["confirmed_lines"]) == ("H44010000001", 5, 2)
    assert hospital["confirmed_fen"] == fund[0] - fund[3]  # what the bureau pays its hospital from
    assert (hospital["not_agreed_lines"], hospital["not_agreed_fen"]) == (1, fund[2])
    assert (hospital["unconfirmed_lines"], hospital["unconfirmed_fen"]) == (2, fund[1] + fund[3])
    assert [(a["clr_appy_evt_id"], a["status"]) for a in hospital["applications"]] == [("CA1", "APPLIED")]
    other = http.get("/v1/hospital-months/2026-02/440100", headers={"Authorization": "Bearer dev-bureau-360400"})
    assert other.status_code == 403
