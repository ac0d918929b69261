"""Monthly statements: the centre issues them, a bureau reads, confirms or disputes its lines and
closes its statement, the centre resolves disputes; and the treatment bureau's hospitals' month."""

from __future__ import annotations

from fastapi import APIRouter, Query
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from hub.clearing.entrypoints.web import MEDIA, Body, Operator, Refused, Service, Who

router = APIRouter()
OWN = ("statement_of_another_pool", "a bureau sees and acts on only its own statements")


@router.post("/v1/statements/{month}/issue")
async def issue_statements(month: str, clearing: Service, _: Operator):
    return {"issued": await run_in_threadpool(clearing.service.months.issue, month, "operator")}


@router.get("/v1/statements-open")
async def open_statements(clearing: Service, _: Operator):
    """Issued monthly statements not closed yet (operators)."""
    return await run_in_threadpool(clearing.service.months.still_open)


@router.get("/v1/hospital-months/{month}/{pool}")
async def hospital_month(month: str, pool: str, clearing: Service, who: Who):
    """The treatment bureau's hospitals' month: what each confirmed (3261), did not agree or has not
    confirmed of its lines, and their clearing applications (3203/3204)."""
    who.sees(pool, "month_of_another_pool", "a bureau sees only its own hospitals' month")
    return await run_in_threadpool(clearing.service.hospital_month, month, pool)


@router.get("/v1/statements/{month}/{name}")
async def statement(month: str, name: str, clearing: Service, who: Who, counterparty: str = "", hospital: str = "",
                    insutype: str = "", state: str = "", limit: int | None = Query(None, ge=1, le=100_000),
                    offset: int = Query(0, ge=0, le=100_000_000)):
    """The statement (JSON) with its lines — filtered by counterparty, hospital, insutype and state, at
    most `limit` of them, when asked — or one of a closed statement's files."""
    pool, _, suffix = name.partition(".")
    who.sees(pool, *OWN)
    if not suffix:
        asked = {"counterparty_pool": counterparty, "hospital_code": hospital, "insutype": insutype, "state": state}
        found = await run_in_threadpool(clearing.service.months.show, month, pool,
                                        asked if any(asked.values()) or limit else None, limit, offset)
        if found is None:
            raise Refused(404, "statement_not_found", f"no {month} statement for {pool}")
        return found
    if suffix not in MEDIA:
        raise Refused(404, "no_such_file", "files are <pool>.csv, .json, .xlsx, .sha256 and .sig")
    body = await run_in_threadpool(clearing.service.months.statement_file, month, pool, suffix)
    if body is None:
        raise Refused(404, "no_such_file", f"no closed {month} statement for {pool}")
    return Response(body, media_type=MEDIA[suffix],
                    headers={"content-disposition": f'attachment; filename="statement_{month}_{pool}.{suffix}"'})


@router.post("/v1/statements/{month}/{pool}/lines")
async def statement_lines(month: str, pool: str, clearing: Service, who: Who, body: Body):
    """{"action": confirm|unconfirm|dispute|withdraw, "event_ids": [...] | "all_pending": true, "reason": "..."}"""
    who.acts_for(pool, *OWN)
    ids = body.get("event_ids", [])
    if not isinstance(ids, list):
        raise Refused(400, "invalid_lines", "event_ids is a list of strings")
    return await run_in_threadpool(clearing.service.months.act, month, pool, str(body.get("action", "")), ids,
                                   str(body.get("reason") or ""), who.name, body.get("all_pending") is True)


@router.post("/v1/statements/{month}/{pool}/lines/{event_id}/resolve")
async def resolve_dispute(month: str, pool: str, event_id: str, clearing: Service, _: Operator, body: Body):
    """{"note": "..."}: how the dispute was resolved."""
    return await run_in_threadpool(clearing.service.months.resolve, month, pool, event_id,
                                   str(body.get("note") or ""), "operator")


@router.post("/v1/statements/{month}/{pool}/close")
async def close_statement(month: str, pool: str, clearing: Service, who: Who):
    who.sees(pool, *OWN)
    return await run_in_threadpool(clearing.service.months.close, month, pool, who.name)
