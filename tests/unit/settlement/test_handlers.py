"""The settle service's handlers against the fake repository: every transaction's path, every
reason it can refuse with, and that a refusal writes nothing but its remembered answer."""

from __future__ import annotations

import copy
from datetime import date, datetime, timezone

import pytest

from hub import vouchers
from hub.messaging import AvroCodec, SchemaRegistry
from hub.reference.policy import Level
from hub.settlement.domain.model import Accumulators
from hub.settlement.domain.money import yuan_to_fen
from hub.settlement.domain.refusals import RefusalCode
from hub.settlement.entrypoints.http import TRANSPORT_STATUS
from hub.settlement.service_layer.convention import SETLINFO_AMOUNTS, Limits
from hub.settlement.service_layer.envelope import Request
from hub.settlement.service_layer.handlers import SettlementService
from hub.settlement.service_layer.identity import Hospital
from hub.settlement.service_layer.reasons import Why

from .builders import CATALOGUE, sample_policies
from .fakes import FakeReadModel, FakeRepository

KEY = b"unit-test-person-key"
NOW = datetime(2026, 3, 12, 2, 0, tzinfo=timezone.utc)
GZ = Hospital("H44010000001", "广州 test hospital", "440100", Level("3"), "x")
OTHER = Hospital("H44010000002", "another 广州 hospital", "440100", Level("3"), "y")
NOWHERE = Hospital("H99990000001", "a hospital in a pool with no catalogue", "999902", Level("2"), "z")
PSN, STRANGER, UNPOLICIED = "360400199001011234", "360400199001019999", "999999199001011234"
# A person whose bureau sent the resident id number and name: psn_no and certno are different numbers.
IDENTIFIED, CERTNO, NAME = "36040000000000000777", "11010519491231002X", "张三"
VOUCHER_KEY = b"unit-test-voucher-key"
FILED_TO_GZ = [{"filing_id": "F-GZ", "filing_type": "REFERRAL", "target_pool": "440100", "valid_from": date(2026, 1, 1),
                "valid_to": None, "revoked": False}]


class Hub:
    def __init__(self):
        codec = AvroCodec(SchemaRegistry())
        self.codec = codec
        self.repo = FakeRepository()
        self.read_model = FakeReadModel(codec, sample_policies(), [CATALOGUE])
        # 九江 settles off-site at the counter only after filing: the persons are filed to 广州.
        self.read_model.enrol(KEY, PSN, "360400", filings=FILED_TO_GZ)
        self.read_model.enrol(KEY, UNPOLICIED, "999999")
        self.identified_ref = self.read_model.enrol(KEY, IDENTIFIED, "360400", filings=FILED_TO_GZ,
                                                    certno=CERTNO, psn_name=NAME, psn_type="11", naty="01",
                                                    emp_name="九江市第一机械厂",
                                                    identities=[{"population": "POVERTY_REGISTERED",
                                                                 "begins": date(2026, 1, 1), "ends": None}])
        self.service = SettlementService(self.repo, self.read_model, codec, KEY, clock=lambda: NOW,
                                         limits=Limits(max_lines=3), voucher_key=VOUCHER_KEY)
        self.n = 0

    def call(self, infno: str, payload, hospital: Hospital = GZ, msgid: str | None = None, **envelope):
        self.n += 1
        return self.service.handle(hospital, {"infno": infno, "msgid": msgid or f"{hospital.code}-{self.n:04d}",
                                              "input": payload, **envelope})

    def ok(self, infno: str, payload, hospital: Hospital = GZ) -> dict:
        reply = self.call(infno, payload, hospital)
        assert reply.reason is None, reply.body
        return reply.body["output"]

    def open(self, hospital: Hospital = GZ, psn: str = PSN) -> str:
        return self.ok("2401", {"mdtrtinfo": {"psn_no": psn, "med_type": "21", "begntime": "2026-03-10 08:00:00"}},
                       hospital)["result"]["mdtrt_id"]

    def upload(self, mdtrt_id: str, *lines: tuple[str, str, str], hospital: Hospital = GZ) -> None:
        self.ok("2301", {"feedetail": [{"mdtrt_id": mdtrt_id, "med_list_codg": code, "cnt": cnt, "pric": price}
                                       for code, cnt, price in lines]}, hospital)

    def bill(self, *lines, hospital: Hospital = GZ, psn: str = PSN) -> str:
        mdtrt_id = self.open(hospital, psn)
        self.upload(mdtrt_id, *(lines or [("A", "2", "100.00")]), hospital=hospital)
        return mdtrt_id

    def settle(self, mdtrt_id: str, hospital: Hospital = GZ) -> dict:
        return self.ok("2304", {"data": {"mdtrt_id": mdtrt_id, "endtime": "2026-03-12 10:00:00"}}, hospital)["setlinfo"]


@pytest.fixture
def hub() -> Hub:
    return Hub()


def test_a_whole_bill_open_upload_preview_settle_reverse(hub):
    mdtrt_id = hub.bill(("A", "2", "1000.00"), ("C", "1", "50.00"))
    preview = hub.ok("2303", {"data": {"mdtrt_id": mdtrt_id, "endtime": "2026-03-12 10:00:00"}})["setlinfo"]
    assert hub.repo.tables.outbox == [] and hub.repo.tables.accumulators == {}  # a preview writes nothing
    info = hub.settle(mdtrt_id)
    assert {k: info[k] for k in SETLINFO_AMOUNTS} == {k: preview[k] for k in SETLINFO_AMOUNTS}  # as previewed
    assert (preview["setl_id"], info["medins_setl_id"]) == ("", f"{GZ.code}-{hub.n:04d}")  # its msgid
    parts = sum(yuan_to_fen(info[k]) for k in ("hifp_pay", "hifmi_pay", "maf_pay", "psn_part_amt"))
    assert parts == yuan_to_fen(info["medfee_sumamt"]) == 2050_00  # balances to the fen
    tables = hub.repo.tables
    assert tables.visits[mdtrt_id].status == "SETTLED"
    (key, payload), = tables.outbox
    event = hub.codec.decode(payload).value
    assert (key, event["settlement_id"], event["hifp_pay_fen"]) == ("360400", info["setl_id"], yuan_to_fen(info["hifp_pay"]))
    acc = next(iter(tables.accumulators.values()))
    assert acc.admissions == 1 and acc.inpatient_fund_paid == yuan_to_fen(info["hifp_pay"])

    reversal = hub.ok("2305", {"data": {"setl_id": info["setl_id"]}})
    assert reversal["hub_reversal"] == {"setl_id": info["setl_id"], "reversal_id": reversal["setlinfo"]["setl_id"],
                                        "status": "REVERSED"}
    for key in SETLINFO_AMOUNTS:  # the reversal nets the original to zero
        assert yuan_to_fen(info[key]) + yuan_to_fen(reversal["setlinfo"][key]) == 0
    assert tables is not hub.repo.tables  # each transaction committed a new state
    tables = hub.repo.tables
    assert tables.visits[mdtrt_id].status == "OPEN" and tables.settlements[info["setl_id"]].status == "REVERSED"
    assert next(iter(tables.accumulators.values())).admissions == 0
    assert [hub.codec.decode(p).record_name.rsplit(".", 1)[-1] for _, p in tables.outbox] == [
        "SettlementCompleted", "SettlementReversed"]
    assert hub.settle(mdtrt_id)["setl_id"] != info["setl_id"]  # settled anew after the reversal


def test_fee_lines_upload_replace_and_cancel(hub):
    mdtrt_id = hub.open()
    hub.ok("2301", {"feedetail": [{"mdtrt_id": mdtrt_id, "feedetl_sn": "1", "med_list_codg": "A", "cnt": "1", "pric": "10"},
                                  {"mdtrt_id": mdtrt_id, "feedetl_sn": "2", "med_list_codg": "A", "cnt": "1", "pric": "20"}]})
    hub.ok("2301", {"feedetail": [{"mdtrt_id": mdtrt_id, "feedetl_sn": "2", "med_list_codg": "C", "cnt": "2", "pric": "5"}]})
    fees = hub.repo.tables.visits[mdtrt_id].fees
    assert {sn: (f.med_list_codg, f.amount_fen) for sn, f in fees.items()} == {"1": ("A", 1000), "2": ("C", 1000)}
    assert hub.ok("2302", {"data": {"mdtrt_id": mdtrt_id, "feedetl_sn": "1"}})["result"]["cancelled_lines"] == 1
    assert hub.ok("2302", {"data": {"mdtrt_id": mdtrt_id, "feedetl_sn": "0000"}})["result"]["cancelled_lines"] == 1
    assert hub.repo.tables.visits[mdtrt_id].fees == {}
    assert hub.ok("2404", {"data": {"mdtrt_id": mdtrt_id}})["result"]["status"] == "CANCELLED"


def _refusal_cases():
    """(name, setup(hub) -> (infno, input, hospital, envelope extras), the reason answered)."""
    line = {"med_list_codg": "A", "cnt": "1", "pric": "10.00"}

    def upload(**changes):
        return lambda h: ("2301", {"feedetail": [{"mdtrt_id": h.open(), **line, **changes}]}, GZ, {})

    def settled(h):
        mdtrt_id = h.bill()
        return mdtrt_id, h.settle(mdtrt_id)["setl_id"]

    def reversed_(h):
        _, setl_id = settled(h)
        h.ok("2305", {"data": {"setl_id": setl_id}})
        return setl_id

    def cancelled(h):
        mdtrt_id = h.open()
        h.ok("2404", {"data": {"mdtrt_id": mdtrt_id}})
        return mdtrt_id

    def reused_msgid(h):
        h.call("2401", {"mdtrtinfo": {"psn_no": PSN, "begntime": "2026-03-10"}}, msgid="SAME-1")
        return "2401", {"mdtrtinfo": {"psn_no": PSN, "begntime": "2026-03-11"}}, GZ, {"msgid": "SAME-1"}

    def undone_settlement(h):
        mdtrt_id = h.bill()
        h.call("2304", {"data": {"mdtrt_id": mdtrt_id}}, msgid="UNDONE-1")
        h.ok("2601", {"data": {"psn_no": PSN, "omsgid": "UNDONE-1", "oinfno": "2304"}})
        return "2304", {"data": {"mdtrt_id": mdtrt_id}}, GZ, {"msgid": "UNDONE-1"}

    def not_ready(h):
        h.read_model.is_ready = False
        return "2304", {"data": {"mdtrt_id": "M1"}}, GZ, {}

    return [
        ("not a JSON object", lambda h: (None, None, GZ, {"raw": [1]}), Why.INVALID_JSON),
        ("unknown infno", lambda h: ("9999", {}, GZ, {}), Why.UNKNOWN_INFNO),
        ("msgid with a space", lambda h: ("2401", {}, GZ, {"msgid": "a b"}), Why.INVALID_MSGID),
        ("another hospital's code", lambda h: ("2401", {}, GZ, {"fixmedins_code": OTHER.code}), Why.HOSPITAL_MISMATCH),
        ("another region", lambda h: ("2401", {}, GZ, {"mdtrtarea_admvs": "110000"}), Why.TREATMENT_REGION_MISMATCH),
        ("a msgid reused for other content", reused_msgid, Why.MSGID_REUSED),
        ("input not an object", lambda h: ("2401", [], GZ, {}), Why.INVALID_INPUT),
        ("data not an object", lambda h: ("2304", {"data": "M1"}, GZ, {}), Why.INVALID_INPUT),
        ("NUL in a field", lambda h: ("2401", {"mdtrtinfo": {"psn_no": "1\x002"}}, GZ, {}), Why.INVALID_CHARACTERS),
        ("open without begntime", lambda h: ("2401", {"mdtrtinfo": {"psn_no": PSN}}, GZ, {}), Why.INVALID_FIELD),
        ("2401 for an outpatient", lambda h: ("2401", {"mdtrtinfo": {"psn_no": PSN, "med_type": "11",
                                                                     "begntime": "2026-03-10"}}, GZ, {}), Why.INVALID_FIELD),
        ("float price", upload(pric=10.5), Why.INVALID_FIELD),
        ("line without a code", lambda h: ("2301", {"feedetail": [{"mdtrt_id": h.open(), "cnt": "1", "pric": "1"}]},
                                           GZ, {}), Why.INVALID_FIELD),
        ("three decimals", upload(pric="1.005"), Why.INVALID_AMOUNT),
        ("a price above the limit", upload(pric="99999999.00"), Why.AMOUNT_TOO_LARGE),
        ("line total not cnt x pric", upload(det_item_fee_sumamt="11.00"), Why.AMOUNT_MISMATCH),
        ("too many lines", lambda h: ("2301", {"feedetail": [{"mdtrt_id": h.open(), **line}] * 4}, GZ, {}),
         Why.TOO_MANY_LINES),
        ("settle an unknown visit", lambda h: ("2304", {"data": {"mdtrt_id": "M-none"}}, GZ, {}), Why.VISIT_NOT_FOUND),
        ("settle another's visit", lambda h: ("2304", {"data": {"mdtrt_id": h.bill(hospital=OTHER)}}, GZ, {}),
         Why.VISIT_OF_ANOTHER_HOSPITAL),
        ("upload to a cancelled visit", lambda h: ("2301", {"feedetail": [{"mdtrt_id": cancelled(h), **line}]}, GZ, {}),
         Why.VISIT_NOT_OPEN),
        ("settle twice", lambda h: ("2304", {"data": {"mdtrt_id": settled(h)[0]}}, GZ, {}), Why.VISIT_ALREADY_SETTLED),
        ("settle with a wrong total", lambda h: ("2304", {"data": {"mdtrt_id": h.bill(), "medfee_sumamt": "1.00"}}, GZ, {}),
         Why.AMOUNT_MISMATCH),
        ("reverse an unknown settlement", lambda h: ("2305", {"data": {"setl_id": "S-none"}}, GZ, {}),
         Why.SETTLEMENT_NOT_FOUND),
        ("reverse another's settlement", lambda h: ("2305", {"data": {"setl_id": settled(h)[1]}}, OTHER, {}),
         Why.SETTLEMENT_OF_ANOTHER_HOSPITAL),
        ("reverse twice", lambda h: ("2305", {"data": {"setl_id": reversed_(h)}}, GZ, {}),
         Why.SETTLEMENT_ALREADY_REVERSED),
        ("read model rebuilding", not_ready, Why.HUB_NOT_READY),
        ("2601 of an upload", lambda h: ("2601", {"data": {"omsgid": "X-1", "oinfno": "2301"}}, GZ, {}),
         Why.NOT_UNDOABLE),
        ("the retry of a settlement undone", undone_settlement, Why.TRANSACTION_UNDONE),
        ("1101 by a resident id nobody holds", lambda h: ("1101", {"data": {"mdtrt_cert_type": "02",
                                                                            "mdtrt_cert_no": "110105194912310021"}},
                                                         GZ, {}), Why.PERSON_NOT_FOUND),
        ("a forged e-voucher", lambda h: ("2401", {"mdtrtinfo": {
            "psn_no": IDENTIFIED, "begntime": "2026-03-10 08:00:00", "mdtrt_cert_type": "01",
            "mdtrt_cert_no": vouchers.issue(b"another key", "360400", h.identified_ref, NOW.timestamp())[0]}}, GZ, {}),
         Why.CREDENTIAL_INVALID),
        ("download a file nobody uploaded", lambda h: ("9102", {"fsDownloadIn": {"file_qury_no": "F-NONE"}}, GZ, {}),
         Why.FILE_NOT_FOUND),
        ("settle naming another person", lambda h: ("2304", {"data": {"mdtrt_id": h.bill(), "psn_no": IDENTIFIED}},
                                                    GZ, {}), Why.CREDENTIAL_MISMATCH),
        ("a person not enrolled", lambda h: ("2401", {"mdtrtinfo": {"psn_no": STRANGER, "begntime": "2026-03-10"}},
                                             GZ, {}), RefusalCode.PERSON_NOT_ENROLLED),
        ("settle without fee lines", lambda h: ("2304", {"data": {"mdtrt_id": h.open()}}, GZ, {}),
         RefusalCode.CLAIM_INVALID),
        ("a home region without policy", lambda h: ("2304", {"data": {"mdtrt_id": h.bill(psn=UNPOLICIED)}}, GZ, {}),
         RefusalCode.UNKNOWN_HOME_REGION),
        ("a treatment region without catalogue",
         lambda h: ("2304", {"data": {"mdtrt_id": h.bill(hospital=NOWHERE)}}, NOWHERE, {}),
         RefusalCode.UNKNOWN_TREATMENT_REGION),
        ("confirm a line the month has not", lambda h: ("3261", {"data": {"trt_year": "2026", "trt_month": "03"},
                                                                 "detail": [{"setl_sn": "S-none", "cnfm_flag": "1"}]},
                                                        GZ, {}), Why.MONTH_LINE_NOT_FOUND),
        ("apply for a month not over", lambda h: ("3203", {"data": {**FEBRUARY, "setlym": "202603"}}, GZ, {}),
         Why.MONTH_NOT_OVER),
        ("roll back an applied month", lambda h: (applied(h), ("3262", {"data": {"trt_year": "2026", "trt_month": "02"}},
                                                               GZ, {}))[1], Why.MONTH_APPLIED),
        ("apply twice", lambda h: (applied(h), ("3203", {"data": FEBRUARY}, GZ, {}))[1], Why.ALREADY_APPLIED),
        ("cancel an application nobody filed", lambda h: ("3204", {"data": {"clr_appy_evt_id": "CA-none"}}, GZ, {}),
         Why.APPLICATION_NOT_FOUND),
        ("cancel twice", lambda h: ("3204", {"data": {"clr_appy_evt_id": cancelled_application(h)}}, GZ, {}),
         Why.APPLICATION_CANCELLED),
    ]


FEBRUARY = {"clr_type": "21", "setlym": "202602", "medfee_sumamt": "0.00", "fund_appy_sum": "0.00"}  # no lines: 0


def applied(h: Hub) -> str:
    return h.ok("3203", {"data": FEBRUARY})["result"]["clr_appy_evt_id"]


def cancelled_application(h: Hub) -> str:
    number = applied(h)
    h.ok("3204", {"data": {"clr_appy_evt_id": number}})
    return number


CASES = _refusal_cases()


@pytest.mark.parametrize("setup,reason", [(c[1], c[2]) for c in CASES], ids=[c[0] for c in CASES])
def test_every_refusal_answers_its_reason_and_writes_nothing_else(hub, setup, reason):
    infno, payload, hospital, extras = setup(hub)
    before = copy.deepcopy(hub.repo.tables)
    envelope = extras.pop("raw", None)
    if envelope is None:
        hub.n += 1
        envelope = {"infno": infno, "msgid": f"{hospital.code}-R{hub.n:04d}", "input": payload, **extras}
    reply = hub.service.handle(hospital, envelope)
    assert (reply.reason, reply.body["infcode"], reply.body["err_code"]) == (reason, "-1", reason.code), reply.body
    after = hub.repo.tables
    remembered = set(after.requests) - set(before.requests)
    assert len(remembered) <= 1  # at most the refused request's own answer ...
    for key in remembered:
        assert after.requests[key].response == reply.body  # ... which a retry gets again
        del after.requests[key]
    # Locking a person-year creates its row at zero (that lock is what serialises a person's
    # first settlements): a zero row is the same as none.
    for tables in (before, after):
        tables.accumulators = {k: a for k, a in tables.accumulators.items() if a != Accumulators(k[1])}
    assert after == before


def test_the_refusal_table_covers_every_reason_of_the_service_layer():
    transport = set(TRANSPORT_STATUS)  # answered by the HTTP edge (tests/integration, tests/conformance)
    assert {c[2] for c in CASES} >= set(Why) - transport


def test_a_reused_msgid_is_refused_and_a_repeated_one_answered_alike(hub):
    mdtrt_id = hub.bill()
    first = hub.call("2304", {"data": {"mdtrt_id": mdtrt_id}}, msgid="M-1")
    assert hub.call("2304", {"data": {"mdtrt_id": mdtrt_id}}, msgid="M-1").body == first.body
    other = hub.call("2304", {"data": {"mdtrt_id": mdtrt_id, "medfee_sumamt": "200.00"}}, msgid="M-1")
    assert other.reason is Why.MSGID_REUSED
    assert len(hub.repo.tables.settlements) == 1


def _settle(hub: Hub, mdtrt_id: str, msgid: str) -> Request:
    request = hub.service.check(GZ, {"infno": "2304", "msgid": msgid, "input": {"data": {"mdtrt_id": mdtrt_id}}})
    assert isinstance(request, Request)
    return request


def test_a_group_decides_in_arrival_order_against_what_the_earlier_ones_left(hub):
    visits = [hub.bill(("A", "1", "100000.00")) for _ in range(3)]
    alone = hub.ok("2303", {"data": {"mdtrt_id": visits[0]}})["setlinfo"]["hifp_pay"]
    replies = hub.service.run_group([_settle(hub, visits[0], "G-1"), _settle(hub, visits[1], "G-2"),
                                     _settle(hub, visits[0], "G-1"), _settle(hub, visits[0], "G-3"),
                                     _settle(hub, visits[2], "G-4")])
    assert [r.reason for r in replies] == [None, None, None, Why.VISIT_ALREADY_SETTLED, None]
    assert replies[2].body == replies[0].body  # the repeated msgid, answered as its first
    paid = [yuan_to_fen(replies[i].body["output"]["setlinfo"]["hifp_pay"]) for i in (0, 1, 4)]
    assert paid[0] == yuan_to_fen(alone)
    acc = next(iter(hub.repo.tables.accumulators.values()))
    assert acc.admissions == 3 and acc.inpatient_fund_paid == sum(paid)
    assert len(hub.repo.tables.outbox) == 3


def test_a_failed_group_is_decided_again_request_by_request(hub):
    visits = [hub.bill() for _ in range(2)]
    hub.repo.fail_next = RuntimeError("the group's commit failed")
    replies = hub.service.run_group([_settle(hub, v, f"F-{n}") for n, v in enumerate(visits)])
    assert [r.reason for r in replies] == [None, None]
    assert len(hub.repo.tables.settlements) == 2 and len(hub.repo.tables.outbox) == 2


def test_a_group_of_one_raises_its_failure_and_leaves_nothing(hub):
    mdtrt_id = hub.bill()
    before = copy.deepcopy(hub.repo.tables)
    hub.repo.fail_next = RuntimeError("lost")
    with pytest.raises(RuntimeError):
        hub.service.run_group([_settle(hub, mdtrt_id, "L-1")])
    assert hub.repo.tables == before
    assert hub.service.run_group([_settle(hub, mdtrt_id, "L-1")])[0].reason is None  # the retry settles


def test_a_registration_missing_while_rebuilding_releases_the_claim(hub):
    mdtrt_id = hub.bill()
    ref = hub.repo.tables.visits[mdtrt_id].person_ref
    saved = hub.read_model.registrations.pop(ref)
    hub.read_model.is_ready = False
    hub.service._ready_until = float("inf")  # readiness was seen a moment ago
    reply = hub.service.run_group([_settle(hub, mdtrt_id, "N-1")])[0]
    assert reply.reason is Why.HUB_NOT_READY
    assert (GZ.code, "N-1") not in hub.repo.tables.requests  # nothing remembered: a retry decides afresh
    hub.read_model.registrations[ref], hub.read_model.is_ready = saved, True
    assert hub.service.run_group([_settle(hub, mdtrt_id, "N-1")])[0].reason is None


def test_a_reversal_and_a_new_settlement_of_one_visit_in_one_group(hub):
    mdtrt_id = hub.bill()
    setl_id = hub.settle(mdtrt_id)["setl_id"]
    reverse = hub.service.check(GZ, {"infno": "2305", "msgid": "X-1", "input": {"data": {"setl_id": setl_id}}})
    replies = hub.service.run_group([reverse, _settle(hub, mdtrt_id, "X-2")])
    assert [r.reason for r in replies] == [None, None]
    settlements = hub.repo.tables.settlements
    assert sorted(s.status for s in settlements.values()) == ["REVERSED", "SETTLED"]
    assert next(iter(hub.repo.tables.accumulators.values())).admissions == 1


def _undo(hub: Hub, omsgid: str, oinfno: str, msgid: str):
    return hub.call("2601", {"data": {"psn_no": PSN, "omsgid": omsgid, "oinfno": oinfno}}, msgid=msgid)


def test_2601_undoes_a_settlement_whose_answer_was_lost_exactly_once(hub):
    mdtrt_id = hub.bill()
    assert hub.call("2304", {"data": {"mdtrt_id": mdtrt_id}}, msgid="LOST-1").reason is None  # the answer is lost
    undo = _undo(hub, "LOST-1", "2304", "UNDO-1")
    assert undo.reason is None and "reversed" in undo.body["output"]["hub_undo"]["undone"]
    assert _undo(hub, "LOST-1", "2304", "UNDO-1").body == undo.body  # its own retry: the same answer
    assert "nothing" in _undo(hub, "LOST-1", "2304", "UNDO-2").body["output"]["hub_undo"]["undone"]
    tables = hub.repo.tables
    (settlement,) = tables.settlements.values()
    assert settlement.status == "REVERSED" and tables.visits[mdtrt_id].status == "OPEN"
    assert next(iter(tables.accumulators.values())).admissions == 0 and len(tables.outbox) == 2
    retry = hub.call("2304", {"data": {"mdtrt_id": mdtrt_id}}, msgid="LOST-1")
    assert retry.reason is Why.TRANSACTION_UNDONE  # the lost request, sent again, settles nothing
    assert hub.settle(mdtrt_id)["setl_id"] != settlement.setl_id  # a new msgid settles anew


def test_2601_before_its_original_arrives_makes_the_original_change_nothing(hub):
    mdtrt_id = hub.bill()
    undo = _undo(hub, "LATE-1", "2304", "UNDO-1")
    assert undo.reason is None and "never arrived" in undo.body["output"]["hub_undo"]["undone"]
    late = hub.call("2304", {"data": {"mdtrt_id": mdtrt_id}}, msgid="LATE-1")
    assert late.reason is Why.TRANSACTION_UNDONE
    assert hub.repo.tables.settlements == {} and hub.repo.tables.visits[mdtrt_id].status == "OPEN"


def test_2601_cancels_an_opened_visit_and_checks_the_original_type(hub):
    opened = hub.call("2401", {"mdtrtinfo": {"psn_no": PSN, "begntime": "2026-03-10"}}, msgid="OPEN-1")
    mdtrt_id = opened.body["output"]["result"]["mdtrt_id"]
    assert _undo(hub, "OPEN-1", "2304", "UNDO-0").reason is Why.INVALID_FIELD  # it was a 2401
    assert _undo(hub, "OPEN-1", "2401", "UNDO-1").reason is None
    assert hub.repo.tables.visits[mdtrt_id].status == "CANCELLED"


def test_sign_in_and_out(hub):
    signed = hub.ok("9001", {"signIn": {"opter_no": "001", "mac": "00-00-00-00-00-00", "ip": "10.0.0.1"}})
    assert len(signed["signinoutb"]["sign_no"]) == 32 and signed["signinoutb"]["sign_time"].startswith("2026-03-12")
    assert "sign_time" in hub.ok("9002", {"signOut": {"sign_no": signed["signinoutb"]["sign_no"], "opter_no": "001"}})[
        "signoutoutb"]


def test_amounts_sent_as_json_numbers_are_read_exactly(hub):
    from hub.settlement.entrypoints.gateway import parse_body

    mdtrt_id = hub.open()
    envelope = parse_body(b'{"infno": "2301", "msgid": "N-1", "input": {"feedetail": [{"mdtrt_id": "%s",'
                          b' "med_list_codg": "A", "cnt": 3, "pric": 0.1, "det_item_fee_sumamt": 0.30}]}}'
                          % mdtrt_id.encode())
    reply = hub.service.handle(GZ, envelope)
    assert reply.reason is None, reply.body
    (line,) = reply.body["output"]["result"]
    assert (line["pric"], line["det_item_fee_sumamt"]) == ("0.10", "0.30")  # 3 x 0.1 is 0.30, to the fen
    bad = parse_body(b'{"infno": "2301", "msgid": "N-2", "input": {"feedetail": [{"mdtrt_id": "%s",'
                     b' "med_list_codg": "A", "cnt": 1, "pric": 0.105}]}}' % mdtrt_id.encode())
    assert hub.service.handle(GZ, bad).reason is Why.INVALID_AMOUNT  # more than 2 decimals


def test_a_fee_upload_answers_each_line_with_its_split(hub):
    mdtrt_id = hub.open()
    result = hub.ok("2301", {"feedetail": [
        {"mdtrt_id": mdtrt_id, "feedetl_sn": "a", "med_list_codg": "B", "cnt": "1", "pric": "100.00"},
        {"mdtrt_id": mdtrt_id, "feedetl_sn": "b", "med_list_codg": "S", "cnt": "2", "pric": "150.00"},
        {"mdtrt_id": mdtrt_id, "feedetl_sn": "c", "med_list_codg": "NOT-LISTED", "cnt": "1", "pric": "5.00"}]})["result"]
    by_sn = {line["feedetl_sn"]: line for line in result}
    assert (by_sn["a"]["chrgitm_lv"], by_sn["a"]["preselfpay_amt"], by_sn["a"]["selfpay_prop"]) == ("02", "10.00", "0.1000")
    assert (by_sn["b"]["overlmt_amt"], by_sn["b"]["pric_uplmt_amt"]) == ("100.00", "100.00")  # capped at 100 a unit
    assert (by_sn["c"]["chrgitm_lv"], by_sn["c"]["fulamt_ownpay_amt"]) == ("03", "5.00")
    for line in result:
        parts = sum(yuan_to_fen(line[k]) for k in ("fulamt_ownpay_amt", "overlmt_amt", "preselfpay_amt", "inscp_scp_amt"))
        assert parts == yuan_to_fen(line["det_item_fee_sumamt"])


def test_every_transaction_decided_in_a_group_has_its_method(hub):
    from hub.settlement.service_layer.envelope import GROUPED

    assert set(hub.service.transactions._by_infno) == GROUPED


def test_a_discharge_sets_the_bills_last_day_and_can_be_taken_back(hub):
    mdtrt_id = hub.bill()
    refused = hub.call("2402", {"dscginfo": {"mdtrt_id": mdtrt_id, "endtime": "2026-03-01 10:00:00"}})
    assert refused.reason is Why.INVALID_FIELD  # before the stay began
    hub.ok("2402", {"dscginfo": {"mdtrt_id": mdtrt_id, "endtime": "2026-03-20 10:00:00", "dscg_way": "1"},
                    "diseinfo": [{"diag_code": "J18.900", "diag_name": "肺炎", "maindiag_flag": "1"}]})
    assert str(hub.repo.tables.visits[mdtrt_id].endtime) == "2026-03-20"
    hub.ok("2405", {"data": {"mdtrt_id": mdtrt_id}})
    assert hub.repo.tables.visits[mdtrt_id].endtime is None
    hub.ok("2402", {"dscginfo": {"mdtrt_id": mdtrt_id, "endtime": "2026-03-21 10:00:00"}})
    hub.ok("2304", {"data": {"mdtrt_id": mdtrt_id}})  # no endtime sent: the discharge day
    assert str(hub.repo.tables.visits[mdtrt_id].endtime) == "2026-03-21"
    assert hub.call("2405", {"data": {"mdtrt_id": mdtrt_id}}).reason is Why.VISIT_ALREADY_SETTLED


def test_outpatient_diagnoses_are_checked_and_answered(hub):
    mdtrt_id = hub.ok("2201", {"data": {"psn_no": PSN, "med_type": "11", "begntime": "2026-03-10 09:00:00"}})[
        "data"]["mdtrt_id"]
    hub.ok("2203", {"mdtrtinfo": {"mdtrt_id": mdtrt_id, "psn_no": PSN, "med_type": "11"},
                    "diseinfo": [{"diag_type": "1", "diag_srt_no": "1", "diag_code": "J06.900", "diag_name": "上感"}]})
    assert hub.call("2203", {"mdtrtinfo": {"mdtrt_id": mdtrt_id}}).reason is Why.INVALID_INPUT  # no diagnoses
    assert hub.call("2203", {"mdtrtinfo": {"mdtrt_id": mdtrt_id}, "diseinfo": [{"diag_name": "x"}]}).reason is Why.INVALID_FIELD
    assert hub.repo.tables.visits[mdtrt_id].diagnoses == "J06.900"
    # 14 names a chronic-disease visit, with its 病种; a stay's medical type is refused and changes nothing
    hub.ok("2203", {"mdtrtinfo": {"mdtrt_id": mdtrt_id, "med_type": "14", "dise_codg": "N18.500"},
                    "diseinfo": [{"diag_code": "N18.500"}, {"diag_code": "I10.x00"}]})
    assert (hub.repo.tables.visits[mdtrt_id].med_type, hub.repo.tables.visits[mdtrt_id].diagnoses) == ("14", "N18.500 I10.x00")
    refused = hub.call("2203", {"mdtrtinfo": {"mdtrt_id": mdtrt_id, "med_type": "21"}, "diseinfo": [{"diag_code": "X"}]})
    assert refused.reason is Why.INVALID_FIELD and hub.repo.tables.visits[mdtrt_id].med_type == "14"


def test_a_hospital_queries_its_settlements_and_a_persons_accumulators(hub):
    info = hub.settle(hub.bill(("A", "1", "1000.00")))
    queried = hub.ok("5203", {"data": {"setl_id": info["setl_id"], "psn_no": PSN}})
    assert queried["setlinfo"] == {**info, "psn_no": PSN} and queried["hub_status"] == "SETTLED"
    assert hub.call("5203", {"data": {"setl_id": info["setl_id"]}}, hospital=OTHER).reason is Why.SETTLEMENT_OF_ANOTHER_HOSPITAL
    assert hub.call("5203", {"data": {"setl_id": "S-none"}}).reason is Why.SETTLEMENT_NOT_FOUND
    rows = hub.ok("5206", {"data": {"psn_no": PSN, "cum_ym": "202603"}})["cuminfo"]
    cum = {row["cum_type_code"]: row["cum"] for row in rows}
    assert cum["admissions"] == "1" and cum["inpatient_fund_paid"] == info["hifp_pay"]
    assert {(row["cum_ym"], row["insutype"]) for row in rows} == {("202603", "390")}  # as HIS code keys a row
    assert hub.call("5206", {"data": {"psn_no": PSN, "cum_ym": "2026-03"}}).reason is Why.INVALID_FIELD


@pytest.mark.parametrize("infno,med_type,node,accident", [("2401", "22", "result", True), ("2401", "24", "result", False),
                                                          ("2201", "41", "data", False)])
def test_the_platforms_other_medical_types(hub, infno, med_type, node, accident):
    output = hub.ok(infno, {"mdtrtinfo": {"psn_no": PSN, "med_type": med_type, "begntime": "2026-03-10 08:00:00"}})
    mdtrt_id = output[node]["mdtrt_id"]
    visit = hub.repo.tables.visits[mdtrt_id]
    assert (visit.med_type, visit.accident_injury) == (med_type, accident)
    hub.upload(mdtrt_id, ("A", "1", "100.00"))
    preview = hub.call(infno.replace("2401", "2303").replace("2201", "2206"), {"data": {"mdtrt_id": mdtrt_id}})
    if node == "result":  # a stay: settled, answered with the visit's own code
        assert preview.body["output"]["setlinfo"]["med_type"] == med_type
    else:  # a pharmacy purchase is general outpatient care, which 九江 does not cover off-site
        assert preview.reason is RefusalCode.VISIT_TYPE_NOT_COVERED_OFF_SITE


def test_the_asking_hospital_sees_the_psn_no_it_sent_and_the_hub_keeps_it_masked(hub):
    opened = hub.call("2401", {"mdtrtinfo": {"psn_no": PSN, "begntime": "2026-03-10"}}, msgid="ID-1")
    mdtrt_id = opened.body["output"]["result"]["mdtrt_id"]
    assert opened.body["output"]["result"]["psn_no"] == PSN  # in clear, as the HIS sent it
    masked = hub.repo.tables.requests[(GZ.code, "ID-1")].response["output"]["result"]["psn_no"]
    assert masked != PSN and masked.startswith(PSN[:4]) and "*" in masked  # remembered masked
    again = hub.call("2401", {"mdtrtinfo": {"psn_no": PSN, "begntime": "2026-03-10"}}, msgid="ID-1")
    assert again.body["output"]["result"]["psn_no"] == PSN  # the replay, revealed again
    hub.upload(mdtrt_id, ("A", "1", "10.00"))
    with_id = hub.ok("2303", {"data": {"mdtrt_id": mdtrt_id, "psn_no": PSN}})["setlinfo"]
    assert (with_id["psn_no"], with_id["certno"]) == (PSN, "")  # the bureau sent no resident id (a v1 registration)
    without = hub.ok("2303", {"data": {"mdtrt_id": mdtrt_id}})["setlinfo"]
    assert without["psn_no"] == masked  # a request that did not carry it, of a person with nothing sealed: masked
    assert hub.ok("1101", {"data": {"psn_no": PSN}})["baseinfo"]["psn_no"] == PSN


def test_a_person_is_one_person_by_psn_no_resident_id_or_e_voucher_and_named_in_clear_only_to_the_hospital(hub):
    token, _ = vouchers.issue(VOUCHER_KEY, "360400", hub.identified_ref, NOW.timestamp())
    answers = [hub.ok("1101", {"data": data}) for data in (
        {"psn_no": IDENTIFIED}, {"mdtrt_cert_type": "02", "mdtrt_cert_no": CERTNO},
        {"mdtrt_cert_type": "02", "mdtrt_cert_no": CERTNO.lower()}, {"psn_cert_type": "01", "certno": CERTNO},
        {"mdtrt_cert_type": "01", "mdtrt_cert_no": token})]
    for answer in answers:
        assert {k: answer["baseinfo"][k] for k in ("psn_no", "certno", "psn_name", "gend", "brdy", "age")} == {
            "psn_no": IDENTIFIED, "certno": CERTNO, "psn_name": NAME, "gend": "2", "brdy": "1949-12-31", "age": "76"}
        assert answer["idetinfo"] == [{"psn_idet_type": "POVERTY_REGISTERED", "psn_type_lv": "", "memo": "",
                                       "begntime": "2026-01-01 00:00:00", "endtime": ""}]
        assert answer["baseinfo"]["naty"] == "01"  # the bureau's data, answered as given
        assert {k: answer["insuinfo"][0][k] for k in ("psn_type", "emp_name")} == {"psn_type": "11",
                                                                                  "emp_name": "九江市第一机械厂"}
    expired = vouchers.issue(VOUCHER_KEY, "360400", hub.identified_ref, NOW.timestamp() - 3600)[0]
    assert hub.call("1101", {"data": {"mdtrt_cert_type": "01", "mdtrt_cert_no": expired}}).reason is Why.CREDENTIAL_INVALID

    mdtrt_id = hub.ok("2401", {"mdtrtinfo": {"psn_no": IDENTIFIED, "med_type": "21", "begntime": "2026-03-10 08:00:00",
                                             "mdtrt_cert_type": "01", "mdtrt_cert_no": token}})["result"]["mdtrt_id"]
    hub.upload(mdtrt_id, ("A", "1", "100.00"))
    settle = {"data": {"mdtrt_id": mdtrt_id, "psn_no": IDENTIFIED, "mdtrt_cert_type": "02", "mdtrt_cert_no": CERTNO}}
    wrong_id = {"data": {**settle["data"], "mdtrt_cert_no": "110105194912310021"}}
    assert hub.call("2303", wrong_id).reason is Why.CREDENTIAL_MISMATCH
    info = hub.ok("2304", settle)["setlinfo"]
    assert (info["psn_no"], info["certno"], info["psn_name"], info["brdy"]) == (IDENTIFIED, CERTNO, NAME, "1949-12-31")
    assert (info["psn_type"], info["naty"]) == ("11", "01")
    stored = next(iter(hub.repo.tables.settlements.values())).output
    assert "九江市第一机械厂" not in str(stored)  # the employer is 1101's answer only, never kept
    assert IDENTIFIED not in str(stored) and CERTNO not in str(stored) and NAME not in str(stored)
    assert stored["setlinfo"]["certno"] == "1101**********002X" and stored["setlinfo"]["brdy"] == ""
    queried = hub.ok("5203", {"data": {"setl_id": info["setl_id"]}})["setlinfo"]  # the stored answer, opened again
    assert (queried["psn_no"], queried["certno"]) == (IDENTIFIED, CERTNO) and "_sealed" not in str(queried)


def test_5204_lists_a_settlements_fee_lines_with_their_split_to_its_hospital_only(hub):
    mdtrt_id = hub.bill(("A", "2", "100.00"), ("C", "1", "50.00"))
    info = hub.settle(mdtrt_id)
    lines = hub.ok("5204", {"data": {"setl_id": info["setl_id"], "psn_no": PSN}})
    assert [(l["feedetl_sn"], l["med_list_codg"], l["det_item_fee_sumamt"], l["setl_id"]) for l in lines] == [
        ("1", "A", "200.00", info["setl_id"]), ("2", "C", "50.00", info["setl_id"])]
    for line in lines:  # each line's split adds up to the line
        parts = ("fulamt_ownpay_amt", "overlmt_amt", "preselfpay_amt", "inscp_scp_amt")
        assert sum(yuan_to_fen(line[k]) for k in parts) == yuan_to_fen(line["det_item_fee_sumamt"])
    assert hub.ok("5204", {"data": {"mdtrt_id": mdtrt_id}}) == [{**l, "setl_id": ""} for l in lines]
    assert hub.call("5204", {"data": {"setl_id": info["setl_id"]}}, OTHER).reason is Why.SETTLEMENT_OF_ANOTHER_HOSPITAL
    assert hub.call("5204", {"data": {"mdtrt_id": mdtrt_id}}, OTHER).reason is Why.VISIT_OF_ANOTHER_HOSPITAL
    assert hub.call("5204", {"data": {}}).reason is Why.INVALID_FIELD


def test_files_a_3202_detail_file_through_9101_and_its_result_and_a_catalogue_through_9102(hub):
    import base64
    import io
    import zipfile

    from hub.settlement.service_layer import files

    info = hub.settle(hub.bill(("A", "2", "100.00")))
    detail = "\t".join(files.DETAIL_COLUMNS) + "\n" + "\n".join([
        f"{info['setl_id']}\tM1\t{PSN}\t{info['medfee_sumamt']}\t{info['fund_pay_sumamt']}\t0.00\t0",
        "S-NOT-AT-HUB\tM2\tX\t10.00\t5.00\t0.00\t0",
        "S-REFUNDED\tM3\tX\t10.00\t5.00\t0.00\t1"]) + "\n"
    as_java = list(files.zipped("detail.txt", detail))  # a byte array as a list of values ...
    as_java = [b - 256 if b > 127 else b for b in as_java]  # ... signed, as Java's bytes are
    uploaded = hub.ok("9101", {"fsUploadIn": {"in": as_java, "filename": "detail.zip", "fixmedins_code": GZ.code}})
    assert uploaded["filename"] == "detail.zip" and uploaded["file_qury_no"].startswith("F")
    stmt = hub.ok("3202", {"data": {"file_qury_no": uploaded["file_qury_no"], "stmt_begndate": "2026-03-12",
                                    "stmt_enddate": "2026-03-12", "setl_optins": "440100"}})
    assert stmt["differences"] == [{"setl_id": "S-NOT-AT-HUB", "reason": "not_standing_at_hub"}]
    result = hub.service.answer(Request(GZ, "9102", "DL-1", {"fsDownloadIn": {
        "file_qury_no": stmt["fileinfo"]["file_qury_no"], "filename": "x"}}, NOW))
    with zipfile.ZipFile(io.BytesIO(result.file[1])) as archive:
        assert "S-NOT-AT-HUB\t1\tnot_standing_at_hub" in archive.read(archive.namelist()[0]).decode()
    other = hub.service.answer(Request(OTHER, "9102", "DL-2", {"fsDownloadIn": {"file_qury_no": uploaded["file_qury_no"]}}, NOW))
    assert other.reason is Why.FILE_NOT_FOUND and other.file is None  # another hospital's file: none

    listed = hub.ok("1301", {"data": {"ver": ""}})
    drugs = hub.service.answer(Request(GZ, "9102", "DL-3", {"fsDownloadIn": {"file_qury_no": listed["file_qury_no"],
                                                                             "filename": "plc"}}, NOW))
    with zipfile.ZipFile(io.BytesIO(drugs.file[1])) as archive:
        rows = archive.read(archive.namelist()[0]).decode().splitlines()
    assert rows[0].split("\t")[0] == "med_list_codg" and len(rows) - 1 == int(listed["data_cn"]) > 0
    assert hub.ok("1301", {"data": {"ver": listed["ver"]}})["data_cn"] == "0"  # nothing newer than what it holds
    bad = hub.call("9101", {"fsUploadIn": {"in": base64.b64encode(b"x").decode() + "!", "filename": "a.txt"}})
    assert bad.reason is Why.INVALID_FIELD


@pytest.mark.parametrize("third_party,fund", [("0", "200.00"), ("1", "0.00")])
def test_an_outpatient_accident_flag_from_the_convention_picks_the_accident_outpatient_rules(hub, third_party, fund):
    """trum_flag 1 (外伤) without a liable third party (rel_ttp_flag 0): a 冠县 student's accident
    outpatient rules, (350 - 100) x (90 - 10 referral points) = 200; with a third party, the general
    outpatient rules, which pay only at village and township clinics (在村级、乡镇级定点医疗机构): nothing
    at this tertiary hospital."""
    student = "371525200801011234"
    hub.read_model.enrol(KEY, student, "371525", filings=FILED_TO_GZ, identities=[{"population": "STUDENT_CHILD",
                                                                                 "begins": None, "ends": None}])
    mdtrt_id = hub.ok("2201", {"data": {"psn_no": student, "med_type": "11", "begntime": "2026-03-10 09:00:00",
                                        "trum_flag": "1", "rel_ttp_flag": third_party}})["data"]["mdtrt_id"]
    hub.ok("2204", {"feedetail": [{"mdtrt_id": mdtrt_id, "med_list_codg": "A", "cnt": "1", "pric": "350.00"}]})
    info = hub.ok("2207", {"data": {"mdtrt_id": mdtrt_id}})["setlinfo"]
    assert info["hifp_pay"] == fund


def test_3201_totals_one_insurance_type_clearing_type_and_agency_as_a_his_sends_them(hub):
    """HIS code reconciles one total per insutype + clr_type + setl_optins: an outpatient (11)
    and an inpatient (21) total sent separately each balance."""
    stay = hub.settle(hub.bill(("A", "1", "1000.00")))  # 2401: clr_type 21
    guanxian = "371525199001011234"  # 冠县 covers outpatient care off-site (九江 does not)
    hub.read_model.enrol(KEY, guanxian, "371525", filings=[{**FILED_TO_GZ[0], "filing_id": "F-GX"}])
    emergency = hub.ok("2201", {"mdtrtinfo": {"psn_no": guanxian, "med_type": "11", "begntime": "2026-03-11 08:00:00"}})
    visit = emergency["data"]["mdtrt_id"]
    hub.upload(visit, ("A", "1", "200.00"))
    outpatient = hub.ok("2207", {"data": {"mdtrt_id": visit}})["setlinfo"]
    assert (stay["clr_type"], outpatient["clr_type"]) == ("21", "11")
    span = {"stmt_begndate": "2026-03-12", "stmt_enddate": "2026-03-12", "insutype": "390", "setl_optins": "440100"}
    for setl in (stay, outpatient):
        totals = {"medfee_sumamt": setl["medfee_sumamt"], "fund_pay_sumamt": setl["fund_pay_sumamt"],
                  "acct_pay": "0.00", "fixmedins_setl_cnt": 1}
        answer = hub.ok("3201", {"data": {**span, **totals, "clr_type": setl["clr_type"]}})["stmtinfo"]
        assert (answer["stmt_rslt"], answer["setl_optins"]) == ("0", "440100"), answer
    both = hub.ok("3201", {"data": {**span, "clr_type": "21", "fixmedins_setl_cnt": 2,
                                    "medfee_sumamt": "1200.00", "fund_pay_sumamt": "0"}})["stmtinfo"]
    assert both["stmt_rslt"] == "1" and "fixmedins_setl_cnt" in both["stmt_rslt_dscr"]
    employees = hub.ok("3201", {"data": {**span, "insutype": "310", "clr_type": "21", "fixmedins_setl_cnt": 0,
                                         "medfee_sumamt": "0", "fund_pay_sumamt": "0"}})["stmtinfo"]
    assert employees["stmt_rslt"] == "0"  # this hospital settled no employee's stay
    for wrong in ({"clr_type": ["21"]}, {"insutype": "320"}, {"setl_optins": {"a": 1}}, {"fixmedins_setl_cnt": 1e308},
                  {"fixmedins_setl_cnt": 2**70}, {"fixmedins_setl_cnt": "many"}):
        refused = hub.call("3201", {"data": {**span, "medfee_sumamt": "0", "fund_pay_sumamt": "0", **wrong}})
        field = next(iter(wrong))
        assert refused.reason is Why.INVALID_FIELD and field in refused.body["err_msg"], refused.body
