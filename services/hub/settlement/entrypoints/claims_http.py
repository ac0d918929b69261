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
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from hub.operations.supervision import is_transient
from hub.rejections import Reason
from hub.settlement.bootstrap import Settlement
from hub.settlement.service_layer.claims import Actor, ClaimRefused
from hub.settlement.service_layer.reasons import ClaimWhy, Why

log = logging.getLogger(__name__)
MAX_CLAIM_BYTES = 4 * 1024 * 1024
# How each refusal is answered: the one place the claims API chooses HTTP statuses. Anything else
# (an input field, the engine's refusal of the claim) is 422: well-formed, its content refused.
STATUS: dict[Reason, int] = {
    ClaimWhy.UNAUTHENTICATED: 401, ClaimWhy.INVALID_CLAIM: 400, Why.INVALID_JSON: 400, Why.REQUEST_TOO_LARGE: 413,
    ClaimWhy.INVALID_STATUS: 400, ClaimWhy.INVALID_DECISION: 400, ClaimWhy.INVALID_NOTE: 400,
    ClaimWhy.NOTE_REQUIRED: 400, ClaimWhy.CLAIM_OF_ANOTHER_POOL: 403, ClaimWhy.CLAIM_OUTSIDE_AGENCY_REGION: 403,
    ClaimWhy.CLAIM_NOT_FOUND: 404, ClaimWhy.CLAIM_NUMBER_REUSED: 409, ClaimWhy.CLAIM_ALREADY_DECIDED: 409,
    Why.HUB_NOT_READY: 503, Why.HUB_UNAVAILABLE: 503, Why.INTERNAL_ERROR: 500}
DEFAULT_STATUS = 422


def status_of(exc: ClaimRefused) -> int:
    return STATUS.get(exc.reason, DEFAULT_STATUS)


def add_claim_routes(app: FastAPI, hub: Settlement) -> None:
    """The claims routes on the settlement app, and how their refusals are answered."""
    app.state.claims_hub = hub

    @app.exception_handler(ClaimRefused)
    async def claim_refused(_request: Request, exc: ClaimRefused):
        return JSONResponse(exc.body(), status_code=status_of(exc))

    app.include_router(router)


def _hub(request: Request) -> Settlement:
    return request.app.state.claims_hub


Hub = Annotated[Settlement, Depends(_hub)]


def _actor(request: Request, hub: Hub) -> Actor:
    auth = request.headers.get("authorization", "")
    actor = hub.claimants.get(hashlib.sha256(auth[7:].encode()).hexdigest()) if auth.lower().startswith("bearer ") else None
    if actor is None:
        raise ClaimRefused(ClaimWhy.UNAUTHENTICATED)
    return actor


Who = Annotated[Actor, Depends(_actor)]


async def _body(request: Request, _: Who) -> Any:
    raw = await request.body()
    if len(raw) > MAX_CLAIM_BYTES:
        raise ClaimRefused(Why.REQUEST_TOO_LARGE, f"at most {MAX_CLAIM_BYTES} bytes")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ClaimRefused(Why.INVALID_JSON, f"the body is not JSON: {exc}") from None


Body = Annotated[Any, Depends(_body)]
router = APIRouter()


async def _answer(request: Request, work, *args) -> Any:
    """The use case's answer; a fault of the hub's own is logged and answered 503 when it is
    transient (the same claim goes through later) or 500, with nothing half-done (one transaction)."""
    try:
        return await run_in_threadpool(work, *args)
    except ClaimRefused:
        raise
    except Exception as exc:
        log.exception("manual claims: %s %s could not be answered", request.method, request.url.path)
        if is_transient(exc):
            raise ClaimRefused(Why.HUB_UNAVAILABLE, "send the same claim again (a claim that did complete answers "
                                                    "the same)") from None
        raise ClaimRefused(Why.INTERNAL_ERROR) from None


@router.post("/v1/claims", status_code=201)
async def submit(request: Request, hub: Hub, who: Who, body: Body):
    """A manual claim: a home bureau's is priced at once; an agency's waits for the home bureau."""
    status, content = await _answer(request, hub.claims.submit, who, body)
    return JSONResponse(content, status_code=status)


@router.get("/v1/claims")
async def claims(request: Request, hub: Hub, who: Who, status: str | None = None):
    """The caller's claims, newest first (a bureau: its insured's; an agency: those it lodged)."""
    return {"claims": await _answer(request, hub.claims.list, who, status)}


@router.get("/v1/claims/{home_pool}/{claim_no}")
async def one(home_pool: str, claim_no: str, request: Request, hub: Hub, who: Who):
    return await _answer(request, hub.claims.get, who, home_pool, claim_no)


@router.post("/v1/claims/{home_pool}/{claim_no}/decision")
async def decide(home_pool: str, claim_no: str, request: Request, hub: Hub, who: Who, body: Body):
    """The home bureau approves (prices) or rejects a claim an agency lodged."""
    return await _answer(request, hub.claims.decide, who, home_pool, claim_no, body)
