"""Off-site filings (备案) a home bureau files, changes and revokes for its pool's insured (the rules
in domain/model.py). Each change bumps the person's registration version and publishes the
person's whole registration, in the same transaction."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Callable

from hub.messaging import AvroCodec
from hub.privacy import Key, person_ref
from hub.registration.adapters.repository import FilingRow, PersonRow, RegistrationRepository, Unit
from hub.registration.domain.model import (FilingSpec, FilingType, Refused, Rejection, change_filing, new_filing,
                                           revoke_filing)
from hub.registration.service_layer.events import publish
from hub.registration.service_layer.refusals import RegistrationRefused, own, refuse


def create(repository: RegistrationRepository, codec: AvroCodec, person_key: Key, now: Callable[[], datetime],
           home_pool: str, psn_no: str, filing_type: str, target_pool: str, valid_from: date,
           valid_to: date | None) -> FilingSpec:
    at = now()
    with repository.unit() as unit:
        ref = person_ref(person_key, psn_no)
        person = own(unit.persons([ref]).get(ref), home_pool)
        spec = new_filing(f"F{home_pool}{uuid.uuid4().hex[:12].upper()}", home_pool, filing_type, target_pool,
                          valid_from, valid_to)
        if isinstance(spec, Refused):
            raise RegistrationRefused(spec)
        unit.save_filing(_row(person.person_ref, spec), new=True, now=at)
        _bump(unit, codec, person, "FILING_CREATED", at)
    return spec


def change(repository: RegistrationRepository, codec: AvroCodec, now: Callable[[], datetime], home_pool: str,
           filing_id: str, target_pool: str | None, valid_from: date | None, valid_to: date | None,
           clear_valid_to: bool = False) -> FilingSpec:
    with repository.unit() as unit:
        person, spec = _own_filing(unit, home_pool, filing_id)
        changed = change_filing(spec, home_pool, target_pool, valid_from, valid_to, clear_valid_to)
        if isinstance(changed, Refused):
            raise RegistrationRefused(changed)
        _store(unit, codec, person, changed, "FILING_CHANGED", now())
    return changed


def revoke(repository: RegistrationRepository, codec: AvroCodec, now: Callable[[], datetime], home_pool: str,
           filing_id: str) -> FilingSpec:
    with repository.unit() as unit:
        person, spec = _own_filing(unit, home_pool, filing_id)
        revoked = revoke_filing(spec)
        if isinstance(revoked, Refused):
            raise RegistrationRefused(revoked)
        _store(unit, codec, person, revoked, "FILING_REVOKED", now())
    return revoked


def _own_filing(unit: Unit, home_pool: str, filing_id: str) -> tuple[PersonRow, FilingSpec]:
    row = unit.filing(filing_id)
    if row is None:
        raise refuse(Rejection.FILING_NOT_FOUND, filing_id)
    person = own(unit.persons([row.person_ref]).get(row.person_ref), home_pool)
    return person, FilingSpec(row.filing_id, FilingType(row.filing_type), row.target_pool, row.valid_from,
                              row.valid_to, row.revoked)


def _store(unit: Unit, codec: AvroCodec, person: PersonRow, spec: FilingSpec, kind: str, at: datetime) -> None:
    unit.save_filing(_row(person.person_ref, spec), new=False, now=at)
    _bump(unit, codec, person, kind, at)


def _bump(unit: Unit, codec: AvroCodec, person: PersonRow, kind: str, at: datetime) -> None:
    person.registration_version += 1
    unit.set_version(person.person_ref, person.registration_version, at)
    publish(unit, codec, person, unit.filings([person.person_ref]).get(person.person_ref, []), kind, at)


def _row(ref: str, spec: FilingSpec) -> FilingRow:
    return FilingRow(spec.filing_id, ref, spec.filing_type.value, spec.target_pool, spec.valid_from, spec.valid_to,
                     spec.revoked)
