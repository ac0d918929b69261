"""A clearing day's routes: the hub's signing keys, a bureau's closed days and their files, its
confirmation, and the operators' list of unconfirmed files and a day's summary."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from hub.clearing.entrypoints.web import MEDIA, Operator, Refused, Service, Who, day_of

router = APIRouter()
OWN_DAYS = ("days_of_another_pool", "a bureau sees only its own days")
OWN_FILES = ("file_of_another_pool", "a bureau fetches only its own pool's files")


@router.get("/v1/clearing/public-key")
async def public_key(clearing: Service):
    """The hub's SM2 public key (04 + x + y, hex): `hub clearing verify FILE --public-key KEY`."""
    return Response(clearing.service.signer.public_key_hex + "\n", media_type="text/plain; charset=utf-8")


@router.get("/v1/clearing/public-keys")
async def all_public_keys(clearing: Service):
    """The key the files are signed with now and the keys a rotation retired: a verifier trusts them
    all (files signed before a rotation keep verifying)."""
    return {"current": clearing.service.signer.public_key_hex, "previous": list(clearing.retired_public_keys)}


@router.get("/v1/clearing/unconfirmed")
async def unconfirmed(clearing: Service, _: Operator):
    return await run_in_threadpool(clearing.service.unconfirmed)


@router.get("/v1/clearing-days/{pool}")
async def days_of(pool: str, clearing: Service, who: Who):
    """The pool's closed days, newest first (the bureau portal's list of days)."""
    who.sees(pool, *OWN_DAYS)
    return await run_in_threadpool(clearing.service.days_of, pool)


@router.get("/v1/clearing-days/{pool}/{day}")
async def day_summary(pool: str, day: str, clearing: Service, who: Who):
    """A pool's closed day without its lines: positions per fund and counterparty, the manifest's hash."""
    who.sees(pool, *OWN_DAYS)
    found = await run_in_threadpool(clearing.service.day_summary, day_of(day), pool)
    if found is None:
        raise Refused(404, "no_such_day", f"no closed clearing day {day} with pool {pool}")
    return found


@router.get("/v1/clearing/{day}/summary.html")
async def summary(day: str, clearing: Service, _: Operator):
    files = await run_in_threadpool(clearing.service.render_day, day_of(day))
    body = files.get(f"summary_{day}.html")
    if not body:
        raise Refused(404, "day_not_closed", day)
    return Response(body, media_type="text/html; charset=utf-8")


@router.get("/v1/clearing/{day}/{filename}")
async def pool_file(day: str, filename: str, clearing: Service, who: Who):
    pool, _, suffix = filename.partition(".")
    if suffix not in MEDIA:
        raise Refused(404, "no_such_file", "files are <pool>.csv, .json, .xlsx, .sha256 and .sig")
    who.sees(pool, *OWN_FILES)
    body = await run_in_threadpool(clearing.service.pool_file, day_of(day), pool, suffix)
    if body is None:
        raise Refused(404, "no_such_file", f"no closed clearing day {day} with pool {pool}")
    return Response(body, media_type=MEDIA[suffix],
                    headers={"content-disposition": f'attachment; filename="clearing_{day}_{pool}.{suffix}"'})


@router.post("/v1/clearing/{day}/{pool}/confirm")
async def confirm(day: str, pool: str, clearing: Service, who: Who):
    who.acts_for(pool, "file_of_another_pool", "a bureau confirms only its own pool's file")
    if not await run_in_threadpool(clearing.service.confirm, day_of(day), pool, who.name):
        raise Refused(404, "no_such_file", f"no statement for {pool} on {day}")
    return {"clearing_date": day, "pool_code": pool, "confirmed": True}
