"""Registration's use cases against the fake repository (no servers): an enrolment import, filings
filed, changed and revoked, a person's standing and e-vouchers — each change one event with the
person's whole registration, each refusal a Rejection that changes nothing — and the one table of
HTTP statuses covering every refusal the use cases raise."""

from __future__ import annotations

import copy
from datetime import date, datetime, timezone

import pytest

from hub import vouchers
from hub.messaging import AvroCodec
from hub.privacy import person_ref
from hub.registration.domain.model import Rejection
from hub.registration.entrypoints.web import DEFAULT_STATUS, STATUS
from hub.registration.service_layer.enrolments import bulk_rows
from hub.registration.service_layer.refusals import RegistrationRefused
from hub.registration.service_layer.services import RegistrationService

from .fakes import FakeRegistrationRepository

KEY, VOUCHER_KEY = b"unit-person-key", b"unit-voucher-key"
NOW = datetime(2026, 3, 12, 2, tzinfo=timezone.utc)
JJ, GZ = "360400", "440100"
ROW = {"psn_no": "360402199001011234", "insutype": "390", "enrolled_from": "2020-01-01", "enrolled_to": "",
       "benefits_from": "", "special_populations": "", "certno": "11010519491231002X", "psn_name": "张三",
       "card_no": "", "psn_type": "15", "naty": "01", "emp_name": ""}


@pytest.fixture
def service() -> RegistrationService:
    return RegistrationService(FakeRegistrationRepository(), AvroCodec(), KEY, VOUCHER_KEY, clock=lambda: NOW)


def events(service: RegistrationService) -> list[dict]:
    return [service.codec.decode(payload).value for _, payload in service.repository.tables.outbox]


def test_an_import_enrols_the_good_rows_reports_the_bad_and_an_unchanged_file_writes_nothing(service):
    text = bulk_rows([ROW, {**ROW, "psn_no": "360402199001015678", "certno": "", "insutype": "999"},
                      {**ROW, "psn_no": "360402199001019999", "certno": ROW["certno"]}])
    report = service.import_snapshot(JJ, text)
    assert (report.rows_total, report.rows_changed) == (3, 1)
    assert [(b.line, b.code) for b in report.bad_rows] == [(3, "invalid_insutype"), (4, "duplicate_credential")]
    (event,) = events(service)
    assert (event["change_kind"], event["home_pool"], event["registration_version"]) == ("ENROLLED", JJ, 1)
    assert ROW["psn_no"] not in str(event) and ROW["certno"] not in str(event)  # sealed, keyed, masked
    again = service.import_snapshot(JJ, text)
    assert (again.rows_changed, again.rows_unchanged, len(events(service))) == (0, 1, 1)
    ended = service.import_snapshot(JJ, bulk_rows([{**ROW, "enrolled_to": "2026-06-30"}]))
    assert ended.rows_changed == 1 and events(service)[-1]["change_kind"] == "ENROLMENT_ENDED"
    assert events(service)[-1]["registration_version"] == 2
    elsewhere = service.import_snapshot(GZ, bulk_rows([ROW]))
    assert [b.code for b in elsewhere.bad_rows] == ["person_of_another_pool"]
    assert len(service.repository.tables.imports) == 4


def test_a_file_that_is_not_csv_is_refused_whole(service):
    with pytest.raises(RegistrationRefused) as refused:
        service.import_snapshot(JJ, 'psn_no,insutype,enrolled_from\n"unterminated,390,2020-01-01\n' + "x" * 200_000)
    assert refused.value.reason is Rejection.INVALID_CSV and service.repository.tables.persons == {}


def test_filings_are_filed_changed_and_revoked_each_with_the_whole_registration(service):
    service.import_snapshot(JJ, bulk_rows([ROW]))
    spec = service.create_filing(JJ, ROW["psn_no"], "REFERRAL", GZ, date(2026, 3, 1), None)
    assert spec.valid_to == date(2026, 8, 30)  # a referral lasts 183 days unless the bureau says
    changed = service.change_filing(JJ, spec.filing_id, None, None, date(2026, 4, 30))
    assert changed.valid_to == date(2026, 4, 30)
    service.revoke_filing(JJ, spec.filing_id)
    kinds = [(e["change_kind"], e["registration_version"], [f["revoked"] for f in e["filings"]]) for e in events(service)]
    assert kinds == [("ENROLLED", 1, []), ("FILING_CREATED", 2, [False]), ("FILING_CHANGED", 3, [False]),
                     ("FILING_REVOKED", 4, [True])]
    before = copy.deepcopy(service.repository.tables)
    for call, reason in ((lambda: service.revoke_filing(JJ, spec.filing_id), Rejection.FILING_REVOKED),
                         (lambda: service.revoke_filing(GZ, spec.filing_id), Rejection.PERSON_OF_ANOTHER_POOL),
                         (lambda: service.revoke_filing(JJ, "F-none"), Rejection.FILING_NOT_FOUND),
                         (lambda: service.create_filing(JJ, "nobody", "REFERRAL", GZ, date(2026, 3, 1), None),
                          Rejection.PERSON_NOT_ENROLLED),
                         (lambda: service.create_filing(JJ, ROW["psn_no"], "REFERRAL", JJ, date(2026, 3, 1), None),
                          Rejection.INVALID_TARGET_POOL),
                         (lambda: service.create_filing(JJ, ROW["psn_no"], "HOLIDAY", GZ, date(2026, 3, 1), None),
                          Rejection.INVALID_FILING_TYPE)):
        with pytest.raises(RegistrationRefused) as refused:
            call()
        assert refused.value.reason is reason
    assert service.repository.tables == before  # a refusal changes nothing


def test_a_persons_standing_and_e_voucher(service):
    service.import_snapshot(JJ, bulk_rows([{**ROW, "enrolled_to": "2026-06-30"}]))
    spec = service.create_filing(JJ, ROW["psn_no"], "REFERRAL", GZ, date(2026, 3, 1), None)
    standing = service.status(JJ, ROW["psn_no"], GZ, date(2026, 3, 12))
    assert (standing["enrolled"], standing["off_site_status"]) == (True, "FILED")
    assert [f["filing_id"] for f in standing["filings_in_force"]] == [spec.filing_id]
    assert service.status(JJ, ROW["psn_no"], "510900", date(2026, 3, 12))["off_site_status"] == "UNREGISTERED"
    token = service.issue_voucher(JJ, ROW["psn_no"], NOW)["ec_token"]
    assert vouchers.verify(VOUCHER_KEY, token, NOW.timestamp()).person_ref == person_ref(KEY, ROW["psn_no"])
    with pytest.raises(RegistrationRefused) as ended:
        service.issue_voucher(JJ, ROW["psn_no"], datetime(2026, 7, 1, tzinfo=timezone.utc))
    assert ended.value.reason is Rejection.ENROLMENT_ENDED
    with pytest.raises(RegistrationRefused) as other:
        service.status(GZ, ROW["psn_no"], GZ, date(2026, 3, 12))
    assert other.value.reason is Rejection.PERSON_OF_ANOTHER_POOL


def test_the_edge_answers_every_refusal_with_a_4xx_from_one_table():
    assert all(400 <= STATUS.get(r, DEFAULT_STATUS) < 500 for r in Rejection)
    assert (STATUS[Rejection.PERSON_NOT_ENROLLED], STATUS[Rejection.PERSON_OF_ANOTHER_POOL],
            STATUS[Rejection.FILING_REVOKED]) == (404, 403, 409)
