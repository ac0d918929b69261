"""Translation between the national interface convention (定点医药机构接口规范) and the domain.

Input arrives as the convention's JSON (`mdtrt`, `feedetail`, yuan strings) and leaves as
domain objects in fen; results go back in the convention's field names. Nothing here does
I/O: the HTTP API and the offline preview both call it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hub.reference.catalogue import CatalogueItem, ItemClass
from hub.reference.policy import INSUTYPE_CODES, HospitalKind, InsuranceType, Level, SpecialPopulation
from hub.settlement.service_layer.reasons import Why
from hub.settlement.domain.engine import MAX_LINES
from hub.settlement.domain.model import (
    Accumulators,
    Claim,
    FeeLine,
    Filing,
    FilingType,
    LineResult,
    Person,
    Settlement,
    VisitType,
)
from hub.settlement.domain.money import AmountError, fen_to_yuan, quantity, times_quantity, yuan_to_fen  # noqa: F401
from hub.settlement.service_layer.identity import mask_person_id  # noqa: F401  (part of this edge's API)

MED_TYPES = {"21": VisitType.INPATIENT, "11": VisitType.GENERAL_OUTPATIENT, "14": VisitType.CHRONIC_OUTPATIENT,
             "13": VisitType.EMERGENCY}
MED_TYPE_CODES = {v: k for k, v in MED_TYPES.items()}  # the code a visit type is answered with by default
# The platform's other medical types, settled under the rules of one of the four above:
# 22 外伤住院 (a stay for an injury: the accident rules apply), 24 急诊转住院 (an emergency
# admitted: a stay), 41 定点药店购药 (a pharmacy purchase: settled as general outpatient care).
MED_TYPES.update({"22": VisitType.INPATIENT, "24": VisitType.INPATIENT, "41": VisitType.GENERAL_OUTPATIENT})
ACCIDENT_MED_TYPES = frozenset({"22"})
EMERGENCY_ADMISSION_MED_TYPES = frozenset({"24"})  # 急诊转住院: emergency care, treated as filed
INSUTYPES = {code: InsuranceType(name) for name, code in INSUTYPE_CODES.items()}


def insutype_of(registration: dict | None) -> str:
    """The insutype code (390 / 310) of a registration as the read model holds it ("" with none)."""
    enrolment = (registration or {}).get("enrolment")
    return INSUTYPE_CODES[InsuranceType(enrolment["insurance_type"])] if enrolment else ""
# The national hosp_lv codes (01 三级特等 ... 11 未定级) folded to the policy tables' levels;
# a provincial tertiary hospital is sent as "3P".
HOSP_LV = {"01": "3", "02": "3", "03": "3", "04": "3", "05": "2", "06": "2", "07": "2", "08": "1",
           "09": "1", "10": "1", "11": "1", "1": "1", "2": "2", "3": "3", "3P": "3P"}


def parse_day(value: Any) -> date | None:
    """A day from the convention's "yyyy-MM-dd HH:mm:ss" (or "yyyy-MM-dd"); None if unreadable."""
    if isinstance(value, date):
        return value
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.strip().replace("/", "-")).date()
    except ValueError:
        return None


@dataclass(frozen=True)
class Limits:
    """What the hub accepts from a hospital, checked at the edge before anything is stored.

    Each bound is a named setting (`HUB_LIMIT_<NAME>`, e.g. HUB_LIMIT_MAX_PRICE_FEN) far above
    any real bill and far below where sums could overflow: a day of 10 million bills at the
    largest bill total still sums to under 2×10^17 fen, inside PostgreSQL's bigint (9.2×10^18).
    """

    max_price_fen: int = 200_000_000  # 2 million yuan a unit (the dearest gene therapies cost ~1.2 M)
    max_quantity: int = 100_000  # units on one line
    max_line_fen: int = 500_000_000  # 5 million yuan on one line
    max_bill_fen: int = 2_000_000_000  # 20 million yuan on one bill
    max_lines: int = MAX_LINES  # fee lines on one bill (and in one upload)
    max_code_length: int = 64  # msgid, med_list_codg, feedetl_sn, mdtrt_id, setl_id, psn_no ...
    max_depth: int = 8  # nesting of the request's JSON

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> "Limits":
        import os

        environ = os.environ if environ is None else environ
        values = {}
        for name in cls.__dataclass_fields__:
            text = environ.get(f"HUB_LIMIT_{name.upper()}")
            if text is not None:
                values[name] = int(text)
        return cls(**values)


DEFAULT_LIMITS = Limits()
_PRINTABLE_CODE = re.compile(r"^[\x21-\x7e]+$")  # printable ASCII, no spaces: msgids and codes


def check_text(value: Any, where: str = "input", limits: Limits = DEFAULT_LIMITS, depth: int = 0) -> None:
    """Refuse control characters (NUL and the like) in any string of the request, and nesting
    deeper than `limits.max_depth`: nothing a hospital sends can break a log line or a database
    text column."""
    if depth > limits.max_depth:
        raise ConventionError(Why.INVALID_INPUT, f"{where}: nested deeper than {limits.max_depth} levels")
    if isinstance(value, str):
        if _CONTROL.search(value):
            raise ConventionError(Why.INVALID_CHARACTERS, f"{where}: control characters are not allowed")
    elif isinstance(value, dict):
        for key, item in value.items():
            if _CONTROL.search(key):
                raise ConventionError(Why.INVALID_CHARACTERS, f"{where}: control characters in a field name")
            check_text(item, f"{where}.{key}", limits, depth + 1)
    elif isinstance(value, list):
        for n, item in enumerate(value):
            check_text(item, f"{where}.{n}", limits, depth + 1)


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def is_code(value: str) -> bool:
    return bool(_PRINTABLE_CODE.match(value))


def code(value: Any, where: str, limits: Limits = DEFAULT_LIMITS) -> str:
    """An identifier (msgid, catalogue code, visit or settlement id): printable ASCII, no spaces."""
    if not isinstance(value, str) or not 1 <= len(value) <= limits.max_code_length or not _PRINTABLE_CODE.match(value):
        raise ConventionError(Why.INVALID_FIELD, f"{where}: 1 to {limits.max_code_length} printable characters "
                                               "(letters, digits, punctuation; no spaces)")
    return value


class ConventionError(ValueError):
    """Input that does not follow the convention, raised from deep in a parser: its reason (a Why of
    the input's), and a message that says exactly what to fix."""

    def __init__(self, reason: Why, message: str):
        super().__init__(f"{reason.code}: {message}")
        self.reason, self.code, self.message = reason, reason.code, message


class _In(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class FeeDetailIn(_In):
    feedetl_sn: str | int | None = None
    med_list_codg: str = Field(min_length=1, max_length=64)
    cnt: Decimal | str | int
    pric: Decimal | str | int
    det_item_fee_sumamt: Decimal | str | int | None = None

    @field_validator("cnt", "pric", "det_item_fee_sumamt", mode="before")
    @classmethod
    def _no_floats(cls, v: Any) -> Any:
        # The edge reads JSON numbers as Decimal; a binary float here would have lost digits.
        if isinstance(v, float):
            raise ValueError("an amount read as a binary float is not exact: send a decimal string or number")
        return v


class MdtrtIn(_In):
    med_type: str
    mdtrtarea_admvs: str = Field(pattern=r"^[0-9]{6}$")
    fixmedins_code: str = Field(default="", max_length=30)
    hosp_lv: str
    begntime: date
    endtime: date | None = None
    mdtrt_id: str | None = None
    accident_injury: bool = False
    dise_codg: str = Field(default="", max_length=32)  # the 病种 (a chronic disease's), ICD-10
    diag_codes: list[str] = Field(default_factory=list, max_length=50)  # the visit's other diagnoses
    hospital_kind: HospitalKind = HospitalKind.GENERAL  # TCM for a 中医院
    emergency_admission: bool = False  # a stay admitted from the emergency room (as med_type 24 says)

    @field_validator("begntime", "endtime", mode="before")
    @classmethod
    def _day(cls, v: Any) -> Any:
        # The convention sends "yyyy-MM-dd HH:mm:ss"; only the day matters for the rules.
        if isinstance(v, str) and len(v) > 10:
            return datetime.fromisoformat(v.replace("/", "-")).date()
        return v


class FilingIn(_In):
    filing_id: str
    filing_type: FilingType
    target_pool: str = Field(pattern=r"^[0-9]{6}$")
    valid_from: date
    valid_to: date | None = None
    revoked: bool = False


class PersonIn(_In):
    """The insured person as the offline preview takes it (the service reads it from its read model)."""

    psn_no: str = Field(min_length=1, max_length=64)
    insuplc_admdvs: str = Field(pattern=r"^[0-9]{6}$")
    insutype: str
    enrolled_from: date
    benefits_from: date | None = None
    enrolled_to: date | None = None
    special_populations: list[SpecialPopulation] = Field(default_factory=list)
    continuous_years: int = Field(default=0, ge=0)
    filings: list[FilingIn] = Field(default_factory=list)


def _parse(model: type[BaseModel], data: Any, where: str) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        path = ".".join(str(p) for p in (where, *first["loc"]))
        raise ConventionError(Why.INVALID_FIELD, f"{path}: {first['msg']}") from None


def insurance_type(code: str) -> InsuranceType:
    if code in INSUTYPES:
        return INSUTYPES[code]
    try:
        return InsuranceType(code)
    except ValueError:
        raise ConventionError(Why.INVALID_FIELD, f"insutype {code!r}: 390 (residents) or 310 (employees)") from None


@dataclass(frozen=True)
class FeeLineIn:
    """One fee line as checked at the edge (amounts in fen)."""

    feedetl_sn: str | None
    med_list_codg: str
    cnt: Any  # Decimal
    pric_fen: int
    amount_fen: int


def fee_lines(feedetail: Any, limits: Limits = DEFAULT_LIMITS) -> list[FeeLineIn]:
    """The fee lines of an upload or a claim, every one checked — the one parser for both:
    shape, code, a price from 0 up to the limit, a quantity, the line total (which must equal
    cnt × pric when sent), the line and bill totals within their limits."""
    if not isinstance(feedetail, list) or not feedetail:
        raise ConventionError(Why.INVALID_FIELD, "feedetail: a non-empty list of fee lines")
    if len(feedetail) > limits.max_lines:
        raise ConventionError(Why.TOO_MANY_LINES, f"feedetail: at most {limits.max_lines} lines")
    lines: list[FeeLineIn] = []
    total = 0
    for n, raw in enumerate(feedetail):
        where = f"feedetail.{n}"
        f: FeeDetailIn = _parse(FeeDetailIn, raw, where)
        sn = None if f.feedetl_sn is None else code(str(f.feedetl_sn), f"{where}.feedetl_sn", limits)
        item = code(f.med_list_codg, f"{where}.med_list_codg", limits)
        try:
            unit = yuan_to_fen(f.pric, f"{where}.pric")
            qty = quantity(f.cnt, f"{where}.cnt")
            if unit < 0:
                raise ConventionError(Why.INVALID_AMOUNT, f"{where}.pric: a price is not negative (reverse a settlement "
                                                        "or cancel the line instead)")
            if unit > limits.max_price_fen:
                raise ConventionError(Why.AMOUNT_TOO_LARGE, f"{where}.pric: at most {fen_to_yuan(limits.max_price_fen)} yuan")
            if qty > limits.max_quantity:
                raise ConventionError(Why.AMOUNT_TOO_LARGE, f"{where}.cnt: at most {limits.max_quantity}")
            amount = times_quantity(unit, qty)
            if amount > limits.max_line_fen:
                raise ConventionError(Why.AMOUNT_TOO_LARGE,
                                      f"{where}: a line of at most {fen_to_yuan(limits.max_line_fen)} yuan")
            if f.det_item_fee_sumamt is not None and yuan_to_fen(f.det_item_fee_sumamt,
                                                                 f"{where}.det_item_fee_sumamt") != amount:
                raise ConventionError(Why.AMOUNT_MISMATCH,
                                      f"{where}: det_item_fee_sumamt is not cnt x pric ({fen_to_yuan(amount)})")
        except AmountError as exc:
            raise ConventionError(Why.INVALID_AMOUNT, str(exc)) from None
        total += amount
        if total > limits.max_bill_fen:
            raise ConventionError(Why.AMOUNT_TOO_LARGE, f"feedetail: a bill of at most {fen_to_yuan(limits.max_bill_fen)} yuan")
        lines.append(FeeLineIn(sn, item, qty, unit, amount))
    return lines


MANUAL_REASONS = ("NOT_FILED", "HOSPITAL_NOT_CONNECTED", "ROUTED_HOME", "COUNTER_DOWN")  # the claims route's


def manual_claim(value: Any) -> bool:
    """The preview's optional `manual` node: {"reason": one of MANUAL_REASONS} prices the bill as a
    manual claim at the home bureau (零星报销, READINGS.md 37) instead of a bill at the counter."""
    if value is None:
        return False
    if not isinstance(value, dict) or value.get("reason") not in MANUAL_REASONS:
        raise ConventionError(Why.INVALID_FIELD, f"manual.reason: one of {', '.join(MANUAL_REASONS)}")
    return True


def claim_from(mdtrt: Any, feedetail: Any, limits: Limits = DEFAULT_LIMITS, manual: bool = False) -> Claim:
    m: MdtrtIn = _parse(MdtrtIn, mdtrt, "mdtrt")
    if m.med_type not in MED_TYPES:
        raise ConventionError(Why.INVALID_FIELD, f"mdtrt.med_type {m.med_type!r}: one of {', '.join(MED_TYPES)}")
    if m.hosp_lv not in HOSP_LV:
        raise ConventionError(Why.INVALID_FIELD, f"mdtrt.hosp_lv {m.hosp_lv!r} is not a hospital level")
    lines = tuple(FeeLine(n, item.med_list_codg, item.cnt, item.pric_fen, item.amount_fen)
                  for n, item in enumerate(fee_lines(feedetail, limits), start=1))
    end = m.endtime or m.begntime
    diagnoses = tuple(dict.fromkeys(c for c in (m.dise_codg, *m.diag_codes) if c))
    if m.emergency_admission and MED_TYPES[m.med_type] is not VisitType.INPATIENT:
        raise ConventionError(Why.INVALID_FIELD, "mdtrt.emergency_admission: only a stay is admitted (med_type 21, 22, 24)")
    return Claim(MED_TYPES[m.med_type], Level(HOSP_LV[m.hosp_lv]), m.mdtrtarea_admvs, m.begntime, end,
                 tuple(lines), m.accident_injury, diagnoses, m.hospital_kind, manual=manual,
                 emergency_admission=m.emergency_admission or m.med_type in EMERGENCY_ADMISSION_MED_TYPES)


def person_from(data: Any, person_ref: str) -> Person:
    p: PersonIn = _parse(PersonIn, data, "psn")
    return Person(
        person_ref=person_ref,
        home_pool=p.insuplc_admdvs,
        insurance_type=insurance_type(p.insutype),
        enrolled_from=p.enrolled_from,
        benefits_from=p.benefits_from or p.enrolled_from,
        enrolled_to=p.enrolled_to,
        special_populations=frozenset(p.special_populations),
        filings=tuple(Filing(f.filing_id, f.filing_type, f.target_pool, f.valid_from, f.valid_to, f.revoked)
                      for f in p.filings),
        continuous_years=p.continuous_years,
    )


def accumulators_from(data: Any, year: int) -> Accumulators:
    if not data:
        return Accumulators(year=year)
    if not isinstance(data, dict):
        raise ConventionError(Why.INVALID_FIELD, "accumulators: an object of yuan amounts and an admissions count")
    values = {}
    for name, value in data.items():
        if name not in Accumulators.__dataclass_fields__ or name == "year":
            raise ConventionError(Why.INVALID_FIELD, f"accumulators.{name} is not an accumulator")
        try:
            values[name] = int(value) if name == "admissions" else yuan_to_fen(value, f"accumulators.{name}")
        except (AmountError, ValueError) as exc:
            raise ConventionError(Why.INVALID_AMOUNT, str(exc)) from None
    return Accumulators(year=year, **values)


# The platform's fund payment types (fund_pay_type) for the funds the hub's rules pay.
FUND_PAY_TYPES = {
    ("hifp", InsuranceType.EMPLOYEE): ("310100", "职工基本医疗保险统筹基金"),
    ("hifp", InsuranceType.RESIDENT): ("390100", "城乡居民基本医疗保险基金"),
    ("serious", InsuranceType.EMPLOYEE): ("330100", "职工大额医疗费用补助基金"),
    ("serious", InsuranceType.RESIDENT): ("390200", "城乡居民大病医疗保险资金"),
    ("maf", InsuranceType.EMPLOYEE): ("610100", "医疗救助基金"),
    ("maf", InsuranceType.RESIDENT): ("610100", "医疗救助基金"),
}
# clr_type: the clearing category of a settlement, by visit type (11 门诊, 21 住院).
CLR_TYPES = {VisitType.INPATIENT: "21", VisitType.GENERAL_OUTPATIENT: "11", VisitType.CHRONIC_OUTPATIENT: "11",
             VisitType.EMERGENCY: "11"}
ZERO = "0.00"
SETLINFO_AMOUNTS = ("medfee_sumamt", "fulamt_ownpay_amt", "overlmt_selfpay", "preselfpay_amt", "inscp_scp_amt",
                    "act_pay_dedc", "hifp_pay", "cvlserv_pay", "hifes_pay", "hifmi_pay", "hifob_pay", "maf_pay",
                    "oth_pay", "fund_pay_sumamt", "psn_part_amt", "acct_pay", "psn_cash_pay", "hosp_part_amt",
                    "acct_mulaid_pay", "hifdm_pay")


@dataclass(frozen=True)
class SettlementContext:
    """What the answer to a (pre-)settlement says besides the engine's figures."""

    mdtrt_id: str
    person: dict[str, str]  # psn_no, certno, psn_name, brdy (masked), psn_cert_type, gend, age, psn_type, naty
    insurance_type: InsuranceType
    setl_id: str | None  # None for a pre-settlement
    medins_setl_id: str  # the request's msgid: the hospital's own id of the settlement
    setl_time: datetime
    clr_optins: str  # the clearing agency: the treatment pool's
    mdtrt_cert_type: str = ""
    med_type: str = ""  # the visit's own medical type code (22, 24, 41 ... as opened)


def settlement_output(s: Settlement, claim: Claim, ctx: SettlementContext) -> dict[str, Any]:
    """A Settlement in the convention's nodes: `setlinfo` (the platform's fields, amounts as
    yuan strings), `setldetail` (one entry per fund that pays), and the hub's extension
    `hub_breakdown` (how the figures were reached, and each fee line's split)."""
    y = fen_to_yuan
    employee = ctx.insurance_type is InsuranceType.EMPLOYEE
    setlinfo = {
        "mdtrt_id": ctx.mdtrt_id, "setl_id": ctx.setl_id or "", "psn_no": ctx.person["psn_no"],
        "psn_name": ctx.person["psn_name"], "psn_cert_type": ctx.person["psn_cert_type"],
        "certno": ctx.person["certno"], "gend": ctx.person["gend"], "naty": ctx.person.get("naty", ""), "brdy": ctx.person["brdy"],
        "age": ctx.person["age"],
        "insutype": INSUTYPE_CODES[ctx.insurance_type], "psn_type": ctx.person.get("psn_type", ""), "cvlserv_flag": "0",
        "setl_time": ctx.setl_time.strftime("%Y-%m-%d %H:%M:%S"), "mdtrt_cert_type": ctx.mdtrt_cert_type,
        "med_type": ctx.med_type or MED_TYPE_CODES[claim.visit_type],
        "medfee_sumamt": y(s.medfee_sumamt), "fulamt_ownpay_amt": y(s.fulamt_ownpay_amt),
        "overlmt_selfpay": y(s.overlmt_amt), "preselfpay_amt": y(s.preselfpay_amt),
        "inscp_scp_amt": y(s.inscp_scp_amt), "act_pay_dedc": y(s.act_pay_dedc), "hifp_pay": y(s.hifp_pay),
        "pool_prop_selfpay": f"{s.pool_ratio_bp / 10000:.4f}", "cvlserv_pay": ZERO, "hifes_pay": ZERO,
        "hifmi_pay": ZERO if employee else y(s.hifmi_pay), "hifob_pay": y(s.hifmi_pay) if employee else ZERO,
        "maf_pay": y(s.maf_pay), "oth_pay": ZERO, "fund_pay_sumamt": y(s.fund_pay_sumamt),
        "psn_part_amt": y(s.psn_part_amt), "acct_pay": ZERO, "psn_cash_pay": y(s.psn_cash_pay),
        "hosp_part_amt": ZERO, "balc": ZERO, "acct_mulaid_pay": ZERO, "medins_setl_id": ctx.medins_setl_id,
        "clr_optins": ctx.clr_optins, "clr_way": "1", "clr_type": CLR_TYPES[claim.visit_type], "hifdm_pay": ZERO,
        "exp_content": "",
    }
    setldetail = []
    for fund, amount in (("hifp", s.hifp_pay), ("serious", s.hifmi_pay), ("maf", s.maf_pay)):
        if amount:
            code, name = FUND_PAY_TYPES[(fund, ctx.insurance_type)]
            setldetail.append({"fund_pay_type": code, "fund_pay_type_name": name, "inscp_scp_amt": y(s.inscp_scp_amt),
                               "crt_payb_lmt_amt": y(amount), "fund_payamt": y(amount), "setl_proc_info": ""})
    return {"setlinfo": setlinfo, "setldetail": setldetail, "hub_breakdown": _breakdown(s)}


def _breakdown(s: Settlement) -> dict[str, Any]:
    y = fen_to_yuan
    return {
        "policy_version": s.policy_version,
        "catalogue_version": s.catalogue_version,
        "filing_status": s.filing_status.value if s.filing_status else "IN_POOL",
        "filing_id": s.filing_id,
        "hospital_absorbed_amt": y(s.hospital_absorbed_amt),
        "offsite_selfpay_first_amt": y(s.offsite_selfpay_first_amt),
        "deductible_due": y(s.deductible_due),
        "pool_ratio": f"{s.pool_ratio_bp / 10000:.4f}",
        "essential_drug_ratio": f"{s.essential_drug_ratio_bp / 10000:.4f}",
        "fund_before_cap": y(s.fund_before_cap),
        "basic_cap_remaining": None if s.basic_cap_remaining is None else y(s.basic_cap_remaining),
        "compliant_oop": y(s.compliant_oop),
        "compliant_oop_above_basic_cap": y(s.compliant_oop_above_basic_cap),
        "lines": [line_split(line) for line in s.lines],
    }


# med_chrgitm_type (医疗收费项目类别) of a catalogue item's kind: 09 西药费, 05 治疗费, 08 卫生材料费.
MED_CHRGITM_TYPES = {"DRUG": "09", "SERVICE": "05", "MATERIAL": "08"}


def line_split(line: LineResult, item: CatalogueItem | None = None) -> dict[str, Any]:
    """One fee line's split, in the convention's per-line fields (the answer to a fee upload,
    and the hub's per-line breakdown of a settlement)."""
    y = fen_to_yuan
    split = {
        "feedetl_sn": str(line.line_no),
        "med_list_codg": line.item_code,
        "det_item_fee_sumamt": y(line.amount_fen),
        "chrgitm_lv": line.chrgitm_lv,
        "fulamt_ownpay_amt": y(line.fulamt_ownpay_amt),
        "overlmt_amt": y(line.overlmt_amt),
        "preselfpay_amt": y(line.preselfpay_amt),
        "inscp_scp_amt": y(line.inscp_scp_amt),
        "bas_medn_flag": "1" if line.essential_drug else "0",
    }
    if item is not None:
        split.update(pric_uplmt_amt=y(item.price_cap_fen) if item.price_cap_fen is not None else ZERO,
                     selfpay_prop=f"{item.self_pay_first_bp / 10000:.4f}" if item.item_class is ItemClass.YI
                     else ("1.0000" if item.item_class is ItemClass.BING else "0.0000"),
                     med_chrgitm_type=MED_CHRGITM_TYPES.get(item.item_kind, "14"))
    else:  # not in the treatment pool's catalogue: wholly self-paid
        split.update(pric_uplmt_amt=ZERO, selfpay_prop="1.0000", med_chrgitm_type="14")
    return split
