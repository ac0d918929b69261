"""Bureaus fetch and confirm their own clearing files; operators list unconfirmed ones.

    GET  /v1/clearing/public-key                        anyone: the hub's SM2 key the files are signed with
    GET  /v1/clearing/{date}/{pool}.{csv|json|xlsx|sha256|sig}   bureau token of that pool
    POST /v1/clearing/{date}/{pool}/confirm             bureau token of that pool
    GET  /v1/clearing/{date}/summary.html               operator token
    GET  /v1/clearing/unconfirmed                       operator token
    GET  /v1/advances/{pool}                            bureau token of that pool: its advance fund and ledger
    GET  /v1/fund-risk/{pool}[?day=yyyy-mm-dd]          bureau token of that pool: spending per fund vs budget
    GET  /v1/anomalies/{pool}[?day=yyyy-mm-dd]          bureau token of that pool: its insured's anomaly flags
    POST /v1/advances/{pool}/deposits                   operator token: money the bureau paid in (idempotent)
    POST /v1/statements/{month}/issue                   operator token: every bureau's monthly statement
    GET  /v1/statements/{month}/{pool}                  bureau token of that pool (or operator): with its lines
    POST /v1/statements/{month}/{pool}/lines            bureau token: {"action": confirm|unconfirm|dispute|withdraw,
                                                        "event_ids": [...] | "all_pending": true, "reason": "..."}
    POST /v1/statements/{month}/{pool}/lines/{event_id}/resolve   operator token: {"note": "..."}
    POST /v1/statements/{month}/{pool}/close            bureau token (or operator): once nothing is pending
    GET  /v1/statements/{month}/{pool}.{csv|json|xlsx|sha256|sig}   a closed statement's signed files
    GET  /status                                        the operators' status page (?token=<operator token>)
"""

from __future__ import annotations

import hashlib
from datetime import date

from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from hub.operations.health import add_health_routes, database_ready
from hub.operations.metrics import CLEARING_QUARANTINED, add_metrics_route
from hub.operations.status import STATUS_PAGE, StatusHistory

from hub.clearing.bootstrap import Clearing
from hub.clearing.domain.statements import StatementError
from hub.clearing.service_layer.services import AdvanceError
from hub.money import AmountError, yuan_to_fen

MEDIA = {"csv": "text/csv; charset=utf-8", "json": "application/json", "sha256": "text/plain; charset=utf-8",
         "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "sig": "text/plain; charset=utf-8"}


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def create_app(clearing: Clearing, history: StatusHistory | None = None, loops=None) -> FastAPI:
    app = FastAPI(title="interregion-clearing", redoc_url=None)
    add_metrics_route(app)
    history = history or StatusHistory()

    def caller(request: Request) -> tuple[str, str] | None:
        auth = request.headers.get("authorization", "")
        if not auth.lower().startswith("bearer "):
            return None
        digest = hashlib.sha256(auth[7:].encode()).hexdigest()
        if digest == clearing.settings.operator_token_sha256:
            return ("operator", "*")
        return clearing.bureaus.get(digest)

    def parse_day(text: str) -> date | None:
        try:
            return date.fromisoformat(text)
        except ValueError:
            return None

    @app.get("/v1/clearing/public-key")
    async def public_key():
        """The hub's SM2 public key (04 + x + y, hex): `hub clearing verify FILE --public-key KEY`."""
        return Response(clearing.service.signer.public_key_hex + "\n", media_type="text/plain; charset=utf-8")

    @app.get("/v1/clearing/public-keys")
    async def all_public_keys():
        """The key the files are signed with now and the keys a rotation retired: a verifier
        trusts them all (files signed before a rotation keep verifying)."""
        return {"current": clearing.service.signer.public_key_hex, "previous": list(clearing.retired_public_keys)}

    @app.get("/v1/clearing/unconfirmed")
    async def unconfirmed(request: Request):
        who = caller(request)
        if who is None:
            return _error(401, "unauthenticated", "send a token as 'Authorization: Bearer <token>'")
        if who[1] != "*":
            return _error(403, "operators_only", "only operators list unconfirmed files")
        return await run_in_threadpool(clearing.service.unconfirmed)

    @app.get("/v1/clearing-days/{pool}")
    async def days_of(pool: str, request: Request):
        """The pool's closed days, newest first (the bureau portal's list of days)."""
        who = caller(request)
        if who is None:
            return _error(401, "unauthenticated", "send the bureau's token as 'Authorization: Bearer <token>'")
        if who[1] not in ("*", pool):
            return _error(403, "days_of_another_pool", "a bureau sees only its own days")
        return await run_in_threadpool(clearing.service.days_of, pool)

    @app.get("/v1/clearing-days/{pool}/{day}")
    async def day_summary(pool: str, day: str, request: Request):
        """A pool's closed day without its lines: positions per fund and counterparty, the manifest's hash."""
        who = caller(request)
        if who is None:
            return _error(401, "unauthenticated", "send the bureau's token as 'Authorization: Bearer <token>'")
        if who[1] not in ("*", pool):
            return _error(403, "days_of_another_pool", "a bureau sees only its own days")
        d = parse_day(day)
        if d is None:
            return _error(400, "invalid_date", "dates are yyyy-mm-dd")
        found = await run_in_threadpool(clearing.service.day_summary, d, pool)
        return found if found is not None else _error(404, "no_such_day", f"no closed clearing day {day} with pool {pool}")

    @app.get("/v1/clearing/{day}/summary.html")
    async def summary(day: str, request: Request):
        who = caller(request)
        if who is None or who[1] != "*":
            return _error(401 if who is None else 403, "operators_only", "the day's summary is for operators")
        d = parse_day(day)
        files = await run_in_threadpool(clearing.service.render_day, d) if d else {}
        body = files.get(f"summary_{day}.html")
        return Response(body, media_type="text/html; charset=utf-8") if body else _error(404, "day_not_closed", day)

    @app.get("/v1/clearing/{day}/{filename}")
    async def pool_file(day: str, filename: str, request: Request):
        who = caller(request)
        if who is None:
            return _error(401, "unauthenticated", "send the bureau's token as 'Authorization: Bearer <token>'")
        pool, _, suffix = filename.partition(".")
        if suffix not in MEDIA:
            return _error(404, "no_such_file", "files are <pool>.csv, .json, .xlsx, .sha256 and .sig")
        if who[1] not in ("*", pool):
            return _error(403, "file_of_another_pool", "a bureau fetches only its own pool's files")
        d = parse_day(day)
        if d is None:
            return _error(400, "invalid_date", "dates are yyyy-mm-dd")
        body = await run_in_threadpool(clearing.service.pool_file, d, pool, suffix)
        if body is None:
            return _error(404, "no_such_file", f"no closed clearing day {day} with pool {pool}")
        return Response(body, media_type=MEDIA[suffix],
                        headers={"content-disposition": f'attachment; filename="clearing_{day}_{pool}.{suffix}"'})

    @app.post("/v1/clearing/{day}/{pool}/confirm")
    async def confirm(day: str, pool: str, request: Request):
        who = caller(request)
        if who is None:
            return _error(401, "unauthenticated", "send the bureau's token as 'Authorization: Bearer <token>'")
        if who[1] != pool:
            return _error(403, "file_of_another_pool", "a bureau confirms only its own pool's file")
        d = parse_day(day)
        if d is None or not await run_in_threadpool(clearing.service.confirm, d, pool, who[0]):
            return _error(404, "no_such_file", f"no statement for {pool} on {day}")
        return {"clearing_date": day, "pool_code": pool, "confirmed": True}

    @app.get("/v1/anomalies/{pool}")
    async def anomalies(pool: str, request: Request, day: str | None = None):
        """The anomaly flags of a closed day for the pool's insured (default: its latest day with any)."""
        who = caller(request)
        if who is None:
            return _error(401, "unauthenticated", "send the bureau's token as 'Authorization: Bearer <token>'")
        if who[1] not in ("*", pool):
            return _error(403, "anomalies_of_another_pool", "a bureau sees only its own insured's flags")
        as_of = parse_day(day) if day else None
        if day and as_of is None:
            return _error(400, "invalid_date", "dates are yyyy-mm-dd")
        found = await run_in_threadpool(clearing.service.anomalies, pool, as_of)
        return found if found is not None else _error(404, "no_flags", f"no anomaly flags for {pool}")

    @app.get("/v1/fund-risk/{pool}")
    async def fund_risk(pool: str, request: Request, day: str | None = None):
        """The pool's off-site spending per fund against its pro-rata budget (基金运行风险预警)."""
        who = caller(request)
        if who is None:
            return _error(401, "unauthenticated", "send the bureau's token as 'Authorization: Bearer <token>'")
        if who[1] not in ("*", pool):
            return _error(403, "fund_risk_of_another_pool", "a bureau sees only its own funds")
        as_of = parse_day(day) if day else None
        if day and as_of is None:
            return _error(400, "invalid_date", "dates are yyyy-mm-dd")
        found = await run_in_threadpool(clearing.service.fund_risk, pool, as_of)
        return found if found is not None else _error(404, "no_budget", f"no off-site budget or closed day for {pool}")

    @app.get("/v1/advances/{pool}")
    async def advance(pool: str, request: Request):
        who = caller(request)
        if who is None:
            return _error(401, "unauthenticated", "send the bureau's token as 'Authorization: Bearer <token>'")
        if who[1] not in ("*", pool):
            return _error(403, "advance_of_another_pool", "a bureau sees only its own advance")
        found = await run_in_threadpool(clearing.service.advance, pool)
        return found if found is not None else _error(404, "no_advance", f"no advance kept for {pool} yet")

    @app.post("/v1/advances/{pool}/deposits")
    async def deposit(pool: str, request: Request):
        who = caller(request)
        if who is None or who[1] != "*":
            return _error(401 if who is None else 403, "operators_only", "the clearing centre records deposits")
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "invalid_json", "the body is a JSON object")
        if not isinstance(body, dict):
            return _error(400, "invalid_json", "the body is a JSON object")
        try:
            amount = yuan_to_fen(body.get("amount_yuan"), "amount_yuan")
        except AmountError as exc:
            return _error(400, "invalid_amount", str(exc))
        try:
            return await run_in_threadpool(clearing.service.deposit, pool, str(body.get("reference") or ""), amount,
                                           str(body.get("recorded_by") or "operator"), str(body.get("note") or ""))
        except AdvanceError as exc:
            return _error(409 if exc.code == "reference_reused" else 400, exc.code, exc.message)

    def statement_error(exc: StatementError) -> JSONResponse:
        status = {"statement_not_found": 404, "line_not_found": 404, "statement_closed": 409, "lines_pending": 409,
                  "invalid_transition": 409, "days_open": 409, "month_not_over": 409}.get(exc.code, 400)
        return _error(status, exc.code, exc.message)

    async def body_of(request: Request) -> dict | None:
        try:
            body = await request.json()
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    @app.post("/v1/statements/{month}/issue")
    async def issue_statements(month: str, request: Request):
        who = caller(request)
        if who is None or who[1] != "*":
            return _error(401 if who is None else 403, "operators_only", "the clearing centre issues statements")
        try:
            return {"issued": await run_in_threadpool(clearing.service.months.issue, month, "operator")}
        except StatementError as exc:
            return statement_error(exc)

    @app.get("/v1/statements-open")
    async def open_statements(request: Request):
        """Issued monthly statements not closed yet, with their pending lines (operators)."""
        who = caller(request)
        if who is None or who[1] != "*":
            return _error(401 if who is None else 403, "operators_only", "the open statements are for operators")
        return await run_in_threadpool(clearing.service.months.still_open)

    @app.get("/v1/hospital-months/{month}/{pool}")
    async def hospital_month(month: str, pool: str, request: Request):
        """The treatment bureau's hospitals' month: what each confirmed (3261), did not agree or has
        not confirmed of its lines, and their clearing applications (3203/3204)."""
        who = caller(request)
        if who is None:
            return _error(401, "unauthenticated", "send the bureau's token as 'Authorization: Bearer <token>'")
        if who[1] not in ("*", pool):
            return _error(403, "month_of_another_pool", "a bureau sees only its own hospitals' month")
        try:
            return await run_in_threadpool(clearing.service.hospital_month, month, pool)
        except StatementError as exc:
            return statement_error(exc)

    @app.get("/v1/statements/{month}/{name}")
    async def statement(month: str, name: str, request: Request, counterparty: str = "", hospital: str = "",
                        insutype: str = "", state: str = "", limit: int | None = Query(None, ge=1, le=100_000),
                        offset: int = Query(0, ge=0, le=100_000_000)):
        """The statement (JSON) with its lines — filtered by counterparty, hospital, insutype and
        state, at most `limit` of them, when asked — or one of a closed statement's files."""
        who = caller(request)
        if who is None:
            return _error(401, "unauthenticated", "send the bureau's token as 'Authorization: Bearer <token>'")
        pool, _, suffix = name.partition(".")
        if who[1] not in ("*", pool):
            return _error(403, "statement_of_another_pool", "a bureau sees only its own statements")
        try:
            if not suffix:
                asked = {"counterparty_pool": counterparty, "hospital_code": hospital, "insutype": insutype,
                         "state": state}
                found = await run_in_threadpool(clearing.service.months.show, month, pool,
                                                asked if any(asked.values()) or limit else None, limit, offset)
                return found if found is not None else _error(404, "statement_not_found", f"no {month} statement for {pool}")
            if suffix not in MEDIA:
                return _error(404, "no_such_file", "files are <pool>.csv, .json, .xlsx, .sha256 and .sig")
            body = await run_in_threadpool(clearing.service.months.statement_file, month, pool, suffix)
        except StatementError as exc:
            return statement_error(exc)
        if body is None:
            return _error(404, "no_such_file", f"no closed {month} statement for {pool}")
        return Response(body, media_type=MEDIA[suffix],
                        headers={"content-disposition": f'attachment; filename="statement_{month}_{pool}.{suffix}"'})

    @app.post("/v1/statements/{month}/{pool}/lines")
    async def statement_lines(month: str, pool: str, request: Request):
        who = caller(request)
        if who is None:
            return _error(401, "unauthenticated", "send the bureau's token as 'Authorization: Bearer <token>'")
        if who[1] != pool:
            return _error(403, "statement_of_another_pool", "a bureau acts only on its own statement")
        body = await body_of(request)
        if body is None:
            return _error(400, "invalid_json", "the body is a JSON object")
        ids = body.get("event_ids", [])
        if not isinstance(ids, list):
            return _error(400, "invalid_lines", "event_ids is a list of strings")
        try:
            return await run_in_threadpool(clearing.service.months.act, month, pool, str(body.get("action", "")), ids,
                                           str(body.get("reason") or ""), who[0], body.get("all_pending") is True)
        except StatementError as exc:
            return statement_error(exc)

    @app.post("/v1/statements/{month}/{pool}/lines/{event_id}/resolve")
    async def resolve_dispute(month: str, pool: str, event_id: str, request: Request):
        who = caller(request)
        if who is None or who[1] != "*":
            return _error(401 if who is None else 403, "operators_only", "the clearing centre resolves disputes")
        body = await body_of(request) or {}
        try:
            return await run_in_threadpool(clearing.service.months.resolve, month, pool, event_id,
                                           str(body.get("note") or ""), "operator")
        except StatementError as exc:
            return statement_error(exc)

    @app.post("/v1/statements/{month}/{pool}/close")
    async def close_statement(month: str, pool: str, request: Request):
        who = caller(request)
        if who is None:
            return _error(401, "unauthenticated", "send the bureau's token as 'Authorization: Bearer <token>'")
        if who[1] not in ("*", pool):
            return _error(403, "statement_of_another_pool", "a bureau closes only its own statement")
        try:
            return await run_in_threadpool(clearing.service.months.close, month, pool, who[0])
        except StatementError as exc:
            return statement_error(exc)

    @app.get("/status")
    def status_page():
        # The page itself holds no data; it fetches status.json with the operator token.
        return Response(STATUS_PAGE, media_type="text/html; charset=utf-8")

    @app.get("/status.json")
    async def status_json(request: Request):
        who = caller(request)
        if who is None or who[1] != "*":
            return _error(401 if who is None else 403, "operators_only", "the status data is for operators")
        snapshot = history.snapshot()
        snapshot["unconfirmed"] = await run_in_threadpool(clearing.service.unconfirmed)
        snapshot["quarantined"] = await run_in_threadpool(clearing.service.quarantined)
        snapshot["advances"] = await run_in_threadpool(clearing.service.advances_overview)
        snapshot["fund_risk"] = await run_in_threadpool(clearing.service.fund_risk_overview)
        snapshot["loops"] = loops.snapshot() if loops is not None else []
        return snapshot

    add_health_routes(app, database_ready(clearing.engine), loops)

    def unresolved() -> float:
        try:
            return float(len(clearing.service.quarantined()))
        except Exception:  # the database is away: readiness says so; the gauge shows "unknown"
            return float("nan")

    CLEARING_QUARANTINED.set_function(unresolved)

    return app
