"""Why the hospital interface refuses a request: one enum of stable reason codes for the
service layer (the engine's own refusals are `domain.refusals.RefusalCode`). The service layer
raises and returns reasons; only the HTTP edge decides how each is answered on the wire."""

from __future__ import annotations

from hub.rejections import Reason
from hub.settlement.domain.refusals import RefusalCode


class Why(Reason):
    # the transport (answered with an HTTP status of its own: see entrypoints/http.py)
    UNAUTHENTICATED = ("unauthenticated", "The request is not signed by a known hospital")
    REQUEST_TOO_LARGE = ("request_too_large", "The request body is too large")
    HUB_UNAVAILABLE = ("hub_unavailable", "The hub could not complete this request now; retry with the same msgid")
    INTERNAL_ERROR = ("internal_error", "The hub failed on this request; it is logged for the operators")
    # the envelope
    INVALID_JSON = ("invalid_json", "The request body is not a JSON object in the interface envelope")
    UNKNOWN_INFNO = ("unknown_infno", "The transaction (infno) is not served here")
    INVALID_MSGID = ("invalid_msgid", "msgid is institution code + yyyyMMddHHmmss + a 4-digit sequence")
    HOSPITAL_MISMATCH = ("hospital_mismatch", "fixmedins_code is not the hospital these credentials belong to")
    TREATMENT_REGION_MISMATCH = ("treatment_region_mismatch", "mdtrtarea_admvs is not the hospital's region")
    MSGID_REUSED = ("msgid_reused_with_different_content", "The msgid was already used for a different request")
    # the input
    INVALID_INPUT = ("invalid_input", "A node of the input is not the shape the convention gives it")
    INVALID_FIELD = ("invalid_field", "A field is missing or not in the convention's format")
    INVALID_CHARACTERS = ("invalid_characters", "Control characters are not allowed")
    INVALID_AMOUNT = ("invalid_amount", "An amount is not an exact yuan amount with at most 2 decimals")
    AMOUNT_TOO_LARGE = ("amount_too_large", "An amount is above the hub's limits")
    AMOUNT_MISMATCH = ("amount_mismatch", "A total does not add up")
    TOO_MANY_LINES = ("too_many_lines", "Too many fee lines")
    # the person
    PERSON_NOT_FOUND = ("person_not_found", "No insured person holds this credential")
    CREDENTIAL_INVALID = ("credential_invalid", "The e-voucher token is malformed, forged or expired")
    CREDENTIAL_MISMATCH = ("credential_mismatch", "The credential or psn_no names another person than the visit's")
    # the hub's records
    VISIT_NOT_FOUND = ("visit_not_found", "No such visit")
    VISIT_OF_ANOTHER_HOSPITAL = ("visit_of_another_hospital", "The visit belongs to another hospital")
    VISIT_NOT_OPEN = ("visit_not_open", "The visit is not open")
    VISIT_ALREADY_SETTLED = ("visit_already_settled", "The visit is settled")
    SETTLEMENT_NOT_FOUND = ("settlement_not_found", "No such settlement")
    SETTLEMENT_OF_ANOTHER_HOSPITAL = ("settlement_of_another_hospital", "A hospital reverses only its own settlements")
    SETTLEMENT_ALREADY_REVERSED = ("settlement_already_reversed", "The settlement is already reversed")
    FILE_NOT_FOUND = ("file_not_found", "No such file of this hospital's")
    TRANSACTION_UNDONE = ("transaction_undone", "The transaction was undone by a 2601 (冲正)")
    NOT_UNDOABLE = ("not_undoable", "2601 undoes a settlement (2207/2304) or the opening of a visit (2201/2401)")
    # the hospital's month (3260-3262, 3203/3204)
    MONTH_LINE_NOT_FOUND = ("month_line_not_found", "No such 清分 line of the month (3260 lists them)")
    MONTH_APPLIED = ("month_applied", "The month has a clearing application: cancel it (3204) before changing confirmations")
    MONTH_NOT_OVER = ("month_not_over", "The month is not over yet")
    ALREADY_APPLIED = ("already_applied", "The month's clearing application for this clearing type is filed already")
    APPLICATION_NOT_FOUND = ("application_not_found", "No such clearing application of this hospital's")
    APPLICATION_CANCELLED = ("application_cancelled", "The clearing application is cancelled already")
    # the hub itself
    HUB_NOT_READY = ("hub_not_ready", "The hub's reference data is rebuilding; retry shortly")


class ClaimWhy(Reason):
    """Why a manual claim (零星报销) or a bureau's decision on one is refused (claims.py); the
    input's own refusals are Why's (invalid_field, too_many_lines, amount_too_large ...)."""
    UNAUTHENTICATED = ("unauthenticated", "Send a bureau's or an agency's Bearer token")
    INVALID_CLAIM = ("invalid_claim", "The claim is a JSON object")
    CLAIM_OF_ANOTHER_POOL = ("claim_of_another_pool", "A bureau submits claims of its own insured only")
    CLAIM_OUTSIDE_AGENCY_REGION = ("claim_outside_agency_region", "An agency lodges claims for care in its own region")
    NOT_OFF_SITE = ("not_off_site", "The hub takes claims for care outside the home pool")
    HOSPITAL_REGION_MISMATCH = ("hospital_region_mismatch", "The hospital is in another region than the care's")
    INVALID_LINES = ("invalid_lines", "Fee lines are refused, each named; nothing was kept")
    PERSON_NOT_ENROLLED = ("person_not_enrolled", "The hub has no enrolment of this person with the home pool")
    CLAIM_NUMBER_REUSED = ("claim_number_reused", "The claim number was submitted already with other content")
    INVALID_STATUS = ("invalid_status", "status is LODGED, SETTLED or REJECTED")
    INVALID_DECISION = ("invalid_decision", "decision is APPROVE or REJECT (a REJECT with a note)")
    INVALID_NOTE = ("invalid_note", "note is at most 500 printable characters")
    NOTE_REQUIRED = ("note_required", "A rejection says why (note)")
    CLAIM_NOT_FOUND = ("claim_not_found", "No such claim of yours")
    CLAIM_ALREADY_DECIDED = ("claim_already_decided", "The claim is decided already")


_BY_CODE: dict[str, Reason] = {r.code: r for r in (*RefusalCode, *Why)}


def reason_of(code: str) -> Reason:
    """The reason a stable code names (a remembered answer, a translation error); an unknown
    code is a fault of the hub and raises."""
    return _BY_CODE[code]
