"""Importing a bureau's enrolment snapshot (CSV): the good rows applied in chunks, every bad row
reported with its reason. Re-importing the same file changes nothing: unchanged rows write and
publish nothing. Persons absent from the file are left as they are (ending an enrolment takes an
`enrolled_to` date)."""

from __future__ import annotations

import csv
import hashlib
import io
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable, Iterable

from hub.messaging import AvroCodec
from hub.privacy import Key, credential_ref, mask_person_id, person_ref, seal, unseal
from hub.registration.adapters.repository import ImportRecord, PersonRow, RegistrationRepository
from hub.registration.domain.model import CSV_COLUMNS, Enrolment, Identity, Refused, Rejection, parse_enrolment
from hub.registration.service_layer.events import publish
from hub.registration.service_layer.refusals import refuse

IMPORT_CHUNK_ROWS = 1000
MAX_IMPORT_ROWS = 2_000_000


@dataclass
class BadRow:
    line: int
    code: str
    message: str
    person_id_masked: str


@dataclass
class ImportReport:
    import_id: str
    home_pool: str
    rows_total: int = 0
    rows_changed: int = 0
    rows_unchanged: int = 0
    bad_rows: list[BadRow] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"import_id": self.import_id, "home_pool": self.home_pool, "rows_total": self.rows_total,
                "rows_changed": self.rows_changed, "rows_unchanged": self.rows_unchanged,
                "rows_bad": len(self.bad_rows), "bad_rows": [b.__dict__ for b in self.bad_rows]}


def credentials_of(person_key: Key, e: Enrolment) -> list[str]:
    """The keys of the credentials a hospital may identify the person by (02, 03)."""
    return [credential_ref(person_key, kind, number) for kind, number in (("02", e.certno), ("03", e.card_no)) if number]


def import_snapshot(repository: RegistrationRepository, codec: AvroCodec, person_key: Key, home_pool: str, text: str,
                    now: Callable[[], datetime], progress: Callable[[int], None] = lambda _n: None) -> ImportReport:
    """Apply the good rows of an enrolment snapshot; report every bad row with its reason. A file
    that is not CSV is refused whole (RegistrationRefused) before anything is written."""
    report = ImportReport(f"I{uuid.uuid4().hex[:12]}", home_pool)
    try:
        good = _read(person_key, text, report)
    except csv.Error as exc:
        raise refuse(Rejection.INVALID_CSV, str(exc)) from None
    if good is None:
        return report
    items = list(good.items())
    for start in range(0, len(items), IMPORT_CHUNK_ROWS):
        chunk = items[start:start + IMPORT_CHUNK_ROWS]
        _apply_chunk(repository, codec, person_key, home_pool, chunk, report, now())
        progress(len(chunk))
    report.bad_rows.sort(key=lambda b: b.line)
    with repository.unit() as unit:
        unit.record_import(ImportRecord(report.import_id, home_pool, hashlib.sha256(text.encode()).hexdigest(),
                                        report.rows_total, report.rows_changed, report.rows_unchanged,
                                        len(report.bad_rows)))
    return report


def _read(person_key: Key, text: str, report: ImportReport) -> dict[str, tuple[int, Enrolment]] | None:
    """The file's good rows by person (a person twice: neither), the bad ones into the report;
    None when the header lacks a required column."""
    # newline="": the csv module reads \r, \n and \r\n line ends itself (and inside quoted fields)
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff"), newline=""))
    missing = [c for c in CSV_COLUMNS[:3] if c not in (reader.fieldnames or [])]
    if missing:
        report.bad_rows.append(BadRow(1, "missing_columns", f"the header lacks {', '.join(missing)}", ""))
        return None
    good: dict[str, tuple[int, Enrolment]] = {}
    holder: dict[str, str] = {}  # credential_ref -> person_ref, within the file
    for line, row in enumerate(reader, start=2):
        report.rows_total += 1
        if report.rows_total > MAX_IMPORT_ROWS:
            raise refuse(Rejection.TOO_MANY_ROWS, f"at most {MAX_IMPORT_ROWS} rows")
        parsed = parse_enrolment(row)
        masked = mask_person_id((row.get("psn_no") or "").strip()) if isinstance(row.get("psn_no"), str) else ""
        if isinstance(parsed, Refused):
            report.bad_rows.append(BadRow(line, parsed.code, parsed.message, masked))
            continue
        ref = person_ref(person_key, parsed.psn_no)
        if ref in good:
            first_line = good.pop(ref)[0]
            report.bad_rows.append(BadRow(line, Rejection.DUPLICATE_PERSON.code,
                                          f"{Rejection.DUPLICATE_PERSON.message} (also line {first_line}); neither applied",
                                          masked))
            continue
        clash = [c for c in credentials_of(person_key, parsed) if holder.get(c, ref) != ref]
        if clash:
            report.bad_rows.append(BadRow(line, Rejection.DUPLICATE_CREDENTIAL.code,
                                          f"{Rejection.DUPLICATE_CREDENTIAL.message} (earlier in the file)", masked))
            continue
        holder.update(dict.fromkeys(credentials_of(person_key, parsed), ref))
        good[ref] = (line, parsed)
    return good


def _apply_chunk(repository: RegistrationRepository, codec: AvroCodec, person_key: Key, home_pool: str,
                 chunk: list[tuple[str, tuple[int, Enrolment]]], report: ImportReport, now: datetime) -> None:
    with repository.unit() as unit:
        existing = unit.persons([ref for ref, _ in chunk])
        held = unit.credential_holders(sorted({c for _, (_, e) in chunk for c in credentials_of(person_key, e)}))
        inserts, updates, changed = [], [], []
        for ref, (line, e) in chunk:
            old = existing.get(ref)
            if old is not None and old.home_pool != home_pool:
                report.bad_rows.append(BadRow(line, Rejection.PERSON_OF_ANOTHER_POOL.code,
                                              Rejection.PERSON_OF_ANOTHER_POOL.message, mask_person_id(e.psn_no)))
                continue
            credentials = credentials_of(person_key, e)
            if any(held.get(c, ref) != ref for c in credentials):
                report.bad_rows.append(BadRow(line, Rejection.DUPLICATE_CREDENTIAL.code,
                                              Rejection.DUPLICATE_CREDENTIAL.message, mask_person_id(e.psn_no)))
                continue
            person = PersonRow(ref, old.person_id_masked if old else mask_person_id(e.psn_no), home_pool,
                               e.insurance_type, e.enrolled_from, e.enrolled_to, e.benefits_from,
                               list(e.special_populations), [_identity_json(i) for i in e.identities], b"", credentials,
                               1 if old is None else old.registration_version)
            if old is not None and _same(old, person) and unseal(person_key, old.sealed) == e.details():
                report.rows_unchanged += 1
                continue
            person.sealed = seal(person_key, e.details())
            if old is None:
                inserts.append(person)
                changed.append((person, "ENROLLED"))
            else:
                person.registration_version = old.registration_version + 1
                updates.append(person)
                changed.append((person, "ENROLMENT_ENDED" if e.enrolled_to else "ENROLMENT_CHANGED"))
        unit.save_persons(inserts, updates, now)
        filings = unit.filings([p.person_ref for p in updates]) if updates else {}
        for person, kind in changed:
            publish(unit, codec, person, filings.get(person.person_ref, []), kind, now)
        report.rows_changed += len(changed)


_COMPARED = ("insurance_type", "enrolled_from", "enrolled_to", "benefits_from", "special_populations", "identities",
             "credential_refs")


def _same(old: PersonRow, new: PersonRow) -> bool:
    return all(getattr(old, k) == getattr(new, k) for k in _COMPARED)


def _identity_json(i: Identity) -> dict:
    return {"population": i.population, "begins": i.begins.isoformat() if i.begins else None,
            "ends": i.ends.isoformat() if i.ends else None}


def bulk_rows(rows: Iterable[dict]) -> str:
    """A CSV text in the import format (used by the simulator and tests)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(CSV_COLUMNS))
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()
