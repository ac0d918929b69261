"""The bureau portal's pages: FastAPI with Jinja2, server-side; charts by Apache ECharts in the
browser (SVG renderer). Every page and download is scoped to the signed-in person's bureau; an
operator chooses any pool. Every form carries the session's CSRF token; a form without it changes
nothing. Refusals map to their HTTP status in one table (STATUS)."""

from __future__ import annotations

import json
import logging
from datetime import date
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Form, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool

from hub.portal.adapters.hub_api import ServiceUnavailable
from hub.portal.bootstrap import Portal
from hub.portal.domain.people import ALL_POOLS, Refusal, Refused, Role
from hub.portal.service_layer import accounts, approvals, pages
from hub.portal.service_layer.ports import ServiceRefused

log = logging.getLogger(__name__)
HERE = Path(__file__).resolve().parent
COOKIE = "hub_portal"
STATUS = {Refusal.BAD_CREDENTIALS: 401, Refusal.LOCKED: 423, Refusal.SIGNED_OUT: 401, Refusal.BAD_CSRF: 403,
          Refusal.OTHER_POOL: 403, Refusal.SUPERVISOR_ONLY: 403, Refusal.OPERATOR_ONLY: 403,
          Refusal.SAME_PERSON: 403, Refusal.NOTHING_PENDING: 409, Refusal.INVALID_INPUT: 400,
          Refusal.SERVICE_REFUSED: 409}
SUFFIXES = {"csv": "text/csv; charset=utf-8", "json": "application/json", "sha256": "text/plain; charset=utf-8",
            "sig": "text/plain; charset=utf-8",
            "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}


class PortalRefusal(Exception):
    def __init__(self, refused: Refused):
        self.refused = refused


class SignInFirst(Exception):
    pass


def yuan(fen: int | None) -> str:
    if fen is None:
        return ""
    sign = "-" if fen < 0 else ""
    return f"{sign}{abs(fen) // 100:,}.{abs(fen) % 100:02d}"


def _portal(request: Request) -> Portal:
    return request.app.state.portal


def session(request: Request) -> accounts.Session:
    portal = _portal(request)
    found = accounts.session_of(portal.repository, request.cookies.get(COOKIE), portal.clock())
    if found is None:
        raise SignInFirst()
    return found


Signed = Annotated[accounts.Session, Depends(session)]


async def checked(request: Request, who: Signed) -> accounts.Session:
    """A form post: the session's CSRF token must come with it, or nothing is done."""
    form = await request.form()
    if not who.csrf_matches(str(form.get("csrf") or "")):
        portal = _portal(request)
        portal.repository.record(portal.clock(), who.user.username, who.user.pool, "csrf_refused", request.url.path, "")
        raise PortalRefusal(Refused(Refusal.BAD_CSRF))
    return who


Checked = Annotated[accounts.Session, Depends(checked)]


def create_app(portal: Portal) -> FastAPI:
    app = FastAPI(title="bureau portal", docs_url=None, redoc_url=None)
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.filters["yuan"] = yuan
    templates.env.filters["tojson_safe"] = lambda v: json.dumps(v, ensure_ascii=False).replace("</", "<\\/")
    now = portal.clock

    app.state.portal = portal

    def pool_of(who: accounts.Session, asked: str | None) -> str:
        """The pool a page shows: the person's own; an operator's choice (default: the first bureau)."""
        if who.user.pool == ALL_POOLS:
            return asked or next(iter(sorted(portal.bureaus)), "")
        if asked and asked != who.user.pool:
            portal.repository.record(now(), who.user.username, who.user.pool, "other_pool_refused", asked, "")
            raise PortalRefusal(Refused(Refusal.OTHER_POOL, asked))
        return who.user.pool

    def as_pool(who: accounts.Session, pool: str) -> str:
        return ALL_POOLS if who.user.role is Role.OPERATOR else pool

    def page(request: Request, name: str, who: accounts.Session | None, status: int = 200, **context: Any):
        pools = sorted(portal.bureaus) if who and who.user.pool == ALL_POOLS else []
        return templates.TemplateResponse(request, name, {"who": who, "bureaus": portal.bureaus, "pools": pools,
                                                          "flash": request.query_params.get("done", ""), **context},
                                          status_code=status)

    @app.exception_handler(SignInFirst)
    async def sign_in_first(request: Request, exc: SignInFirst):
        return RedirectResponse("/login", status_code=303)

    @app.exception_handler(PortalRefusal)
    async def refusal(request: Request, exc: PortalRefusal):
        who = accounts.session_of(portal.repository, request.cookies.get(COOKIE), now())
        return page(request, "refused.html", who, STATUS[exc.refused.reason], refused=exc.refused)

    @app.exception_handler(ServiceRefused)
    async def service_refused(request: Request, exc: ServiceRefused):
        who = accounts.session_of(portal.repository, request.cookies.get(COOKIE), now())
        return page(request, "refused.html", who, 409 if exc.status >= 500 else max(exc.status, 400),
                    refused=exc.refused())

    @app.exception_handler(ServiceUnavailable)
    async def unavailable(request: Request, exc: ServiceUnavailable):
        who = accounts.session_of(portal.repository, request.cookies.get(COOKIE), now())
        return page(request, "unavailable.html", who, 503, message=str(exc))

    # ------------------------------------------------------------ signing in

    auth = APIRouter()

    @auth.get("/login", response_class=HTMLResponse)
    def login_page(request: Request):
        return page(request, "login.html", None)

    @auth.post("/login")
    def login(request: Request, username: Annotated[str, Form(max_length=64)] = "",
              password: Annotated[str, Form(max_length=256)] = ""):
        opened = accounts.sign_in(portal.repository, portal.hasher, portal.settings.lockout, username, password, now())
        if isinstance(opened, Refused):
            return page(request, "login.html", None, STATUS[opened.reason], refused=opened, username=username)
        answer = RedirectResponse("/", status_code=303)
        answer.set_cookie(COOKIE, opened.token, max_age=accounts.SESSION_HOURS * 3600, httponly=True,
                          samesite="strict", secure=portal.settings.secure_cookies, path="/")
        return answer

    @auth.post("/logout")
    def logout(request: Request, who: Checked):
        accounts.sign_out(portal.repository, who, request.cookies.get(COOKIE, ""), now())
        answer = RedirectResponse("/login", status_code=303)
        answer.delete_cookie(COOKIE, path="/")
        return answer

    # ------------------------------------------------------------ pages

    ui = APIRouter()

    @ui.get("/")
    def home(who: Signed):
        return RedirectResponse("/operator" if who.user.role is Role.OPERATOR else "/day", status_code=303)

    @ui.get("/day", response_class=HTMLResponse)
    def day_page(request: Request, who: Signed, pool: str | None = None, day: str | None = None):
        pool = pool_of(who, pool)
        view = pages.day(portal.api, pool, as_pool(who, pool), day)
        return page(request, "day.html", who, pool=pool, **view)

    @ui.get("/files/{day}/{filename}")
    def download(who: Signed, day: str, filename: str):
        pool, _, suffix = filename.partition(".")
        pool = pool_of(who, pool)
        if suffix not in SUFFIXES or not _is_date(day):
            raise PortalRefusal(Refused(Refusal.INVALID_INPUT, filename))
        body = portal.api.day_file(day, pool, suffix, as_pool(who, pool))
        if body is None:
            raise PortalRefusal(Refused(Refusal.INVALID_INPUT, f"no file {filename} of {day}"))
        portal.repository.record(now(), who.user.username, pool, "download", f"{day}/{filename}", "")
        return Response(body, media_type=SUFFIXES[suffix],
                        headers={"content-disposition": f'attachment; filename="clearing_{day}_{pool}.{suffix}"'})

    @ui.post("/day/{day}/confirm")
    def confirm_day(who: Checked, day: str, pool: Annotated[str, Form()] = ""):
        pool = pool_of(who, pool or None)
        if not _is_date(day):
            raise PortalRefusal(Refused(Refusal.INVALID_INPUT, day))
        portal.api.confirm_day(day, pool)
        portal.repository.record(now(), who.user.username, pool, "confirm_day", day, "")
        return RedirectResponse(f"/day?day={day}&done=confirmed", status_code=303)

    @ui.get("/month", response_class=HTMLResponse)
    def month_page(request: Request, who: Signed, pool: str | None = None, month: str | None = None,
                   counterparty: str = "", hospital: str = "", insutype: str = "", state: str = ""):
        pool = pool_of(who, pool)
        view = pages.month(portal.api, pool, as_pool(who, pool), month,
                           {"counterparty_pool": counterparty, "hospital_code": hospital, "insutype": insutype,
                            "state": state})
        pending = portal.repository.recommendation("month_close", pool, view["month"]) if view["month"] else None
        return page(request, "month.html", who, pool=pool, close=pending, **view)

    @ui.post("/month/{month}/lines")
    async def act_on_lines(request: Request, who: Checked, month: str):
        form = await request.form()
        pool = pool_of(who, str(form.get("pool") or "") or None)
        action, reason = str(form.get("action") or ""), str(form.get("reason") or "")
        ids = [str(v) for v in form.getlist("event_id")]
        done = await run_in_threadpool(portal.api.act_on_lines, month, pool, action, ids, reason,
                                       form.get("all_pending") == "1")
        portal.repository.record(now(), who.user.username, pool, f"{action}_lines", month,
                                 f"{len(ids) or 'all pending'} {reason}".strip())
        return RedirectResponse(f"/month?month={month}&done={action}:{len(done.get('line_event_ids', ids))}",
                                status_code=303)

    @ui.post("/month/{month}/close")
    def close_month(who: Checked, month: str, step: Annotated[str, Form()] = "prepare",
                    pool: Annotated[str, Form()] = ""):
        pool = pool_of(who, pool or None)
        if step == "prepare":
            _outcome(approvals.prepare(portal.repository, who.user, "month_close", pool, month, "close", "", now()))
        else:
            _outcome(approvals.check(portal.repository, who.user, "month_close", pool, month, step == "approve", now(),
                                     lambda r: portal.api.close_month(month, pool)))
        return RedirectResponse(f"/month?month={month}&done=close:{step}", status_code=303)

    @ui.get("/advance", response_class=HTMLResponse)
    def advance_page(request: Request, who: Signed, pool: str | None = None):
        pool = pool_of(who, pool)
        return page(request, "advance.html", who, pool=pool, advance=portal.api.advance(pool, as_pool(who, pool)))

    @ui.get("/risk", response_class=HTMLResponse)
    def risk_page(request: Request, who: Signed, pool: str | None = None):
        pool = pool_of(who, pool)
        return page(request, "risk.html", who, pool=pool, risk=portal.api.fund_risk(pool, as_pool(who, pool)),
                    anomalies=portal.api.anomalies(pool, as_pool(who, pool)))

    @ui.get("/claims", response_class=HTMLResponse)
    def claims_page(request: Request, who: Signed, pool: str | None = None):
        pool = pool_of(who, pool)
        if who.user.role is Role.OPERATOR:
            raise PortalRefusal(Refused(Refusal.OTHER_POOL, "manual claims are the home bureau's"))
        claims = portal.api.claims(pool)
        recommendations = {r.subject: r for r in portal.repository.pending(pool) if r.kind == "claim"}
        return page(request, "claims.html", who, pool=pool, claims=claims, recommendations=recommendations)

    @ui.post("/claims/{claim_no}")
    def claim_step(who: Checked, claim_no: str, step: Annotated[str, Form()],
                   decision: Annotated[str, Form()] = "", note: Annotated[str, Form(max_length=400)] = ""):
        pool = who.user.pool
        if step == "prepare":
            _outcome(approvals.prepare(portal.repository, who.user, "claim", pool, claim_no, decision, note, now()))
        else:
            _outcome(approvals.check(portal.repository, who.user, "claim", pool, claim_no, step == "approve", now(),
                                     lambda r: portal.api.decide_claim(pool, claim_no, r.decision == "approve",
                                                                       r.note or "经审核同意 approved")))
        return RedirectResponse(f"/claims?done={step}:{claim_no}", status_code=303)

    @ui.get("/audit", response_class=HTMLResponse)
    def audit_page(request: Request, who: Signed):
        trail = portal.repository.trail(None if who.user.pool == ALL_POOLS else who.user.pool)
        return page(request, "audit.html", who, trail=trail)

    @ui.get("/operator", response_class=HTMLResponse)
    def operator_page(request: Request, who: Signed):
        if who.user.role is not Role.OPERATOR:
            raise PortalRefusal(Refused(Refusal.OPERATOR_ONLY))
        return page(request, "operator.html", who, status=portal.api.status())

    @ui.get("/static/echarts.min.js")
    def echarts():
        return FileResponse(portal.settings.assets_dir / "echarts.min.js", media_type="text/javascript")

    @ui.get("/static/{name}")
    def static(name: str):
        if name not in ("portal.css", "portal.js"):
            return Response(status_code=404)
        return FileResponse(HERE / "static" / name)

    @ui.get("/health/live")
    def live():
        return {"status": "ok"}

    app.include_router(auth)
    app.include_router(ui)

    def _outcome(result):
        if isinstance(result, Refused):
            raise PortalRefusal(result)
        return result

    return app


def _is_date(text: str) -> bool:
    try:
        date.fromisoformat(text)
        return True
    except ValueError:
        return False

