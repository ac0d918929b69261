"""A person's whole registration as the RegistrationChanged record: written to the outbox with
every change, so registration.events (compacted, keyed by person) always ends with the person's
current state."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from hub.messaging import AvroCodec
from hub.registration.adapters.repository import FilingRow, PersonRow, Unit

PRODUCER = "registration"


def registration_changed(person: PersonRow, filings: list[FilingRow], change_kind: str, now: datetime) -> dict:
    return {
        "event_id": uuid.uuid4(), "event_time": now, "producer": PRODUCER, "schema_version": 3,
        "person_ref": person.person_ref, "person_id_masked": person.person_id_masked,
        "home_pool": person.home_pool, "registration_version": person.registration_version,
        "change_kind": change_kind, "person_sealed": bytes(person.sealed) if person.sealed else None,
        "credential_refs": list(person.credential_refs),
        "enrolment": {
            "insurance_type": person.insurance_type, "enrolled_from": person.enrolled_from,
            "enrolled_to": person.enrolled_to, "benefits_from": person.benefits_from,
            "special_populations": list(person.special_populations),
            "identities": [{"population": i["population"], "begins": _date(i.get("begins")), "ends": _date(i.get("ends"))}
                           for i in person.identities],
        },
        "filings": [{"filing_id": f.filing_id, "filing_type": f.filing_type, "target_pool": f.target_pool,
                     "valid_from": f.valid_from, "valid_to": f.valid_to, "revoked": f.revoked}
                    for f in sorted(filings, key=lambda f: f.filing_id)],
    }


def publish(unit: Unit, codec: AvroCodec, person: PersonRow, filings: list[FilingRow], change_kind: str,
            now: datetime) -> None:
    unit.emit(person.person_ref, codec.encode("RegistrationChanged", registration_changed(person, filings, change_kind, now)))


def _date(value) -> date | None:
    return date.fromisoformat(value) if isinstance(value, str) else value
