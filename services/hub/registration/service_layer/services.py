"""The registration service as its entrypoints call it: each method one use case of its own
module — importing an enrolment snapshot (enrolments.py), filing, changing and revoking filings
(filings.py), a person's standing and e-vouchers (people.py) — given the repository, the codec
and the keys it needs. Every change writes the person's whole registration to the outbox in the
same transaction (events.py). A refusal is RegistrationRefused (refusals.py); the edges choose
how to answer it."""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Callable

from hub.messaging import AvroCodec
from hub.registration.adapters.repository import RegistrationRepository
from hub.registration.domain.model import FilingSpec
from hub.registration.service_layer import enrolments, filings, people
from hub.registration.service_layer.enrolments import ImportReport
from hub.privacy import Key


class RegistrationService:
    def __init__(self, repository: RegistrationRepository, codec: AvroCodec, person_key: Key, voucher_key: bytes = b"",
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)):
        self.repository, self.codec = repository, codec
        self.person_key, self.voucher_key = person_key, voucher_key
        self.clock = clock

    def import_snapshot(self, home_pool: str, text: str,
                        progress: Callable[[int], None] = lambda _n: None) -> ImportReport:
        return enrolments.import_snapshot(self.repository, self.codec, self.person_key, home_pool, text, self.clock,
                                          progress)

    def create_filing(self, home_pool: str, psn_no: str, filing_type: str, target_pool: str, valid_from: date,
                      valid_to: date | None) -> FilingSpec:
        return filings.create(self.repository, self.codec, self.person_key, self.clock, home_pool, psn_no, filing_type,
                              target_pool, valid_from, valid_to)

    def change_filing(self, home_pool: str, filing_id: str, target_pool: str | None, valid_from: date | None,
                      valid_to: date | None, clear_valid_to: bool = False) -> FilingSpec:
        return filings.change(self.repository, self.codec, self.clock, home_pool, filing_id, target_pool, valid_from,
                              valid_to, clear_valid_to)

    def revoke_filing(self, home_pool: str, filing_id: str) -> FilingSpec:
        return filings.revoke(self.repository, self.codec, self.clock, home_pool, filing_id)

    def issue_voucher(self, home_pool: str, psn_no: str, now: datetime) -> dict:
        return people.issue_voucher(self.repository, self.person_key, self.voucher_key, home_pool, psn_no, now)

    def status(self, home_pool: str, psn_no: str, region: str, day: date) -> dict:
        return people.status(self.repository, self.person_key, home_pool, psn_no, region, day)
