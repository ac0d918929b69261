"""Events that kept failing (poison), kept with their bytes and why until an operator resolves them:
applied again after the fault is fixed, or discarded with a note. An unresolved one holds back its
day's close and every later day's (the repository's `blocking`), so no bureau gets a file with an
event silently missing."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Callable

from hub.clearing.adapters.repository import ClearingRepository, Quarantined
from hub.clearing.domain.refusals import ClearingRefused, QuarantineRefusal


def keep(repository: ClearingRepository, row: Quarantined) -> None:
    """The consumer's poison handler: the event and why, kept once per source."""
    with repository.unit() as unit:
        unit.quarantine(row)


def listed(repository: ClearingRepository, include_resolved: bool = False) -> list[dict[str, Any]]:
    with repository.unit() as unit:
        rows = unit.quarantined(include_resolved)
    return [{k: (v.isoformat() if isinstance(v, (date, datetime)) else v) for k, v in vars(r).items() if k != "payload"}
            for r in rows]


def resolve(repository: ClearingRepository, apply_again: Callable[[Quarantined], Any], now: datetime, source: str,
            action: str, who: str, note: str = "") -> dict[str, Any]:
    """APPLY the event again (after fixing what made it fail: `apply_again` decodes and applies its
    bytes) or DISCARD it (it will be in no clearing file; `note` says why)."""
    if action not in ("APPLY", "DISCARD"):
        raise ClearingRefused(QuarantineRefusal.INVALID_RESOLUTION, repr(action))
    if action == "DISCARD" and not note.strip():
        raise ClearingRefused(QuarantineRefusal.NOTE_REQUIRED)
    with repository.unit() as unit:
        row = unit.quarantined_one(source)
    if row is None:
        raise ClearingRefused(QuarantineRefusal.NOT_QUARANTINED, source)
    if row.resolved_at is not None:
        return {"source": source, "resolution": row.resolution, "already_resolved": True}
    if action == "APPLY":
        try:
            apply_again(row)
        except Exception as exc:  # it still fails: it stays quarantined, and the operator is told why
            raise ClearingRefused(QuarantineRefusal.STILL_FAILING, f"{type(exc).__name__}: {str(exc)[:500]}") from None
    resolution = "APPLIED" if action == "APPLY" else "DISCARDED"
    with repository.unit() as unit:
        unit.resolve_quarantined(source, now, resolution, who, note or None)
    return {"source": source, "resolution": resolution, "already_resolved": False}

