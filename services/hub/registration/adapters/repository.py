"""The registration service's repository: every statement on its tables, behind one unit of work
(a transaction: committed on a clean exit, rolled back on an exception), and the reads outside
one. The use cases (service_layer) decide; this module only stores. A fake that keeps the same
rows in memory serves their unit tests (tests/unit/registration/fakes.py)."""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Iterator, Sequence

import sqlalchemy as sa

from hub.messaging.topics import REGISTRATION_EVENTS
from hub.registration.adapters import database as db


@dataclass
class PersonRow:
    person_ref: str
    person_id_masked: str
    home_pool: str
    insurance_type: str
    enrolled_from: date
    enrolled_to: date | None
    benefits_from: date
    special_populations: list[str]
    identities: list[dict[str, Any]]  # {population, begins, ends}: ISO dates or None
    sealed: bytes
    credential_refs: list[str]
    registration_version: int


@dataclass
class FilingRow:
    filing_id: str
    person_ref: str
    filing_type: str
    target_pool: str
    valid_from: date
    valid_to: date | None
    revoked: bool = False


@dataclass
class ImportRecord:
    import_id: str
    home_pool: str
    file_sha256: str
    rows_total: int
    rows_changed: int
    rows_unchanged: int
    rows_bad: int


PERSON_COLUMNS = tuple(PersonRow.__dataclass_fields__)
FILING_COLUMNS = tuple(FilingRow.__dataclass_fields__)


class Unit(ABC):
    """One transaction on the registration database."""

    @abstractmethod
    def persons(self, refs: Sequence[str], lock: bool = True) -> dict[str, PersonRow]:
        """The persons named, locked to the end of the transaction (unless `lock` is false)."""

    @abstractmethod
    def credential_holders(self, credential_refs: Sequence[str]) -> dict[str, str]:
        """credential_ref -> the person_ref that holds it, for those held."""

    @abstractmethod
    def save_persons(self, inserts: Sequence[PersonRow], updates: Sequence[PersonRow], now: datetime) -> None:
        """New and changed persons, and each one's credentials as its row now gives them."""

    @abstractmethod
    def filings(self, refs: Sequence[str]) -> dict[str, list[FilingRow]]:
        """Every filing of the persons named."""

    @abstractmethod
    def filing(self, filing_id: str) -> FilingRow | None:
        """One filing, locked to the end of the transaction."""

    @abstractmethod
    def save_filing(self, filing: FilingRow, new: bool, now: datetime) -> None:
        """A filing added (`new`) or changed."""

    @abstractmethod
    def set_version(self, person_ref: str, version: int, now: datetime) -> None:
        """The person's registration version after a change of its filings."""

    @abstractmethod
    def emit(self, key: str, payload: bytes) -> None:
        """A RegistrationChanged for the outbox, published after the transaction commits."""

    @abstractmethod
    def record_import(self, record: ImportRecord) -> None:
        """An enrolment import's report."""


class RegistrationRepository(ABC):
    @abstractmethod
    def unit(self) -> contextlib.AbstractContextManager[Unit]:
        """A unit of work: committed on a clean exit, rolled back on an exception."""

    @abstractmethod
    def person(self, person_ref: str) -> PersonRow | None:
        """A person as committed (nothing locked)."""

    @abstractmethod
    def filings_of(self, person_ref: str) -> list[FilingRow]:
        """A person's filings as committed."""


# ---------------------------------------------------------------------------- PostgreSQL


class PostgresUnit(Unit):
    def __init__(self, conn: sa.Connection):
        self.conn = conn

    def persons(self, refs: Sequence[str], lock: bool = True) -> dict[str, PersonRow]:
        if not refs:
            return {}
        query = sa.select(*(db.persons.c[c] for c in PERSON_COLUMNS)).where(db.persons.c.person_ref.in_(list(refs)))
        rows = self.conn.execute(query.with_for_update() if lock else query)
        return {r.person_ref: _person(r) for r in rows}

    def credential_holders(self, credential_refs: Sequence[str]) -> dict[str, str]:
        if not credential_refs:
            return {}
        c = db.credentials.c
        return dict(self.conn.execute(sa.select(c.credential_ref, c.person_ref)
                                      .where(c.credential_ref.in_(list(credential_refs)))).all())

    def save_persons(self, inserts: Sequence[PersonRow], updates: Sequence[PersonRow], now: datetime) -> None:
        """Set-wise: one statement per kind, and each changed person's credentials anew."""
        if inserts:
            self.conn.execute(db.persons.insert(), [_row(p) | {"updated_at": now} for p in inserts])
        if updates:
            kept = [c for c in PERSON_COLUMNS if c not in ("person_ref", "person_id_masked", "home_pool")]
            self.conn.execute(db.persons.update().where(db.persons.c.person_ref == sa.bindparam("ref"))
                              .values({k: sa.bindparam(k) for k in (*kept, "updated_at")}),
                              [{**{k: getattr(p, k) for k in kept}, "updated_at": now, "ref": p.person_ref}
                               for p in updates])
        changed = [p.person_ref for p in [*inserts, *updates]]
        if changed:
            self.conn.execute(db.credentials.delete().where(db.credentials.c.person_ref.in_(changed)))
            rows = [{"credential_ref": c, "person_ref": p.person_ref} for p in [*inserts, *updates]
                    for c in p.credential_refs]
            if rows:
                self.conn.execute(db.credentials.insert(), rows)

    def filings(self, refs: Sequence[str]) -> dict[str, list[FilingRow]]:
        found: dict[str, list[FilingRow]] = {}
        if refs:
            for r in self.conn.execute(sa.select(*(db.filings.c[c] for c in FILING_COLUMNS))
                                       .where(db.filings.c.person_ref.in_(list(refs)))):
                found.setdefault(r.person_ref, []).append(FilingRow(*r))
        return found

    def filing(self, filing_id: str) -> FilingRow | None:
        row = self.conn.execute(sa.select(*(db.filings.c[c] for c in FILING_COLUMNS))
                                .where(db.filings.c.filing_id == filing_id).with_for_update()).first()
        return FilingRow(*row) if row else None

    def save_filing(self, filing: FilingRow, new: bool, now: datetime) -> None:
        values = {k: getattr(filing, k) for k in FILING_COLUMNS}
        if new:
            self.conn.execute(db.filings.insert().values(**values))
        else:
            self.conn.execute(db.filings.update().where(db.filings.c.filing_id == filing.filing_id)
                              .values(**values, updated_at=now))

    def set_version(self, person_ref: str, version: int, now: datetime) -> None:
        self.conn.execute(db.persons.update().where(db.persons.c.person_ref == person_ref)
                          .values(registration_version=version, updated_at=now))

    def emit(self, key: str, payload: bytes) -> None:
        self.conn.execute(db.outbox.insert(), [{"topic": REGISTRATION_EVENTS.name, "message_key": key,
                                                "payload": payload}])

    def record_import(self, record: ImportRecord) -> None:
        self.conn.execute(db.imports.insert().values(**record.__dict__))


class PostgresRegistrationRepository(RegistrationRepository):
    def __init__(self, engine: sa.Engine):
        self.engine = engine

    @contextlib.contextmanager
    def unit(self) -> Iterator[Unit]:
        with self.engine.begin() as conn:
            yield PostgresUnit(conn)

    def person(self, person_ref: str) -> PersonRow | None:
        with self.engine.connect() as conn:
            return PostgresUnit(conn).persons([person_ref], lock=False).get(person_ref)

    def filings_of(self, person_ref: str) -> list[FilingRow]:
        with self.engine.connect() as conn:
            return PostgresUnit(conn).filings([person_ref]).get(person_ref, [])


def _person(r) -> PersonRow:
    values = dict(r._mapping)
    values["sealed"] = bytes(values["sealed"] or b"")
    values["special_populations"] = list(values["special_populations"] or ())
    values["credential_refs"] = list(values["credential_refs"] or ())
    values["identities"] = list(values["identities"] or ())
    return PersonRow(**values)


def _row(p: PersonRow) -> dict[str, Any]:
    return {k: getattr(p, k) for k in PERSON_COLUMNS}
