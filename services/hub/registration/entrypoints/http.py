"""The bureau-facing HTTP API. A bureau's token acts only on its own pool's insured.

    POST  /v1/enrolments/import            text/csv body: an enrolment snapshot of the bureau's pool
    POST  /v1/filings                      {psn_no, filing_type, target_pool, valid_from, valid_to?}
    PATCH /v1/filings/{filing_id}          {target_pool?, valid_from?, valid_to?, clear_valid_to?}
    POST  /v1/filings/{filing_id}/revoke
    POST  /v1/status                       {psn_no, region, date}: status for care in a region on a day
    POST  /v1/vouchers                     {psn_no}: an e-voucher token (mdtrt_cert_type 01) for the
                                           person to show at an out-of-region hospital (the home
                                           region's voucher service, as the hub models it)

Person ids travel only in request bodies, never in paths, so access logs never hold them. The routes
are in routes.py; the calling bureau, the bodies and how a refusal is answered, in web.py.
"""

from __future__ import annotations

from fastapi import FastAPI

from hub.operations.health import add_health_routes, database_ready
from hub.operations.metrics import add_metrics_route
from hub.registration.bootstrap import Registration
from hub.registration.entrypoints import routes
from hub.registration.entrypoints.web import add_refusal_handlers


def create_app(reg: Registration, loops=None) -> FastAPI:
    app = FastAPI(title="registration", redoc_url=None)
    app.state.registration = reg
    add_refusal_handlers(app)
    add_metrics_route(app)
    app.include_router(routes.router)
    add_health_routes(app, database_ready(reg.engine), loops)
    return app
