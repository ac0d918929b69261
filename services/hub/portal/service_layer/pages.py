"""What the portal's bigger pages show, gathered from the services: a day (its files verified
against the hub's public key) and a month's statement with its filters."""

from __future__ import annotations

import json
from typing import Any

from hub.signing import verify_file_bytes

FILE_SUFFIXES = ("csv", "xlsx", "json", "sha256", "sig")
MAX_LINES_SHOWN = 500


def day(api, pool: str, as_pool: str, asked: str | None) -> dict[str, Any]:
    """The pool's closed days, the chosen one (default: the newest) with its document, its
    netting picture's data and the verification of its file set's signature."""
    days = api.days(pool, as_pool)
    chosen = next((d for d in days if d["clearing_date"] == asked), days[0] if days else None)
    if chosen is None:
        return {"days": [], "chosen": None}
    when = chosen["clearing_date"]
    stem = f"clearing_{when}_{pool}"
    files = {f"{stem}.{suffix}": api.day_file(when, pool, suffix, as_pool) for suffix in FILE_SUFFIXES}
    present = {name: body for name, body in files.items() if body is not None}
    if f"{stem}.sha256" in present and f"{stem}.sig" in present:
        check = verify_file_bytes(f"{stem}.sha256", present[f"{stem}.sha256"], f"{stem}.sig", present[f"{stem}.sig"],
                                  present, api.public_key())
        verification = {"ok": check.ok, "message": check.message, "files": list(check.files)}
    else:
        verification = {"ok": False, "message": "the manifest or its signature is missing", "files": []}
    document = json.loads(present[f"{stem}.json"]) if f"{stem}.json" in present else {}
    netting = [{"name": f"{b['counterparty_name'] or b['counterparty_pool']} {b['insutype']}", "net_fen": b["net_fen"]}
               for b in document.get("bilateral", [])]
    return {"days": days, "chosen": chosen, "document": {k: v for k, v in document.items() if k != "settlement_lines"},
            "line_count": len(document.get("settlement_lines", [])), "verification": verification,
            "files": [(suffix, f"{stem}.{suffix}" in present) for suffix in FILE_SUFFIXES], "netting": netting}


def month(api, pool: str, as_pool: str, asked: str | None, filters: dict[str, str]) -> dict[str, Any]:
    """The month's statement (default: the month of the newest closed day), lines filtered."""
    if not asked:
        days = api.days(pool, as_pool)
        asked = days[0]["clearing_date"][:7] if days else ""
    statement = api.statement(asked, pool, as_pool) if asked else None
    lines = []
    if statement:
        lines = [line for line in statement.get("lines", [])
                 if all(not wanted or str(line.get(field, "")) == wanted for field, wanted in filters.items())]
    return {"month": asked, "statement": statement, "lines": lines[:MAX_LINES_SHOWN], "shown_of": len(lines),
            "filters": filters,
            "counterparties": sorted({l["counterparty_pool"] for l in (statement or {}).get("lines", [])}),
            "hospitals": sorted({l["hospital_code"] for l in (statement or {}).get("lines", [])})}
