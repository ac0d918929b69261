"""Value objects of a settlement: the claim, the insured person, the year's accumulators, the result."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from enum import Enum

from hub.reference.policy import FilingStatus, HospitalKind, InsuranceType, Level, SpecialPopulation


class VisitType(str, Enum):
    INPATIENT = "INPATIENT"  # med_type 21
    GENERAL_OUTPATIENT = "GENERAL_OUTPATIENT"  # med_type 11
    CHRONIC_OUTPATIENT = "CHRONIC_OUTPATIENT"  # med_type 14
    EMERGENCY = "EMERGENCY"  # med_type 13

    @property
    def is_stay(self) -> bool:
        """Settled under the inpatient rules (deductible by level, basic annual cap). An emergency
        visit (med_type 13, 急诊) is an outpatient visit: general outpatient rules, no admission."""
        return self is VisitType.INPATIENT

    @property
    def is_general_outpatient(self) -> bool:
        return self in (VisitType.GENERAL_OUTPATIENT, VisitType.EMERGENCY)


class FilingType(str, Enum):
    RETIREE_RESETTLED = "RETIREE_RESETTLED"  # 异地安置退休
    LONG_TERM_RESIDENT = "LONG_TERM_RESIDENT"  # 异地长期居住
    POSTED_WORKER = "POSTED_WORKER"  # 常驻异地工作
    REFERRAL = "REFERRAL"  # 转诊转院
    TEMPORARY_TRIP = "TEMPORARY_TRIP"  # 其他临时外出就医
    EMERGENCY = "EMERGENCY"  # 急诊抢救

    @property
    def long_term(self) -> bool:
        return self in (FilingType.RETIREE_RESETTLED, FilingType.LONG_TERM_RESIDENT, FilingType.POSTED_WORKER)

    @property
    def status(self) -> FilingStatus:
        if self.long_term:
            return FilingStatus.REGISTERED
        return {
            FilingType.REFERRAL: FilingStatus.REFERRAL,
            FilingType.TEMPORARY_TRIP: FilingStatus.TEMPORARY,
            FilingType.EMERGENCY: FilingStatus.EMERGENCY,
        }[self]


@dataclass(frozen=True)
class Filing:
    filing_id: str
    filing_type: FilingType
    target_pool: str
    valid_from: date
    valid_to: date | None = None
    revoked: bool = False


@dataclass(frozen=True)
class Person:
    person_ref: str
    home_pool: str
    insurance_type: InsuranceType
    enrolled_from: date
    benefits_from: date
    enrolled_to: date | None = None
    special_populations: frozenset[SpecialPopulation] = frozenset()
    filings: tuple[Filing, ...] = ()
    continuous_years: int = 0


@dataclass(frozen=True)
class FeeLine:
    line_no: int
    item_code: str
    quantity: Decimal
    unit_price_fen: int
    amount_fen: int


@dataclass(frozen=True)
class Claim:
    visit_type: VisitType
    hospital_level: Level
    treatment_pool: str
    admission_date: date
    discharge_date: date
    lines: tuple[FeeLine, ...]
    accident_injury: bool = False
    diagnoses: tuple[str, ...] = ()  # the visit's diagnosis codes (ICD-10), as the hospital sent them
    hospital_kind: HospitalKind = HospitalKind.GENERAL
    # A manual claim (零星报销) priced at the home bureau after the patient paid in full, not a
    # bill at the treatment hospital's counter (READINGS.md 37).
    manual: bool = False
    # A stay admitted from the emergency room (急诊转住院, med_type 24): emergency care, which
    # counts as filed (READINGS.md 7).
    emergency_admission: bool = False

    @property
    def service_date(self) -> date:
        """The day that picks the policy version and the accumulator year: discharge (or visit) day."""
        return self.discharge_date


@dataclass(frozen=True)
class Accumulators:
    """What the funds already paid for this person in the policy year (all fen)."""

    year: int
    inpatient_fund_paid: int = 0
    admissions: int = 0
    general_outpatient_fund_paid: int = 0
    general_outpatient_deductible_met: int = 0
    chronic_fund_paid: int = 0
    chronic_deductible_met: int = 0
    accident_fund_paid: int = 0
    serious_compliant_oop: int = 0
    serious_paid: int = 0
    assistance_paid: int = 0
    accident_outpatient_fund_paid: int = 0
    accident_outpatient_deductible_met: int = 0

    def plus(self, delta: "Accumulators", sign: int = 1) -> "Accumulators":
        """These accumulators after a settlement's delta (sign -1: after its reversal)."""
        return Accumulators(self.year, *(getattr(self, f) + sign * getattr(delta, f) for f in ACCUMULATOR_FIELDS))


ACCUMULATOR_FIELDS = tuple(f for f in Accumulators.__dataclass_fields__ if f != "year")


@dataclass(frozen=True)
class LineResult:
    line_no: int
    item_code: str
    chrgitm_lv: str  # 01 甲, 02 乙, 03 丙 / not in catalogue
    amount_fen: int
    fulamt_ownpay_amt: int
    overlmt_amt: int
    hospital_absorbed_amt: int
    preselfpay_amt: int
    inscp_scp_amt: int
    essential_drug: bool


@dataclass(frozen=True)
class Settlement:
    """Every figure of the computation, in fen, in the order DESIGN.md section 4 computes them."""

    policy_version: str
    catalogue_version: str
    filing_status: FilingStatus | None  # None: treated in the home pool itself
    filing_id: str | None
    lines: tuple[LineResult, ...]
    medfee_sumamt: int
    fulamt_ownpay_amt: int
    overlmt_amt: int
    hospital_absorbed_amt: int
    preselfpay_amt: int
    inscp_scp_amt: int
    offsite_selfpay_first_amt: int
    deductible_due: int
    act_pay_dedc: int
    pool_ratio_bp: int
    essential_drug_ratio_bp: int
    fund_before_cap: int
    basic_cap_remaining: int | None
    hifp_pay: int
    compliant_oop: int
    compliant_oop_above_basic_cap: int
    hifmi_pay: int
    maf_pay: int
    fund_pay_sumamt: int
    psn_part_amt: int
    accumulators_delta: Accumulators = field(repr=False)

    @property
    def psn_cash_pay(self) -> int:
        # The hub holds no personal accounts (个人账户): the patient's whole share is paid in cash.
        return self.psn_part_amt
