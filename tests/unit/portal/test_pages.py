"""What the portal's pages compute from the services' answers, with no server: paging, an
uploaded claim file read and each claim's outcome, and a day's files served only as signed."""

from __future__ import annotations

import hashlib
import json

from hub.portal.service_layer import pages
from hub.signing import Signer, signature_document

SIGNER = Signer("7" + "1" * 63)


def test_claims_are_paged_fifty_at_a_time_and_a_page_past_the_end_shows_the_last():
    rows = list(range(120))
    first, last = pages.paged(rows, 1), pages.paged(rows, 99)
    assert (first["rows"], first["pages"], first["total"]) == (list(range(50)), 3, 120)
    assert (last["number"], last["rows"]) == (3, list(range(100, 120)))
    assert pages.paged([], 1) == {"rows": [], "number": 1, "pages": 1, "total": 0}


def test_a_claim_file_is_one_claim_or_a_list_and_anything_else_says_why():
    assert pages.claim_file(b'{"claim_no": "A"}') == ([{"claim_no": "A"}], "")
    assert pages.claim_file('\ufeff[{"claim_no": "A"}, {"claim_no": "B"}]'.encode())[0][1] == {"claim_no": "B"}
    for bad in (b"", b"not json", b"[]", b"[1, 2]", b'"text"', "\xff".encode("latin-1"),
                json.dumps([{}] * (pages.MAX_CLAIMS_PER_FILE + 1)).encode()):
        claims, why = pages.claim_file(bad)
        assert claims == [] and why


def test_each_uploaded_claim_is_paid_or_refused_with_its_refused_lines():
    paid = pages.claim_result({"claim_no": "A"}, 201, {"hifp_pay": "100.00", "psn_part_amt": "900.00"})
    refused = pages.claim_result({"claim_no": "B"}, 400, {"error": {"code": "invalid_lines", "message": "1 of 2",
                                                                    "refused_lines": [{"line": 2, "reason": "x"}]}})
    assert paid["ok"] and paid["hifp_pay"] == "100.00" and not paid["refused_lines"]
    assert not refused["ok"] and refused["code"] == "invalid_lines" and refused["refused_lines"][0]["line"] == 2


class DayFiles:
    """The clearing service's files of one day, as the portal's client fetches them."""

    def __init__(self, tamper: bool = False):
        stem = "clearing_2026-02-05_360400"
        self.files = {"csv": b"a,b\n1,2\n", "json": b"{}", "xlsx": b"PK"}
        manifest = "".join(f"{hashlib.sha256(body).hexdigest()}  {stem}.{suffix}\n"
                           for suffix, body in self.files.items()).encode()
        self.files["sha256"] = manifest
        self.files["sig"] = signature_document(f"{stem}.sha256", SIGNER.public_key_hex, SIGNER.sign(manifest))
        if tamper:
            self.files["csv"] = b"a,b\n1,3\n"

    def day_file(self, day, pool, suffix, as_pool):
        return self.files.get(suffix)

    def public_keys(self):
        return [SIGNER.public_key_hex]


def test_a_file_is_served_only_when_it_is_the_one_the_hub_signed():
    good, changed = DayFiles(), DayFiles(tamper=True)
    assert pages.checked_file(good, "2026-02-05", "360400", "csv", "360400") == (good.files["csv"], "")
    body, why = pages.checked_file(changed, "2026-02-05", "360400", "csv", "360400")
    assert body is None and "not the file the hub signed" in why
    assert pages.checked_file(changed, "2026-02-05", "360400", "json", "360400")[0] == b"{}"
    assert pages.signed_manifest(good, "2026-02-05", "360400", "360400")["ok"]


def test_every_refusal_has_its_http_status():
    """A refusal without an entry would be answered 500: the table covers every reason."""
    from hub.portal.domain.people import Refusal
    from hub.portal.entrypoints.web import STATUS

    assert set(STATUS) == set(Refusal) and all(400 <= s < 500 for s in STATUS.values())


class Statement:
    """Clearing's statement route as the portal's client calls it: records what was asked."""

    def __init__(self, matching: int):
        self.matching, self.asked = matching, []

    def statement(self, month, pool, as_pool, filters, limit, offset):
        self.asked.append((filters, limit, offset))
        return {"status": "ISSUED", "lines": [], "lines_matching": self.matching, "counterparty_pools": ["440100"],
                "hospital_codes": []}


def test_a_months_lines_are_asked_of_clearing_a_page_at_a_time_with_their_filters():
    api = Statement(matching=1_234)
    view = pages.month(api, "360400", "360400", "2026-02", {"state": "PENDING"}, number=3)
    assert api.asked == [({"counterparty": "", "hospital": "", "insutype": "", "state": "PENDING"},
                          pages.MAX_LINES_SHOWN, 2 * pages.MAX_LINES_SHOWN)]
    assert view["paging"] == {"number": 3, "pages": 3} and view["shown_of"] == 1_234
    assert view["counterparties"] == ["440100"]
