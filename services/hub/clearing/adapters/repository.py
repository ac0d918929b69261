"""The clearing service's repository: every statement on its tables behind one unit of work (a
transaction: committed on a clean exit, rolled back on an exception). The use cases
(service_layer) decide; this only stores and reads. `PostgresClearingRepository`
(adapters/postgres.py) is the one the service runs on; an in-memory fake with the same rows
serves the use cases' unit tests (tests/unit/clearing/fakes.py).

Rows come back as the small frozen records below, never as a driver's row objects.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Sequence

from hub.clearing.adapters.files import LineRow
from hub.clearing.domain.anomalies import Bill
from hub.clearing.domain.netting import Obligation

MAX_FLAG_IDS = 100  # settlements a flag names at most


@dataclass(frozen=True)
class Day:
    clearing_date: date
    status: str  # OPEN, CLOSED
    cycle_id: str | None = None
    closed_at: datetime | None = None
    gross_fen: int | None = None
    net_abs_fen: int | None = None
    efficiency: str | None = None  # "numerator/denominator"


@dataclass(frozen=True)
class Statement:
    """A pool's statement of a closed day."""
    clearing_date: date
    pool_code: str
    cycle_id: str
    receivable_fen: int
    payable_fen: int
    net_position_fen: int
    settlement_count: int
    manifest_sha256: str
    confirmed_at: datetime | None = None
    confirmed_by: str | None = None


@dataclass(frozen=True)
class FundStatement:
    clearing_date: date
    pool_code: str
    insutype: str
    fund_pay_type: str
    receivable_fen: int
    payable_fen: int
    net_fen: int


@dataclass(frozen=True)
class Advance:
    pool_code: str
    balance_fen: int
    required_fen: int
    warning: bool
    updated_at: datetime


@dataclass(frozen=True)
class LedgerRow:
    pool_code: str
    reference: str  # close:<day> for a day's net; the centre's for a deposit
    clearing_date: date
    kind: str  # DRAW, CREDIT, DEPOSIT
    amount_fen: int
    balance_fen: int
    required_fen: int
    warning: bool
    recorded_at: datetime
    recorded_by: str
    note: str = ""
    entry_id: int = 0  # given by the store


@dataclass(frozen=True)
class Mark:
    """How far clearing has read a partition: the next offset and the newest event time seen."""
    topic: str
    partition: int
    next_offset: int
    max_event_time: datetime


@dataclass(frozen=True)
class Quarantined:
    source: str  # topic:partition:offset
    event_id: str | None
    record_name: str
    business_date: date | None
    home_pool: str | None
    treatment_pool: str | None
    reason: str
    payload: bytes
    quarantined_at: datetime
    resolved_at: datetime | None = None
    resolution: str | None = None  # APPLIED, DISCARDED
    resolved_by: str | None = None
    note: str | None = None


@dataclass(frozen=True)
class LateEvent:
    settlement_id: str
    kind: str
    business_date: date
    home_pool: str
    treatment_pool: str
    fund_fen: int


@dataclass(frozen=True)
class MonthlyStatement:
    month: str  # yyyy-mm
    bureau_pool: str
    status: str  # ISSUED, CLOSED
    issued_at: datetime
    issued_by: str
    advance_balance_fen: int
    advance_required_fen: int
    top_up_fen: int
    closed_at: datetime | None = None
    closed_by: str | None = None
    manifest_sha256: str | None = None


LINE_FILTERS = ("counterparty_pool", "hospital_code", "insurance_type", "state")


class Unit(ABC):
    """One transaction on the clearing database."""

    # -------------------------------------------------------------- applying events

    @abstractmethod
    def open_days(self, days: Sequence[date]) -> dict[date, str]:
        """The days named recorded OPEN unless recorded already; then the status of every day from
        the earliest named on, each held under a share lock to the end of the transaction (a close
        takes the exclusive one)."""

    @abstractmethod
    def insurance_types(self, settlement_ids: Sequence[str]) -> dict[str, str]:
        """The insurance type of each settlement named that clearing applied."""

    @abstractmethod
    def add_events(self, rows: Sequence[tuple]) -> set[str]:
        """Applied events (tuples in APPLIED_COLUMNS' order), skipping event ids already there: the
        ids that were new."""

    @abstractmethod
    def add_manual_claims(self, rows: Sequence[dict[str, Any]]) -> set[str]:
        """Manual claims, skipping event ids already there: the ids that were new."""

    @abstractmethod
    def add_bilateral(self, rows: Sequence[tuple]) -> None:
        """A batch's totals added to the running ones: (day, home, treatment, insurance type, hifp,
        hifmi, maf, count)."""

    @abstractmethod
    def advance_marks(self, marks: Sequence[tuple[str, int, int, datetime]]) -> None:
        """Partitions' marks moved forward to (topic, partition, next offset, newest event time),
        never back."""

    @abstractmethod
    def keep_newest_hospital_month(self, lines: Sequence[dict[str, Any]],
                                   applications: Sequence[dict[str, Any]]) -> None:
        """Hospitals' line confirmations and clearing applications, each written unless the one kept
        is newer (event time, then event id)."""

    # -------------------------------------------------------------- closing a day

    @abstractmethod
    def day(self, day: date, lock: bool = False) -> Day | None:
        """The day's row; with `lock`, recorded OPEN if missing and locked exclusively."""

    @abstractmethod
    def open_day_list(self) -> list[date]:
        """Every OPEN day, oldest first."""

    @abstractmethod
    def marks(self) -> dict[tuple[str, int], Mark]:
        ...

    @abstractmethod
    def obligations(self, day: date, pool: str | None = None) -> list[Obligation]:
        """The day's running totals per pool pair and insurance type (those touching `pool`)."""

    @abstractmethod
    def lines(self, day: date, pool: str) -> list[LineRow]:
        """The day's events touching the pool, in no order."""

    @abstractmethod
    def record_day_statement(self, statement: Statement, funds: Sequence[FundStatement]) -> None:
        ...

    @abstractmethod
    def mark_closed(self, day: date, cycle_id: str, closed_at: datetime, gross_fen: int, net_abs_fen: int,
                    efficiency: str) -> None:
        ...

    @abstractmethod
    def add_outbox(self, topic: str, key: str, payload: bytes) -> None:
        """An event to publish once this transaction commits (the outbox relay sends it)."""

    # -------------------------------------------------------------- anomaly flags' evidence
    # A standing bill: a settlement (not reversed) with a person reference and days, treated
    # outside its home pool.

    @abstractmethod
    def person_bill_counts(self, day: date, since: date) -> dict[str, int]:
        """For each person with a standing bill cleared on `day`: their standing bills cleared in
        [since, day], for those with two or more."""

    @abstractmethod
    def bills_of(self, persons: Sequence[str], since: date, day: date) -> list[Bill]:
        """The persons' standing bills cleared in [since, day]."""

    @abstractmethod
    def first_bills(self, day: date, person: str, limit: int) -> list[tuple[str, str]]:
        """(home pool, settlement id) of the person's standing bills cleared on `day`, by id."""

    @abstractmethod
    def bills_under(self, day: date, thresholds_fen: Sequence[int], under_pct: int) -> list[Bill]:
        """The day's standing bills under a threshold by less than `under_pct` per cent of it."""

    @abstractmethod
    def hospital_totals(self, first: date, last: date) -> dict[str, dict[str, tuple[int, int]]]:
        """home pool -> hospital -> (count, total fen) of standing bills cleared in [first, last]."""

    @abstractmethod
    def hospital_bill_ids(self, day: date, home: str, hospital: str, limit: int) -> list[str]:
        ...

    @abstractmethod
    def record_flags(self, rows: Sequence[dict[str, Any]]) -> None:
        """A closed day's flags: {clearing_date, home_pool, n, kind, subject, detail, settlement_ids}."""

    @abstractmethod
    def flags(self, day: date, pool: str) -> list[dict[str, Any]]:
        """The pool's flags of the day in order: {kind, subject, detail, settlement_ids (a list)}."""

    @abstractmethod
    def latest_flag_day(self, pool: str) -> date | None:
        ...

    # -------------------------------------------------------------- advances

    @abstractmethod
    def lock_advances(self, pools: Sequence[str], now: datetime) -> dict[str, Advance]:
        """Each pool's advance (a zero one recorded if it had none), locked, by pool."""

    @abstractmethod
    def payables(self, pools: Sequence[str], first: date, before: date) -> dict[str, list[int]]:
        """Each pool's payable on its statements of the days in [first, before)."""

    @abstractmethod
    def record_ledger(self, entries: Sequence[LedgerRow], now: datetime) -> list[LedgerRow]:
        """Movements of advances, each pool's balance, requirement and warning set to its entry's."""

    @abstractmethod
    def ledger_entry(self, pool: str, reference: str) -> LedgerRow | None:
        ...

    @abstractmethod
    def advance(self, pool: str) -> Advance | None:
        ...

    @abstractmethod
    def ledger(self, pool: str, limit: int) -> list[LedgerRow]:
        """The pool's latest movements, oldest first."""

    @abstractmethod
    def all_advances(self) -> list[Advance]:
        ...

    @abstractmethod
    def recent_balances(self, per_pool: int) -> dict[str, list[tuple[date, int]]]:
        """Each pool's last `per_pool` balances after a movement, oldest first."""

    # -------------------------------------------------------------- manual claims and funds

    @abstractmethod
    def manual_claims(self, first: date, last: date, pool: str | None = None) -> list[dict[str, Any]]:
        """Manual claims cleared in [first, last] (of one home pool), by day, home pool, claim
        number: the table's rows as dicts."""

    @abstractmethod
    def manual_claim_totals(self, pool: str, first: date, last: date) -> list[tuple[str, str, int, int, int]]:
        """(insurance type, yyyy-mm, hifp, hifmi, maf) the pool paid in manual claims cleared in
        [first, last]."""

    @abstractmethod
    def fund_payables(self, pool: str, first: date, last: date) -> list[tuple[str, str, int]]:
        """(fund_pay_type, yyyy-mm, payable fen) on the pool's fund statements of [first, last]."""

    @abstractmethod
    def latest_fund_day(self, pool: str) -> date | None:
        ...

    # -------------------------------------------------------------- quarantine

    @abstractmethod
    def quarantine(self, row: Quarantined) -> None:
        """Kept unless that source is kept already."""

    @abstractmethod
    def blocking(self, day: date) -> list[str]:
        """Sources of unresolved quarantined events that may belong to `day`: of it or before, or
        of no known date; a hospital's month (HospitalMonthChanged) blocks none."""

    @abstractmethod
    def quarantined(self, include_resolved: bool = False) -> list[Quarantined]:
        ...

    @abstractmethod
    def quarantined_one(self, source: str) -> Quarantined | None:
        ...

    @abstractmethod
    def resolve_quarantined(self, source: str, at: datetime, resolution: str, who: str, note: str | None) -> None:
        ...

    # -------------------------------------------------------------- a closed day's statements

    @abstractmethod
    def statements(self, day: date) -> list[Statement]:
        ...

    @abstractmethod
    def statement(self, day: date, pool: str) -> Statement | None:
        ...

    @abstractmethod
    def statements_of(self, pool: str, limit: int) -> list[Statement]:
        """The pool's statements, newest first."""

    @abstractmethod
    def unconfirmed(self) -> list[Statement]:
        ...

    @abstractmethod
    def confirm(self, day: date, pool: str, at: datetime, who: str) -> bool:
        """Confirmed (if it was not): whether this call confirmed it."""

    @abstractmethod
    def late_events(self, day: date, pool: str, limit: int) -> list[LateEvent]:
        """Events of earlier days cleared late in `day`, touching the pool."""

    # -------------------------------------------------------------- hospitals' month

    @abstractmethod
    def hospital_month_totals(self, treatment_pool: str, first: date, last: date) -> list[tuple[str, str, int, int]]:
        """(hospital, its confirmation flag or '', lines, fund fen signed) of the off-site events
        treated in the pool with a business date in [first, last]."""

    @abstractmethod
    def hospital_applications(self, treatment_pool: str, month: str) -> list[dict[str, Any]]:
        ...

    @abstractmethod
    def hospital_flags(self, settlement_ids: Sequence[str]) -> dict[tuple[str, str], str]:
        """(settlement id, kind) -> the treating hospital's confirmation flag."""

    # -------------------------------------------------------------- monthly statements

    @abstractmethod
    def lock_month_issue(self) -> None:
        """Serialise issuing (one issuer at a time)."""

    @abstractmethod
    def days_not_closed(self, first: date, last: date) -> list[date]:
        ...

    @abstractmethod
    def pools_to_state(self, month: str, first: date, last: date) -> set[str]:
        """Home pools with off-site events cleared in [first, last], or resolved disputes not
        carried on from an earlier month."""

    @abstractmethod
    def month_pools_issued(self, month: str) -> set[str]:
        ...

    @abstractmethod
    def issue_statement(self, statement: MonthlyStatement, first: date, last: date) -> None:
        """The statement, its lines (every off-site event of the pool's insured cleared in [first,
        last], PENDING) and the pool's resolved disputes of earlier months carried in."""

    @abstractmethod
    def monthly(self, month: str, pool: str, lock: bool = False) -> MonthlyStatement | None:
        ...

    @abstractmethod
    def month_totals(self, month: str, pool: str) -> dict[str, tuple[int, int]]:
        """state -> (lines, fund fen) of the statement's lines."""

    @abstractmethod
    def line_states(self, month: str, pool: str, event_ids: Sequence[str] | None, lock: bool = True) -> dict[str, str]:
        """event id -> state of the statement's lines named (all, when None), locked."""

    @abstractmethod
    def set_line_states(self, month: str, pool: str, event_ids: Sequence[str], state: str, reason: str,
                        at: datetime, who: str) -> None:
        ...

    @abstractmethod
    def close_monthly(self, month: str, pool: str, at: datetime, who: str) -> None:
        ...

    @abstractmethod
    def set_monthly_digest(self, month: str, pool: str, sha256: str) -> None:
        ...

    @abstractmethod
    def open_monthlies(self) -> list[MonthlyStatement]:
        ...

    @abstractmethod
    def month_lines(self, month: str, pool: str, filters: dict[str, str], limit: int | None = None,
                    offset: int = 0) -> list[dict[str, Any]]:
        """The statement's lines (those equal to `filters`, names in LINE_FILTERS), by clearing day,
        settlement, kind, event: the table's rows as dicts."""

    @abstractmethod
    def count_month_lines(self, month: str, pool: str, filters: dict[str, str]) -> int:
        ...

    @abstractmethod
    def month_line_values(self, month: str, pool: str, name: str) -> list[str]:
        """The distinct values of a column (counterparty_pool, hospital_code) among the lines, sorted."""


class ClearingRepository(ABC):
    @abstractmethod
    def unit(self) -> contextlib.AbstractContextManager[Unit]:
        """A transaction: committed when the block ends, rolled back if it raises."""

