"""Clearing's edge: settlement events as its codec reads them (no Avro logical types) become
typed records and applied rows; a date or time no calendar holds is refused, not a crash."""

from __future__ import annotations

from datetime import date, datetime, timezone

import pytest

from hub.clearing.adapters.database import APPLIED_COLUMNS
from hub.clearing.adapters.wire import clearing_event
from hub.clearing.domain.events import EventRefused, Place
from hub.clearing.service_layer.applying import applied_row, marks
from hub.messaging import AvroCodec, Message
from tests.fixtures.avro.samples import SAMPLES

CODEC = AvroCodec()
PLAIN = AvroCodec(CODEC.registry, logical_types=False)


def message(record: dict, name: str = "SettlementCompleted", offset: int = 7) -> Message:
    decoded = PLAIN.decode(CODEC.encode(name, record))
    return Message("settlement.events", 2, offset, None, decoded.record_name, decoded.writer_version,
                   decoded.value, 0, ())


def test_an_event_read_without_logical_types_gives_the_dates_and_the_row_in_column_order():
    sample = SAMPLES["cn.hub.settlement.SettlementCompleted"]
    e = clearing_event(message(sample))
    assert e.business_date == sample["business_date"] and isinstance(e.business_date, date)
    assert (e.begntime, e.endtime) == (sample["begntime"], sample["endtime"])
    assert e.event_id == str(sample["event_id"])
    assert e.event_time_ms == int(sample["settled_at"].timestamp() * 1000)
    row = dict(zip(APPLIED_COLUMNS, applied_row(e, date(2026, 3, 15), True), strict=True))
    assert row["kind"] == "SETTLED" and row["clearing_date"] == date(2026, 3, 15) and row["late"] is True
    assert row["business_date"] == sample["business_date"] and row["hifp_pay_fen"] == sample["hifp_pay_fen"]
    assert row["source"] == "settlement.events:2:7" and row["person_ref"] == sample["person_ref"]


@pytest.mark.parametrize("field, value", [("business_date", 10**9), ("begntime", -10**7),
                                          ("settled_at", 10**18)])
def test_a_date_or_time_no_calendar_holds_is_refused(field, value):
    record = dict(SAMPLES["cn.hub.settlement.SettlementCompleted"])
    decoded = PLAIN.decode(CODEC.encode("SettlementCompleted", record))
    decoded.value[field] = value  # as a producer's wire value would carry it
    with pytest.raises(EventRefused, match="out_of_range"):
        clearing_event(Message("t", 0, 0, None, decoded.record_name, decoded.writer_version, decoded.value, 0, ()))


def test_a_partitions_mark_is_its_next_offset_and_newest_time():
    found = marks([Place("t", 0, 5, 2_000), Place("t", 0, 3, 9_000), Place("t", 1, 1, 1_000)])
    assert sorted(found) == [("t", 0, 6, datetime.fromtimestamp(9, timezone.utc)),
                             ("t", 1, 2, datetime.fromtimestamp(1, timezone.utc))]
