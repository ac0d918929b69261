"""A bureau's own work besides clearing: the manual claims (an agency's inbox, the bureau's own
claim file), its enrolment and filings (registration), and policy what-if (settlement's replay)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from hub.business_day import business_day
from hub.portal.bootstrap import Portal
from hub.portal.domain.people import Refusal, Refused, Role
from hub.portal.service_layer import accounts, approvals, pages
from hub.portal.entrypoints.web import Checked, PortalRefusal, Signed, Wired, bureau_person, outcome, page
from hub.privacy import mask_person_id

router = APIRouter()


# ---------------------------------------------------------------- manual claims (settlement)


def claims_view(request: Request, portal: Portal, who: accounts.Session, status: str = "", number: int = 1,
                uploaded: list | None = None):
    pool = bureau_person(who)
    if status not in ("", "LODGED", "SETTLED", "REJECTED"):
        raise PortalRefusal(Refused(Refusal.INVALID_INPUT, "status: LODGED, SETTLED or REJECTED"))
    shown = pages.paged(portal.api.claims(pool, status or None), number)
    recommendations = {r.subject: r for r in portal.repository.pending(pool) if r.kind == "claim"}
    return page(request, "claims.html", who, pool=pool, claims=shown["rows"], paging=shown, status=status,
                recommendations=recommendations, uploaded=uploaded)


@router.get("/claims", response_class=HTMLResponse)
def claims_page(request: Request, who: Signed, portal: Wired, status: str = "",
                number: Annotated[int, Query(alias="page", ge=1, le=10_000)] = 1):
    return claims_view(request, portal, who, status, number)


@router.post("/claims/upload", response_class=HTMLResponse)
async def upload_claims(request: Request, who: Checked, portal: Wired, claims_file: UploadFile):
    """A bureau's own claims (one JSON object or a list), priced and paid at once: a supervisor's."""
    pool = bureau_person(who)
    if who.user.role is not Role.SUPERVISOR:
        raise PortalRefusal(Refused(Refusal.SUPERVISOR_ONLY, "uploaded claims are paid at once"))
    claims, why = pages.claim_file(await claims_file.read(pages.MAX_CLAIM_FILE + 1))
    if why:
        raise PortalRefusal(Refused(Refusal.INVALID_INPUT, why))
    results = []
    for claim in claims:
        code, answer = await run_in_threadpool(portal.api.submit_claim, pool, claim)
        results.append(pages.claim_result(claim, code, answer))
    portal.repository.record(portal.clock(), who.user.username, pool, "upload_claims", claims_file.filename or "",
                             f"{sum(r['ok'] for r in results)} paid, {sum(not r['ok'] for r in results)} refused")
    return claims_view(request, portal, who, uploaded=results)


@router.post("/claims/{claim_no}")
def claim_step(who: Checked, portal: Wired, claim_no: str, step: Annotated[str, Form()],
               decision: Annotated[str, Form()] = "", note: Annotated[str, Form(max_length=400)] = ""):
    """A clerk recommends (step=prepare); a supervisor approves or sends it back."""
    pool = bureau_person(who)
    if step == "prepare":
        outcome(approvals.prepare(portal.repository, who.user, "claim", pool, claim_no, decision, note,
                                  portal.clock()))
    else:
        outcome(approvals.check(portal.repository, who.user, "claim", pool, claim_no, step == "approve",
                                portal.clock(), lambda r: portal.api.decide_claim(
                                    pool, claim_no, r.decision == "approve", r.note or "经审核同意 approved")))
    return RedirectResponse(f"/claims?done={step}:{claim_no}", status_code=303)


# ---------------------------------------------------------------- enrolment and filings (registration)


def people_page(request: Request, portal: Portal, who: accounts.Session, **shown):
    return page(request, "people.html", who, pool=who.user.pool, today=business_day(portal.clock()).isoformat(), **shown)


@router.get("/people", response_class=HTMLResponse)
def people(request: Request, who: Signed, portal: Wired):
    bureau_person(who)
    return people_page(request, portal, who)


@router.post("/people/enrolments", response_class=HTMLResponse)
async def import_enrolments(request: Request, who: Checked, portal: Wired, snapshot: UploadFile):
    pool = bureau_person(who)
    body = await snapshot.read(pages.MAX_SNAPSHOT + 1)
    if len(body) > pages.MAX_SNAPSHOT:
        raise PortalRefusal(Refused(Refusal.INVALID_INPUT, f"a snapshot is at most {pages.MAX_SNAPSHOT} bytes"))
    report = await run_in_threadpool(portal.api.import_enrolments, pool, body)
    portal.repository.record(portal.clock(), who.user.username, pool, "import_enrolments", snapshot.filename or "",
                             f"{report['rows_changed']} changed, {report['rows_bad']} bad of {report['rows_total']}")
    return people_page(request, portal, who, report=report)


@router.post("/people/filings", response_class=HTMLResponse)
def file(request: Request, who: Checked, portal: Wired, psn_no: Annotated[str, Form(max_length=64)],
         filing_type: Annotated[str, Form(max_length=32)], target_pool: Annotated[str, Form(max_length=6)],
         valid_from: Annotated[str, Form(max_length=10)], valid_to: Annotated[str, Form(max_length=10)] = ""):
    pool = bureau_person(who)
    filing = portal.api.file(pool, {"psn_no": psn_no, "filing_type": filing_type, "target_pool": target_pool,
                                    "valid_from": valid_from, "valid_to": valid_to or None})
    portal.repository.record(portal.clock(), who.user.username, pool, "file", filing["filing_id"],
                             f"{mask_person_id(psn_no)} {filing_type} → {target_pool}")
    return people_page(request, portal, who, filing=filing)


@router.post("/people/filings/revoke", response_class=HTMLResponse)
def revoke(request: Request, who: Checked, portal: Wired, filing_id: Annotated[str, Form(max_length=64)]):
    pool = bureau_person(who)
    filing = portal.api.revoke_filing(pool, filing_id)
    portal.repository.record(portal.clock(), who.user.username, pool, "revoke_filing", filing_id, "")
    return people_page(request, portal, who, filing=filing)


@router.post("/people/lookup", response_class=HTMLResponse)
def look_up(request: Request, who: Checked, portal: Wired, psn_no: Annotated[str, Form(max_length=64)],
            region: Annotated[str, Form(max_length=6)], on: Annotated[str, Form(max_length=10)]):
    """A person's standing, asked by number (a POST: the number stays out of addresses and logs);
    answered with the masked id only."""
    pool = bureau_person(who)
    found = portal.api.person_status(pool, psn_no, region, on)
    portal.repository.record(portal.clock(), who.user.username, pool, "look_up", found["person_id_masked"], region)
    return people_page(request, portal, who, person=found)


# ---------------------------------------------------------------- policy what-if (settlement's replay)


def no_run(run_id: str) -> PortalRefusal:
    return PortalRefusal(Refused(Refusal.INVALID_INPUT, f"no what-if run {run_id} of yours"))


@router.get("/what-if", response_class=HTMLResponse)
def what_if_page(request: Request, who: Signed, portal: Wired):
    pool = bureau_person(who)
    today = business_day(portal.clock())
    return page(request, "what_if.html", who, pool=pool, runs=portal.api.what_ifs(pool),
                first=today.replace(month=1, day=1).isoformat(), last=today.isoformat())


@router.post("/what-if")
async def start_what_if(who: Checked, portal: Wired, draft: UploadFile, first: Annotated[str, Form(max_length=10)],
                        last: Annotated[str, Form(max_length=10)]):
    pool = bureau_person(who)
    body = await draft.read(pages.MAX_DRAFT + 1)
    if len(body) > pages.MAX_DRAFT:
        raise PortalRefusal(Refused(Refusal.INVALID_INPUT, f"a draft is at most {pages.MAX_DRAFT} bytes"))
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise PortalRefusal(Refused(Refusal.INVALID_INPUT, "the draft is a UTF-8 YAML file")) from None
    started = await run_in_threadpool(portal.api.start_what_if, pool, text, first, last, who.user.username)
    portal.repository.record(portal.clock(), who.user.username, pool, "what_if", started["run_id"],
                             f"{draft.filename} {first}..{last}")
    return RedirectResponse(f"/what-if/{started['run_id']}", status_code=303)


@router.get("/what-if/{run_id}", response_class=HTMLResponse)
def what_if_run(request: Request, who: Signed, portal: Wired, run_id: str):
    found = portal.api.what_if(bureau_person(who), run_id)
    if found is None:
        raise no_run(run_id)
    return page(request, "what_if_run.html", who, pool=who.user.pool, run=found)


@router.get("/what-if/{run_id}/progress.json")
def what_if_progress(who: Signed, portal: Wired, run_id: str):
    found = portal.api.what_if(bureau_person(who), run_id)
    if found is None:
        raise no_run(run_id)
    return {k: found[k] for k in ("status", "done", "total", "error")}


@router.get("/what-if/{run_id}/report.html")
def what_if_report(who: Signed, portal: Wired, run_id: str):
    html = portal.api.what_if_report(bureau_person(who), run_id)
    if html is None:
        raise no_run(run_id)
    return HTMLResponse(html, headers={"content-security-policy": "script-src 'none'"})
