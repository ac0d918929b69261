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

from fastapi import APIRouter, Depends, FastAPI, Form, Query, Request, UploadFile
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool

from hub.money import AmountError, yuan_to_fen
from hub.operations.health import add_health_routes, database_ready
from hub.portal.adapters.hub_api import ServiceUnavailable
from hub.portal.bootstrap import Portal
from hub.portal.domain.people import ALL_POOLS, Refusal, Refused, Role
from hub.privacy import mask_person_id
from hub.portal.service_layer import accounts, approvals, pages
from hub.portal.service_layer.ports import ServiceRefused

log = logging.getLogger(__name__)
HERE = Path(__file__).resolve().parent
COOKIE = "hub_portal"
STATUS = {Refusal.BAD_CREDENTIALS: 401, Refusal.LOCKED: 423, Refusal.SIGNED_OUT: 401, Refusal.BAD_CSRF: 403,
          Refusal.OTHER_POOL: 403, Refusal.SUPERVISOR_ONLY: 403, Refusal.OPERATOR_ONLY: 403,
          Refusal.SAME_PERSON: 403, Refusal.NOTHING_PENDING: 409, Refusal.INVALID_INPUT: 400,
          Refusal.SERVICE_REFUSED: 409, Refusal.NOT_AS_SIGNED: 409}
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


def create_app(portal: Portal, loops=None) -> FastAPI:
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

    def page(request: Request, name: str, who: accounts.Session | None, http_status: int = 200, **context: Any):
        pools = sorted(portal.bureaus) if who and who.user.pool == ALL_POOLS else []
        return templates.TemplateResponse(request, name, {"who": who, "bureaus": portal.bureaus, "pools": pools,
                                                          "flash": request.query_params.get("done", ""), **context},
                                          status_code=http_status)

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
        body, why = pages.checked_file(portal.api, day, pool, suffix, as_pool(who, pool))
        if body is None:
            raise PortalRefusal(Refused(Refusal.NOT_AS_SIGNED if "signed" in why else Refusal.INVALID_INPUT,
                                        f"{filename} of {day}: {why}"))
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

    def bureau_person(who: accounts.Session) -> str:
        if who.user.role is Role.OPERATOR:
            raise PortalRefusal(Refused(Refusal.BUREAU_ONLY))
        return who.user.pool

    def claims_view(request: Request, who: accounts.Session, status: str = "", number: int = 1,
                    uploaded: list | None = None, code: int = 200):
        pool = bureau_person(who)
        if status not in ("", "LODGED", "SETTLED", "REJECTED"):
            raise PortalRefusal(Refused(Refusal.INVALID_INPUT, "status: LODGED, SETTLED or REJECTED"))
        claims = portal.api.claims(pool, status or None)
        shown = pages.paged(claims, number)
        recommendations = {r.subject: r for r in portal.repository.pending(pool) if r.kind == "claim"}
        return page(request, "claims.html", who, code, pool=pool, claims=shown["rows"], paging=shown, status=status,
                    recommendations=recommendations, uploaded=uploaded)

    @ui.get("/claims", response_class=HTMLResponse)
    def claims_page(request: Request, who: Signed, status: str = "", page_number: Annotated[int, Query(
            alias="page", ge=1, le=10_000)] = 1):
        return claims_view(request, who, status, page_number)

    @ui.post("/claims/upload", response_class=HTMLResponse)
    async def upload_claims(request: Request, who: Checked, claims_file: UploadFile):
        """A bureau's own claims (one JSON object or a list), priced and paid at once: a supervisor's."""
        pool = bureau_person(who)
        if who.user.role is not Role.SUPERVISOR:
            raise PortalRefusal(Refused(Refusal.SUPERVISOR_ONLY, "uploaded claims are paid at once"))
        claims, why = pages.claim_file(await claims_file.read(pages.MAX_CLAIM_FILE + 1))
        if why:
            raise PortalRefusal(Refused(Refusal.INVALID_INPUT, why))
        results = []
        for claim in claims:
            code, answer = await run_in_threadpool(portal.api.submit_claim, pool, claim)
            results.append(pages.claim_result(claim, code, answer))
        portal.repository.record(now(), who.user.username, pool, "upload_claims", claims_file.filename or "",
                                 f"{sum(r['ok'] for r in results)} paid, {sum(not r['ok'] for r in results)} refused")
        return claims_view(request, who, uploaded=results)

    # ------------------------------------------------------------ policy what-if (settlement's replay)

    @ui.get("/what-if", response_class=HTMLResponse)
    def what_if_page(request: Request, who: Signed):
        pool = bureau_person(who)
        today = now().date()
        return page(request, "what_if.html", who, pool=pool, runs=portal.api.what_ifs(pool),
                    first=today.replace(month=1, day=1).isoformat(), last=today.isoformat())

    @ui.post("/what-if")
    async def start_what_if(who: Checked, draft: UploadFile, first: Annotated[str, Form(max_length=10)],
                            last: Annotated[str, Form(max_length=10)]):
        pool = bureau_person(who)
        body = await draft.read(pages.MAX_DRAFT + 1)
        if len(body) > pages.MAX_DRAFT:
            raise PortalRefusal(Refused(Refusal.INVALID_INPUT, f"a draft is at most {pages.MAX_DRAFT} bytes"))
        try:
            text = body.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise PortalRefusal(Refused(Refusal.INVALID_INPUT, "the draft is a UTF-8 YAML file")) from None
        started = await run_in_threadpool(portal.api.start_what_if, pool, text, first, last, who.user.username)
        portal.repository.record(now(), who.user.username, pool, "what_if", started["run_id"],
                                 f"{draft.filename} {first}..{last}")
        return RedirectResponse(f"/what-if/{started['run_id']}", status_code=303)

    @ui.get("/what-if/{run_id}", response_class=HTMLResponse)
    def what_if_run(request: Request, who: Signed, run_id: str):
        pool = bureau_person(who)
        found = portal.api.what_if(pool, run_id)
        if found is None:
            raise PortalRefusal(Refused(Refusal.INVALID_INPUT, f"no what-if run {run_id} of yours"))
        return page(request, "what_if_run.html", who, pool=pool, run=found)

    @ui.get("/what-if/{run_id}/progress.json")
    def what_if_progress(who: Signed, run_id: str):
        found = portal.api.what_if(bureau_person(who), run_id)
        if found is None:
            raise PortalRefusal(Refused(Refusal.INVALID_INPUT, f"no what-if run {run_id} of yours"))
        return {k: found[k] for k in ("status", "done", "total", "error")}

    @ui.get("/what-if/{run_id}/report.html")
    def what_if_report(who: Signed, run_id: str):
        html = portal.api.what_if_report(bureau_person(who), run_id)
        if html is None:
            raise PortalRefusal(Refused(Refusal.INVALID_INPUT, f"no finished what-if run {run_id} of yours"))
        return HTMLResponse(html, headers={"content-security-policy": "script-src 'none'"})

    # ------------------------------------------------------------ enrolment and filings (registration)

    @ui.get("/people", response_class=HTMLResponse)
    def people_page(request: Request, who: Signed):
        bureau_person(who)
        return page(request, "people.html", who, pool=who.user.pool, today=now().date().isoformat())

    @ui.post("/people/enrolments", response_class=HTMLResponse)
    async def import_enrolments(request: Request, who: Checked, snapshot: UploadFile):
        pool = bureau_person(who)
        body = await snapshot.read(pages.MAX_SNAPSHOT + 1)
        if len(body) > pages.MAX_SNAPSHOT:
            raise PortalRefusal(Refused(Refusal.INVALID_INPUT, f"a snapshot is at most {pages.MAX_SNAPSHOT} bytes"))
        report = await run_in_threadpool(portal.api.import_enrolments, pool, body)
        portal.repository.record(now(), who.user.username, pool, "import_enrolments", snapshot.filename or "",
                                 f"{report['rows_changed']} changed, {report['rows_bad']} bad of {report['rows_total']}")
        return page(request, "people.html", who, pool=pool, today=now().date().isoformat(), report=report)

    @ui.post("/people/filings", response_class=HTMLResponse)
    def file(request: Request, who: Checked, psn_no: Annotated[str, Form(max_length=64)],
             filing_type: Annotated[str, Form(max_length=32)], target_pool: Annotated[str, Form(max_length=6)],
             valid_from: Annotated[str, Form(max_length=10)], valid_to: Annotated[str, Form(max_length=10)] = ""):
        pool = bureau_person(who)
        filing = portal.api.file(pool, {"psn_no": psn_no, "filing_type": filing_type, "target_pool": target_pool,
                                        "valid_from": valid_from, "valid_to": valid_to or None})
        portal.repository.record(now(), who.user.username, pool, "file", filing["filing_id"],
                                 f"{mask_person_id(psn_no)} {filing_type} → {target_pool}")
        return page(request, "people.html", who, pool=pool, today=now().date().isoformat(), filing=filing)

    @ui.post("/people/filings/revoke", response_class=HTMLResponse)
    def revoke(request: Request, who: Checked, filing_id: Annotated[str, Form(max_length=64)]):
        pool = bureau_person(who)
        filing = portal.api.revoke_filing(pool, filing_id)
        portal.repository.record(now(), who.user.username, pool, "revoke_filing", filing_id, "")
        return page(request, "people.html", who, pool=pool, today=now().date().isoformat(), filing=filing)

    @ui.post("/people/lookup", response_class=HTMLResponse)
    def look_up(request: Request, who: Checked, psn_no: Annotated[str, Form(max_length=64)],
                region: Annotated[str, Form(max_length=6)], on: Annotated[str, Form(max_length=10)]):
        """A person's standing, asked by number (a POST: the number stays out of addresses and
        logs); answered with the masked id only."""
        pool = bureau_person(who)
        found = portal.api.person_status(pool, psn_no, region, on)
        portal.repository.record(now(), who.user.username, pool, "look_up", found["person_id_masked"], region)
        return page(request, "people.html", who, pool=pool, today=now().date().isoformat(), person=found)

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
        deposits = [r for r in portal.repository.pending(None) if r.kind == "deposit"]
        return page(request, "operator.html", who, status=portal.api.status(), deposits=deposits,
                    months=portal.api.monthly_unconfirmed())

    @ui.post("/operator/deposits")
    def deposit_step(who: Checked, step: Annotated[str, Form()], pool: Annotated[str, Form(max_length=12)] = "",
                     reference: Annotated[str, Form(max_length=64)] = "",
                     amount_yuan: Annotated[str, Form(max_length=24)] = "",
                     note: Annotated[str, Form(max_length=400)] = ""):
        if step == "prepare":
            try:
                amount = yuan_to_fen(amount_yuan, "amount")
            except AmountError as exc:
                raise PortalRefusal(Refused(Refusal.INVALID_INPUT, str(exc))) from None
            if pool not in portal.bureaus:
                raise PortalRefusal(Refused(Refusal.INVALID_INPUT, f"pool {pool!r}"))
            _outcome(approvals.prepare(portal.repository, who.user, "deposit", pool, reference, "deposit", note, now(),
                                       amount_fen=amount))
        else:
            _outcome(approvals.check(
                portal.repository, who.user, "deposit", pool, reference, step == "approve", now(),
                lambda r: portal.api.deposit(r.pool, r.subject, r.amount_fen, f"{r.made_by}+{who.user.username}",
                                             r.note)))
        return RedirectResponse(f"/operator?done=deposit:{step}:{reference}", status_code=303)

    @ui.get("/static/echarts.min.js")
    def echarts():
        return FileResponse(portal.settings.assets_dir / "echarts.min.js", media_type="text/javascript")

    @ui.get("/static/{name}")
    def static(name: str):
        if name not in ("portal.css", "portal.js"):
            return Response(status_code=404)
        return FileResponse(HERE / "static" / name)

    add_health_routes(app, database_ready(portal.engine) if portal.engine is not None else (lambda: None), loops)  # /health/live, /health/ready (the relay's loop counts)

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

