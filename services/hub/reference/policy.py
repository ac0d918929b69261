"""A pool's insurance policy as data: the contract between `hub reference load` and the rules engine.

Files are YAML, one per pool, insurance type and version (`reference/policies/`). Money in
files is yuan (an integer or a decimal string with at most 2 decimals, never a float) and is
held as integer fen; ratios are percent (up to 2 decimals) and are held as basis points
(1 bp = 0.01 %). A wrong file is refused whole, with every error listed by its path.

Every choice this format makes that DESIGN.md does not settle is written in
`reference/READINGS.md`, next to the files, so a bureau can check the arithmetic by hand.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date
from decimal import Decimal, InvalidOperation
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, ValidationError, model_validator


def _yuan_to_fen(value: Any) -> int:
    if isinstance(value, bool) or isinstance(value, float):
        raise ValueError("money is an integer or a decimal string of yuan (at most 2 decimals), never a float")
    try:
        amount = Decimal(str(value))
    except InvalidOperation as exc:
        raise ValueError(f"not an amount of yuan: {value!r}") from exc
    if amount != amount.quantize(Decimal("0.01")) or amount < 0:
        raise ValueError(f"yuan amounts are non-negative with at most 2 decimals: {value!r}")
    return int(amount * 100)


def _percent_to_bp(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("a ratio is a percent number, e.g. 62.5")
    # YAML reads 62.5 as a float; its shortest repr is the decimal the author wrote.
    amount = Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value).rstrip("%"))
    if amount != amount.quantize(Decimal("0.01")) or not Decimal(0) <= amount <= Decimal(100):
        raise ValueError(f"percent between 0 and 100 with at most 2 decimals: {value!r}")
    return int(amount * 100)


def _points_to_bp(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("percentage points are a number")
    amount = Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value))
    if amount != amount.quantize(Decimal("0.01")) or not Decimal(-100) <= amount <= Decimal(100):
        raise ValueError(f"percentage points between -100 and 100: {value!r}")
    return int(amount * 100)


def _fen_to_yuan(fen: int) -> str:
    return str(Decimal(fen) / 100)


def _bp_to_percent(bp: int) -> str:
    return str(Decimal(bp) / 100)


# Held as integers (fen, basis points); written back to JSON in the file's units (yuan,
# percent), so a published document reads back to the same policy.
Fen = Annotated[int, BeforeValidator(_yuan_to_fen), PlainSerializer(_fen_to_yuan, when_used="json")]
BasisPoints = Annotated[int, BeforeValidator(_percent_to_bp), PlainSerializer(_bp_to_percent, when_used="json")]
PointsBp = Annotated[int, BeforeValidator(_points_to_bp), PlainSerializer(_bp_to_percent, when_used="json")]


class Level(str, Enum):
    """Hospital level as the policy tables key it. 3P is a provincial tertiary hospital;
    a table without 3P uses its 3 entry for it."""

    L1 = "1"
    L2 = "2"
    L3 = "3"
    L3P = "3P"


class InsuranceType(str, Enum):
    RESIDENT = "RESIDENT"  # 城乡居民 (national code 390)
    EMPLOYEE = "EMPLOYEE"  # 职工 (national code 310)


# Each insurance type's national code (险种 insutype), the one table the services read it from.
INSUTYPE_CODES: dict[str, str] = {InsuranceType.RESIDENT.value: "390", InsuranceType.EMPLOYEE.value: "310"}


class FilingStatus(str, Enum):
    REGISTERED = "REGISTERED"  # long-term filing: 异地安置退休, 异地长期居住, 常驻异地工作
    REFERRAL = "REFERRAL"  # 转诊转院
    TEMPORARY = "TEMPORARY"  # 其他临时外出就医, filed
    EMERGENCY = "EMERGENCY"  # 急诊抢救, treated as filed
    UNREGISTERED = "UNREGISTERED"  # no valid filing for this region


class HospitalKind(str, Enum):
    """What the hospitals file says a hospital is, where a rule names a kind (九江: 县级中医院)."""

    GENERAL = "GENERAL"
    TCM = "TCM"  # 中医院


def diagnosed(codes: tuple[str, ...], prefixes: list[str]) -> bool:
    """Whether any diagnosis code starts with one of the prefixes (ICD-10: "C" every malignant
    neoplasm, "N18" chronic kidney disease); dots and case are ignored ("c34.900" matches "C34")."""
    wanted = [p.replace(".", "").upper() for p in prefixes]
    return any(c.replace(".", "").upper().startswith(w) for c in codes for w in wanted)


class SpecialPopulation(str, Enum):
    POVERTY_REGISTERED = "POVERTY_REGISTERED"  # 建档立卡
    EXTREME_POVERTY = "EXTREME_POVERTY"  # 特困
    SUBSISTENCE_ALLOWANCE = "SUBSISTENCE_ALLOWANCE"  # 低保
    STUDENT_CHILD = "STUDENT_CHILD"  # 学生儿童: enrolled as a student or child (the bureau says so)


class SegmentBasis(str, Enum):
    ABOVE_THRESHOLD = "ABOVE_THRESHOLD"  # bounds measured from the threshold (0–20k above it)
    CUMULATIVE = "CUMULATIVE"  # bounds are the cumulative compliant out-of-pocket itself (12k–100k)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _by_level(table: dict[Level, Any], level: Level) -> Any:
    if level in table:
        return table[level]
    if level is Level.L3P and Level.L3 in table:
        return table[Level.L3]
    return None


class OffSiteRule(Strict):
    """How care outside the home pool under one filing status differs from in-pool care.
    DESIGN.md 2.2's three mechanisms (points lower, a share of the ratio, a self-pay-first
    share) and the override tables some pools publish; all optional, applied in the order
    written in READINGS.md."""

    deductible_by_level: dict[Level, Fen] = Field(default_factory=dict)
    deductible_multiplier_pct: BasisPoints | None = None
    ratio_by_level: dict[Level, BasisPoints] = Field(default_factory=dict)
    ratio_minus_points: PointsBp = 0
    ratio_share_pct: BasisPoints | None = None
    self_pay_first_pct: BasisPoints = 0

    def deductible_for(self, level: Level) -> int | None:
        return _by_level(self.deductible_by_level, level)

    def ratio_for(self, level: Level) -> int | None:
        return _by_level(self.ratio_by_level, level)


class OffSite(Strict):
    unregistered_settles_directly: bool = True
    rules: dict[FilingStatus, OffSiteRule] = Field(default_factory=dict)

    def rule(self, status: FilingStatus) -> OffSiteRule:
        return self.rules.get(status, OffSiteRule())


class SpecialPopulationRule(Strict):
    deductible_multiplier_pct: BasisPoints | None = None
    ratio_plus_points: PointsBp = 0
    # The patient's share of the in-scope amount held within this percentage (遂宁 建档立卡: 10%);
    # what it takes beyond the funds is paid as medical assistance.
    max_compliant_oop_pct: BasisPoints | None = None
    # The funds together pay at least this share of the whole bill (江西 county 2018: 建档立卡
    # 贫困户就医实际补偿不低于90%); the shortfall is paid as medical assistance.
    min_actual_reimbursement_pct: BasisPoints | None = None
    oop_limit_in_home_pool_only: bool = True  # 县域内: both limits only for care in the person's own pool


class Inpatient(Strict):
    deductible_by_level: dict[Level, Fen]
    admission_deductible_pct: list[BasisPoints] = Field(
        default_factory=lambda: [10000],
        description="Share of the deductible for the 1st, 2nd, ... admission of the year; the last entry repeats.",
    )
    ratio_by_level: dict[Level, BasisPoints]
    essential_drug_ratio_by_level: dict[Level, BasisPoints] = Field(default_factory=dict)
    annual_cap: Fen | None = None

    @model_validator(mode="after")
    def _levels_complete(self) -> "Inpatient":
        for name in ("deductible_by_level", "ratio_by_level"):
            missing = [lv.value for lv in (Level.L1, Level.L2, Level.L3) if lv not in getattr(self, name)]
            if missing:
                raise ValueError(f"{name} needs levels 1, 2 and 3; missing {', '.join(missing)}")
        if not self.admission_deductible_pct:
            raise ValueError("admission_deductible_pct needs at least one entry")
        return self

    def deductible_for(self, level: Level) -> int:
        return _by_level(self.deductible_by_level, level)

    def ratio_for(self, level: Level) -> int:
        return _by_level(self.ratio_by_level, level)


class OutpatientTier(Strict):
    """Part of outpatient care paid at a ratio of its own (九江's pooling: 乡(村)级 65%, 县级中医院
    中医药治疗 40%, 高血压、糖尿病 at county level 50%). A visit takes the first tier it matches —
    the hospital's level, its kind (any when empty), a diagnosis among `diseases` (ICD-10 code
    prefixes; any when empty); then only its lines whose item code starts with one of `items`
    (all when empty) are paid at the tier's ratio, its other in-scope lines at nothing."""

    levels: list[Level] = Field(default_factory=lambda: list(Level))
    hospital_kinds: list[HospitalKind] = Field(default_factory=list)
    diseases: list[str] = Field(default_factory=list)
    items: list[str] = Field(default_factory=list)
    ratio: BasisPoints

    def matches(self, level: Level, kind: HospitalKind, diagnoses: tuple[str, ...]) -> bool:
        return (level in self.levels and (not self.hospital_kinds or kind in self.hospital_kinds)
                and (not self.diseases or diagnosed(diagnoses, self.diseases)))

    def covers(self, item_code: str) -> bool:
        return not self.items or item_code.startswith(tuple(self.items))


class Outpatient(Strict):
    """General (普通门诊) or chronic-disease (门诊慢特病) outpatient: an annual deductible,
    one ratio (or tiers of ratios), an annual fund cap of its own."""

    annual_deductible: Fen = 0
    ratio: BasisPoints
    annual_cap: Fen | None = None
    counts_toward_inpatient_cap: bool = False
    off_site_statuses: list[FilingStatus] = Field(
        default_factory=lambda: list(FilingStatus),
        description="Filing statuses under which this visit type is settled off-site at all.",
    )
    # Tiers: a visit matching one is paid at its ratio; a visit matching none at `ratio`.
    tiers: list[OutpatientTier] = Field(default_factory=list)
    # 定额支付: for an item (its code, or its former code), the fund pays a fixed amount a unit by
    # hospital level, at most the line's in-scope amount (九江: 互联网复诊 1110200002, 13/9 yuan).
    fixed_payments: dict[str, dict[Level, Fen]] = Field(default_factory=dict)
    # Chronic diseases (ICD-10 code prefixes) whose outpatient payments count toward the inpatient
    # annual cap instead of this visit type's own (冠县: 与当年住院报销费用合并计算,共计12万元封顶).
    shared_inpatient_cap_diseases: list[str] = Field(default_factory=list)

    def tier_for(self, level: Level, kind: HospitalKind, diagnoses: tuple[str, ...]) -> OutpatientTier | None:
        return next((t for t in self.tiers if t.matches(level, kind, diagnoses)), None)

    def fixed_payment(self, codes: tuple[str, ...], level: Level) -> int | None:
        for code in codes:
            if code and code in self.fixed_payments:
                return _by_level(self.fixed_payments[code], level)
        return None

    def shares_inpatient_cap(self, diagnoses: tuple[str, ...]) -> bool:
        return self.counts_toward_inpatient_cap or (
            bool(self.shared_inpatient_cap_diseases) and diagnosed(diagnoses, self.shared_inpatient_cap_diseases))


class AccidentOutpatient(Outpatient):
    """Outpatient and emergency care after an accident, for the populations named (冠县: students
    and children — 学生、儿童因意外伤害发生的门诊急诊医疗费用): its own annual deductible (met
    cumulatively over the year), ratio and annual cap, instead of the general outpatient rules."""

    populations: list[SpecialPopulation] = Field(min_length=1)


class AccidentInjury(Strict):
    """Accident injury without a liable third party: its own ratio above the deductible and
    its own annual cap, instead of the ordinary ratio."""

    ratio: BasisPoints
    annual_cap: Fen | None = None


class Segment(Strict):
    lower: Fen
    upper: Fen | None = None
    ratio: BasisPoints


class SeriousIllnessOverride(Strict):
    threshold: Fen | None = None
    segments: list[Segment] | None = None
    no_cap: bool = False


class CapIncrement(Strict):
    min_continuous_years: int = Field(ge=0)
    extra: Fen


class SeriousIllness(Strict):
    threshold: Fen
    segment_basis: SegmentBasis = SegmentBasis.ABOVE_THRESHOLD
    segments: list[Segment]
    annual_cap: Fen | None = None
    cap_increments: list[CapIncrement] = Field(default_factory=list)
    above_basic_cap_ratio: BasisPoints | None = None
    includes_self_pay_first: bool = False
    # Settled at the hospital's counter with the basic fund? False: claimed afterwards at the
    # commercial insurer (冠县); off_site_at_counter False: for care outside the home pool it is
    # claimed at home (零星报销, 广州). Either way the counter pays none and accumulates none.
    at_counter: bool = True
    off_site_at_counter: bool = True
    applies_to: list[str] = Field(default_factory=lambda: ["INPATIENT", "CHRONIC_OUTPATIENT"])
    special_populations: dict[SpecialPopulation, SeriousIllnessOverride] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _segments_ordered(self) -> "SeriousIllness":
        if not self.segments:
            raise ValueError("segments needs at least one segment")
        for before, after in zip(self.segments, self.segments[1:]):
            if before.upper is None or before.upper != after.lower:
                raise ValueError("segments must be contiguous: each upper is the next lower")
        return self


class MedicalAssistance(Strict):
    """Medical assistance (医疗救助) on what remains of the compliant out-of-pocket."""

    ratio: BasisPoints
    annual_cap: Fen | None = None
    eligible: list[SpecialPopulation]


class Source(Strict):
    """Where some of a policy's figures come from: a sentence quoted from a document in
    ../shared/sources (`file`, `quote`), or, for a figure in none of them, where else (`origin`,
    e.g. a placeholder). `figures` are paths in the policy (`inpatient.ratio_by_level`,
    `serious_illness.segments.0.ratio`); a path covers everything beneath it."""

    figures: list[str] = Field(min_length=1)
    file: str | None = None
    quote: str | None = None
    origin: str | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> "Source":
        if (self.file is None) != (self.quote is None) or (self.file is None and self.origin is None):
            raise ValueError("a source is a file with a quote from it, or an origin")
        return self


class Policy(Strict):
    pool_code: str = Field(pattern=r"^[0-9]{6}$")
    pool_name: str
    insurance_type: InsuranceType
    policy_version: str = Field(min_length=1, max_length=64)
    effective_from: date
    effective_to: date | None = None
    # Versions published before sources were structured carry one-line strings.
    sources: list[Source | str] = Field(min_length=1)
    # A pool no document describes (its figures from DESIGN.md's table or invented for tests):
    # shown as an example, never as a real region's rules. Its sources say where the figures come from.
    illustrative: bool = False
    readings: list[str] = Field(default_factory=list)
    inpatient: Inpatient
    general_outpatient: Outpatient | None = None
    chronic_outpatient: Outpatient | None = None
    accident_injury: AccidentInjury | None = None
    accident_outpatient: AccidentOutpatient | None = None
    off_site: OffSite = Field(default_factory=OffSite)
    special_populations: dict[SpecialPopulation, SpecialPopulationRule] = Field(default_factory=dict)
    serious_illness: SeriousIllness | None = None
    medical_assistance: MedicalAssistance | None = None

    @model_validator(mode="after")
    def _dates(self) -> "Policy":
        if self.effective_to is not None and self.effective_to < self.effective_from:
            raise ValueError("effective_to is before effective_from")
        return self

    def uncited(self) -> str | None:
        """Why a policy file may not be published as it is: it cites no document of
        ../shared/sources and does not say it is illustrative (None: it may). Checked when a file
        is read (`load_policy_file`), not when a published version is read back, so versions
        published before the rule still load."""
        structured = [s for s in self.sources if isinstance(s, Source)]
        if len(structured) == len(self.sources) and not self.illustrative and all(s.file is None for s in structured):
            return ("the policy cites no document of ../shared/sources: mark it illustrative: true, with a source "
                    "whose origin says where its figures come from")
        return None

    def in_force_on(self, day: date) -> bool:
        return self.effective_from <= day and (self.effective_to is None or day <= self.effective_to)

    def canonical_json(self) -> str:
        """The policy as published: what its file says, without the fields left at their
        defaults, so a later build that adds an optional field does not change the digest of
        every published version (the loader would refuse them all as changed)."""
        return json.dumps(self.model_dump(mode="json", exclude_defaults=True), ensure_ascii=False, sort_keys=True,
                          separators=(",", ":"))

    def sha256(self) -> str:
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()


class PolicyFileError(ValueError):
    """A policy file that cannot be used; `errors` lists every problem as 'path: message'."""

    def __init__(self, source: str, errors: list[str]):
        super().__init__(f"{source}: {len(errors)} error(s)\n" + "\n".join(f"  {e}" for e in errors))
        self.source = source
        self.errors = errors


def parse_policy(document: Any, source: str = "<policy>") -> Policy:
    try:
        return Policy.model_validate(document)
    except ValidationError as exc:
        errors = [f"{'.'.join(str(p) for p in err['loc']) or '(file)'}: {err['msg']}" for err in exc.errors()]
        raise PolicyFileError(source, errors) from None


def load_policy_file(path: Path) -> Policy:
    return load_policy_text(path.read_text(encoding="utf-8"), str(path))


def load_policy_text(text: str, source: str = "<policy>") -> Policy:
    """A policy file's text (an uploaded draft): the same checks as a file's."""
    import yaml  # the file format is an edge concern; the model above is plain data

    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PolicyFileError(source, [f"(file): not valid YAML: {exc}"]) from None
    policy = parse_policy(document, source)
    if (why := policy.uncited()) is not None:
        raise PolicyFileError(source, [f"(file): {why}"])
    return policy


def load_policies(directory: Path) -> list[Policy]:
    """Every policy file in a directory; all errors of all files reported together."""
    policies, errors = [], []
    for path in sorted(directory.glob("*.yaml")):
        try:
            policies.append(load_policy_file(path))
        except PolicyFileError as exc:
            errors.extend(f"{path.name}: {e}" for e in exc.errors)
    if errors:
        raise PolicyFileError(str(directory), errors)
    seen: dict[tuple[str, str, str], str] = {}
    for policy in policies:
        key = (policy.pool_code, policy.insurance_type.value, policy.policy_version)
        if key in seen:
            errors.append(f"policy version {key} appears twice")
        seen[key] = policy.policy_version
    if errors:
        raise PolicyFileError(str(directory), errors)
    return policies
