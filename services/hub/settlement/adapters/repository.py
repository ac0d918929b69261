"""The settle-at-treatment service's repository: the interface every SQL statement is behind (the
statements themselves are in postgres.py) and the plain records it reads and writes.

A group of requests is one transaction (`Repository.transaction`) with three steps, each one
round trip however many requests the group holds:

1. `load`: claim the msgids, lock the visits (with their fee lines) and settlements the
   requests name;
2. `accumulators`: lock (or, for a pre-settlement, just read) the person-years they touch;
3. `write`: every change the group decided, one multi-row statement per table, with the
   commit.

The service layer decides everything in memory between steps 2 and 3 (`service_layer/batch.py`),
so the rows here are plain records, and a fake (tests/unit/settlement/fakes.py)
implements the same interface over dictionaries.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Sequence


from hub.settlement.domain.model import Accumulators

Key = tuple[str, str]  # (hospital_code, msgid)
PersonYear = tuple[str, int]  # (person_ref, policy_year)
UNANSWERED, ANSWERED = 0, 1  # requests.status_code
UNDONE_BEFORE_ARRIVAL = "undone-before-arrival"  # request_sha256 of a msgid undone (2601) before it arrived


@dataclass
class FeeRow:
    mdtrt_id: str
    feedetl_sn: str
    med_list_codg: str
    cnt: Decimal
    pric_fen: int
    amount_fen: int


@dataclass(frozen=True)
class StoredFile:
    file_qury_no: str
    hospital_code: str
    filename: str
    content: bytes
    created_at: datetime


@dataclass
class Visit:
    mdtrt_id: str
    hospital_code: str
    person_ref: str
    person_id_masked: str
    med_type: str
    insutype: str
    begntime: date
    status: str  # OPEN, CANCELLED, SETTLED
    endtime: date | None = None
    accident_injury: bool = False
    diagnoses: str = ""  # diagnosis codes, space-separated
    fees: dict[str, FeeRow] = field(default_factory=dict)  # by feedetl_sn


@dataclass
class StoredSettlement:
    setl_id: str
    mdtrt_id: str
    msgid: str
    hospital_code: str
    person_ref: str
    person_id_masked: str
    home_pool: str
    treatment_pool: str
    policy_year: int
    business_date: date
    settled_at: datetime
    medfee_sumamt_fen: int
    hifp_pay_fen: int
    hifmi_pay_fen: int
    maf_pay_fen: int
    psn_part_amt_fen: int
    accumulators_delta: dict[str, int]
    output: dict[str, Any]
    status: str = "SETTLED"  # or REVERSED
    reversed_at: datetime | None = None
    reversal_msgid: str | None = None
    reversal_id: str | None = None  # the reversal's own setl_id (None for one stored before it was kept)


@dataclass
class StoredClaim:
    """A manual claim (零星报销) as kept: see database.manual_claims."""

    home_pool: str
    claim_no: str
    lodged_by: str
    request_sha256: str
    status: str  # LODGED, SETTLED, REJECTED
    person_ref: str
    person_id_masked: str
    treatment_pool: str
    hospital_code: str
    reason: str
    claim: dict[str, Any]
    result: dict[str, Any]
    policy_year: int | None
    accumulators_delta: dict[str, int]
    medfee_sumamt_fen: int
    hifp_pay_fen: int
    hifmi_pay_fen: int
    maf_pay_fen: int
    psn_part_amt_fen: int
    lodged_at: datetime
    decided_at: datetime | None = None
    decided_by: str = ""
    note: str = ""


@dataclass(frozen=True)
class NewClaim:
    """A msgid to claim: the first request with it decides, later ones get its answer."""

    hospital_code: str
    msgid: str
    infno: str
    request_sha256: str


@dataclass(frozen=True)
class StoredAnswer:
    request_sha256: str
    status_code: int  # UNANSWERED or ANSWERED
    response: dict[str, Any]
    infno: str = ""


@dataclass
class Loaded:
    claimed: set[Key]
    visits: dict[str, Visit]
    settlements: dict[str, StoredSettlement]
    originals: dict[Key, StoredAnswer] = field(default_factory=dict)  # requests a 2601 undoes


@dataclass(frozen=True)
class StandingSettlement:
    setl_id: str
    medfee_sumamt_fen: int
    fund_pay_sumamt_fen: int
    # As the settlement was answered (setlinfo): what a HIS groups its reconciliation by (3201).
    insutype: str = ""
    clr_type: str = ""
    clr_optins: str = ""


@dataclass(frozen=True)
class MonthLine:
    """One line of a hospital's month (清分明细): a settlement whose business date is in the month,
    or the reversal of one (amounts negated) whose reversal day is."""

    setl_sn: str  # the settlement's setl_id, or the reversal's own id
    settlement_id: str
    kind: str  # COMPLETED or REVERSED
    mdtrt_id: str
    home_pool: str
    at: datetime  # settled or reversed at
    medfee_sumamt_fen: int
    fund_pay_sumamt_fen: int
    sealed: str  # the person's sealed details (base64) the settlement's answer carried; "" if none
    person_id_masked: str
    insutype: str
    clr_type: str


@dataclass(frozen=True)
class Confirmation:
    hospital_code: str
    setl_sn: str
    month: str
    cnfm_flag: str  # 1 confirmed, 0 not agreed
    msgid: str
    updated_at: datetime


@dataclass(frozen=True)
class Application:
    clr_appy_evt_id: str
    hospital_code: str
    month: str
    clr_type: str
    status: str  # APPLIED, CANCELLED
    psntime: int
    medfee_sumamt_fen: int
    fund_appy_sum_fen: int
    msgid: str
    applied_at: datetime
    cancelled_at: datetime | None = None


@dataclass
class MonthState:
    """A hospital's month as its transaction holds it (locked): confirmations by setl_sn, applications."""

    confirmations: dict[str, Confirmation] = field(default_factory=dict)
    applications: dict[str, Application] = field(default_factory=dict)


@dataclass
class Changes:
    """What a group decided, as final states (the order of the requests is already applied)."""

    new_visits: list[Visit] = field(default_factory=list)
    changed_visits: list[Visit] = field(default_factory=list)  # status, endtime, med_type, diagnoses
    upserted_fees: list[FeeRow] = field(default_factory=list)
    deleted_fees: list[tuple[str, str]] = field(default_factory=list)  # (mdtrt_id, feedetl_sn)
    new_settlements: list[StoredSettlement] = field(default_factory=list)
    reversed_settlements: list[StoredSettlement] = field(default_factory=list)
    accumulators: list[tuple[str, Accumulators]] = field(default_factory=list)  # (person_ref, values)
    outbox: list[tuple[str, bytes]] = field(default_factory=list)  # (message key, Avro payload), in order
    answers: list[tuple[Key, dict[str, Any]]] = field(default_factory=list)
    forgotten: list[Key] = field(default_factory=list)  # claims released unanswered (hub not ready)
    tombstones: list[tuple[Key, str, dict[str, Any]]] = field(default_factory=list)  # (key, infno, answer)


class Transaction(ABC):
    @abstractmethod
    def load(self, claims: Sequence[NewClaim], visit_ids: Sequence[str], setl_ids: Sequence[str]) -> Loaded:
        """Claim the msgids not claimed before; lock and return the visits named (and those of
        the settlements named) with their fee lines, and the settlements named."""

    @abstractmethod
    def requests(self, keys: Sequence[Key]) -> dict[Key, StoredAnswer]:
        """The remembered requests named (for 2601, undoing one), locked to the end of the transaction."""

    @abstractmethod
    def accumulators(self, lock: Sequence[PersonYear], read: Sequence[PersonYear]) -> dict[PersonYear, Accumulators]:
        """The person-years in `lock` created if need be and locked to the end of the
        transaction; those only in `read` as they stand (zero if absent), nothing written."""

    @abstractmethod
    def write(self, changes: Changes) -> None:
        """Queue every change; they are committed when the transaction ends without error."""

    @abstractmethod
    def manual_claim(self, home_pool: str, claim_no: str, new: StoredClaim | None = None
                     ) -> tuple[StoredClaim | None, bool]:
        """The manual claim, locked to the end of the transaction, and whether it is `new`, just
        inserted (given `new` and none was kept before). None: there is none and `new` is None."""

    @abstractmethod
    def update_manual_claim(self, claim: StoredClaim) -> None:
        """Queue the claim's new state (status, result, amounts, decision)."""

    @abstractmethod
    def month_state(self, hospital_code: str, month: str) -> MonthState:
        """The hospital's month (confirmations, clearing applications), locked to the end of the
        transaction: one change of a hospital's month at a time."""

    @abstractmethod
    def write_month(self, confirmations: Sequence[Confirmation], removed: Sequence[tuple[str, str]],
                    applications: Sequence[Application]) -> None:
        """Queue the month's changed confirmations (upserted), rolled-back ones (hospital, setl_sn),
        and new or changed applications."""


class Repository(ABC):
    @abstractmethod
    def transaction(self) -> contextlib.AbstractContextManager[Transaction]:
        """One group's transaction: committed on a clean exit, rolled back on an exception."""

    @abstractmethod
    def answers(self, keys: Sequence[Key]) -> dict[Key, StoredAnswer]:
        """The remembered requests (for a replay); keys never claimed are left out."""

    @abstractmethod
    def standing_settlements(self, hospital_code: str, begin: date, end: date) -> list[StandingSettlement]:
        """The hospital's settlements standing (settled, not reversed) with a business date in [begin, end]."""

    @abstractmethod
    def settlement(self, setl_id: str) -> StoredSettlement | None:
        """One settlement as stored (nothing locked)."""

    @abstractmethod
    def put_file(self, file: StoredFile) -> None:
        """Keep a file (9101's upload, a 3202 result)."""

    @abstractmethod
    def file(self, file_qury_no: str) -> StoredFile | None:
        """A kept file by its query number."""

    @abstractmethod
    def visit(self, mdtrt_id: str) -> Visit | None:
        """A visit with its fee lines, as committed (no lock)."""

    @abstractmethod
    def year_accumulators(self, person_ref: str, year: int) -> Accumulators:
        """What the funds paid for the person in the policy year so far (zero if nothing)."""

    @abstractmethod
    def manual_claims(self, home_pool: str | None = None, lodged_by: str | None = None,
                      status: str | None = None, limit: int = 1000, claim_no: str | None = None) -> list[StoredClaim]:
        """Manual claims, newest first: of a home pool, or lodged by someone, or both (or the one
        with `claim_no`)."""

    @abstractmethod
    def month_lines(self, hospital_code: str, first: date, last: date) -> list[MonthLine]:
        """The hospital's 清分 lines with a business date in [first, last] (Shanghai days), in order
        of time: its settlements settled then, and the reversals made then."""

    @abstractmethod
    def month_view(self, hospital_code: str, month: str) -> MonthState:
        """The hospital's month as committed (nothing locked)."""

    @abstractmethod
    def application(self, clr_appy_evt_id: str) -> Application | None:
        """A monthly clearing application by its id, as committed."""

    @abstractmethod
    def open_stays(self, hospital_code: str, person_ref: str) -> list[Visit]:
        """The person's stays open at the hospital (no fee lines), oldest first."""
