"""How clearing refuses (STYLE.md 3, the kernel's hub.rejections): per operation one enum of reasons,
ordered by precedence, each a stable code and a human message; a refusal is a reason and the detail
of the case. The use cases raise it as ClearingRefused (nothing was changed); each edge answers it
from one table (entrypoints/web.py: HTTP statuses; the CLI: the code and message)."""

from __future__ import annotations

from hub.rejections import Reason, Refusal


class StatementRefusal(Reason):
    """A monthly statement's issue, a bureau's action on its lines, the centre's resolution, a close."""
    INVALID_MONTH = ("invalid_month", "a month is yyyy-mm")
    MONTH_NOT_OVER = ("month_not_over", "the month is not over yet")
    DAYS_OPEN = ("days_open", "every day of the month is closed first")
    STATEMENT_NOT_FOUND = ("statement_not_found", "no such statement")
    STATEMENT_CLOSED = ("statement_closed", "the statement is closed")
    INVALID_ACTION = ("invalid_action", "an action on lines is confirm, unconfirm, dispute or withdraw "
                                        "(all pending lines: confirm only)")
    REASON_REQUIRED = ("reason_required", "a dispute says why")
    REASON_TOO_LONG = ("reason_too_long", "a reason is at most 500 characters")
    NO_LINES = ("no_lines", "name the lines (event_ids)")
    INVALID_LINES = ("invalid_lines", "event_ids is a list of at most 10,000 strings")
    LINE_NOT_FOUND = ("line_not_found", "not a line of the statement")
    INVALID_TRANSITION = ("invalid_transition", "the line's state does not allow it")
    NOTE_REQUIRED = ("note_required", "say how the dispute was resolved")
    LINES_PENDING = ("lines_pending", "lines are neither confirmed nor disputed")


class AdvanceRefusal(Reason):
    """A deposit into a bureau's advance fund."""
    INVALID_POOL = ("invalid_pool", "a pool code is 6 digits")
    INVALID_REFERENCE = ("invalid_reference", "a deposit names its reference (1 to 100 characters)")
    INVALID_AMOUNT = ("invalid_amount", "a deposit is a positive amount up to the kernel's bound")
    REFERENCE_REUSED = ("reference_reused", "the reference recorded another movement")


class QuarantineRefusal(Reason):
    """An operator's resolution of a quarantined event."""
    INVALID_RESOLUTION = ("invalid_action", "a resolution is APPLY or DISCARD")
    NOTE_REQUIRED = ("note_required", "say why the event is discarded (--note)")
    NOT_QUARANTINED = ("not_quarantined", "no such quarantined event")
    STILL_FAILING = ("still_failing", "applying it again failed: it stays quarantined")


REASONS: tuple[type[Reason], ...] = (StatementRefusal, AdvanceRefusal, QuarantineRefusal)


class ClearingRefused(Exception):
    """A request clearing refuses; nothing was changed."""

    def __init__(self, reason: Reason, detail: str = ""):
        self.refusal = Refusal(reason, detail)
        super().__init__(f"{self.refusal.code}: {self.refusal.message}")
        self.reason, self.code, self.message = reason, self.refusal.code, self.refusal.message
