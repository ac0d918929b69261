"""A bureau's funds: its advance (预付金) and the deposits the centre records, its fund-risk watch
(基金运行风险预警) and its insured's anomaly flags."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from hub.clearing.entrypoints.web import AsOf, Body, Operator, Refused, Service, Who
from hub.money import AmountError, yuan_to_fen

router = APIRouter()


@router.get("/v1/anomalies/{pool}")
async def anomalies(pool: str, clearing: Service, who: Who, as_of: AsOf):
    """The anomaly flags of a closed day for the pool's insured (default: its latest day with any)."""
    who.sees(pool, "anomalies_of_another_pool", "a bureau sees only its own insured's flags")
    found = await run_in_threadpool(clearing.service.anomalies, pool, as_of)
    if found is None:
        raise Refused(404, "no_flags", f"no anomaly flags for {pool}")
    return found


@router.get("/v1/fund-risk/{pool}")
async def fund_risk(pool: str, clearing: Service, who: Who, as_of: AsOf):
    """The pool's off-site spending per fund against its pro-rata budget."""
    who.sees(pool, "fund_risk_of_another_pool", "a bureau sees only its own funds")
    found = await run_in_threadpool(clearing.service.fund_risk, pool, as_of)
    if found is None:
        raise Refused(404, "no_budget", f"no off-site budget or closed day for {pool}")
    return found


@router.get("/v1/advances/{pool}")
async def advance(pool: str, clearing: Service, who: Who):
    who.sees(pool, "advance_of_another_pool", "a bureau sees only its own advance")
    found = await run_in_threadpool(clearing.service.advance, pool)
    if found is None:
        raise Refused(404, "no_advance", f"no advance kept for {pool} yet")
    return found


@router.post("/v1/advances/{pool}/deposits")
async def deposit(pool: str, clearing: Service, _: Operator, body: Body):
    """Money the bureau paid in: {"reference", "amount_yuan", "recorded_by", "note"} (idempotent by reference)."""
    try:
        amount = yuan_to_fen(body.get("amount_yuan"), "amount_yuan")
    except AmountError as exc:
        raise Refused(400, "invalid_amount", str(exc)) from None
    return await run_in_threadpool(clearing.service.deposit, pool, str(body.get("reference") or ""), amount,
                                   str(body.get("recorded_by") or "operator"), str(body.get("note") or ""))
