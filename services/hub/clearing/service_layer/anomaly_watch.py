"""The anomaly flags of a closing day, per home bureau (the rules in hub.clearing.domain.anomalies),
recorded with the day, and what a bureau reads of them. What the repository hands up stays small at
any volume: the bills of persons with two or more in the window (one with `many_bills` is counted
in the store), bills in a threshold's band, and per-hospital counts and totals."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta
from typing import Any

from hub.clearing.adapters.repository import MAX_FLAG_IDS, ClearingRepository, Unit
from hub.clearing.domain.anomalies import (AnomalyRule, Bill, Flag, jumped, just_under_threshold,
                                           overlapping_regions, readmissions)


def flag_day(unit: Unit, rule: AnomalyRule, day: date) -> dict[str, list[dict[str, Any]]]:
    """The day's flags per home bureau, recorded; as the files show them."""
    since = day - timedelta(days=rule.baseline_days)
    found: dict[str, list[Flag]] = defaultdict(list)
    counts = unit.person_bill_counts(day, since)
    for person in sorted(p for p, c in counts.items() if c >= rule.many_bills):
        rows = unit.first_bills(day, person, MAX_FLAG_IDS)
        found[rows[0][0]].append(Flag("MANY_BILLS", person, f"{counts[person]} bills in {rule.baseline_days} days",
                                      tuple(sid for _, sid in rows)))
    several = sorted(p for p, c in counts.items() if c < rule.many_bills)
    if several:
        for home, bills in _by_home(unit.bills_of(several, since, day)).items():
            today = [b for b in bills if b.clearing_date == day]
            found[home] += overlapping_regions(today, bills) + readmissions(rule, today, bills)
    for home, bills in _by_home(unit.bills_under(day, rule.thresholds_fen, rule.under_pct)).items():
        found[home] += just_under_threshold(rule, bills)
    now, before = unit.hospital_totals(day, day), unit.hospital_totals(since, day - timedelta(days=1))
    for home, hospitals in now.items():
        for hospital, detail in jumped(rule, hospitals, before.get(home, {})):
            ids = unit.hospital_bill_ids(day, home, hospital, MAX_FLAG_IDS)
            found[home].append(Flag("HOSPITAL_JUMP", hospital, detail, tuple(ids)))
    out, rows = {}, []
    for home in sorted(found):
        out[home] = [flag_dict(f) for f in found[home]]
        rows += [{"clearing_date": day, "home_pool": home, "n": n, **flag_dict(f, text=True)}
                 for n, f in enumerate(found[home], 1)]
    unit.record_flags(rows)
    return out


def _by_home(bills: list[Bill]) -> dict[str, list[Bill]]:
    out: dict[str, list[Bill]] = defaultdict(list)
    for b in bills:
        out[b.home_pool].append(b)
    return out


def flag_dict(flag: Flag, text: bool = False) -> dict[str, Any]:
    """A flag as files and the API show it (at most MAX_FLAG_IDS settlements named; the detail says
    how many there were)."""
    ids = list(flag.settlement_ids)
    detail = flag.detail + (f" ({len(ids)} settlements, the first {MAX_FLAG_IDS} named)"
                            if len(ids) > MAX_FLAG_IDS else "")
    ids = ids[:MAX_FLAG_IDS]
    return {"kind": flag.kind, "subject": flag.subject, "detail": detail,
            "settlement_ids": " ".join(ids) if text else ids}


def anomalies(repository: ClearingRepository, pool: str, day: date | None = None) -> dict[str, Any] | None:
    """A bureau's flags of a closed day (default: its latest with any)."""
    with repository.unit() as unit:
        day = day or unit.latest_flag_day(pool)
        if day is None:
            return None
        return {"pool_code": pool, "clearing_date": day.isoformat(), "flags": unit.flags(day, pool)}
