"""The hospital-facing HTTP API: the national interface's envelope on one path, plus health.

    POST /fsi/api/rsfComIntfaceService/commInterface
    x-tif-paasid / x-tif-timestamp / x-tif-nonce / x-tif-signature   (or Authorization: Bearer)

Every answer is the convention's envelope with HTTP 200, as the platform answers: `infcode` "0",
or "-1" with `err_msg` (led by the stable reason code in brackets; also in `err_code`) — a HIS
reads the body, not the status. HTTP statuses are for the transport only: 401 (the request is
not signed by a known hospital), 413 (too large), 503 (the hub could not complete it now;
retry with the same msgid), 500 (a fault of the hub's own).

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
from datetime import datetime, timezone
from urllib.parse import quote

import orjson
from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from hub.operations.health import add_health_routes
from hub.operations.metrics import REQUEST_SECONDS, SETTLE_GROUP_SECONDS, SETTLE_GROUP_SIZE, add_metrics_route
from hub.operations.supervision import is_transient
from hub.rejections import Reason
from hub.settlement.adapters.nonces import RedisNonces
from hub.settlement.bootstrap import Settlement
from hub.settlement.entrypoints.claims_http import add_claim_routes
from hub.settlement.entrypoints.what_if_http import add_what_if_routes
from hub.settlement.entrypoints.gateway import Gateway, parse_body
from hub.settlement.service_layer.envelope import GROUPED, Reply, refused
from hub.settlement.service_layer.group_commit import GroupCommit
from hub.settlement.service_layer.reasons import Why

log = logging.getLogger(__name__)
CONVENTION_PATH = "/fsi/api/rsfComIntfaceService/commInterface"
MAX_BODY_BYTES = 8 * 1024 * 1024  # a 9101 upload carries its file (at most 4 MiB) as base64
_JSON_HEADERS = [(b"content-type", b"application/json")]

# The transport's own answers: the one place HTTP statuses other than 200 are chosen.
TRANSPORT_STATUS: dict[Reason, int] = {Why.UNAUTHENTICATED: 401, Why.REQUEST_TOO_LARGE: 413,
                                       Why.HUB_UNAVAILABLE: 503, Why.INTERNAL_ERROR: 500}


def status_of(reply: Reply) -> int:
    return TRANSPORT_STATUS.get(reply.reason, 200) if reply.reason is not None else 200


def _transport(reason: Reason, message: str = "") -> Reply:
    return refused(reason, message, datetime.now(timezone.utc))


class ConventionApp:
    """ASGI: POST on the convention path is answered here; everything else goes to `fallback`."""

    def __init__(self, hub: Settlement, fallback: FastAPI, group_commit: GroupCommit, gateway: Gateway):
        self.hub = hub
        self.fallback = fallback
        self.group_commit = group_commit
        self.gateway = gateway

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["path"] != CONVENTION_PATH or scope["method"] != "POST":
            await self.fallback(scope, receive, send)
            return
        t0 = time.perf_counter()
        reply, infno = await self._answer(scope, receive)
        if reply is None:  # the client went away
            return
        status = status_of(reply)
        if reply.file is not None:  # 9102: the file itself, as the platform answers a download
            name, body = reply.file
            headers = [(b"content-type", b"application/octet-stream"),
                       (b"content-disposition", f"attachment; filename*=UTF-8''{quote(name)}".encode())]
        else:
            body, headers = orjson.dumps(reply.body), list(_JSON_HEADERS)
        await send({"type": "http.response.start", "status": status,
                    "headers": [*headers, (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
        REQUEST_SECONDS.labels("settlement", infno, str(status)).observe(time.perf_counter() - t0)

    async def _body(self, receive) -> bytes | Reply | None:
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                return _transport(Why.REQUEST_TOO_LARGE, f"at most {MAX_BODY_BYTES} bytes")
            chunks.append(chunk)
            if not message.get("more_body"):
                return b"".join(chunks)

    async def _answer(self, scope, receive) -> tuple[Reply | None, str]:
        raw = await self._body(receive)
        if not isinstance(raw, bytes):
            return raw, "other"
        try:
            hospital = await self.gateway.authenticate(scope["headers"])
        except Exception as exc:  # the nonce store (Redis) lost: the request was not looked at
            if not is_transient(exc):
                raise
            log.warning("gateway: nonce store unavailable (%s)", type(exc).__name__)
            return _transport(Why.HUB_UNAVAILABLE, "the hub could not check the request's signature now; "
                                                   "sign it anew and retry with the same msgid"), "other"
        if isinstance(hospital, str):
            return _transport(Why.UNAUTHENTICATED, hospital), "other"
        service = self.hub.service
        try:
            envelope = parse_body(raw)
        except ValueError as exc:  # answered in the envelope, like every refusal of the input
            return _transport(Why.INVALID_JSON, f"the body is not JSON: {exc}"), "other"
        request = service.check(hospital, envelope)
        if isinstance(request, Reply):
            return request, "other"
        try:
            if request.infno in GROUPED:
                reply = await self.group_commit.submit(request)
            else:  # lookups and reconciliations read, in FastAPI's thread pool
                reply = await run_in_threadpool(service.answer, request)
        except Exception as exc:  # nothing half-done stays: each request is one transaction
            log.exception("infno %s msgid %s could not be answered", request.infno, request.msgid)
            if is_transient(exc):  # a lost database or Redis: the same request will go through later
                return _transport(Why.HUB_UNAVAILABLE, "the hub could not complete this request now; retry with "
                                  "the same msgid (a request that did complete answers the same again)"), request.infno
            # A fault of the hub's own (a bug): retrying would fail the same way, so it does not say to.
            return _transport(Why.INTERNAL_ERROR), request.infno
        return reply, request.infno


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
    shifted = hub.settings.clock_shift_days
    add_health_routes(app, lambda: None if hub.read_model.ready() else "the read model is rebuilding", loops,
                      notes=(f"business clock shifted {shifted} days (HUB_SETTLEMENT_CLOCK_SHIFT_DAYS)",) if shifted else ())
    add_claim_routes(app, hub)
    add_what_if_routes(app, hub)
    if hub.hospitals.sample_secrets:
        log.warning("some hospitals use the sample gateway secrets (paas_token_ref 'sample:'): for local runs only")
    gateway = Gateway(hub.hospitals, RedisNonces(hub.settings.redis_url))
    return ConventionApp(hub, app, group_commit, gateway)


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
