"""What a bureau asks of one of its insured: their standing for care in a region on a day, and an
e-voucher (电子凭证) token to show at an out-of-region hospital."""

from __future__ import annotations

from datetime import date, datetime, timezone

from hub import vouchers
from hub.privacy import Key, person_ref
from hub.registration.adapters.repository import RegistrationRepository
from hub.registration.domain.model import Rejection
from hub.registration.service_layer.refusals import own, refuse


def issue_voucher(repository: RegistrationRepository, person_key: Key, voucher_key: bytes, home_pool: str,
                  psn_no: str, now: datetime) -> dict:
    """The home region's voucher service: a short-lived token (mdtrt_cert_type 01) for one of its
    pool's enrolled persons."""
    person = own(repository.person(person_ref(person_key, psn_no)), home_pool)
    if person.enrolled_to is not None and person.enrolled_to < now.date():
        raise refuse(Rejection.ENROLMENT_ENDED)
    token, expires = vouchers.issue(voucher_key, home_pool, person.person_ref, now.timestamp())
    return {"ec_token": token, "mdtrt_cert_type": "01",
            "expires_at": datetime.fromtimestamp(expires, timezone.utc).isoformat()}


def status(repository: RegistrationRepository, person_key: Key, home_pool: str, psn_no: str, region: str,
           day: date) -> dict:
    """The person's standing for care in `region` on `day`: enrolment and the filings that count."""
    person = own(repository.person(person_ref(person_key, psn_no)), home_pool)
    rows = repository.filings_of(person.person_ref)
    enrolled = person.enrolled_from <= day and (person.enrolled_to is None or person.enrolled_to >= day)
    valid = [f for f in rows if not f.revoked and _targets(f.target_pool, region) and f.valid_from <= day
             and (f.valid_to is None or f.valid_to >= day)]
    expired = [f for f in rows if not f.revoked and _targets(f.target_pool, region)
               and f.valid_to is not None and f.valid_to < day]
    return {
        "person_id_masked": person.person_id_masked, "home_pool": person.home_pool, "region": region,
        "date": day.isoformat(), "enrolled": enrolled, "in_waiting_period": enrolled and person.benefits_from > day,
        "insurance_type": person.insurance_type,
        "filings_in_force": [{"filing_id": f.filing_id, "filing_type": f.filing_type,
                              "valid_to": f.valid_to.isoformat() if f.valid_to else None} for f in valid],
        "filings_expired": [f.filing_id for f in expired],
        "off_site_status": "IN_POOL" if region == person.home_pool else ("FILED" if valid else "UNREGISTERED"),
    }


def _targets(target_pool: str, region: str) -> bool:
    return target_pool == region or (target_pool.endswith("0000") and target_pool[:2] == region[:2])
