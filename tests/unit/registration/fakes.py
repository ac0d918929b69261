"""The registration repository in memory, for unit tests of its use cases: the same interface as
PostgresRegistrationRepository, each unit of work on a copy of the tables that replaces them only
when it ends without an exception (so a refusal changes nothing)."""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass, field
from datetime import datetime
from typing import Iterator, Sequence

from hub.registration.adapters.repository import (FilingRow, ImportRecord, PersonRow, RegistrationRepository,
                                                  Unit)


@dataclass
class Tables:
    persons: dict[str, PersonRow] = field(default_factory=dict)
    filings: dict[str, FilingRow] = field(default_factory=dict)
    credentials: dict[str, str] = field(default_factory=dict)  # credential_ref -> person_ref
    imports: list[ImportRecord] = field(default_factory=list)
    outbox: list[tuple[str, bytes]] = field(default_factory=list)


class FakeUnit(Unit):
    def __init__(self, tables: Tables):
        self.t = tables

    def persons(self, refs: Sequence[str], lock: bool = True) -> dict[str, PersonRow]:
        return {r: copy.deepcopy(self.t.persons[r]) for r in refs if r in self.t.persons}

    def credential_holders(self, credential_refs: Sequence[str]) -> dict[str, str]:
        return {c: self.t.credentials[c] for c in credential_refs if c in self.t.credentials}

    def save_persons(self, inserts: Sequence[PersonRow], updates: Sequence[PersonRow], now: datetime) -> None:
        for p in inserts:
            if p.person_ref in self.t.persons:
                raise KeyError(f"duplicate key: person {p.person_ref}")
        for p in [*inserts, *updates]:
            self.t.persons[p.person_ref] = copy.deepcopy(p)
            self.t.credentials = {c: r for c, r in self.t.credentials.items() if r != p.person_ref}
            for c in p.credential_refs:
                if c in self.t.credentials:
                    raise KeyError(f"duplicate key: credential {c}")
                self.t.credentials[c] = p.person_ref

    def filings(self, refs: Sequence[str]) -> dict[str, list[FilingRow]]:
        found: dict[str, list[FilingRow]] = {}
        for f in self.t.filings.values():
            if f.person_ref in refs:
                found.setdefault(f.person_ref, []).append(copy.deepcopy(f))
        return found

    def filing(self, filing_id: str) -> FilingRow | None:
        return copy.deepcopy(self.t.filings.get(filing_id))

    def save_filing(self, filing: FilingRow, new: bool, now: datetime) -> None:
        if new == (filing.filing_id in self.t.filings):
            raise KeyError(f"filing {filing.filing_id}: {'exists' if new else 'missing'}")
        self.t.filings[filing.filing_id] = copy.deepcopy(filing)

    def set_version(self, person_ref: str, version: int, now: datetime) -> None:
        self.t.persons[person_ref].registration_version = version

    def emit(self, key: str, payload: bytes) -> None:
        self.t.outbox.append((key, payload))

    def record_import(self, record: ImportRecord) -> None:
        self.t.imports.append(record)


class FakeRegistrationRepository(RegistrationRepository):
    def __init__(self):
        self.tables = Tables()

    @contextlib.contextmanager
    def unit(self) -> Iterator[Unit]:
        working = copy.deepcopy(self.tables)
        yield FakeUnit(working)
        self.tables = working

    def person(self, person_ref: str) -> PersonRow | None:
        return copy.deepcopy(self.tables.persons.get(person_ref))

    def filings_of(self, person_ref: str) -> list[FilingRow]:
        return [copy.deepcopy(f) for f in self.tables.filings.values() if f.person_ref == person_ref]
