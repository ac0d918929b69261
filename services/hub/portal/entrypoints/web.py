"""What every page of the bureau portal shares: who is asking (the session cookie; the CSRF token
of a form), which pool a page may show, how a page is rendered and how a refusal is answered (one
table, STATUS)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.templating import Jinja2Templates

from hub.portal.bootstrap import Portal
from hub.portal.domain.people import ALL_POOLS, Refusal, Refused, Role
from hub.portal.service_layer import accounts

HERE = Path(__file__).resolve().parent
COOKIE = "hub_portal"
# How each refusal is answered: the one place the portal chooses HTTP statuses.
STATUS = {Refusal.BAD_CREDENTIALS: 401, Refusal.LOCKED: 423, Refusal.SIGNED_OUT: 401, Refusal.BAD_CSRF: 403,
          Refusal.OTHER_POOL: 403, Refusal.SUPERVISOR_ONLY: 403, Refusal.OPERATOR_ONLY: 403,
          Refusal.BUREAU_ONLY: 403, Refusal.SAME_PERSON: 403, Refusal.NOTHING_PENDING: 409,
          Refusal.INVALID_INPUT: 400, Refusal.SERVICE_REFUSED: 409, Refusal.NOT_AS_SIGNED: 409}


class PortalRefusal(Exception):
    """A refusal raised where a page cannot go on; the app answers it with STATUS and a page."""

    def __init__(self, refused: Refused):
        self.refused = refused


class SignInFirst(Exception):
    """No session: the app answers with the sign-in page."""


def yuan(fen: int | None) -> str:
    if fen is None:
        return ""
    sign = "-" if fen < 0 else ""
    return f"{sign}{abs(fen) // 100:,}.{abs(fen) % 100:02d}"


templates = Jinja2Templates(directory=str(HERE / "templates"))
templates.env.filters["yuan"] = yuan
templates.env.filters["tojson_safe"] = lambda v: json.dumps(v, ensure_ascii=False).replace("</", "<\\/")


def portal_of(request: Request) -> Portal:
    return request.app.state.portal


Wired = Annotated[Portal, Depends(portal_of)]


def session(request: Request, portal: Wired) -> accounts.Session:
    found = accounts.session_of(portal.repository, request.cookies.get(COOKIE), portal.clock())
    if found is None:
        raise SignInFirst()
    return found


Signed = Annotated[accounts.Session, Depends(session)]


async def checked(request: Request, who: Signed, portal: Wired) -> accounts.Session:
    """A form post: the session's CSRF token must come with it, or nothing is done."""
    form = await request.form()
    if not who.csrf_matches(str(form.get("csrf") or "")):
        portal.repository.record(portal.clock(), who.user.username, who.user.pool, "csrf_refused", request.url.path, "")
        raise PortalRefusal(Refused(Refusal.BAD_CSRF))
    return who


Checked = Annotated[accounts.Session, Depends(checked)]


def pool_of(portal: Portal, who: accounts.Session, asked: str | None) -> str:
    """The pool a page shows: the person's own; an operator's choice (default: the first bureau)."""
    if who.user.pool == ALL_POOLS:
        return asked or next(iter(sorted(portal.bureaus)), "")
    if asked and asked != who.user.pool:
        portal.repository.record(portal.clock(), who.user.username, who.user.pool, "other_pool_refused", asked, "")
        raise PortalRefusal(Refused(Refusal.OTHER_POOL, asked))
    return who.user.pool


def as_pool(who: accounts.Session, pool: str) -> str:
    """Whose token a service is called with: the bureau's, or for an operator the operator's."""
    return ALL_POOLS if who.user.role is Role.OPERATOR else pool


def bureau_person(who: accounts.Session) -> str:
    """The pool of a bureau's own person (enrolment, claims, what-if are not the operators')."""
    if who.user.role is Role.OPERATOR:
        raise PortalRefusal(Refused(Refusal.BUREAU_ONLY))
    return who.user.pool


def outcome(result):
    """A use case's answer, or its refusal raised for the app to answer."""
    if isinstance(result, Refused):
        raise PortalRefusal(result)
    return result


def page(request: Request, name: str, who: accounts.Session | None, http_status: int = 200, **context: Any):
    portal = portal_of(request)
    pools = sorted(portal.bureaus) if who and who.user.pool == ALL_POOLS else []
    return templates.TemplateResponse(request, name, {"who": who, "bureaus": portal.bureaus, "pools": pools,
                                                      "flash": request.query_params.get("done", ""), **context},
                                      status_code=http_status)


def is_date(text: str) -> bool:
    try:
        date.fromisoformat(text)
        return True
    except ValueError:
        return False
