"""What every clearing route shares: who is calling (a bearer token: the operators' or a bureau's,
by its SHA-256), a refusal as the service's error answer, and one table of HTTP statuses for every
reason the use cases refuse with (domain/refusals.py)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date
from typing import Annotated

from fastapi import Depends, FastAPI, Request

from hub.clearing.bootstrap import Clearing
from hub.clearing.domain.refusals import AdvanceRefusal, ClearingRefused, QuarantineRefusal, StatementRefusal
from hub.operations.http_refusals import EdgeRefused as Refused, answer_refusals
from hub.rejections import Reason

MEDIA = {"csv": "text/csv; charset=utf-8", "json": "application/json", "sha256": "text/plain; charset=utf-8",
         "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "sig": "text/plain; charset=utf-8"}
# Every reason the use cases refuse with: 404 what is not there, 409 what the state does not allow
# now, 400 a request to correct (a unit test holds every reason to this table).
_NOT_FOUND = (StatementRefusal.STATEMENT_NOT_FOUND, StatementRefusal.LINE_NOT_FOUND, QuarantineRefusal.NOT_QUARANTINED)
_CONFLICT = (StatementRefusal.MONTH_NOT_OVER, StatementRefusal.DAYS_OPEN, StatementRefusal.STATEMENT_CLOSED,
             StatementRefusal.INVALID_TRANSITION, StatementRefusal.LINES_PENDING, AdvanceRefusal.REFERENCE_REUSED,
             QuarantineRefusal.STILL_FAILING)
STATUS: dict[Reason, int] = {reason: 404 if reason in _NOT_FOUND else 409 if reason in _CONFLICT else 400
                             for kind in (StatementRefusal, AdvanceRefusal, QuarantineRefusal) for reason in kind}


def add_refusal_handlers(app: FastAPI) -> None:
    answer_refusals(app, ClearingRefused, lambda exc: STATUS[exc.reason])


def clearing_of(request: Request) -> Clearing:
    return request.app.state.clearing


Service = Annotated[Clearing, Depends(clearing_of)]


@dataclass(frozen=True)
class Caller:
    name: str  # "operator" or the bureau's code
    pool: str  # "*" for operators

    @property
    def operator(self) -> bool:
        return self.pool == "*"

    def sees(self, pool: str, code: str, message: str) -> None:
        """Only the pool's own bureau (or an operator) goes on; anyone else is refused `code`."""
        if self.pool not in ("*", pool):
            raise Refused(403, code, message)

    def acts_for(self, pool: str, code: str, message: str) -> None:
        """Only the pool's own bureau goes on (an operator does not act for a bureau)."""
        if self.pool != pool:
            raise Refused(403, code, message)


def caller(request: Request, clearing: Service) -> Caller:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        digest = hashlib.sha256(auth[7:].encode()).hexdigest()
        if digest == clearing.settings.operator_token_sha256:
            return Caller("operator", "*")
        if digest in clearing.bureaus:
            return Caller(*clearing.bureaus[digest])
    raise Refused(401, "unauthenticated", "send a token as 'Authorization: Bearer <token>'")


Who = Annotated[Caller, Depends(caller)]


def operator(who: Who) -> Caller:
    if not who.operator:
        raise Refused(403, "operators_only", "this is for the clearing centre's operators")
    return who


Operator = Annotated[Caller, Depends(operator)]


def day_of(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise Refused(400, "invalid_date", "dates are yyyy-mm-dd") from None


def optional_day(day: str | None = None) -> date | None:
    return day_of(day) if day else None


AsOf = Annotated[date | None, Depends(optional_day)]


async def json_object(request: Request) -> dict:
    try:
        body = await request.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise Refused(400, "invalid_json", "the body is a JSON object")
    return body


Body = Annotated[dict, Depends(json_object)]
