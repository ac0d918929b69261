"""What every registration route shares: the calling bureau (its bearer token, by SHA-256), a JSON
body read into its model (refused as the API's own 400 `invalid_request`, not FastAPI's 422), and
the one table of HTTP statuses for registration's refusals."""

from __future__ import annotations

import hashlib
from datetime import date
from typing import Annotated, Callable

from fastapi import Depends, FastAPI, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hub.operations.http_refusals import EdgeRefused as Refused, answer_refusals
from hub.registration.bootstrap import Bureau, Registration
from hub.registration.domain.model import Rejection
from hub.registration.service_layer.refusals import RegistrationRefused

# How each refusal is answered: the one place registration chooses HTTP statuses.
STATUS: dict[Rejection, int] = {Rejection.PERSON_NOT_ENROLLED: 404, Rejection.FILING_NOT_FOUND: 404,
                                Rejection.PERSON_OF_ANOTHER_POOL: 403, Rejection.FILING_REVOKED: 409,
                                Rejection.ENROLMENT_ENDED: 409, Rejection.INVALID_CSV: 400, Rejection.TOO_MANY_ROWS: 413}
DEFAULT_STATUS = 422  # the request is well-formed but its content is refused (a filing's dates, a pool code ...)


def add_refusal_handlers(app: FastAPI) -> None:
    answer_refusals(app, RegistrationRefused, lambda exc: STATUS.get(exc.reason, DEFAULT_STATUS))


def registration_of(request: Request) -> Registration:
    return request.app.state.registration


Service = Annotated[Registration, Depends(registration_of)]


def bureau_of(request: Request, reg: Service) -> Bureau:
    auth = request.headers.get("authorization", "")
    bureau = reg.bureaus.get(hashlib.sha256(auth[7:].encode()).hexdigest()) if auth.lower().startswith("bearer ") else None
    if bureau is None:
        raise Refused(401, "unauthenticated", "send the bureau's token as 'Authorization: Bearer <token>'")
    return bureau


Caller = Annotated[Bureau, Depends(bureau_of)]


def json_body(model: type[BaseModel]) -> Callable:
    """A dependency reading the request's JSON body into `model` (after the bureau is known)."""
    async def read(request: Request, _: Caller) -> BaseModel:
        try:
            return model.model_validate_json(await request.body())
        except ValidationError as exc:
            first = exc.errors()[0]
            raise Refused(400, "invalid_request", f"{'.'.join(map(str, first['loc']))}: {first['msg']}") from None
    return read


def openapi_body(model: type[BaseModel]) -> dict:
    """The OpenAPI description of a JSON body the route reads itself: for /docs and for schemathesis."""
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": model.model_json_schema()}}}}


CSV_BODY = {"requestBody": {"required": True, "content": {"text/csv": {"schema": {"type": "string"}}}}}


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
