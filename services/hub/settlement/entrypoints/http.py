"""The hospital-facing HTTP API: the national interface's envelope on one path, plus health.

    POST /fsi/api/rsfComIntfaceService/commInterface   Authorization: Bearer <hospital token>

The answer is always the convention's envelope (`infcode` 0 or -1, `err_msg`, `output`),
with an HTTP status that says the same: 200, or 4xx for input the hub refuses, 503 while the
read model rebuilds.
"""

from __future__ import annotations

import logging
import time

import orjson

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from hub.operations.health import add_health_routes
from hub.operations.metrics import REQUEST_SECONDS, add_metrics_route
from hub.settlement.bootstrap import Settlement

log = logging.getLogger(__name__)
CONVENTION_PATH = "/fsi/api/rsfComIntfaceService/commInterface"
MAX_BODY_BYTES = 2 * 1024 * 1024


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"infcode": -1, "err_code": code, "err_msg": message, "output": {}}, status_code=status)


def create_app(hub: Settlement) -> FastAPI:
    app = FastAPI(title="settle-at-treatment", docs_url="/docs", redoc_url=None)
    add_metrics_route(app)

    @app.post(CONVENTION_PATH)
    async def convention(request: Request) -> Response:
        auth = request.headers.get("authorization", "")
        hospital = hub.hospitals.authenticate(auth[7:]) if auth.lower().startswith("bearer ") else None
        if hospital is None:
            return _error(401, "unauthenticated", "send the hospital's token as 'Authorization: Bearer <token>'")
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            return _error(413, "request_too_large", f"at most {MAX_BODY_BYTES} bytes")
        try:
            envelope = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            return _error(400, "invalid_json", f"the body is not JSON: {exc}")
        # The handler blocks on the database; FastAPI runs sync work in its thread pool.
        from starlette.concurrency import run_in_threadpool

        t0 = time.perf_counter()
        reply = await run_in_threadpool(hub.service.handle, hospital, envelope)
        infno = str(envelope.get("infno", "")) if isinstance(envelope, dict) else ""
        REQUEST_SECONDS.labels("settlement", infno if infno.isdigit() and len(infno) == 4 else "other",
                               str(reply.status)).observe(time.perf_counter() - t0)
        return Response(orjson.dumps(reply.body), status_code=reply.status, media_type="application/json")

    add_health_routes(app, lambda: None if hub.read_model.ready() else "the read model is rebuilding")

    return app


def app_from_env() -> FastAPI:
    """The app wired from the environment: the factory each uvicorn worker process calls."""
    from hub.settlement.bootstrap import bootstrap

    return create_app(bootstrap())
