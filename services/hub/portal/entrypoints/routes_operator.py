"""The audit trail (everyone sees their bureau's), and the operators' overview and deposits."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from hub.money import AmountError, yuan_to_fen
from hub.portal.domain.people import ALL_POOLS, Refusal, Refused, Role
from hub.portal.service_layer import approvals
from hub.portal.entrypoints.web import Checked, PortalRefusal, Signed, Wired, outcome, page

router = APIRouter()


@router.get("/audit", response_class=HTMLResponse)
def audit_page(request: Request, who: Signed, portal: Wired):
    trail = portal.repository.trail(None if who.user.pool == ALL_POOLS else who.user.pool)
    return page(request, "audit.html", who, trail=trail)


@router.get("/operator", response_class=HTMLResponse)
def operator_page(request: Request, who: Signed, portal: Wired):
    if who.user.role is not Role.OPERATOR:
        raise PortalRefusal(Refused(Refusal.OPERATOR_ONLY))
    deposits = [r for r in portal.repository.pending(None) if r.kind == "deposit"]
    return page(request, "operator.html", who, status=portal.api.status(), deposits=deposits,
                months=portal.api.monthly_unconfirmed())


@router.post("/operator/deposits")
def deposit_step(who: Checked, portal: Wired, step: Annotated[str, Form()],
                 pool: Annotated[str, Form(max_length=12)] = "", reference: Annotated[str, Form(max_length=64)] = "",
                 amount_yuan: Annotated[str, Form(max_length=24)] = "", note: Annotated[str, Form(max_length=400)] = ""):
    """One operator records a deposit (step=prepare); another approves it or sends it back."""
    if step == "prepare":
        try:
            amount = yuan_to_fen(amount_yuan, "amount")
        except AmountError as exc:
            raise PortalRefusal(Refused(Refusal.INVALID_INPUT, str(exc))) from None
        if pool not in portal.bureaus:
            raise PortalRefusal(Refused(Refusal.INVALID_INPUT, f"pool {pool!r}"))
        outcome(approvals.prepare(portal.repository, who.user, "deposit", pool, reference, "deposit", note,
                                  portal.clock(), amount_fen=amount))
    else:
        outcome(approvals.check(portal.repository, who.user, "deposit", pool, reference, step == "approve",
                                portal.clock(), lambda r: portal.api.deposit(
                                    r.pool, r.subject, r.amount_fen, f"{r.made_by}+{who.user.username}", r.note)))
    return RedirectResponse(f"/operator?done=deposit:{step}:{reference}", status_code=303)
