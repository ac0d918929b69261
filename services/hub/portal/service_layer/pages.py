"""What the portal's bigger pages show, gathered from the services: a day (its files verified
against the hub's public key) and a month's statement with its filters."""

from __future__ import annotations

import hashlib
from typing import Any

from hub.signing import manifest_digests, verify_manifest

FILE_SUFFIXES = ("csv", "xlsx", "json", "sha256", "sig")
MAX_LINES_SHOWN = 500


def day(api, pool: str, as_pool: str, asked: str | None) -> dict[str, Any]:
    """The pool's closed days, the chosen one (default: the newest): its positions (no lines are
    fetched: a day of a million settlements shows as fast as a small one), its netting picture's
    data, and its manifest's SM2 signature verified against the hub's public key."""
    days = api.days(pool, as_pool)
    chosen = next((d for d in days if d["clearing_date"] == asked), days[0] if days else None)
    if chosen is None:
        return {"days": [], "chosen": None}
    when = chosen["clearing_date"]
    summary = api.day_summary(when, pool, as_pool) or {"funds": [], "bilateral": []}
    signed = signed_manifest(api, when, pool, as_pool)
    netting = [{"name": f"{b['counterparty_name'] or b['counterparty_pool']} {b['insutype']}", "net_fen": b["net_fen"]}
               for b in summary["bilateral"]]
    return {"days": days, "chosen": chosen, "document": summary, "verification": signed,
            "files": [(suffix, suffix in ("sha256", "sig") or f"{file_stem(when, pool)}.{suffix}" in signed["files"])
                      for suffix in FILE_SUFFIXES], "netting": netting}


def file_stem(day: str, pool: str) -> str:
    return f"clearing_{day}_{pool}"


def signed_manifest(api, day: str, pool: str, as_pool: str) -> dict[str, Any]:
    """The day's manifest, checked: {ok, message, files: name -> SHA-256 as signed}."""
    stem = file_stem(day, pool)
    manifest, sig = api.day_file(day, pool, "sha256", as_pool), api.day_file(day, pool, "sig", as_pool)
    if manifest is None or sig is None:
        return {"ok": False, "message": "the manifest or its signature is missing", "files": {}}
    check = verify_manifest(f"{stem}.sha256", manifest, f"{stem}.sig", sig, api.public_keys())
    return {"ok": check.ok, "message": check.message, "files": manifest_digests(manifest) if check.ok else {}}


def checked_file(api, day: str, pool: str, suffix: str, as_pool: str) -> tuple[bytes | None, str]:
    """One of the day's files, served only when it is the one the hub signed: (bytes, "") or
    (None, why not). The manifest and its signature are served as they are."""
    body = api.day_file(day, pool, suffix, as_pool)
    if body is None:
        return None, "no such file"
    if suffix in ("sha256", "sig"):
        return body, ""
    signed = signed_manifest(api, day, pool, as_pool)
    if not signed["ok"]:
        return None, signed["message"]
    if signed["files"].get(f"{file_stem(day, pool)}.{suffix}") != hashlib.sha256(body).hexdigest():
        return None, f"{file_stem(day, pool)}.{suffix} is not the file the hub signed"
    return body, ""


def month(api, pool: str, as_pool: str, asked: str | None, filters: dict[str, str], number: int = 1) -> dict[str, Any]:
    """The month's statement (default: the month of the newest closed day), its lines filtered and
    paged MAX_LINES_SHOWN at a time by the clearing service (a month of a big pool has thousands)."""
    if not asked:
        days = api.days(pool, as_pool)
        asked = days[0]["clearing_date"][:7] if days else ""
    wanted = {"counterparty": filters.get("counterparty_pool", ""), "hospital": filters.get("hospital_code", ""),
              "insutype": filters.get("insutype", ""), "state": filters.get("state", "")}
    statement = api.statement(asked, pool, as_pool, wanted, MAX_LINES_SHOWN, (number - 1) * MAX_LINES_SHOWN) \
        if asked else None
    matching = (statement or {}).get("lines_matching", 0)
    return {"month": asked, "statement": statement, "lines": (statement or {}).get("lines", []),
            "shown_of": matching, "filters": filters,
            "paging": {"number": number, "pages": max(1, -(-matching // MAX_LINES_SHOWN))},
            "counterparties": (statement or {}).get("counterparty_pools", []),
            "hospitals": (statement or {}).get("hospital_codes", [])}


# ---------------------------------------------------------------- claims and enrolments

PAGE_SIZE = 50
MAX_CLAIM_FILE = 5 * 1024 * 1024
MAX_CLAIMS_PER_FILE = 500
MAX_SNAPSHOT = 200 * 1024 * 1024  # the registration service's own limit
MAX_DRAFT = 256 * 1024  # the settlement service's own limit for a draft policy


def paged(rows: list, number: int, size: int = PAGE_SIZE) -> dict[str, Any]:
    pages_total = max(1, -(-len(rows) // size))
    number = min(max(1, number), pages_total)
    return {"rows": rows[(number - 1) * size:number * size], "number": number, "pages": pages_total,
            "total": len(rows)}


def claim_file(body: bytes) -> tuple[list[dict], str]:
    """The claims of an uploaded file (one JSON object, or a list): ([claims], "") or ([], why not)."""
    import json

    if len(body) > MAX_CLAIM_FILE:
        return [], f"a claim file is at most {MAX_CLAIM_FILE} bytes"
    try:
        found = json.loads(body.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError) as exc:
        return [], f"the file is not UTF-8 JSON ({exc.__class__.__name__})"
    claims = found if isinstance(found, list) else [found]
    if not claims or len(claims) > MAX_CLAIMS_PER_FILE or not all(isinstance(c, dict) for c in claims):
        return [], f"a claim file holds one claim object or a list of 1 to {MAX_CLAIMS_PER_FILE}"
    return claims, ""


def claim_result(claim: dict, status: int, answer: dict) -> dict[str, Any]:
    """One uploaded claim's outcome, as the page lists it: paid, or refused with every refused line."""
    error = answer.get("error") if isinstance(answer, dict) else None
    return {"claim_no": str(claim.get("claim_no", ""))[:64], "ok": status < 400 and not error, "status": status,
            "hifp_pay": answer.get("hifp_pay", "") if not error else "",
            "psn_part_amt": answer.get("psn_part_amt", "") if not error else "",
            "code": error.get("code", "") if error else "", "message": error.get("message", "") if error else "",
            "refused_lines": error.get("refused_lines", []) if error else []}
