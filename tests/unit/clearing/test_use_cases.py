"""Clearing's use cases against the fake repository (no servers): events applied once, a day
closed — netted to a zero sum, advances drawn, anomalies flagged, files rendered and signed, the
statements and their events recorded — late events, quarantine holding a day back, deposits, and
a monthly statement from issue to close. Amounts here are worked by hand in the comments."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone

import pytest

from hub.clearing.adapters.files import file_stem
from hub.clearing.domain.anomalies import AnomalyRule
from hub.clearing.domain.events import ClearingEvent, EventRefused, ManualClaim, Place
from hub.clearing.domain.refusals import REASONS, AdvanceRefusal, ClearingRefused, StatementRefusal
from hub.clearing.service_layer.closing import DayBlocked
from hub.clearing.service_layer.services import ClearingService
from hub.clearing.adapters.repository import Quarantined
from hub.messaging import AvroCodec
from hub.signing import manifest_digests, signer_from_reference, verify_file_bytes

from .fakes import FakeClearingRepository

JJ, GZ, SH = "360400", "440100", "310000"  # 九江, 广州, 上海
DAY = date(2026, 3, 2)
NOW = [datetime(2026, 3, 3, 2, tzinfo=timezone.utc)]  # 10:00 the next day in Shanghai
SIGNER = signer_from_reference("sample:")


@pytest.fixture
def service(tmp_path) -> ClearingService:
    return ClearingService(FakeClearingRepository(), AvroCodec(), tmp_path, timedelta(minutes=30), SIGNER,
                           {JJ: "九江", GZ: "广州", SH: "上海"}, clock=lambda: NOW[0],
                           anomaly_rule=AnomalyRule(under_count=3))


def bill(n: int, home: str, treatment: str, medfee: int, hifp: int, hifmi: int = 0, maf: int = 0, day: date = DAY,
         person: str = "", reversal: bool = False, insurance_type: str | None = "RESIDENT", offset: int | None = None,
         hospital: str = "H1") -> ClearingEvent:
    ms = int(datetime(day.year, day.month, day.day, 4, tzinfo=timezone.utc).timestamp() * 1000)
    return ClearingEvent(f"{'r' if reversal else 'e'}{n}", reversal, f"S{n}", f"R{n}" if reversal else None, day,
                         home, treatment, hospital, "3604**********1234", medfee, hifp, hifmi, maf, ms,
                         "settlement.events", 0, n if offset is None else offset, insurance_type, person or f"P{n}",
                         "INPATIENT", day, day)


def test_an_event_is_applied_once_and_totals_move_with_it(service):
    batch = [bill(1, JJ, GZ, 100_000, 60_000), bill(2, GZ, JJ, 50_000, 20_000, 5_000)]
    assert service.apply(batch) == 2
    assert service.apply(batch) == 0  # a batch read again after a rebalance
    t = service.repository.tables
    assert t.bilateral[(DAY, JJ, GZ, "RESIDENT")] == [60_000, 0, 0, 1]
    assert t.bilateral[(DAY, GZ, JJ, "RESIDENT")] == [20_000, 5_000, 0, 1]
    assert t.marks[("settlement.events", 0)].next_offset == 3


def test_a_reversal_of_a_settlement_never_seen_without_its_insurance_type_changes_nothing(service):
    with pytest.raises(EventRefused, match="insurance_type_unknown"):
        service.apply([bill(9, JJ, GZ, 1_000, 500, reversal=True, insurance_type=None)])
    assert service.repository.tables.events == {} and service.repository.tables.days == {}
    service.apply([bill(9, JJ, GZ, 1_000, 500)])  # once its settlement is seen, it takes its type
    service.apply([bill(9, JJ, GZ, 1_000, 500, reversal=True, insurance_type=None, offset=10)])
    assert service.repository.tables.bilateral[(DAY, JJ, GZ, "RESIDENT")] == [0, 0, 0, 2]


def closed_day(service: ClearingService):
    # 九江's insured treated in 广州: 3 bills just under 10,000 yuan (within 2 %), fund shares 6,000 each;
    # 广州's insured treated in 九江: one bill, fund 8,000 + serious illness 1,000; 上海 sends one to 九江.
    service.apply([bill(1, JJ, GZ, 995_000, 600_000), bill(2, JJ, GZ, 990_000, 600_000),
                   bill(3, JJ, GZ, 985_000, 600_000), bill(4, GZ, JJ, 1_200_000, 800_000, 100_000),
                   bill(5, SH, JJ, 300_000, 150_000)])
    return service.close_day(DAY)


def test_a_closed_day_nets_to_zero_draws_advances_flags_and_signs_its_files(service, tmp_path):
    result = closed_day(service)
    positions = {p.pool: p.net_fen for p in result.netting.positions}
    # 九江 owes 广州 1,800,000 and is owed 900,000 by 广州 and 150,000 by 上海
    assert positions == {JJ: -1_800_000 + 900_000 + 150_000, GZ: 1_800_000 - 900_000, SH: -150_000}
    assert sum(positions.values()) == 0
    t = service.repository.tables
    assert {(s.pool_code, s.net_position_fen) for s in t.statements.values()} == set(positions.items())
    assert len(t.outbox) == 3 and {key for _, key, _ in t.outbox} == set(positions)
    # advances: each pool's balance is its net (nothing deposited); each should hold 2 months (60 days)
    # of its one day's payable, so every one is under half of that and warned
    assert {p: (a["balance_fen"], a["required_fen"], a["warning"]) for p, a in result.advances.items()} == {
        JJ: (-750_000, 60 * 1_800_000, True), GZ: (900_000, 60 * 900_000, True), SH: (-150_000, 60 * 150_000, True)}
    assert service.advance(JJ)["ledger"][0]["kind"] == "DRAW"
    # the three bills just under the 10,000-yuan threshold are flagged for 九江, in its file
    document = json.loads((tmp_path / DAY.isoformat() / f"{file_stem(DAY, JJ)}.json").read_bytes())
    assert [(f["kind"], sorted(f["settlement_ids"])) for f in document["anomalies"]] == [
        ("JUST_UNDER_THRESHOLD", ["S1", "S2", "S3"])]
    assert service.anomalies(JJ)["flags"][0]["kind"] == "JUST_UNDER_THRESHOLD"
    # the signature verifies, and the statement holds the manifest's digest
    written = {p.name: p.read_bytes() for p in (tmp_path / DAY.isoformat()).iterdir()}
    stem = file_stem(DAY, JJ)
    check = verify_file_bytes(f"{stem}.sha256", written[f"{stem}.sha256"], f"{stem}.sig", written[f"{stem}.sig"],
                              {n: written[n] for n in manifest_digests(written[f"{stem}.sha256"])},
                              SIGNER.public_key_hex)
    assert check.ok, check
    # rendered again from the records: the same bytes, file for file
    assert service.render_day(DAY) == written


def test_closing_again_answers_the_first_close_and_changes_nothing(service):
    first = closed_day(service)
    before = service.repository.tables
    again = service.close_day(DAY)
    assert again.already_closed and again.cycle_id == first.cycle_id
    assert service.repository.tables.outbox == before.outbox and len(service.repository.tables.ledger) == 3


def test_an_event_for_a_closed_day_is_cleared_late_in_the_next_open_day(service):
    closed_day(service)
    late = bill(6, JJ, GZ, 10_000, 7_000, offset=6)
    service.apply([late])
    row = service.repository.tables.events["e6"]
    assert (row["clearing_date"], row["late"]) == (DAY + timedelta(days=1), True)
    NOW[0] += timedelta(days=1)
    try:
        service.close_day(DAY + timedelta(days=1))
    finally:
        NOW[0] -= timedelta(days=1)
    summary = service.day_summary(DAY + timedelta(days=1), JJ)
    assert summary["net_position_fen"] == -7_000 and summary["late_events"][0]["settlement_id"] == "S6"


def test_a_quarantined_event_holds_its_day_back_until_an_operator_resolves_it(service):
    service.apply([bill(1, JJ, GZ, 100_000, 60_000)])
    service.quarantine(Quarantined("settlement.events:0:7", "e7", "cn.hub.settlement.SettlementCompleted", DAY, JJ, GZ,
                                   "EventRefused: amount_out_of_bounds", b"\x00", NOW[0]))
    assert service.due_days({("settlement.events", 0): 2}) == []
    with pytest.raises(DayBlocked):
        service.close_day(DAY)
    with pytest.raises(ClearingRefused, match="say why"):
        service.resolve("settlement.events:0:7", "DISCARD", "ops")
    service.resolve("settlement.events:0:7", "DISCARD", "ops", note="a test producer's mistake")
    assert service.due_days({("settlement.events", 0): 2}) == [DAY]  # the partition is read to its end
    assert not service.close_day(DAY).already_closed


def test_a_deposit_is_recorded_once_by_its_reference(service):
    first = service.deposit(JJ, "BANK-1", 500_000, "ops")
    assert service.deposit(JJ, "BANK-1", 500_000, "ops") == first
    with pytest.raises(ClearingRefused) as refused:
        service.deposit(JJ, "BANK-1", 400_000, "ops")
    assert refused.value.reason is AdvanceRefusal.REFERENCE_REUSED and refused.value.code == "reference_reused"
    assert service.advance(JJ)["balance_fen"] == 500_000 and len(service.advance(JJ)["ledger"]) == 1


def test_a_manual_claim_is_in_its_home_bureaus_file_and_netted_never(service, tmp_path):
    claim = {"event_id": "m1", "claim_no": "C1", "business_date": DAY, "home_pool": JJ, "treatment_pool": GZ,
             "hospital_code": "H9", "lodged_by": "AGENCY", "reason": "未联网", "person_id_masked": "3604**1234",
             "insurance_type": "RESIDENT", "visit_type": "INPATIENT", "begntime": DAY, "endtime": DAY,
             "medfee_sumamt_fen": 10_000, "hifp_pay_fen": 6_000, "hifmi_pay_fen": 0, "maf_pay_fen": 0,
             "psn_part_amt_fen": 4_000, "source": "settlement.events:0:8"}
    service.apply([ManualClaim(claim, Place("settlement.events", 0, 8, 0))])
    result = closed_day(service)
    assert {p.pool: p.net_fen for p in result.netting.positions}[JJ] == -750_000  # as without the claim
    document = json.loads(service.pool_file(DAY, JJ, "json"))
    assert [c["claim_no"] for c in document["manual_claims"]] == ["C1"]
    assert service.render_day(DAY)[f"{file_stem(DAY, JJ)}.json"] == (tmp_path / DAY.isoformat() /
                                                                      f"{file_stem(DAY, JJ)}.json").read_bytes()


def test_a_monthly_statement_from_issue_to_close(service, tmp_path):
    closed_day(service)
    NOW[0] = datetime(2026, 4, 2, 2, tzinfo=timezone.utc)
    try:
        for d in range(1, 32):  # every day of March closed (the empty ones too)
            if date(2026, 3, d) != DAY:
                service.close_day(date(2026, 3, d))
        issued = service.months.issue("2026-03", "ops")
        assert [s["bureau_pool"] for s in issued] == [SH, JJ, GZ]  # by pool code
        assert service.months.issue("2026-03", "ops") == []  # issuing again adds none
        lines = service.months.show("2026-03", JJ)["lines"]
        assert sorted(line["settlement_id"] for line in lines) == ["S1", "S2", "S3"]
        with pytest.raises(ClearingRefused, match="a dispute says why"):
            service.months.act("2026-03", JJ, "dispute", ["e1"], "", "clerk")
        service.months.act("2026-03", JJ, "dispute", ["e1"], "not our insured", "clerk")
        with pytest.raises(ClearingRefused) as pending:
            service.months.close("2026-03", JJ, "clerk")
        assert pending.value.reason is StatementRefusal.LINES_PENDING
        summary = service.months.act("2026-03", JJ, "confirm", None, "", "clerk", all_pending=True)
        assert summary["changed"] == ["e2", "e3"] and summary["confirmed_fen"] == 1_200_000
        closed = service.months.close("2026-03", JJ, "clerk")
        assert closed["status"] == "CLOSED" and closed["disputed_fen"] == 600_000
        written = (tmp_path / "months" / "2026-03" / f"statement_2026-03_{JJ}.csv").read_bytes()
        assert service.months.statement_file("2026-03", JJ, "csv") == written
        service.months.resolve("2026-03", JJ, "e1", "paid after all", "ops")
        actions = [service.codec.decode(p).value["action"] for topic, _, p in service.repository.tables.outbox
                   if topic == "clearing.statements" and service.codec.decode(p).record_name.endswith("Changed")]
        assert actions.count("ISSUED") == 3 and "CLOSED" in actions and actions[-1] == "RESOLVED"
    finally:
        NOW[0] = datetime(2026, 3, 3, 2, tzinfo=timezone.utc)


def test_every_reason_clearing_refuses_with_has_one_http_status():
    from hub.clearing.entrypoints.web import STATUS

    reasons = [reason for kind in REASONS for reason in kind]
    assert set(STATUS) == set(reasons) and all(400 <= STATUS[r] < 500 for r in reasons)
    assert (STATUS[StatementRefusal.LINES_PENDING], STATUS[StatementRefusal.STATEMENT_NOT_FOUND],
            STATUS[AdvanceRefusal.INVALID_AMOUNT]) == (409, 404, 400)
    codes = {(kind, r.code) for kind in REASONS for r in kind}
    assert len(codes) == len(reasons)  # a code means one thing within an operation
