"""Policy what-if over the bureaus' API: a home bureau uploads a draft of its own pool's policy
and a date range; the same replay `hub policy replay` runs (the same engine over the settled
bills and paid manual claims) runs in the background, its progress and report kept in the
database.

    POST /v1/what-if                     {"policy": "<the draft's YAML>", "from": "yyyy-mm-dd", "to": "yyyy-mm-dd"}
    GET  /v1/what-if                     the bureau's runs, newest first
    GET  /v1/what-if/{run_id}            status, done / total, and the report's JSON once DONE
    GET  /v1/what-if/{run_id}/report.html  the report as the CLI writes it

Refusals are 4xx {"error": {"code", "message"}} and start nothing."""

from __future__ import annotations

import hashlib
import heapq
import json
import logging
import secrets
import threading
import time
from datetime import date, datetime, timezone
from typing import Annotated, Callable

import orjson
from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.concurrency import run_in_threadpool

from hub.reference.policy import Policy, PolicyFileError, load_policy_text
from hub.settlement.adapters.what_if_runs import WhatIfRuns
from hub.settlement.bootstrap import Settlement
from hub.settlement.service_layer.claims import Actor

log = logging.getLogger(__name__)
MAX_POLICY_BYTES = 256 * 1024
MAX_DAYS = 366
PROGRESS_EVERY_S = 0.5


def replay_document(hub: Settlement, draft: Policy, begin: date, end: date, top: int = 20,
                    progress: Callable[[int], None] = lambda n: None, total: Callable[[int], None] = lambda n: None) -> dict:
    """The what-if report of a draft over [begin, end] (as a dict: the JSON the CLI writes)."""
    from hub.settlement.adapters.replay_source import count_bills, paid_manual_claims, settled_bills
    from hub.settlement.service_layer.people import person_from_registration
    from hub.settlement.service_layer.pricing import newest_catalogues
    from hub.settlement.service_layer.replay import claim_bill, replay

    hospitals = {h.code: (h.pool, h.level, h.kind) for h in hub.hospitals.by_code.values()}
    catalogues = newest_catalogues(hub.read_model.catalogues())
    total(count_bills(hub.engine, draft.pool_code, begin, end))

    def persons(refs: list[str]) -> dict[str, dict]:
        return {ref: hub.codec.decode(raw).value for ref, raw in hub.read_model.registrations_bytes(refs).items()}

    bills = heapq.merge(settled_bills(hub.engine, draft.pool_code, begin, end),
                        map(claim_bill, paid_manual_claims(hub.engine, draft.pool_code, begin, end)),
                        key=lambda b: b.at)
    report = replay(draft, bills, persons, person_from_registration, hospitals, catalogues, begin, end,
                    progress=progress, top=top)
    return report.as_dict(top)


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def _run_view(row, with_document: bool) -> dict:
    out = {"run_id": row.run_id, "pool": row.pool, "policy_version": row.policy_version,
           "from": row.first_day.isoformat(), "to": row.last_day.isoformat(), "requested_by": row.requested_by,
           "status": row.status, "done": row.done, "total": row.total, "started_at": row.started_at.isoformat(),
           "updated_at": row.updated_at.isoformat(), "error": row.error}
    if with_document and row.status == "DONE":
        out["report"] = json.loads(row.document)
    return out


class _NoBureau(Exception):
    """A what-if request without a home bureau's token (answered 401 by the app's handler)."""


def _bureau(request: Request) -> Actor:
    """The home bureau the Bearer token belongs to."""
    auth = request.headers.get("authorization", "")
    who = request.app.state.what_if_claimants.get(hashlib.sha256(auth[7:].encode()).hexdigest()) \
        if auth.lower().startswith("bearer ") else None
    if who is None or who.kind != "bureau":
        raise _NoBureau()
    return who


Bureau = Annotated[Actor, Depends(_bureau)]


def add_what_if_routes(app: FastAPI, hub: Settlement) -> None:
    runs = WhatIfRuns(hub.engine)
    now = lambda: datetime.now(timezone.utc)  # noqa: E731
    app.state.what_if_claimants = hub.claimants
    app.add_exception_handler(_NoBureau, lambda request, exc: _error(401, "unauthenticated",
                                                                     "a home bureau's Bearer token"))

    @app.post("/v1/what-if", status_code=202)
    async def start(request: Request, who: Bureau):
        draft = _draft(await request.body(), who)
        if isinstance(draft, JSONResponse):
            return draft
        policy, begin, end, requested_by = draft
        run_id = f"WI{datetime.now(timezone.utc):%Y%m%d%H%M%S}{secrets.token_hex(4)}"
        await run_in_threadpool(runs.create, run_id, who.pool, policy.policy_version, begin, end, requested_by, 0, now())
        threading.Thread(target=_run, args=(hub, runs, run_id, policy, begin, end), name=f"what-if-{run_id}",
                         daemon=True).start()
        return {"run_id": run_id, "status": "RUNNING"}

    @app.get("/v1/what-if")
    async def mine(who: Bureau):
        return {"runs": [_run_view(r, False) for r in await run_in_threadpool(runs.of, who.pool)]}

    @app.get("/v1/what-if/{run_id}")
    async def one(run_id: str, who: Bureau):
        row = await run_in_threadpool(runs.get, run_id, who.pool)
        return _run_view(row, True) if row is not None else _error(404, "no_such_run", f"no what-if run {run_id} of yours")

    @app.get("/v1/what-if/{run_id}/report.html")
    async def report(run_id: str, who: Bureau):
        row = await run_in_threadpool(runs.get, run_id, who.pool)
        if row is None or row.status != "DONE":
            return _error(404, "no_report", f"no finished what-if run {run_id} of yours")
        return HTMLResponse(row.html)


def _draft(raw: bytes, who: Actor) -> tuple[Policy, date, date, str] | JSONResponse:
    """The request's draft, its date range and who asked; or the refusal."""
    if len(raw) > MAX_POLICY_BYTES + 1024:
        return _error(413, "request_too_large", f"a draft is at most {MAX_POLICY_BYTES} bytes")
    try:
        body = orjson.loads(raw)
        text, begin, end = body["policy"], date.fromisoformat(body["from"]), date.fromisoformat(body["to"])
        if not isinstance(text, str):
            raise TypeError
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return _error(400, "invalid_request", 'the body is {"policy": "<YAML>", "from": "yyyy-mm-dd", "to": "yyyy-mm-dd"}')
    if not 0 <= (end - begin).days < MAX_DAYS:
        return _error(400, "invalid_dates", f"from ≤ to, at most {MAX_DAYS} days")
    try:
        draft = load_policy_text(text, "the draft")
    except PolicyFileError as exc:
        return _error(400, "invalid_policy", str(exc))
    if draft.pool_code != who.pool:
        return _error(403, "policy_of_another_pool", f"a bureau replays drafts of its own pool ({who.pool})")
    return draft, begin, end, str(body.get("requested_by") or who.name)[:64]


def _run(hub: Settlement, runs: WhatIfRuns, run_id: str, draft: Policy, begin: date, end: date) -> None:
    """One run's replay, in the background: its progress recorded every PROGRESS_EVERY_S, then its
    report; a run that fails says so, and the service goes on."""
    from hub.settlement.entrypoints import replay_report

    done, last = 0, 0.0

    def progress(n: int) -> None:
        nonlocal done, last
        done += n
        if time.monotonic() - last >= PROGRESS_EVERY_S:
            last = time.monotonic()
            runs.progress(run_id, done, datetime.now(timezone.utc))

    try:
        document = replay_document(hub, draft, begin, end, progress=progress, total=lambda n: runs.counted(run_id, n))
        runs.finish(run_id, orjson.dumps(document), replay_report.render(document), done, datetime.now(timezone.utc))
    except Exception as exc:
        log.exception("what-if run %s failed", run_id)
        runs.fail(run_id, f"{exc.__class__.__name__}: {exc}", datetime.now(timezone.utc))
