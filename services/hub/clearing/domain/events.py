"""A settlement event as clearing counts it: one typed record, read once at the service's edge
from `SettlementCompleted` / `SettlementReversed` (their `hifp_pay_fen`, `hifmi_pay_fen`,
`maf_pay_fen` are the fund, serious-illness and medical-assistance shares here).

Clearing reads its events as the wire carries them (days and milliseconds as numbers: building
dates and datetimes for every event was a third of the Avro decoding), so the edge turns the
few it needs into dates here, each distinct day once."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from functools import lru_cache
from dataclasses import dataclass
from typing import Any, NamedTuple, Union

_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MS = timedelta(milliseconds=1)
# The milliseconds a datetime can hold (years 1..9999), as an Avro timestamp-millis counts them.
EARLIEST_MS = (datetime.min.replace(tzinfo=timezone.utc) - _EPOCH) // _MS
LATEST_MS = (datetime.max.replace(tzinfo=timezone.utc) - _EPOCH) // _MS


@lru_cache(maxsize=4096)
def day_of(days: int | None) -> date | None:
    """An Avro `date` read without logical types (days since 1970-01-01) as a date (ValueError or
    OverflowError for one no calendar holds)."""
    return None if days is None else date.fromordinal(_EPOCH_ORDINAL + days)


def instant_of(ms: int) -> datetime:
    """An Avro `timestamp-millis` read without logical types, within EARLIEST_MS..LATEST_MS, as
    an aware UTC datetime."""
    return _EPOCH + ms * _MS


class ClearingEvent(NamedTuple):
    event_id: str
    reversal: bool  # a SettlementReversed: it takes its settlement's amounts back
    settlement_id: str
    reversal_id: str | None
    business_date: date
    home_pool: str  # owes the money
    treatment_pool: str  # is owed it
    hospital_code: str
    person_id_masked: str
    medfee_sumamt_fen: int
    hifp_pay_fen: int
    hifmi_pay_fen: int
    maf_pay_fen: int
    event_time_ms: int  # settled_at or reversed_at, milliseconds since the epoch
    topic: str
    partition: int
    offset: int
    insurance_type: str | None = None  # RESIDENT, EMPLOYEE; None in a reversal written before v2
    person_ref: str = ""
    visit_type: str = ""  # INPATIENT ... ("" for a reversal)
    begntime: date | None = None
    endtime: date | None = None

    @property
    def kind(self) -> str:
        return "REVERSED" if self.reversal else "SETTLED"

    @property
    def sign(self) -> int:
        return -1 if self.reversal else 1

    @property
    def source(self) -> str:
        return f"{self.topic}:{self.partition}:{self.offset}"


class EventRefused(ValueError):
    """An event clearing will not count (a fault of the data: the consumer quarantines it)."""


@dataclass(frozen=True)
class Place:
    """Where a record was read (a partition's mark moves past it) and the event's time, in ms."""
    topic: str
    partition: int
    offset: int
    event_time_ms: int


@dataclass(frozen=True)
class ManualClaim:
    row: dict[str, Any]  # its row in manual_claims, but for its clearing day
    place: Place


@dataclass(frozen=True)
class HospitalMonth:
    lines: list[dict[str, Any]]  # hospital_month_lines rows
    applications: list[dict[str, Any]]  # hospital_applications rows
    place: Place


Record = Union[ClearingEvent, ManualClaim, HospitalMonth]
