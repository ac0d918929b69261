"""Clearing rebuilt from the log (service_layer/rebuilding.py) against the fake repository: a
clearing's history — settlement events on two partitions, a deposit, a day closed, a late event,
a confirmation, a second day, a whole month's statement disputed, confirmed, closed and resolved —
is replayed from what it published (its outbox, as the statements topic would hold it) and the
settlement events (as Avro on the wire), into an empty repository. Every file comes back byte for
byte, and so do the ledger, the confirmations and the statement's lines."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from hub.clearing.adapters import journal_log, wire
from hub.clearing.service_layer.rebuilding import Rebuilder, RebuildRefused
from hub.clearing.service_layer.services import ClearingService
from hub.messaging import AvroCodec, Message
from hub.signing import signer_from_reference
from tests.fixtures.avro.samples import SAMPLES

from .fakes import FakeClearingRepository

JJ, GZ, SH = "360400", "440100", "310000"
DAY = date(2026, 3, 2)
TOPIC = "settlement.events"
CODEC = AvroCodec()
WIRE = AvroCodec(CODEC.registry, logical_types=False)


class Clock:
    def __init__(self, at: datetime):
        self.at = at

    def __call__(self) -> datetime:
        return self.at


def clearing(out: Path, clock: Clock) -> ClearingService:
    return ClearingService(FakeClearingRepository(), CODEC, out, timedelta(minutes=30),
                           signer_from_reference("sample:"), {JJ: "九江", GZ: "广州", SH: "上海"}, clock=clock)


def settled(n: int, partition: int, offset: int, home: str, treatment: str, fund: int, day: date) -> Message:
    """A SettlementCompleted as the consumer reads it off the wire."""
    at = datetime(day.year, day.month, day.day, 3, n, tzinfo=timezone.utc)
    value = {**SAMPLES["cn.hub.settlement.SettlementCompleted"], "event_id": uuid.UUID(int=1000 + n),
             "settlement_id": f"S{n}", "home_pool": home, "treatment_pool": treatment, "business_date": day,
             "settled_at": at, "begntime": day, "endtime": day, "medfee_sumamt_fen": 2 * fund,
             "hifp_pay_fen": fund, "fund_pay_sumamt_fen": fund, "psn_part_amt_fen": fund,
             "fulamt_ownpay_amt_fen": 0, "overlmt_amt_fen": 0, "preselfpay_amt_fen": 0, "inscp_scp_amt_fen": 2 * fund,
             "act_pay_dedc_fen": 0, "person_ref": f"p{n}"}
    raw = CODEC.encode("SettlementCompleted", value)
    decoded = WIRE.decode(raw)
    return Message(TOPIC, partition, offset, home.encode(), decoded.record_name, decoded.writer_version,
                   decoded.value, int(at.timestamp() * 1000), (), raw)


class Log:
    """The settlement topic as a rebuild reads it: up to each close's offsets, then the rest."""

    def __init__(self, messages: list[Message]):
        self.messages = sorted(messages, key=lambda m: (m.partition, m.offset))
        self.read: set[tuple[int, int]] = set()

    def until(self, targets):
        batch = [m for m in self.messages if (m.partition, m.offset) not in self.read
                 and m.offset < targets.get((m.topic, m.partition), 0)]
        self.read |= {(m.partition, m.offset) for m in batch}
        return iter([batch] if batch else [])

    def rest(self):
        return self.until({(TOPIC, p): 10 ** 9 for p in range(6)})


def published(service: ClearingService) -> list[Message]:
    """The service's outbox as the statements topic holds it (3 partitions by key, each in order)."""
    out, offsets = [], {}
    for topic, key, payload in service.repository.tables.outbox:
        partition = int(key) % 3
        offset = offsets[partition] = offsets.get(partition, -1) + 1
        decoded = CODEC.decode(payload)
        out.append(Message(topic, partition, offset, key.encode(), decoded.record_name, decoded.writer_version,
                           decoded.value, 0, (), payload))
    return out


def history(service: ClearingService, clock: Clock) -> list[Message]:
    """What happened, in order; the settlement events it read."""
    def apply(*messages: Message) -> None:
        service.apply([wire.record(m) for m in messages])
        log.extend(messages)

    log: list[Message] = []
    apply(settled(1, 0, 0, JJ, GZ, 600_000, DAY), settled(2, 0, 1, JJ, GZ, 400_000, DAY),
          settled(3, 1, 0, GZ, JJ, 250_000, DAY), settled(4, 1, 1, SH, JJ, 80_000, DAY))
    service.deposit(JJ, "BANK-1", 3_000_000, "ops")
    clock.at = datetime(2026, 3, 3, 1, 0, 0, 123456, tzinfo=timezone.utc)
    service.close_day(DAY)
    clock.at += timedelta(minutes=5)
    apply(settled(5, 1, 2, GZ, JJ, 70_000, DAY),  # late: its day is closed, it goes to the next
          settled(6, 0, 2, JJ, SH, 90_000, DAY + timedelta(days=1)))
    service.confirm(DAY, GZ, "B440100")
    clock.at = datetime(2026, 3, 4, 1, 0, 0, 654321, tzinfo=timezone.utc)
    service.close_day(DAY + timedelta(days=1))
    clock.at += timedelta(seconds=1)
    service.deposit(GZ, "BANK-2", 1_000_000, "ops")
    clock.at = datetime(2026, 4, 1, 2, 0, 0, 777777, tzinfo=timezone.utc)
    for d in range(4, 32):  # the rest of March: every day closed, nothing in them
        service.close_day(date(2026, 3, d))
    service.close_day(date(2026, 3, 1))
    service.months.issue("2026-03", "ops")
    clock.at += timedelta(hours=1)
    service.months.act("2026-03", JJ, "dispute", [str(uuid.UUID(int=1001))], "not our insured", "clerk")
    clock.at += timedelta(seconds=7, microseconds=4321)
    service.months.act("2026-03", JJ, "confirm", None, "", "clerk", all_pending=True)
    service.months.close("2026-03", JJ, "clerk")
    clock.at += timedelta(days=1)
    service.months.resolve("2026-03", JJ, str(uuid.UUID(int=1001)), "paid after all", "ops")
    apply(settled(7, 0, 3, GZ, SH, 10_000, date(2026, 4, 1)))  # a day still open
    return log


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_clearing_rebuilt_from_what_it_published_is_the_same_to_the_byte(tmp_path):
    clock = Clock(datetime(2026, 3, 2, 9, tzinfo=timezone.utc))
    original = clearing(tmp_path / "original", clock)
    settlement = history(original, clock)
    entries = journal_log.entries(published(original))
    assert sum(isinstance(e, journal_log.Close) for e in entries) == 2  # the two days that had anything

    rebuilt = clearing(tmp_path / "rebuilt", Clock(datetime(2027, 1, 1, tzinfo=timezone.utc)))
    done = Rebuilder(rebuilt.repository, CODEC, rebuilt.publishing, rebuilt.advance_rule,
                     rebuilt.anomaly_rule).run(entries, Log(settlement))

    assert (done.mismatched, done.refused, done.quarantined) == ([], [], [])
    # month: issued to 3 bureaus, a dispute, the rest confirmed, closed, the dispute resolved
    assert (done.days_closed, done.deposits, done.confirmations, done.month_changes) == (2, 2, 1, 7)
    assert files(tmp_path / "rebuilt") == {
        name: data for name, data in files(tmp_path / "original").items()
        if name.startswith(("2026-03-02", "2026-03-03", "months"))}
    for day in (DAY, DAY + timedelta(days=1)):
        assert rebuilt.render_day(day) == original.render_day(day)
    a, b = original.repository.tables, rebuilt.repository.tables
    assert b.events == a.events and b.marks == a.marks  # the late event went where it went
    assert [(r.pool_code, r.reference, r.balance_fen, r.recorded_at) for r in b.ledger] == [
        (r.pool_code, r.reference, r.balance_fen, r.recorded_at) for r in a.ledger]
    assert b.advances == a.advances
    assert b.statements == a.statements  # the confirmation with its time and who
    assert rebuilt.months.show("2026-03", JJ) == original.months.show("2026-03", JJ)
    assert b.outbox == []  # the log already holds all of it


def test_a_rebuild_fills_only_an_empty_clearing(tmp_path):
    clock = Clock(datetime(2026, 3, 2, 9, tzinfo=timezone.utc))
    service = clearing(tmp_path, clock)
    service.apply([wire.record(settled(1, 0, 0, JJ, GZ, 600_000, DAY))])
    with pytest.raises(RebuildRefused, match="not empty"):
        Rebuilder(service.repository, CODEC, service.publishing, service.advance_rule,
                  service.anomaly_rule).run([], Log([]))


def test_a_statement_from_before_v4_is_refused_with_what_to_do_instead():
    value = {**SAMPLES["cn.hub.clearing.ClearingStatement"], "closed_at": None}
    message = Message("clearing.statements", 0, 0, b"440100", "cn.hub.clearing.ClearingStatement", 3, value, 0, ())
    with pytest.raises(journal_log.JournalRefused, match="restore clearing's database from its backup"):
        journal_log.entries([message])
