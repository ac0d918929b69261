"""A settlement event as clearing counts it: one typed record, read once at the service's edge
from `SettlementCompleted` / `SettlementReversed` (their `hifp_pay_fen`, `hifmi_pay_fen`,
`maf_pay_fen` are the fund, serious-illness and medical-assistance shares here)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime


@dataclass(frozen=True)
class ClearingEvent:
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
    event_time: datetime  # settled_at or reversed_at
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
