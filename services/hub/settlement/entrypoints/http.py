"""The hospital-facing HTTP API: the national interface's envelope on one path, plus health.

    POST /fsi/api/rsfComIntfaceService/commInterface   Authorization: Bearer <hospital token>

The answer is always the convention's envelope (`infcode` 0 or -1, `err_msg`, `output`),
with an HTTP status that says the same: 200, or 4xx for input the hub refuses, 503 while the
read model rebuilds.

The convention path is the hot path: it is served by a plain ASGI handler in front of the
FastAPI app (which serves health, metrics and /docs), and every transaction that writes (and
pre-settlement) goes to the group commit (`service_layer/group_commit.py`) instead of one
thread-pool hop and one transaction each.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import time

import orjson
from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from hub.operations.health import add_health_routes
from hub.operations.metrics import REQUEST_SECONDS, SETTLE_GROUP_SECONDS, SETTLE_GROUP_SIZE, add_metrics_route
from hub.operations.supervision import is_transient
from hub.rejections import Reason
from hub.settlement.bootstrap import Settlement
from hub.settlement.domain.refusals import RefusalCode
from hub.settlement.service_layer.group_commit import GroupCommit
from hub.settlement.service_layer.envelope import GROUPED, Reply
from hub.settlement.service_layer.reasons import Why

log = logging.getLogger(__name__)
CONVENTION_PATH = "/fsi/api/rsfComIntfaceService/commInterface"
MAX_BODY_BYTES = 2 * 1024 * 1024
_JSON_HEADERS = [(b"content-type", b"application/json")]


# How each refusal is answered on the wire: the one place HTTP statuses are chosen. Every
# refusal the engine decides (domain.refusals.RefusalCode) is 422.
HTTP_STATUS: dict[Reason, int] = {
    **{why: 400 for why in Why},
    Why.HOSPITAL_MISMATCH: 403, Why.VISIT_OF_ANOTHER_HOSPITAL: 403, Why.SETTLEMENT_OF_ANOTHER_HOSPITAL: 403,
    Why.VISIT_NOT_FOUND: 404, Why.SETTLEMENT_NOT_FOUND: 404,
    Why.MSGID_REUSED: 409, Why.VISIT_NOT_OPEN: 409, Why.VISIT_ALREADY_SETTLED: 409,
    Why.SETTLEMENT_ALREADY_REVERSED: 409,
    Why.HUB_NOT_READY: 503,
    **{refusal: 422 for refusal in RefusalCode},
}


def status_of(reply: Reply) -> int:
    return 200 if reply.reason is None else HTTP_STATUS[reply.reason]


def _error(code: str, message: str) -> dict:
    return {"infcode": -1, "err_code": code, "err_msg": message, "output": {}}


class ConventionApp:
    """ASGI: POST on the convention path is answered here; everything else goes to `fallback`."""

    def __init__(self, hub: Settlement, fallback: FastAPI, group_commit: GroupCommit):
        self.hub = hub
        self.fallback = fallback
        self.group_commit = group_commit

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["path"] != CONVENTION_PATH or scope["method"] != "POST":
            await self.fallback(scope, receive, send)
            return
        t0 = time.perf_counter()
        status, body, infno = await self._answer(scope, receive)
        await send({"type": "http.response.start", "status": status,
                    "headers": [*_JSON_HEADERS, (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
        REQUEST_SECONDS.labels("settlement", infno, str(status)).observe(time.perf_counter() - t0)

    async def _answer(self, scope, receive) -> tuple[int, bytes, str]:
        auth = b""
        for name, value in scope["headers"]:
            if name == b"authorization":
                auth = value
                break
        token = auth[7:].decode("latin-1") if auth[:7].lower() == b"bearer " else None
        hospital = self.hub.hospitals.authenticate(token) if token else None
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return 499, b"", "other"
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                return 413, orjson.dumps(_error("request_too_large", f"at most {MAX_BODY_BYTES} bytes")), "other"
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        if hospital is None:
            return 401, orjson.dumps(_error("unauthenticated",
                                            "send the hospital's token as 'Authorization: Bearer <token>'")), "other"
        try:
            envelope = orjson.loads(b"".join(chunks))
        except orjson.JSONDecodeError as exc:
            return 400, orjson.dumps(_error("invalid_json", f"the body is not JSON: {exc}")), "other"
        service = self.hub.service
        request = service.check(hospital, envelope)
        if isinstance(request, Reply):
            return status_of(request), orjson.dumps(request.body), "other"
        try:
            if request.infno in GROUPED:
                reply = await self.group_commit.submit(request)
            else:  # lookups and reconciliations read, in FastAPI's thread pool
                reply = await run_in_threadpool(service.answer, request)
        except Exception as exc:  # nothing half-done stays: each request is one transaction
            log.exception("infno %s msgid %s could not be answered", request.infno, request.msgid)
            if is_transient(exc):  # a lost database or Redis: the same request will go through later
                return 503, orjson.dumps(_error(
                    "hub_unavailable", "the hub could not complete this request now; retry with the same msgid "
                    "(a request that did complete answers the same again)")), request.infno
            # A fault of the hub's own (a bug): retrying would fail the same way, so it does not say to.
            return 500, orjson.dumps(_error("internal_error", "the hub failed on this request; it is logged for "
                                                              "the operators")), request.infno
        return status_of(reply), orjson.dumps(reply.body), request.infno


def _freeze_long_lived() -> None:
    """Move every object alive now (the app, the policies, ~3,000 catalogue items per pool) out
    of the garbage collector's sight: full collections no longer walk them, which measured as
    the difference between settle groups that sometimes took 50-200 ms and none that did."""
    gc.collect()
    gc.freeze()


def create_app(hub: Settlement, loops=None) -> ConventionApp:
    """The app; `loops` (the Supervisor, or in a worker process the LoopStateFile) counts for readiness."""
    hub.service.reference.after_reload = _freeze_long_lived
    if hub.read_model.ready():
        hub.service.reference.current()  # load the reference data now, not on the first bill
    _freeze_long_lived()
    def observe(size: int, seconds: float) -> None:
        SETTLE_GROUP_SIZE.observe(size)
        SETTLE_GROUP_SECONDS.observe(seconds)

    group_commit = GroupCommit(hub.service.run_group, threads=hub.settings.settle_threads,
                               max_group=hub.settings.settle_max_group, observe=observe,
                               linger_s=hub.settings.settle_linger_ms / 1000)

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        yield
        group_commit.close()  # settles what is queued before the process ends

    app = FastAPI(title="settle-at-treatment", docs_url="/docs", redoc_url=None, lifespan=lifespan,
                  description=f"The national interface's transactions are served at POST {CONVENTION_PATH}.")
    add_metrics_route(app)
    add_health_routes(app, lambda: None if hub.read_model.ready() else "the read model is rebuilding", loops)
    return ConventionApp(hub, app, group_commit)


def app_from_env() -> ConventionApp:
    """The app wired from the environment: the factory each uvicorn worker process calls."""
    import os
    from pathlib import Path

    from hub.operations.logs import configure_logging
    from hub.operations.supervision import LoopStateFile, die_with_parent
    from hub.settlement.bootstrap import bootstrap

    configure_logging()
    die_with_parent()  # a worker never outlives the process that runs the loops (and holds the port)
    state_file = os.environ.get("HUB_LOOP_STATE_FILE")
    return create_app(bootstrap(), LoopStateFile(Path(state_file)) if state_file else None)
