"""A bureau's clearing: its day (files served as signed), its month, its advance fund and its
fund-risk watch."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from hub.portal.domain.people import Refusal, Refused, Role
from hub.portal.service_layer import approvals, pages
from hub.portal.entrypoints.web import (Checked, PortalRefusal, Signed, Wired, as_pool, is_date, outcome, page,
                                        pool_of)

router = APIRouter()
SUFFIXES = {"csv": "text/csv; charset=utf-8", "json": "application/json", "sha256": "text/plain; charset=utf-8",
            "sig": "text/plain; charset=utf-8",
            "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}


@router.get("/")
def home(who: Signed):
    return RedirectResponse("/operator" if who.user.role is Role.OPERATOR else "/day", status_code=303)


@router.get("/day", response_class=HTMLResponse)
def day_page(request: Request, who: Signed, portal: Wired, pool: str | None = None, day: str | None = None):
    pool = pool_of(portal, who, pool)
    view = pages.day(portal.api, pool, as_pool(who, pool), day)
    return page(request, "day.html", who, pool=pool, **view)


@router.get("/files/{day}/{filename}")
def download(who: Signed, portal: Wired, day: str, filename: str):
    pool, _, suffix = filename.partition(".")
    pool = pool_of(portal, who, pool)
    if suffix not in SUFFIXES or not is_date(day):
        raise PortalRefusal(Refused(Refusal.INVALID_INPUT, filename))
    body, why = pages.checked_file(portal.api, day, pool, suffix, as_pool(who, pool))
    if body is None:
        raise PortalRefusal(Refused(Refusal.NOT_AS_SIGNED if "signed" in why else Refusal.INVALID_INPUT,
                                    f"{filename} of {day}: {why}"))
    portal.repository.record(portal.clock(), who.user.username, pool, "download", f"{day}/{filename}", "")
    return Response(body, media_type=SUFFIXES[suffix],
                    headers={"content-disposition": f'attachment; filename="clearing_{day}_{pool}.{suffix}"'})


@router.post("/day/{day}/confirm")
def confirm_day(who: Checked, portal: Wired, day: str, pool: Annotated[str, Form()] = ""):
    pool = pool_of(portal, who, pool or None)
    if not is_date(day):
        raise PortalRefusal(Refused(Refusal.INVALID_INPUT, day))
    portal.api.confirm_day(day, pool)
    portal.repository.record(portal.clock(), who.user.username, pool, "confirm_day", day, "")
    return RedirectResponse(f"/day?day={day}&done=confirmed", status_code=303)


@router.get("/month", response_class=HTMLResponse)
def month_page(request: Request, who: Signed, portal: Wired, pool: str | None = None, month: str | None = None,
               counterparty: str = "", hospital: str = "", insutype: str = "", state: str = "",
               number: Annotated[int, Query(alias="page", ge=1, le=100_000)] = 1):
    pool = pool_of(portal, who, pool)
    view = pages.month(portal.api, pool, as_pool(who, pool), month,
                       {"counterparty_pool": counterparty, "hospital_code": hospital, "insutype": insutype,
                        "state": state}, number)
    pending = portal.repository.recommendation("month_close", pool, view["month"]) if view["month"] else None
    return page(request, "month.html", who, pool=pool, close=pending, **view)


@router.post("/month/{month}/lines")
async def act_on_lines(request: Request, who: Checked, portal: Wired, month: str):
    form = await request.form()
    pool = pool_of(portal, who, str(form.get("pool") or "") or None)
    action, reason = str(form.get("action") or ""), str(form.get("reason") or "")
    ids = [str(v) for v in form.getlist("event_id")]
    done = await run_in_threadpool(portal.api.act_on_lines, month, pool, action, ids, reason,
                                   form.get("all_pending") == "1")
    portal.repository.record(portal.clock(), who.user.username, pool, f"{action}_lines", month,
                             f"{len(ids) or 'all pending'} {reason}".strip())
    return RedirectResponse(f"/month?month={month}&done={action}:{len(done.get('line_event_ids', ids))}",
                            status_code=303)


@router.post("/month/{month}/close")
def close_month(who: Checked, portal: Wired, month: str, step: Annotated[str, Form()] = "prepare",
                pool: Annotated[str, Form()] = ""):
    pool = pool_of(portal, who, pool or None)
    if step == "prepare":
        outcome(approvals.prepare(portal.repository, who.user, "month_close", pool, month, "close", "",
                                  portal.clock()))
    else:
        outcome(approvals.check(portal.repository, who.user, "month_close", pool, month, step == "approve",
                                portal.clock(), lambda r: portal.api.close_month(month, pool)))
    return RedirectResponse(f"/month?month={month}&done=close:{step}", status_code=303)


@router.get("/advance", response_class=HTMLResponse)
def advance_page(request: Request, who: Signed, portal: Wired, pool: str | None = None):
    pool = pool_of(portal, who, pool)
    return page(request, "advance.html", who, pool=pool, advance=portal.api.advance(pool, as_pool(who, pool)))


@router.get("/risk", response_class=HTMLResponse)
def risk_page(request: Request, who: Signed, portal: Wired, pool: str | None = None):
    pool = pool_of(portal, who, pool)
    return page(request, "risk.html", who, pool=pool, risk=portal.api.fund_risk(pool, as_pool(who, pool)),
                anomalies=portal.api.anomalies(pool, as_pool(who, pool)))
