"""The bureaus' and agencies' API for manual claims (零星报销), on the settle-at-treatment service
(service_layer/claims.py says why it lives here). Authorization: Bearer <token> of a home bureau
(reference/bureaus.yaml) or of a designated agency (代办, reference/agencies.yaml).

    POST /v1/claims                                   submit (bureau: priced now, 201) or lodge (agency: 202)
    GET  /v1/claims[?status=LODGED|SETTLED|REJECTED]  a bureau's insured's claims, or an agency's own
    GET  /v1/claims/{home_pool}/{claim_no}            one claim (its owner only; anyone else: 404)
    POST /v1/claims/{home_pool}/{claim_no}/decision   {"decision": "APPROVE"|"REJECT", "note": "..."}

Every refusal is a 4xx with {"error": {"code", "message"[, "refused_lines"]}} and changes nothing.
"""

from __future__ import annotations

import hashlib
import logging

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from hub.operations.supervision import is_transient
from hub.settlement.bootstrap import Settlement
from hub.settlement.service_layer.claims import Actor, ClaimRefused

log = logging.getLogger(__name__)
MAX_CLAIM_BYTES = 4 * 1024 * 1024


def add_claim_routes(app: FastAPI, hub: Settlement) -> None:
    def actor(request: Request) -> Actor | None:
        auth = request.headers.get("authorization", "")
        if not auth.lower().startswith("bearer "):
            return None
        return hub.claimants.get(hashlib.sha256(auth[7:].encode()).hexdigest())

    async def body(request: Request):
        raw = await request.body()
        if len(raw) > MAX_CLAIM_BYTES:
            raise ClaimRefused("request_too_large", f"at most {MAX_CLAIM_BYTES} bytes", 413)
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ClaimRefused("invalid_json", f"the body is not JSON: {exc}", 400) from None

    async def answer(request: Request, work) -> JSONResponse:
        who = actor(request)
        if who is None:
            return JSONResponse(ClaimRefused("unauthenticated", "a bureau's or an agency's Bearer token", 401).body(),
                                status_code=401)
        try:
            status, content = await work(who)
        except ClaimRefused as exc:
            return JSONResponse(exc.body(), status_code=exc.status)
        except Exception as exc:  # nothing half-done stays: a claim is one transaction
            log.exception("manual claims: %s %s could not be answered", request.method, request.url.path)
            if is_transient(exc):  # a lost database or Redis: the same claim goes through later
                return JSONResponse(ClaimRefused("hub_unavailable", "the hub could not complete this now; send the "
                                                 "same claim again (a claim that did complete answers the same)",
                                                 503).body(), status_code=503)
            return JSONResponse(ClaimRefused("internal_error", "a fault of the hub's own", 500).body(), status_code=500)
        return JSONResponse(content, status_code=status)

    @app.post("/v1/claims", status_code=201)
    async def submit(request: Request):
        """A manual claim: a home bureau's is priced at once; an agency's waits for the home bureau."""
        async def work(who):
            payload = await body(request)
            return await run_in_threadpool(hub.claims.submit, who, payload)
        return await answer(request, work)

    @app.get("/v1/claims")
    async def claims(request: Request, status: str | None = None):
        """The caller's claims, newest first (a bureau: its insured's; an agency: those it lodged)."""
        async def work(who):
            return 200, {"claims": await run_in_threadpool(hub.claims.list, who, status)}
        return await answer(request, work)

    @app.get("/v1/claims/{home_pool}/{claim_no}")
    async def one(home_pool: str, claim_no: str, request: Request):
        async def work(who):
            return 200, await run_in_threadpool(hub.claims.get, who, home_pool, claim_no)
        return await answer(request, work)

    @app.post("/v1/claims/{home_pool}/{claim_no}/decision")
    async def decide(home_pool: str, claim_no: str, request: Request):
        """The home bureau approves (prices) or rejects a claim an agency lodged."""
        async def work(who):
            payload = await body(request)
            return 200, await run_in_threadpool(hub.claims.decide, who, home_pool, claim_no, payload)
        return await answer(request, work)
