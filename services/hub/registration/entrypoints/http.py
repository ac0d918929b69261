"""The bureau-facing HTTP API. A bureau's token acts only on its own pool's insured.

    POST  /v1/enrolments/import            text/csv body: an enrolment snapshot of the bureau's pool
    POST  /v1/filings                      {psn_no, filing_type, target_pool, valid_from, valid_to?}
    PATCH /v1/filings/{filing_id}          {target_pool?, valid_from?, valid_to?, clear_valid_to?}
    POST  /v1/filings/{filing_id}/revoke
    POST  /v1/status                       {psn_no, region, date}: status for care in a region on a day
    POST  /v1/vouchers                     {psn_no}: an e-voucher token (mdtrt_cert_type 01) for the
                                           person to show at an out-of-region hospital (the home
                                           region's voucher service, as the hub models it)

Person ids travel only in request bodies, never in paths, so access logs never hold them.
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime, timezone

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from hub.operations.health import add_health_routes, database_ready
from hub.operations.metrics import add_metrics_route

from hub.registration.bootstrap import Bureau, Registration
from hub.registration.domain.model import Rejection
from hub.registration.service_layer.refusals import RegistrationRefused

MAX_IMPORT_BYTES = 200 * 1024 * 1024


class NewFiling(BaseModel):
    model_config = ConfigDict(extra="forbid")
    psn_no: str = Field(min_length=1, max_length=64)
    filing_type: str
    target_pool: str
    valid_from: date
    valid_to: date | None = None


class FilingChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    target_pool: str | None = None
    valid_from: date | None = None
    valid_to: date | None = None
    clear_valid_to: bool = False


class VoucherRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    psn_no: str = Field(min_length=1, max_length=64)


class StatusQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    psn_no: str = Field(min_length=1, max_length=64)
    region: str = Field(pattern=r"^[0-9]{6}$")
    date: date


def _json_body(model: type[BaseModel]) -> dict:
    """The OpenAPI description of a JSON body the route reads itself (so that its refusals stay
    the API's own 400 `invalid_request`, not FastAPI's 422): for /docs and for schemathesis."""
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": model.model_json_schema()}}}}


CSV_BODY = {"requestBody": {"required": True, "content": {"text/csv": {"schema": {"type": "string"}}}}}


# How each refusal is answered: the one place registration chooses HTTP statuses.
STATUS: dict[Rejection, int] = {Rejection.PERSON_NOT_ENROLLED: 404, Rejection.FILING_NOT_FOUND: 404,
                                Rejection.PERSON_OF_ANOTHER_POOL: 403, Rejection.FILING_REVOKED: 409,
                                Rejection.ENROLMENT_ENDED: 409, Rejection.INVALID_CSV: 400, Rejection.TOO_MANY_ROWS: 413}
DEFAULT_STATUS = 422  # the request is well-formed but its content is refused (a filing's dates, a pool code ...)


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def create_app(reg: Registration, loops=None) -> FastAPI:
    app = FastAPI(title="registration", redoc_url=None)
    add_metrics_route(app)

    def bureau_of(request: Request) -> Bureau | None:
        auth = request.headers.get("authorization", "")
        if not auth.lower().startswith("bearer "):
            return None
        return reg.bureaus.get(hashlib.sha256(auth[7:].encode()).hexdigest())

    async def run(request: Request, model: type[BaseModel] | None, work):
        bureau = bureau_of(request)
        if bureau is None:
            return _error(401, "unauthenticated", "send the bureau's token as 'Authorization: Bearer <token>'")
        body = None
        if model is not None:
            try:
                body = model.model_validate_json(await request.body())
            except ValidationError as exc:
                first = exc.errors()[0]
                return _error(400, "invalid_request", f"{'.'.join(map(str, first['loc']))}: {first['msg']}")
        try:
            return await run_in_threadpool(work, bureau, body)
        except RegistrationRefused as exc:
            return _error(STATUS.get(exc.reason, DEFAULT_STATUS), exc.code, exc.message)

    @app.post("/v1/enrolments/import", openapi_extra=CSV_BODY)
    async def import_enrolments(request: Request):
        raw = await request.body()
        if len(raw) > MAX_IMPORT_BYTES:
            return _error(413, "request_too_large", f"at most {MAX_IMPORT_BYTES} bytes")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return _error(400, "invalid_encoding", "the CSV must be UTF-8")
        return await run(request, None, lambda b, _: reg.service.import_snapshot(b.pool, text).as_dict())

    @app.post("/v1/filings", status_code=201, openapi_extra=_json_body(NewFiling))
    async def create(request: Request):
        def work(b: Bureau, f: NewFiling):
            spec = reg.service.create_filing(b.pool, f.psn_no, f.filing_type, f.target_pool, f.valid_from, f.valid_to)
            return JSONResponse(_filing(spec), status_code=201)
        return await run(request, NewFiling, work)

    @app.patch("/v1/filings/{filing_id}", openapi_extra=_json_body(FilingChange))
    async def change(filing_id: str, request: Request):
        return await run(request, FilingChange, lambda b, c: _filing(reg.service.change_filing(
            b.pool, filing_id, c.target_pool, c.valid_from, c.valid_to, c.clear_valid_to)))

    @app.post("/v1/filings/{filing_id}/revoke")
    async def revoke(filing_id: str, request: Request):
        return await run(request, None, lambda b, _: _filing(reg.service.revoke_filing(b.pool, filing_id)))

    @app.post("/v1/status", openapi_extra=_json_body(StatusQuery))
    async def status(request: Request):
        return await run(request, StatusQuery, lambda b, q: reg.service.status(b.pool, q.psn_no, q.region, q.date))

    @app.post("/v1/vouchers", openapi_extra=_json_body(VoucherRequest))
    async def voucher(request: Request):
        return await run(request, VoucherRequest,
                         lambda b, v: reg.service.issue_voucher(b.pool, v.psn_no, datetime.now(timezone.utc)))

    add_health_routes(app, database_ready(reg.engine), loops)

    return app


def _filing(spec) -> dict:
    return {"filing_id": spec.filing_id, "filing_type": spec.filing_type.value, "target_pool": spec.target_pool,
            "valid_from": spec.valid_from.isoformat(), "valid_to": spec.valid_to.isoformat() if spec.valid_to else None,
            "revoked": spec.revoked}
