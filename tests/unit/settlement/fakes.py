"""In-memory stand-ins for the settle service's adapters, for unit tests of its handlers: the
repository (same interface as PostgresRepository, transactions that roll back on an exception)
and the read model (registrations, policies, catalogues)."""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Iterator, Sequence
from zoneinfo import ZoneInfo

from hub.messaging import AvroCodec
from tests.fixtures.people import registration_record
from hub.reference.catalogue import Catalogue
from hub.reference.policy import Policy
from hub.settlement.adapters.repository import (
    ANSWERED,
    UNANSWERED,
    UNDONE_BEFORE_ARRIVAL,
    Application,
    Changes,
    Confirmation,
    Key,
    Loaded,
    MonthLine,
    MonthState,
    NewClaim,
    PersonYear,
    Repository,
    StandingSettlement,
    StoredAnswer,
    StoredClaim,
    StoredFile,
    StoredSettlement,
    Transaction,
    Visit,
)
from hub.settlement.domain.model import Accumulators


@dataclass
class Tables:
    requests: dict[Key, StoredAnswer] = field(default_factory=dict)
    visits: dict[str, Visit] = field(default_factory=dict)
    settlements: dict[str, StoredSettlement] = field(default_factory=dict)
    accumulators: dict[PersonYear, Accumulators] = field(default_factory=dict)
    outbox: list[tuple[str, bytes]] = field(default_factory=list)
    manual_claims: dict[tuple[str, str], StoredClaim] = field(default_factory=dict)
    confirmations: dict[tuple[str, str], Confirmation] = field(default_factory=dict)  # (hospital, setl_sn)
    applications: dict[str, Application] = field(default_factory=dict)


class FakeTransaction(Transaction):
    def __init__(self, tables: Tables):
        self.tables = tables

    def load(self, claims: Sequence[NewClaim], visit_ids: Sequence[str], setl_ids: Sequence[str]) -> Loaded:
        t = self.tables
        claimed = set()
        for c in claims:
            key = (c.hospital_code, c.msgid)
            if key not in t.requests:
                t.requests[key] = StoredAnswer(c.request_sha256, UNANSWERED, {}, c.infno)
                claimed.add(key)
        settlements = {s: copy.deepcopy(t.settlements[s]) for s in setl_ids if s in t.settlements}
        wanted = set(visit_ids) | {s.mdtrt_id for s in settlements.values()}
        visits = {v: copy.deepcopy(t.visits[v]) for v in wanted if v in t.visits}
        return Loaded(claimed, visits, settlements)

    def requests(self, keys: Sequence[Key]) -> dict[Key, StoredAnswer]:
        return {k: self.tables.requests[k] for k in keys if k in self.tables.requests}

    def accumulators(self, lock: Sequence[PersonYear], read: Sequence[PersonYear]) -> dict[PersonYear, Accumulators]:
        for key in lock:
            self.tables.accumulators.setdefault(key, Accumulators(key[1]))
        return {key: self.tables.accumulators.get(key, Accumulators(key[1])) for key in [*lock, *read]}

    def write(self, c: Changes) -> None:
        t = self.tables
        for v in [*c.new_visits, *c.changed_visits]:
            fees = t.visits[v.mdtrt_id].fees if v.mdtrt_id in t.visits else {}
            t.visits[v.mdtrt_id] = copy.deepcopy(v)
            t.visits[v.mdtrt_id].fees = fees
        for mdtrt_id, sn in c.deleted_fees:
            t.visits[mdtrt_id].fees.pop(sn, None)
        for f in c.upserted_fees:
            t.visits[f.mdtrt_id].fees[f.feedetl_sn] = copy.deepcopy(f)
        for s in [*c.reversed_settlements, *c.new_settlements]:
            t.settlements[s.setl_id] = copy.deepcopy(s)
        for ref, a in c.accumulators:
            t.accumulators[(ref, a.year)] = a
        t.outbox.extend(c.outbox)
        for key, body in c.answers:
            t.requests[key] = StoredAnswer(t.requests[key].request_sha256, ANSWERED, body, t.requests[key].infno)
        for key, infno, body in c.tombstones:
            t.requests.setdefault(key, StoredAnswer(UNDONE_BEFORE_ARRIVAL, ANSWERED, body, infno))
        for key in c.forgotten:
            del t.requests[key]


    def manual_claim(self, home_pool: str, claim_no: str, new: StoredClaim | None = None
                     ) -> tuple[StoredClaim | None, bool]:
        key = (home_pool, claim_no)
        inserted = new is not None and key not in self.tables.manual_claims
        if inserted:
            self.tables.manual_claims[key] = copy.deepcopy(new)
        return copy.deepcopy(self.tables.manual_claims.get(key)), inserted

    def update_manual_claim(self, claim: StoredClaim) -> None:
        self.tables.manual_claims[(claim.home_pool, claim.claim_no)] = copy.deepcopy(claim)

    def month_state(self, hospital_code: str, month: str) -> MonthState:
        return month_of(self.tables, hospital_code, month)

    def write_month(self, confirmations: Sequence[Confirmation], removed: Sequence[tuple[str, str]],
                    applications: Sequence[Application]) -> None:
        for c in confirmations:
            self.tables.confirmations[(c.hospital_code, c.setl_sn)] = c
        for key in removed:
            self.tables.confirmations.pop(key, None)
        for a in applications:
            self.tables.applications[a.clr_appy_evt_id] = a


SHANGHAI = ZoneInfo("Asia/Shanghai")


def month_of(t: Tables, hospital_code: str, month: str) -> MonthState:
    return MonthState({sn: c for (h, sn), c in t.confirmations.items() if h == hospital_code and c.month == month},
                      {i: a for i, a in t.applications.items() if a.hospital_code == hospital_code and a.month == month})


class FakeRepository(Repository):
    def __init__(self):
        self.tables = Tables()
        self.files: dict[str, StoredFile] = {}
        self.fail_next: Exception | None = None  # the next transaction raises this when it ends

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Transaction]:
        working = copy.deepcopy(self.tables)
        yield FakeTransaction(working)
        if self.fail_next is not None:
            exc, self.fail_next = self.fail_next, None
            raise exc
        self.tables = working

    def answers(self, keys: Sequence[Key]) -> dict[Key, StoredAnswer]:
        return {k: self.tables.requests[k] for k in keys if k in self.tables.requests}

    def standing_settlements(self, hospital_code: str, begin: date, end: date) -> list[StandingSettlement]:
        return [StandingSettlement(s.setl_id, s.medfee_sumamt_fen, s.hifp_pay_fen + s.hifmi_pay_fen + s.maf_pay_fen,
                                   *(s.output.get("setlinfo", {}).get(k, "") for k in ("insutype", "clr_type", "clr_optins")))
                for s in self.tables.settlements.values()
                if s.hospital_code == hospital_code and s.status == "SETTLED" and begin <= s.business_date <= end]


    def settlement(self, setl_id: str) -> StoredSettlement | None:
        return self.tables.settlements.get(setl_id)

    def month_lines(self, hospital_code: str, first: date, last: date) -> list[MonthLine]:
        lines = []
        for s in self.tables.settlements.values():
            if s.hospital_code != hospital_code:
                continue
            info = s.output.get("setlinfo", {})
            common = (s.mdtrt_id, s.home_pool)
            tail = (s.output.get("_sealed", ""), s.person_id_masked, info.get("insutype", ""), info.get("clr_type", ""))
            fund = s.hifp_pay_fen + s.hifmi_pay_fen + s.maf_pay_fen
            if first <= s.business_date <= last:
                lines.append(MonthLine(s.setl_id, s.setl_id, "COMPLETED", *common, s.settled_at, s.medfee_sumamt_fen,
                                       fund, *tail))
            if s.status == "REVERSED" and first <= s.reversed_at.astimezone(SHANGHAI).date() <= last:
                lines.append(MonthLine(s.reversal_id or f"R-{s.setl_id}", s.setl_id, "REVERSED", *common, s.reversed_at,
                                       -s.medfee_sumamt_fen, -fund, *tail))
        return sorted(lines, key=lambda l: (l.at, l.kind, l.setl_sn))

    def month_view(self, hospital_code: str, month: str) -> MonthState:
        return month_of(self.tables, hospital_code, month)

    def application(self, clr_appy_evt_id: str) -> Application | None:
        return self.tables.applications.get(clr_appy_evt_id)

    def open_stays(self, hospital_code: str, person_ref: str) -> list[Visit]:
        found = [v for v in self.tables.visits.values() if v.hospital_code == hospital_code and v.person_ref == person_ref
                 and v.status == "OPEN" and v.med_type in ("21", "22", "24")]
        stays = [copy.deepcopy(v) for v in sorted(found, key=lambda v: (v.begntime, v.mdtrt_id))]
        for stay in stays:
            stay.fees = {}
        return stays

    def visit(self, mdtrt_id: str) -> Visit | None:
        return copy.deepcopy(self.tables.visits.get(mdtrt_id))

    def put_file(self, file: StoredFile) -> None:
        if file.file_qury_no in self.files:
            raise KeyError(file.file_qury_no)
        self.files[file.file_qury_no] = file

    def file(self, file_qury_no: str) -> StoredFile | None:
        return self.files.get(file_qury_no)

    def year_accumulators(self, person_ref: str, year: int) -> Accumulators:
        return self.tables.accumulators.get((person_ref, year), Accumulators(year))

    def manual_claims(self, home_pool: str | None = None, lodged_by: str | None = None,
                      status: str | None = None, limit: int = 1000, claim_no: str | None = None) -> list[StoredClaim]:
        found = [c for c in self.tables.manual_claims.values() if home_pool in (None, c.home_pool)
                 and lodged_by in (None, c.lodged_by) and status in (None, c.status) and claim_no in (None, c.claim_no)]
        return sorted(found, key=lambda c: (-c.lodged_at.timestamp(), c.claim_no))[:limit]


class FakeReadModel:
    """What the service reads from Redis: readiness, registrations (Avro bytes), reference data."""

    def __init__(self, codec: AvroCodec, policies: Sequence[Policy], catalogues: Sequence[Catalogue]):
        self.codec = codec
        self.is_ready = True
        self.registrations: dict[str, bytes] = {}
        self.credentials: dict[str, str] = {}  # credential_ref -> person_ref
        self._policies, self._catalogues = list(policies), list(catalogues)

    def enrol(self, person_key: bytes, psn_no: str, home_pool: str, insurance: str = "RESIDENT",
              filings: list[dict] | None = None, **details) -> str:
        """A registration as the registration service publishes it (tests.fixtures.people)."""
        record = registration_record(person_key, psn_no, home_pool, insurance, filings, **details)
        self.registrations[record["person_ref"]] = self.codec.encode("RegistrationChanged", record)
        self.credentials.update(dict.fromkeys(record["credential_refs"], record["person_ref"]))
        return record["person_ref"]

    def person_of_credential(self, credential: str) -> str | None:
        return self.credentials.get(credential)

    def ready(self) -> bool:
        return self.is_ready

    def registration_bytes(self, ref: str) -> bytes | None:
        return self.registrations.get(ref)

    def registrations_bytes(self, refs: list[str]) -> dict[str, bytes]:
        return {r: self.registrations[r] for r in refs if r in self.registrations}

    def reference_stamp(self) -> int:
        return 1

    def policies(self) -> list[Policy]:
        return self._policies

    def catalogues(self) -> list[Catalogue]:
        return self._catalogues
