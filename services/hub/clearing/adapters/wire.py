"""Clearing's edge: what the settlement service publishes, as the service's `events` codec decodes
it (no Avro logical types: dates and times are the wire's numbers), translated into the typed
records the use cases apply (service_layer/applying.py), by the consumer and by an operator's
re-applying a quarantined event. Every amount must lie from 0 to the
kernel's bound (10 billion yuan), so that a day's totals cannot overflow whatever a producer got
wrong; a date no calendar holds, an unknown insurance type or a manual claim whose shares do not
add up to its bill raises EventRefused (the consumer quarantines the event)."""

from __future__ import annotations

from datetime import date
from typing import Any

from hub.clearing.adapters.repository import Quarantined
from hub.clearing.domain.events import (EARLIEST_MS, LATEST_MS, ClearingEvent, EventRefused, HospitalMonth,
                                        ManualClaim, Place, Record, day_of)
from hub.clearing.domain.funds import INSUTYPE_CODES
from hub.messaging import AvroCodec, Message
from hub.money import MAX_AMOUNT_FEN

AMOUNT_FIELDS = ("medfee_sumamt_fen", "hifp_pay_fen", "hifmi_pay_fen", "maf_pay_fen")
MANUAL_CLAIM = "ManualClaimSettled"
MANUAL_CLAIM_AMOUNTS = (*AMOUNT_FIELDS, "psn_part_amt_fen")
HOSPITAL_MONTH = "HospitalMonthChanged"


def record(message: Message) -> Record:
    if message.record_name.endswith(MANUAL_CLAIM):
        return manual_claim(message)
    if message.record_name.endswith(HOSPITAL_MONTH):
        return hospital_month(message)
    return clearing_event(message)


def clearing_event(message: Message) -> ClearingEvent:
    """A SettlementCompleted or SettlementReversed as the typed record clearing counts."""
    v = message.value
    _check_amounts(v, AMOUNT_FIELDS)
    reversal = message.record_name.endswith("SettlementReversed")
    return ClearingEvent(
        str(v["event_id"]), reversal, v["settlement_id"], v.get("reversal_id"), _day(v, "business_date"),
        v["home_pool"], v["treatment_pool"], v["hospital_code"], v["person_id_masked"],
        v["medfee_sumamt_fen"], v["hifp_pay_fen"], v["hifmi_pay_fen"], v["maf_pay_fen"],
        _instant_ms(v, "reversed_at" if reversal else "settled_at"), message.topic, message.partition, message.offset,
        _insurance_type(v.get("insurance_type")), v.get("person_ref") or "", v.get("visit_type") or "",
        _day(v, "begntime"), _day(v, "endtime"))


def hospital_month(message: Message) -> HospitalMonth:
    """A HospitalMonthChanged as its rows: line confirmations and applications. A month that is not
    yyyyMM is refused."""
    v = message.value
    text = v["month"]
    if not (len(text) == 6 and text.isdigit() and 1 <= int(text[4:]) <= 12):
        raise EventRefused(f"month_invalid: {text!r} is not yyyyMM")
    month = f"{text[:4]}-{text[4:]}"
    stamp = {"event_time": v["event_time"], "event_id": str(v["event_id"])}
    lines = [{"hospital_code": v["hospital_code"], "setl_sn": l["setl_sn"], "month": month,
              "settlement_id": l["settlement_id"], "kind": "SETTLED" if l["kind"] == "COMPLETED" else l["kind"],
              "home_pool": l["home_pool"], "treatment_pool": v["treatment_pool"], "cnfm_flag": l["cnfm_flag"],
              "medfee_sumamt_fen": l["medfee_sumamt_fen"], "fund_pay_sumamt_fen": l["fund_pay_sumamt_fen"], **stamp}
             for l in v.get("lines") or []]
    a = v.get("application")
    applications = [] if a is None else [{
        "clr_appy_evt_id": a["clr_appy_evt_id"], "hospital_code": v["hospital_code"], "treatment_pool": v["treatment_pool"],
        "month": month, "clr_type": a["clr_type"],
        "status": "CANCELLED" if v["action"] == "CLEARING_CANCELLED" else "APPLIED", "psntime": a["psntime"],
        "medfee_sumamt_fen": a["medfee_sumamt_fen"], "fund_appy_sum_fen": a["fund_appy_sum_fen"], **stamp}]
    return HospitalMonth(lines, applications, _place(message, v["event_time"]))


def manual_claim(message: Message) -> ManualClaim:
    """A ManualClaimSettled as its row in `manual_claims` (its clearing day set when applied)."""
    v = message.value
    _check_amounts(v, MANUAL_CLAIM_AMOUNTS)
    if v["hifp_pay_fen"] + v["hifmi_pay_fen"] + v["maf_pay_fen"] + v["psn_part_amt_fen"] != v["medfee_sumamt_fen"]:
        raise EventRefused(f"unbalanced: manual claim {v['claim_no']}'s shares do not add up to its bill")
    if v["insurance_type"] not in INSUTYPE_CODES:
        raise EventRefused(f"insurance_type_unknown: {v['insurance_type']!r} is not RESIDENT or EMPLOYEE")
    row = {"event_id": str(v["event_id"]), "claim_no": v["claim_no"], "business_date": _day(v, "business_date"),
           "home_pool": v["home_pool"], "treatment_pool": v["treatment_pool"], "hospital_code": v["hospital_code"],
           "lodged_by": v["lodged_by"], "reason": v["reason"], "person_id_masked": v["person_id_masked"],
           "insurance_type": v["insurance_type"], "visit_type": v["visit_type"], "begntime": _day(v, "begntime"),
           "endtime": _day(v, "endtime"), **{name: v[name] for name in MANUAL_CLAIM_AMOUNTS},
           "source": f"{message.topic}:{message.partition}:{message.offset}"}
    return ManualClaim(row, _place(message, v["settled_at"]))


def quarantined(message: Message, exc: Exception, at) -> Quarantined:
    """A message that kept failing, as the row an operator resolves (its bytes kept as read)."""
    v = message.value if isinstance(message.value, dict) else {}
    try:
        business_date = _day(v, "business_date") if isinstance(v.get("business_date"), int) else None
    except EventRefused:  # a date no calendar holds: blocks every day, as unknown
        business_date = None
    return Quarantined(
        source=f"{message.topic}:{message.partition}:{message.offset}",
        event_id=str(v["event_id"]) if v.get("event_id") is not None else None, record_name=message.record_name,
        business_date=business_date, home_pool=v.get("home_pool"), treatment_pool=v.get("treatment_pool"),
        reason=f"{type(exc).__name__}: {exc}"[:2000], payload=message.raw, quarantined_at=at)


def decoder(events: AvroCodec):
    """Decode a quarantined event's bytes again, as the consumer read them, into its records."""
    def decode(row: Quarantined) -> list[Record]:
        topic, partition, offset = row.source.rsplit(":", 2)
        decoded = events.decode(row.payload)
        return [record(Message(topic, int(partition), int(offset), None, decoded.record_name, decoded.writer_version,
                               decoded.value, 0, (), row.payload))]
    return decode


def _place(message: Message, event_time_ms: int) -> Place:
    return Place(message.topic, message.partition, message.offset, event_time_ms)


def _check_amounts(v: dict[str, Any], names) -> None:
    for name in names:
        value = v.get(name)
        if not isinstance(value, int) or not 0 <= value <= MAX_AMOUNT_FEN:
            raise EventRefused(f"amount_out_of_bounds: {name} = {value!r} is not within 0..{MAX_AMOUNT_FEN} fen")


def _day(v: dict[str, Any], name: str) -> date | None:
    """A date as the wire carries it (days since 1970); one no calendar holds is refused."""
    try:
        return day_of(v.get(name))
    except (ValueError, OverflowError):
        raise EventRefused(f"date_out_of_range: {name} = {v.get(name)!r} days since 1970-01-01") from None


def _instant_ms(v: dict[str, Any], name: str) -> int:
    """A timestamp as the wire carries it (ms since 1970), checked to be one a datetime holds (a
    range check: no datetime is made per event)."""
    ms = v[name]
    if not EARLIEST_MS <= ms <= LATEST_MS:
        raise EventRefused(f"time_out_of_range: {name} = {ms!r} ms since 1970-01-01")
    return ms


def _insurance_type(value: Any) -> str | None:
    if value is None or value in INSUTYPE_CODES:
        return value
    raise EventRefused(f"insurance_type_unknown: {value!r} is not RESIDENT or EMPLOYEE")
