"""The insured person as the settlement service knows them, from the registration the read model
holds: as the rules see them (`person_from_registration`), as the treating hospital may be told
(`PersonShown`), and which credential names them (`credential_person`)."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import date
from typing import Any

from hub import vouchers
from hub.privacy import Key, credential_ref, mask_person_id, unseal
from hub.reference.policy import InsuranceType, SpecialPopulation
from hub.settlement.domain.model import Filing, FilingType, Person
from hub.settlement.service_layer.reasons import Why

CERT_TYPES = frozenset({"01", "02", "03"})  # e-voucher, resident id number, social-security card


class CredentialError(Exception):
    def __init__(self, reason: Why, message: str):
        super().__init__(message)
        self.reason, self.message = reason, message


def active_populations(enrolment: dict[str, Any], day: date) -> frozenset[SpecialPopulation]:
    """The special populations that hold on `day`: v2 registrations date each one (`identities`);
    a v1 registration's hold for the whole enrolment."""
    identities = enrolment.get("identities") or []
    if identities:
        names = [i["population"] for i in identities
                 if (i.get("begins") is None or i["begins"] <= day) and (i.get("ends") is None or day <= i["ends"])]
    else:
        names = list(enrolment.get("special_populations") or ())
    return frozenset(SpecialPopulation(p) for p in names if p in SpecialPopulation.__members__)


def person_from_registration(value: dict[str, Any], service_day: date) -> Person | None:
    enrolment = value.get("enrolment")
    if enrolment is None:
        return None
    enrolled_from = enrolment["enrolled_from"]
    return Person(
        person_ref=value["person_ref"],
        home_pool=value["home_pool"],
        insurance_type=InsuranceType(enrolment["insurance_type"]),
        enrolled_from=enrolled_from,
        benefits_from=enrolment["benefits_from"],
        enrolled_to=enrolment.get("enrolled_to"),
        special_populations=active_populations(enrolment, service_day),
        filings=tuple(
            Filing(f["filing_id"], FilingType(f["filing_type"]), f["target_pool"], f["valid_from"], f.get("valid_to"),
                   f.get("revoked", False))
            for f in value.get("filings", []) if f["filing_type"] in FilingType.__members__
        ),
        continuous_years=max(0, _years(enrolled_from, service_day)),
    )


def _years(born: date, day: date) -> int:
    return day.year - born.year - ((day.month, day.day) < (born.month, born.day))


@dataclass(frozen=True)
class PersonShown:
    """The person as an answer names them. `stored()` is what the hub keeps (masked, the sealed
    details beside); `reveal` (envelope) opens the sealed details for the asking hospital only."""

    psn_no: str
    certno: str
    psn_name: str
    psn_cert_type: str
    gend: str
    brdy: str
    age: str
    sealed: str  # base64 of the registration's sealed details; "" when the bureau sent none
    psn_type: str = ""  # 人员类别, as the bureau's snapshot gave it
    naty: str = ""  # 民族
    emp_name: str = ""  # 单位名称: answered by 1101 only, never stored with a settlement

    def masked(self) -> dict[str, str]:
        """As a stored answer keeps the person: ids and name masked; the category codes as they are."""
        return {"psn_no": mask_person_id(self.psn_no), "certno": mask_person_id(self.certno) if self.certno else "",
                "psn_name": mask_person_id(self.psn_name) if self.psn_name else "", "brdy": "",
                "psn_cert_type": self.psn_cert_type, "gend": self.gend, "age": self.age, "psn_type": self.psn_type,
                "naty": self.naty}

    def clear(self) -> dict[str, str]:
        return {"psn_no": self.psn_no, "certno": self.certno, "psn_name": self.psn_name, "brdy": self.brdy,
                "psn_cert_type": self.psn_cert_type, "gend": self.gend, "age": self.age, "psn_type": self.psn_type,
                "naty": self.naty}


def shown(value: dict[str, Any], person_key: Key, day: date, psn_no_sent: str = "") -> PersonShown:
    """The person's details from the registration's sealed record (the psn_no the hospital sent
    where the bureau sealed none: a v1 registration)."""
    raw = value.get("person_sealed") or b""
    details = unseal(person_key, raw) if raw else {}
    brdy = details.get("brdy", "")
    age = str(_years(date.fromisoformat(brdy), day)) if brdy else ""
    return PersonShown(details.get("psn_no") or psn_no_sent, details.get("certno", ""), details.get("psn_name", ""),
                       details.get("psn_cert_type", ""), details.get("gend", ""), brdy, age,
                       base64.b64encode(raw).decode() if raw else "", details.get("psn_type", ""),
                       details.get("naty", ""), details.get("emp_name", ""))


def opened(person_key: Key, sealed: str) -> dict[str, str]:
    """The details a stored answer's `_sealed` holds."""
    return unseal(person_key, base64.b64decode(sealed)) if sealed else {}


def credential(data: dict[str, Any]) -> tuple[str, str] | None:
    """(mdtrt_cert_type, mdtrt_cert_no) as a request sends them, checked; None when it sends none."""
    kind, number = data.get("mdtrt_cert_type"), data.get("mdtrt_cert_no")
    if kind in (None, "") and number in (None, ""):
        return None
    if kind not in CERT_TYPES:
        raise CredentialError(Why.INVALID_FIELD, "mdtrt_cert_type: 01 e-voucher, 02 resident id number, "
                                                 "03 social-security card")
    if not isinstance(number, str) or not 1 <= len(number) <= vouchers.MAX_TOKEN_LEN:
        raise CredentialError(Why.INVALID_FIELD, "mdtrt_cert_no: the credential's number or token")
    return kind, number


def credential_person(person_key: Key, voucher_key: bytes, cred: tuple[str, str], now_s: float,
                      lookup, check_expiry: bool = True) -> str:
    """The person_ref a credential names: an e-voucher by its token (signed by the home region's
    voucher service, not expired); a resident id or card through the read model (`lookup`)."""
    kind, number = cred
    if kind == "01":
        voucher = vouchers.verify(voucher_key, number, now_s if check_expiry else 0)
        if isinstance(voucher, str):
            raise CredentialError(Why.CREDENTIAL_INVALID, f"the e-voucher token is {voucher}: "
                                                          "ask the patient to show the code again")
        return voucher.person_ref
    ref = lookup(credential_ref(person_key, kind, number))
    if ref is None:
        raise CredentialError(Why.PERSON_NOT_FOUND, "mdtrt_cert_no: no insured person holds this credential")
    return ref


def check_credential(person_key: Key, voucher_key: bytes, cred: tuple[str, str] | None, value: dict[str, Any],
                     now_s: float, check_expiry: bool) -> None:
    """That the credential a request shows names the person of the registration `value` (a
    resident id or card the bureau did not register cannot be checked, and is taken)."""
    if cred is None:
        return
    kind, number = cred
    if kind == "01":
        ref = credential_person(person_key, voucher_key, cred, now_s, lambda _c: None, check_expiry)
        if ref != value["person_ref"]:
            raise CredentialError(Why.CREDENTIAL_MISMATCH, "the e-voucher names another person")
        return
    known = value.get("credential_refs") or []
    if known and credential_ref(person_key, kind, number) not in known and number != _psn_no_of(value, person_key):
        raise CredentialError(Why.CREDENTIAL_MISMATCH, f"mdtrt_cert_no is not this person's "
                                                       f"{'resident id number' if kind == '02' else 'card'}")


def _psn_no_of(value: dict[str, Any], person_key: Key) -> str:
    raw = value.get("person_sealed") or b""
    return unseal(person_key, raw).get("psn_no", "") if raw else ""
