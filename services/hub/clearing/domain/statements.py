"""The monthly statement's rules (月度清算对账): what a bureau can do to each line, and when.
Pure: no I/O.

Daily nets move the money every day; each month the centre issues every home bureau a statement
of the month's lines — its insured's settlements and reversals cleared that month, and the
disputed lines of earlier months resolved since (carried in). The bureau confirms each line or
disputes it with a reason; a disputed line is withheld from what the month confirms. While the
statement is ISSUED a confirmation can be rolled back and a dispute withdrawn; a statement closes
when no line is pending, and then nothing in it changes. A dispute is resolved by the centre
(after the parties agree): the line is carried into the bureau's next statement, to be
confirmed there.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from enum import Enum

from hub.clearing.domain.refusals import ClearingRefused, StatementRefusal

MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


class LineState(str, Enum):
    PENDING = "PENDING"
    CONFIRMED = "CONFIRMED"
    DISPUTED = "DISPUTED"  # withheld
    RESOLVED = "RESOLVED"  # a dispute settled; carried into the next statement


# action -> {state before: state after}; a state already reached is answered as it is (idempotent)
BUREAU_ACTIONS: dict[str, dict[LineState, LineState]] = {
    "confirm": {LineState.PENDING: LineState.CONFIRMED, LineState.CONFIRMED: LineState.CONFIRMED},
    "unconfirm": {LineState.CONFIRMED: LineState.PENDING, LineState.PENDING: LineState.PENDING},
    "dispute": {LineState.PENDING: LineState.DISPUTED, LineState.DISPUTED: LineState.DISPUTED},
    "withdraw": {LineState.DISPUTED: LineState.PENDING, LineState.PENDING: LineState.PENDING},
}
EVENT_ACTION = {"confirm": "CONFIRMED", "unconfirm": "UNCONFIRMED", "dispute": "DISPUTED", "withdraw": "WITHDRAWN"}


def after(action: str, state: LineState, event_id: str) -> LineState:
    """The line's state after a bureau's action, or why not."""
    table = BUREAU_ACTIONS.get(action)
    if table is None:
        raise ClearingRefused(StatementRefusal.INVALID_ACTION, repr(action))
    if state not in table:
        raise ClearingRefused(StatementRefusal.INVALID_TRANSITION, f"line {event_id} is {state.value}: it cannot be {action}ed"
                             + (" (a resolved dispute is confirmed in the next statement)" if state is LineState.RESOLVED
                                else " (withdraw the dispute first)" if state is LineState.DISPUTED
                                else " (unconfirm it first)"))
    return table[state]


def month_days(month: str) -> tuple[date, date]:
    """The first and last day of a month written yyyy-mm."""
    m = MONTH.match(month or "")
    if not m:
        raise ClearingRefused(StatementRefusal.INVALID_MONTH, repr(month))
    first = date(int(m.group(1)), int(m.group(2)), 1)
    following = (first.replace(day=28) + timedelta(days=4)).replace(day=1)
    return first, following - timedelta(days=1)
