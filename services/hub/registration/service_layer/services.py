"""Registration use cases: import an enrolment snapshot, file / change / revoke filings, answer
a person's status. Every change writes the person's whole registration to the outbox in the
same transaction, so `registration.events` (compacted, keyed by person) always ends with the
person's current state and a crash between commit and publish loses nothing."""

from __future__ import annotations

import csv
import hashlib
import io
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Callable, Iterable

import sqlalchemy as sa

from hub.messaging import AvroCodec
from hub.messaging.topics import REGISTRATION_EVENTS
from hub.registration.adapters import database as db
from hub.registration.domain.model import (
    CSV_COLUMNS,
    Enrolment,
    Identity,
    FilingSpec,
    FilingType,
    Refused,
    Rejection,
    change_filing,
    new_filing,
    parse_enrolment,
    revoke_filing,
)
from hub import vouchers
from hub.privacy import credential_ref, mask_person_id, person_ref, seal, unseal

PRODUCER = "registration"
IMPORT_CHUNK_ROWS = 1000
MAX_IMPORT_ROWS = 2_000_000


class RegistrationError(Exception):
    """A refused request: HTTP status, stable code, message."""

    def __init__(self, status: int, refused: Refused):
        super().__init__(refused.message)
        self.status = status
        self.code = refused.code
        self.message = refused.message


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


class RegistrationService:
    def __init__(self, engine: sa.Engine, codec: AvroCodec, person_key: bytes, voucher_key: bytes = b""):
        self.engine = engine
        self.codec = codec
        self.person_key = person_key
        self.voucher_key = voucher_key

    def credentials_of(self, e: Enrolment) -> list[str]:
        """The keys of the credentials a hospital may identify the person by (02, 03)."""
        return [credential_ref(self.person_key, kind, number)
                for kind, number in (("02", e.certno), ("03", e.card_no)) if number]

    # ------------------------------------------------------------------ events

    def _event(self, person: dict, filing_rows: list, change_kind: str, now: datetime) -> dict:
        return {
            "event_id": uuid.uuid4(), "event_time": now, "producer": PRODUCER, "schema_version": 3,
            "person_ref": person["person_ref"], "person_id_masked": person["person_id_masked"],
            "home_pool": person["home_pool"], "registration_version": person["registration_version"],
            "change_kind": change_kind,
            "person_sealed": bytes(person["sealed"]) if person.get("sealed") else None,
            "credential_refs": list(person.get("credential_refs") or ()),
            "enrolment": {
                "insurance_type": person["insurance_type"], "enrolled_from": person["enrolled_from"],
                "enrolled_to": person["enrolled_to"], "benefits_from": person["benefits_from"],
                "special_populations": list(person["special_populations"]),
                "identities": [{"population": i["population"], "begins": _date(i.get("begins")),
                                "ends": _date(i.get("ends"))} for i in person.get("identities") or ()],
            },
            "filings": [{"filing_id": f.filing_id, "filing_type": f.filing_type, "target_pool": f.target_pool,
                         "valid_from": f.valid_from, "valid_to": f.valid_to, "revoked": f.revoked}
                        for f in sorted(filing_rows, key=lambda f: f.filing_id)],
        }

    def _outbox_rows(self, events: list[dict]) -> list[dict]:
        return [{"topic": REGISTRATION_EVENTS.name, "message_key": e["person_ref"],
                 "payload": self.codec.encode("RegistrationChanged", e)} for e in events]

    def _publish_state(self, conn: sa.Connection, ref: str, change_kind: str, now: datetime) -> None:
        person = conn.execute(sa.select(db.persons).where(db.persons.c.person_ref == ref)).one()
        rows = conn.execute(sa.select(db.filings).where(db.filings.c.person_ref == ref)).all()
        conn.execute(db.outbox.insert(), self._outbox_rows([self._event(person._asdict(), rows, change_kind, now)]))

    # ------------------------------------------------------------------ enrolment import

    def import_snapshot(self, home_pool: str, text: str,
                        progress: Callable[[int], None] = lambda _n: None) -> ImportReport:
        """Apply the good rows of an enrolment snapshot CSV; report every bad row with its reason.

        Re-importing the same file changes nothing: unchanged rows write nothing and publish nothing.
        Persons absent from the file are left as they are (ending an enrolment takes an
        `enrolled_to` date)."""
        try:
            return self._import_snapshot(home_pool, text, progress)
        except csv.Error as exc:  # nothing was written: the rows are applied only after the whole file is read
            raise RegistrationError(400, Refused(Rejection.INVALID_CSV, str(exc))) from None

    def _import_snapshot(self, home_pool: str, text: str, progress: Callable[[int], None]) -> ImportReport:
        report = ImportReport(f"I{uuid.uuid4().hex[:12]}", home_pool)
        # newline="": the csv module reads \r, \n and \r\n line ends itself (and inside quoted fields)
        reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff"), newline=""))
        missing = [c for c in CSV_COLUMNS[:3] if c not in (reader.fieldnames or [])]
        if missing:
            report.bad_rows.append(BadRow(1, "missing_columns", f"the header lacks {', '.join(missing)}", ""))
            return report
        good: dict[str, tuple[int, Enrolment]] = {}
        holder: dict[str, str] = {}  # credential_ref -> person_ref, within the file
        for line, row in enumerate(reader, start=2):
            report.rows_total += 1
            if report.rows_total > MAX_IMPORT_ROWS:
                raise RegistrationError(413, Refused(Rejection.WRONG_COLUMN_COUNT, f"at most {MAX_IMPORT_ROWS} rows"))
            parsed = parse_enrolment(row)
            masked = mask_person_id((row.get("psn_no") or "").strip()) if isinstance(row.get("psn_no"), str) else ""
            if isinstance(parsed, Refused):
                report.bad_rows.append(BadRow(line, parsed.code, parsed.message, masked))
                continue
            ref = person_ref(self.person_key, parsed.psn_no)
            if ref in good:
                first_line = good.pop(ref)[0]
                report.bad_rows.append(BadRow(line, Rejection.DUPLICATE_PERSON.code,
                                              f"{Rejection.DUPLICATE_PERSON.message} (also line {first_line}); neither applied", masked))
                continue
            clash = [c for c in self.credentials_of(parsed) if holder.get(c, ref) != ref]
            if clash:
                report.bad_rows.append(BadRow(line, Rejection.DUPLICATE_CREDENTIAL.code,
                                              f"{Rejection.DUPLICATE_CREDENTIAL.message} (earlier in the file)", masked))
                continue
            holder.update(dict.fromkeys(self.credentials_of(parsed), ref))
            good[ref] = (line, parsed)
        items = list(good.items())
        for start in range(0, len(items), IMPORT_CHUNK_ROWS):
            chunk = items[start:start + IMPORT_CHUNK_ROWS]
            self._apply_chunk(home_pool, chunk, report)
            progress(len(chunk))
        report.bad_rows.sort(key=lambda b: b.line)
        with self.engine.begin() as conn:
            conn.execute(db.imports.insert().values(
                import_id=report.import_id, home_pool=home_pool,
                file_sha256=hashlib.sha256(text.encode()).hexdigest(), rows_total=report.rows_total,
                rows_changed=report.rows_changed, rows_unchanged=report.rows_unchanged, rows_bad=len(report.bad_rows)))
        return report

    def _apply_chunk(self, home_pool: str, chunk: list[tuple[str, tuple[int, Enrolment]]], report: ImportReport) -> None:
        now = datetime.now(timezone.utc)
        with self.engine.begin() as conn:
            refs = [ref for ref, _ in chunk]
            existing = {r.person_ref: r for r in conn.execute(
                sa.select(db.persons).where(db.persons.c.person_ref.in_(refs)).with_for_update())}
            wanted = {c for _, (_, e) in chunk for c in self.credentials_of(e)}
            held = dict(conn.execute(sa.select(db.credentials.c.credential_ref, db.credentials.c.person_ref)
                                     .where(db.credentials.c.credential_ref.in_(wanted))).all()) if wanted else {}
            inserts, updates, events_for = [], [], []
            for ref, (line, e) in chunk:
                old = existing.get(ref)
                if old is not None and old.home_pool != home_pool:
                    report.bad_rows.append(BadRow(line, Rejection.PERSON_OF_ANOTHER_POOL.code,
                                                  Rejection.PERSON_OF_ANOTHER_POOL.message, mask_person_id(e.psn_no)))
                    continue
                credentials = self.credentials_of(e)
                if any(held.get(c, ref) != ref for c in credentials):
                    report.bad_rows.append(BadRow(line, Rejection.DUPLICATE_CREDENTIAL.code,
                                                  Rejection.DUPLICATE_CREDENTIAL.message, mask_person_id(e.psn_no)))
                    continue
                values = dict(insurance_type=e.insurance_type, enrolled_from=e.enrolled_from, enrolled_to=e.enrolled_to,
                              benefits_from=e.benefits_from, special_populations=list(e.special_populations),
                              identities=[_identity_json(i) for i in e.identities], credential_refs=credentials)
                if old is not None and all(getattr(old, k) == v for k, v in values.items()) \
                        and unseal(self.person_key, old.sealed) == e.details():
                    report.rows_unchanged += 1
                    continue
                person = dict(person_ref=ref, person_id_masked=mask_person_id(e.psn_no), home_pool=home_pool,
                              registration_version=1 if old is None else old.registration_version + 1,
                              sealed=seal(self.person_key, e.details()), **values)
                if old is None:
                    inserts.append(person)
                    events_for.append((person, "ENROLLED"))
                else:
                    person["person_id_masked"] = old.person_id_masked
                    updates.append(person)
                    events_for.append((person, "ENROLMENT_ENDED" if e.enrolled_to else "ENROLMENT_CHANGED"))
            _store_persons(conn, inserts, updates)
            filings_of: dict[str, list] = {}
            if updates:
                for f in conn.execute(sa.select(db.filings).where(db.filings.c.person_ref.in_([u["person_ref"] for u in updates]))):
                    filings_of.setdefault(f.person_ref, []).append(f)
            events = [self._event(p, filings_of.get(p["person_ref"], []), kind, now) for p, kind in events_for]
            if events:
                conn.execute(db.outbox.insert(), self._outbox_rows(events))
            report.rows_changed += len(events)

    # ------------------------------------------------------------------ filings

    def _person_for_update(self, conn: sa.Connection, home_pool: str, psn_no: str):
        ref = person_ref(self.person_key, psn_no)
        person = conn.execute(sa.select(db.persons).where(db.persons.c.person_ref == ref).with_for_update()).first()
        if person is None:
            raise RegistrationError(404, Refused(Rejection.PERSON_NOT_ENROLLED))
        if person.home_pool != home_pool:
            raise RegistrationError(403, Refused(Rejection.PERSON_OF_ANOTHER_POOL))
        return person

    def _bump(self, conn: sa.Connection, person, kind: str, now: datetime) -> None:
        conn.execute(db.persons.update().where(db.persons.c.person_ref == person.person_ref)
                     .values(registration_version=person.registration_version + 1, updated_at=now))
        self._publish_state(conn, person.person_ref, kind, now)

    def create_filing(self, home_pool: str, psn_no: str, filing_type: str, target_pool: str, valid_from: date,
                      valid_to: date | None) -> FilingSpec:
        now = datetime.now(timezone.utc)
        with self.engine.begin() as conn:
            person = self._person_for_update(conn, home_pool, psn_no)
            spec = new_filing(f"F{home_pool}{uuid.uuid4().hex[:12].upper()}", home_pool, filing_type, target_pool,
                              valid_from, valid_to)
            if isinstance(spec, Refused):
                raise RegistrationError(422, spec)
            conn.execute(db.filings.insert().values(
                filing_id=spec.filing_id, person_ref=person.person_ref, filing_type=spec.filing_type.value,
                target_pool=spec.target_pool, valid_from=spec.valid_from, valid_to=spec.valid_to))
            self._bump(conn, person, "FILING_CREATED", now)
        return spec

    def _filing_for_update(self, conn: sa.Connection, home_pool: str, filing_id: str):
        row = conn.execute(sa.select(db.filings, db.persons.c.home_pool, db.persons.c.registration_version)
                           .join(db.persons, db.persons.c.person_ref == db.filings.c.person_ref)
                           .where(db.filings.c.filing_id == filing_id).with_for_update()).first()
        if row is None:
            raise RegistrationError(404, Refused(Rejection.FILING_NOT_FOUND, filing_id))
        if row.home_pool != home_pool:
            raise RegistrationError(403, Refused(Rejection.PERSON_OF_ANOTHER_POOL))
        spec = FilingSpec(row.filing_id, FilingType(row.filing_type), row.target_pool, row.valid_from, row.valid_to,
                          row.revoked)
        return row, spec

    def _store_filing(self, conn: sa.Connection, row, spec: FilingSpec, kind: str) -> None:
        now = datetime.now(timezone.utc)
        conn.execute(db.filings.update().where(db.filings.c.filing_id == spec.filing_id).values(
            target_pool=spec.target_pool, valid_from=spec.valid_from, valid_to=spec.valid_to, revoked=spec.revoked,
            updated_at=now))
        person = conn.execute(sa.select(db.persons).where(db.persons.c.person_ref == row.person_ref).with_for_update()).one()
        self._bump(conn, person, kind, now)

    def change_filing(self, home_pool: str, filing_id: str, target_pool: str | None, valid_from: date | None,
                      valid_to: date | None, clear_valid_to: bool = False) -> FilingSpec:
        with self.engine.begin() as conn:
            row, spec = self._filing_for_update(conn, home_pool, filing_id)
            changed = change_filing(spec, home_pool, target_pool, valid_from, valid_to, clear_valid_to)
            if isinstance(changed, Refused):
                raise RegistrationError(409 if changed.reason is Rejection.FILING_REVOKED else 422, changed)
            self._store_filing(conn, row, changed, "FILING_CHANGED")
        return changed

    def revoke_filing(self, home_pool: str, filing_id: str) -> FilingSpec:
        with self.engine.begin() as conn:
            row, spec = self._filing_for_update(conn, home_pool, filing_id)
            revoked = revoke_filing(spec)
            if isinstance(revoked, Refused):
                raise RegistrationError(409, revoked)
            self._store_filing(conn, row, revoked, "FILING_REVOKED")
        return revoked

    # ------------------------------------------------------------------ e-vouchers

    def issue_voucher(self, home_pool: str, psn_no: str, now: datetime) -> dict:
        """The home region's voucher service: a short-lived e-voucher token (mdtrt_cert_type 01)
        for one of its pool's enrolled persons, to show at an out-of-region hospital."""
        ref = person_ref(self.person_key, psn_no)
        with self.engine.connect() as conn:
            person = conn.execute(sa.select(db.persons.c.home_pool, db.persons.c.enrolled_to)
                                  .where(db.persons.c.person_ref == ref)).first()
        if person is None:
            raise RegistrationError(404, Refused(Rejection.PERSON_NOT_ENROLLED))
        if person.home_pool != home_pool:
            raise RegistrationError(403, Refused(Rejection.PERSON_OF_ANOTHER_POOL))
        if person.enrolled_to is not None and person.enrolled_to < now.date():
            raise RegistrationError(409, Refused(Rejection.PERSON_NOT_ENROLLED, "the enrolment has ended"))
        token, expires = vouchers.issue(self.voucher_key, home_pool, ref, now.timestamp())
        return {"ec_token": token, "mdtrt_cert_type": "01",
                "expires_at": datetime.fromtimestamp(expires, timezone.utc).isoformat()}

    # ------------------------------------------------------------------ status

    def status(self, home_pool: str, psn_no: str, region: str, day: date) -> dict:
        """The person's standing for care in `region` on `day`: enrolment and the filings that count."""
        ref = person_ref(self.person_key, psn_no)
        with self.engine.connect() as conn:
            person = conn.execute(sa.select(db.persons).where(db.persons.c.person_ref == ref)).first()
            if person is None:
                raise RegistrationError(404, Refused(Rejection.PERSON_NOT_ENROLLED))
            if person.home_pool != home_pool:
                raise RegistrationError(403, Refused(Rejection.PERSON_OF_ANOTHER_POOL))
            rows = conn.execute(sa.select(db.filings).where(db.filings.c.person_ref == ref)).all()
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


_UPDATED = ("insurance_type", "enrolled_from", "enrolled_to", "benefits_from", "special_populations", "identities",
            "sealed", "credential_refs", "registration_version")


def _store_persons(conn: sa.Connection, inserts: list[dict], updates: list[dict]) -> None:
    """A chunk's new and changed persons, set-wise (one statement per kind), and each changed
    person's credentials as the file now gives them."""
    if inserts:
        conn.execute(db.persons.insert(), inserts)
    if updates:
        conn.execute(db.persons.update().where(db.persons.c.person_ref == sa.bindparam("ref"))
                     .values({k: sa.bindparam(k) for k in _UPDATED}),
                     [{**{k: u[k] for k in _UPDATED}, "ref": u["person_ref"]} for u in updates])
    changed = [p["person_ref"] for p in inserts + updates]
    if changed:
        conn.execute(db.credentials.delete().where(db.credentials.c.person_ref.in_(changed)))
        rows = [{"credential_ref": c, "person_ref": p["person_ref"]} for p in inserts + updates
                for c in p["credential_refs"]]
        if rows:
            conn.execute(db.credentials.insert(), rows)


def _identity_json(i: Identity) -> dict:
    return {"population": i.population, "begins": i.begins.isoformat() if i.begins else None,
            "ends": i.ends.isoformat() if i.ends else None}


def _date(value) -> date | None:
    return date.fromisoformat(value) if isinstance(value, str) else value


def _targets(target_pool: str, region: str) -> bool:
    return target_pool == region or (target_pool.endswith("0000") and target_pool[:2] == region[:2])


def bulk_rows(rows: Iterable[dict]) -> str:
    """A CSV text in the import format (used by the simulator and tests)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(CSV_COLUMNS))
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()
