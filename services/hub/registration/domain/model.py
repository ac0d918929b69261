"""Enrolments and off-site filings (DESIGN.md 2.2) as pure rules. No I/O.

Rejections are data with stable codes, like the settlement engine's.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, timedelta
from enum import Enum

from hub.privacy import resident_id_facts
from hub.reference.policy import INSUTYPE_CODES
from hub.rejections import Reason, Refusal

TEMPORARY_DEFAULT_DAYS = 183  # "commonly at least 6 months" (DESIGN.md 2.2), when the bureau gives no end
MAX_PSN_NO_LEN = 64
INSUTYPE_WORDS = {**{code: name for name, code in INSUTYPE_CODES.items()}, **{name: name for name in INSUTYPE_CODES},
                  "居民": "RESIDENT", "职工": "EMPLOYEE"}
SPECIAL_POPULATIONS = ("POVERTY_REGISTERED", "EXTREME_POVERTY", "SUBSISTENCE_ALLOWANCE", "STUDENT_CHILD")
CSV_COLUMNS = ("psn_no", "insutype", "enrolled_from", "enrolled_to", "benefits_from", "special_populations",
               "certno", "psn_name", "card_no", "psn_type", "naty", "emp_name")  # from certno on optional
MAX_NAME_LEN = 50
MAX_EMP_NAME_LEN = 100
# psn_type: the national dictionary's 人员类别 code (e.g. 11 在职, 12 退休, 1501 ...): 1 to 6 digits.
# naty: 民族, the two-digit code of GB/T 3304 (01 汉族 ... 56; 97/98 for others).
MAX_CARD_NO_LEN = 32


class FilingType(str, Enum):
    RETIREE_RESETTLED = "RETIREE_RESETTLED"
    LONG_TERM_RESIDENT = "LONG_TERM_RESIDENT"
    POSTED_WORKER = "POSTED_WORKER"
    REFERRAL = "REFERRAL"
    TEMPORARY_TRIP = "TEMPORARY_TRIP"
    EMERGENCY = "EMERGENCY"

    @property
    def long_term(self) -> bool:
        return self in (FilingType.RETIREE_RESETTLED, FilingType.LONG_TERM_RESIDENT, FilingType.POSTED_WORKER)


class Rejection(Reason):
    INVALID_PSN_NO = ("invalid_psn_no", "psn_no is empty or longer than 64 characters")
    INVALID_INSUTYPE = ("invalid_insutype", "insutype is 390 (residents) or 310 (employees)")
    INVALID_DATE = ("invalid_date", "a date is not yyyy-mm-dd")
    DATES_OUT_OF_ORDER = ("dates_out_of_order", "an end date is before its start date")
    UNKNOWN_SPECIAL_POPULATION = ("unknown_special_population", "special_populations lists an unknown population")
    INVALID_SPECIAL_POPULATION = ("invalid_special_population",
                                  "a special population is NAME or NAME:begin:end (yyyy-mm-dd, either may be empty)")
    INVALID_CERTNO = ("invalid_certno", "certno is not an 18-character resident id number whose check character holds")
    INVALID_NAME = ("invalid_name", "psn_name is longer than 50 characters or holds control characters")
    INVALID_CARD_NO = ("invalid_card_no", "card_no is not 1 to 32 letters and digits")
    INVALID_PSN_TYPE = ("invalid_psn_type", "psn_type is not a 人员类别 code of 1 to 6 digits")
    INVALID_NATY = ("invalid_naty", "naty is not a two-digit 民族 code (GB/T 3304)")
    INVALID_EMP_NAME = ("invalid_emp_name", "emp_name is longer than 100 characters or holds control characters")
    DUPLICATE_CREDENTIAL = ("duplicate_credential", "the certno or card_no belongs to another person")
    DUPLICATE_PERSON = ("duplicate_person", "the same person appears twice in the file")
    WRONG_COLUMN_COUNT = ("wrong_column_count", "the row does not have the file's columns")
    INVALID_CSV = ("invalid_csv", "the file is not CSV the import can read")
    TOO_MANY_ROWS = ("too_many_rows", "the file has more rows than one import takes")
    PERSON_NOT_ENROLLED = ("person_not_enrolled", "the person has no enrolment in this pool")
    ENROLMENT_ENDED = ("enrolment_ended", "the person's enrolment has ended")
    PERSON_OF_ANOTHER_POOL = ("person_of_another_pool", "the person is insured in another pool")
    INVALID_TARGET_POOL = ("invalid_target_pool", "target_pool is a 6-digit code of another pool")
    INVALID_FILING_TYPE = ("invalid_filing_type", "filing_type is not a known filing type")
    FILING_NOT_FOUND = ("filing_not_found", "no such filing")
    FILING_REVOKED = ("filing_revoked", "the filing is revoked and cannot change")


Refused = Refusal  # a registration request refused: Refused(Rejection.X, detail)


@dataclass(frozen=True)
class Identity:
    """A special population the person belongs to (the convention's `idetinfo`), from `begins`
    to `ends` inclusive; None: since the enrolment began / until it ends."""

    population: str
    begins: date | None = None
    ends: date | None = None


@dataclass(frozen=True)
class Enrolment:
    psn_no: str
    insurance_type: str
    enrolled_from: date
    enrolled_to: date | None
    benefits_from: date
    identities: tuple[Identity, ...] = ()
    certno: str = ""  # resident id number (居民身份证号), checked; "" when the bureau gave none
    psn_name: str = ""
    card_no: str = ""  # social-security card number (社会保障卡号)
    psn_type: str = ""  # 人员类别, answered in 1101's insuinfo and every setlinfo
    naty: str = ""  # 民族
    emp_name: str = ""  # 单位名称 (an employee's employer)

    @property
    def special_populations(self) -> tuple[str, ...]:
        return tuple(sorted({i.population for i in self.identities}))

    def details(self) -> dict[str, str]:
        """What is sealed (hub.privacy.seal): given back in clear only to a treating hospital."""
        out = {"psn_no": self.psn_no, "certno": self.certno, "psn_name": self.psn_name, "card_no": self.card_no}
        out.update({k: v for k, v in (("psn_type", self.psn_type), ("naty", self.naty), ("emp_name", self.emp_name)) if v})
        facts = resident_id_facts(self.certno) if self.certno else None
        if facts:
            out.update(brdy=facts[0].isoformat(), gend=facts[1], psn_cert_type="01")
        return out


@dataclass(frozen=True)
class FilingSpec:
    filing_id: str
    filing_type: FilingType
    target_pool: str
    valid_from: date
    valid_to: date | None
    revoked: bool = False


def _day(text: str | None, allow_empty: bool) -> date | None | Refused:
    text = (text or "").strip()
    if not text:
        return None if allow_empty else Refused(Rejection.INVALID_DATE, "missing")
    try:
        return date.fromisoformat(text)
    except ValueError:
        return Refused(Rejection.INVALID_DATE, repr(text))


def parse_enrolment(row: dict[str, str | None]) -> Enrolment | Refused:
    """One CSV row of an enrolment snapshot."""
    if None in row or any(row.get(c) is None for c in ("psn_no", "insutype", "enrolled_from")):
        return Refused(Rejection.WRONG_COLUMN_COUNT)
    psn_no = (row["psn_no"] or "").strip()
    if not 1 <= len(psn_no) <= MAX_PSN_NO_LEN:
        return Refused(Rejection.INVALID_PSN_NO)
    insurance = INSUTYPE_WORDS.get((row["insutype"] or "").strip().upper()) or INSUTYPE_WORDS.get((row["insutype"] or "").strip())
    if insurance is None:
        return Refused(Rejection.INVALID_INSUTYPE, repr(row["insutype"]))
    start = _day(row["enrolled_from"], allow_empty=False)
    end = _day(row.get("enrolled_to"), allow_empty=True)
    benefits = _day(row.get("benefits_from"), allow_empty=True)
    for value in (start, end, benefits):
        if isinstance(value, Refused):
            return value
    benefits = benefits or start
    if (end is not None and end < start) or benefits < start:
        return Refused(Rejection.DATES_OUT_OF_ORDER)
    identities = parse_identities(row.get("special_populations") or "")
    if isinstance(identities, Refused):
        return identities
    certno = (row.get("certno") or "").strip().upper()
    if certno and resident_id_facts(certno) is None:
        return Refused(Rejection.INVALID_CERTNO)
    name = (row.get("psn_name") or "").strip()
    if len(name) > MAX_NAME_LEN or any(ord(c) < 32 or ord(c) == 127 for c in name):
        return Refused(Rejection.INVALID_NAME)
    card = (row.get("card_no") or "").strip().upper()
    if card and not (len(card) <= MAX_CARD_NO_LEN and card.isascii() and card.isalnum()):
        return Refused(Rejection.INVALID_CARD_NO)
    psn_type = (row.get("psn_type") or "").strip()
    if psn_type and not (len(psn_type) <= 6 and psn_type.isascii() and psn_type.isdigit()):
        return Refused(Rejection.INVALID_PSN_TYPE, repr(psn_type))
    naty = (row.get("naty") or "").strip()
    if naty and not (len(naty) == 2 and naty.isascii() and naty.isdigit()):
        return Refused(Rejection.INVALID_NATY, repr(naty))
    emp_name = (row.get("emp_name") or "").strip()
    if len(emp_name) > MAX_EMP_NAME_LEN or any(ord(c) < 32 or ord(c) == 127 for c in emp_name):
        return Refused(Rejection.INVALID_EMP_NAME)
    return Enrolment(psn_no, insurance, start, end, benefits, identities, certno, name, card, psn_type, naty, emp_name)


def parse_identities(text: str) -> tuple[Identity, ...] | Refused:
    """`special_populations`: entries separated by ';', each NAME or NAME:begin:end."""
    out: dict[str, Identity] = {}
    for entry in (e.strip() for e in text.split(";")):
        if not entry:
            continue
        parts = entry.split(":")
        if len(parts) not in (1, 3):
            return Refused(Rejection.INVALID_SPECIAL_POPULATION, repr(entry))
        name = parts[0].strip().upper()
        if name not in SPECIAL_POPULATIONS:
            return Refused(Rejection.UNKNOWN_SPECIAL_POPULATION, name)
        begins = _day(parts[1], allow_empty=True) if len(parts) == 3 else None
        ends = _day(parts[2], allow_empty=True) if len(parts) == 3 else None
        if isinstance(begins, Refused) or isinstance(ends, Refused):
            return Refused(Rejection.INVALID_SPECIAL_POPULATION, repr(entry))
        if begins and ends and ends < begins:
            return Refused(Rejection.DATES_OUT_OF_ORDER, repr(entry))
        out[name] = Identity(name, begins, ends)
    return tuple(out[k] for k in sorted(out))


def new_filing(filing_id: str, home_pool: str, filing_type: str, target_pool: str, valid_from: date,
               valid_to: date | None) -> FilingSpec | Refused:
    """A filing as DESIGN.md 2.2 has it: long-term ones open-ended until revoked, temporary ones
    for a period (183 days when the bureau gives none), emergency ones like temporary."""
    try:
        kind = FilingType(filing_type)
    except ValueError:
        return Refused(Rejection.INVALID_FILING_TYPE, repr(filing_type))
    if len(target_pool) != 6 or not target_pool.isdigit() or target_pool == home_pool:
        return Refused(Rejection.INVALID_TARGET_POOL, repr(target_pool))
    if valid_to is None and not kind.long_term:
        valid_to = valid_from + timedelta(days=TEMPORARY_DEFAULT_DAYS - 1)
    if valid_to is not None and valid_to < valid_from:
        return Refused(Rejection.DATES_OUT_OF_ORDER)
    return FilingSpec(filing_id, kind, target_pool, valid_from, valid_to)


def change_filing(current: FilingSpec, home_pool: str, target_pool: str | None, valid_from: date | None,
                  valid_to: date | None, clear_valid_to: bool = False) -> FilingSpec | Refused:
    if current.revoked:
        return Refused(Rejection.FILING_REVOKED, current.filing_id)
    changed = replace(current,
                      target_pool=target_pool or current.target_pool,
                      valid_from=valid_from or current.valid_from,
                      valid_to=None if clear_valid_to else (valid_to or current.valid_to))
    checked = new_filing(changed.filing_id, home_pool, changed.filing_type.value, changed.target_pool,
                         changed.valid_from, changed.valid_to)
    return checked


def revoke_filing(current: FilingSpec) -> FilingSpec | Refused:
    if current.revoked:
        return Refused(Rejection.FILING_REVOKED, current.filing_id)
    return replace(current, revoked=True)
