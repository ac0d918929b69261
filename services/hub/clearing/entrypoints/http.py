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
    GET  /v1/clearing-days/{pool}[/{day}]               bureau token of that pool: its closed days, one day's positions
    GET  /v1/hospital-months/{month}/{pool}             bureau token of that pool: its hospitals' month
    GET  /v1/statements-open                            operator token: statements not closed yet
    GET  /status                                        the operators' status page (?token=<operator token>)

The routes live in routes_days.py, routes_funds.py and routes_statements.py; who may call what and
how a refusal is answered, in web.py.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from hub.clearing.bootstrap import Clearing
from hub.clearing.entrypoints import routes_days, routes_funds, routes_statements
from hub.clearing.entrypoints.web import Operator, Service, add_refusal_handlers
from hub.operations.health import add_health_routes, database_ready
from hub.operations.metrics import CLEARING_QUARANTINED, add_metrics_route
from hub.operations.status import STATUS_PAGE, StatusHistory


def create_app(clearing: Clearing, history: StatusHistory | None = None, loops=None) -> FastAPI:
    """The service's HTTP app: its routers (days and files, funds, monthly statements; the shared
    caller and refusal handling in web.py), the status page, health and metrics."""
    app = FastAPI(title="interregion-clearing", redoc_url=None)
    app.state.clearing = clearing
    add_refusal_handlers(app)
    add_metrics_route(app)
    history = history or StatusHistory()
    for module in (routes_days, routes_funds, routes_statements):
        app.include_router(module.router)

    @app.get("/status")
    def status_page():
        # The page itself holds no data; it fetches status.json with the operator token.
        return Response(STATUS_PAGE, media_type="text/html; charset=utf-8")

    @app.get("/status.json")
    async def status_json(clearing: Service, _: Operator):
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
