"""Registration's routes: a bureau's enrolment snapshot, its filings (备案), and a person's standing
and e-vouchers. Person ids travel only in request bodies, never in paths."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from hub.registration.entrypoints.web import (CSV_BODY, Caller, FilingChange, NewFiling, Refused, Service,
                                              StatusQuery, VoucherRequest, json_body, openapi_body)

MAX_IMPORT_BYTES = 200 * 1024 * 1024
router = APIRouter()


@router.post("/v1/enrolments/import", openapi_extra=CSV_BODY)
async def import_enrolments(request: Request, reg: Service, bureau: Caller):
    """A text/csv enrolment snapshot of the bureau's pool."""
    raw = await request.body()
    if len(raw) > MAX_IMPORT_BYTES:
        raise Refused(413, "request_too_large", f"at most {MAX_IMPORT_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Refused(400, "invalid_encoding", "the CSV must be UTF-8") from None
    return (await run_in_threadpool(reg.service.import_snapshot, bureau.pool, text)).as_dict()


@router.post("/v1/filings", status_code=201, openapi_extra=openapi_body(NewFiling))
async def create_filing(reg: Service, bureau: Caller, f: Annotated[NewFiling, Depends(json_body(NewFiling))]):
    spec = await run_in_threadpool(reg.service.create_filing, bureau.pool, f.psn_no, f.filing_type, f.target_pool,
                                   f.valid_from, f.valid_to)
    return JSONResponse(filing_dict(spec), status_code=201)


@router.patch("/v1/filings/{filing_id}", openapi_extra=openapi_body(FilingChange))
async def change_filing(filing_id: str, reg: Service, bureau: Caller,
                        c: Annotated[FilingChange, Depends(json_body(FilingChange))]):
    return filing_dict(await run_in_threadpool(reg.service.change_filing, bureau.pool, filing_id, c.target_pool,
                                               c.valid_from, c.valid_to, c.clear_valid_to))


@router.post("/v1/filings/{filing_id}/revoke")
async def revoke_filing(filing_id: str, reg: Service, bureau: Caller):
    return filing_dict(await run_in_threadpool(reg.service.revoke_filing, bureau.pool, filing_id))


@router.post("/v1/status", openapi_extra=openapi_body(StatusQuery))
async def status(reg: Service, bureau: Caller, q: Annotated[StatusQuery, Depends(json_body(StatusQuery))]):
    """A person's standing for care in a region on a day."""
    return await run_in_threadpool(reg.service.status, bureau.pool, q.psn_no, q.region, q.date)


@router.post("/v1/vouchers", openapi_extra=openapi_body(VoucherRequest))
async def voucher(reg: Service, bureau: Caller, v: Annotated[VoucherRequest, Depends(json_body(VoucherRequest))]):
    """An e-voucher token (mdtrt_cert_type 01) for the person to show at an out-of-region hospital."""
    return await run_in_threadpool(reg.service.issue_voucher, bureau.pool, v.psn_no, datetime.now(timezone.utc))


def filing_dict(spec) -> dict:
    return {"filing_id": spec.filing_id, "filing_type": spec.filing_type.value, "target_pool": spec.target_pool,
            "valid_from": spec.valid_from.isoformat(), "valid_to": spec.valid_to.isoformat() if spec.valid_to else None,
            "revoked": spec.revoked}
