"""Anomaly flags for a home bureau, from the settlement stream (beyond what the national platform
does). Pure: no I/O. Each flag names the settlements behind it; none is a verdict — a bureau
looks at them.

- OVERLAPPING_REGIONS: one person settled in two treatment regions on overlapping days.
- READMISSION: a stay that begins within `readmission_days` of the end of the same person's
  previous stay (分解住院: one stay split into two to get a second deductible and cap).
- JUST_UNDER_THRESHOLD: a hospital whose bills land just under a threshold (within
  `under_pct` percent below it) `under_count` times or more in a day.
- HOSPITAL_JUMP: a hospital whose average bill for the bureau's insured today is `jump_pct`
  percent or more above its average over the previous `baseline_days` days (with at least
  `jump_min_bills` bills today and in the baseline).
- MANY_BILLS: a person with `many_bills` standing bills or more in the window — flagged once,
  and left out of the pairwise checks above (which would otherwise grow with the square of them).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from typing import Iterable, Mapping, Sequence


@dataclass(frozen=True)
class AnomalyRule:
    readmission_days: int = 15
    thresholds_fen: tuple[int, ...] = (1_000_000, 2_000_000, 5_000_000)  # 10,000 / 20,000 / 50,000 yuan
    under_pct: int = 2
    under_count: int = 3
    jump_pct: int = 50
    jump_min_bills: int = 3
    baseline_days: int = 30
    many_bills: int = 100


@dataclass(frozen=True)
class Bill:
    """A standing settlement as the flags read it."""

    settlement_id: str
    person_ref: str
    home_pool: str
    treatment_pool: str
    hospital_code: str
    visit_type: str
    begntime: date
    endtime: date
    medfee_fen: int
    clearing_date: date


@dataclass(frozen=True)
class Flag:
    kind: str
    subject: str  # the person (keyed reference) or the hospital the flag is about
    detail: str
    settlement_ids: tuple[str, ...]


def overlapping_regions(today: Sequence[Bill], history: Iterable[Bill]) -> list[Flag]:
    """Today's bills whose days overlap a bill of the same person in another treatment region."""
    by_person: dict[str, list[Bill]] = defaultdict(list)
    for b in history:
        by_person[b.person_ref].append(b)
    flags, seen = [], set()
    for b in today:
        for other in by_person.get(b.person_ref, ()):
            if other.settlement_id == b.settlement_id or other.treatment_pool == b.treatment_pool:
                continue
            if other.begntime <= b.endtime and b.begntime <= other.endtime:
                pair = tuple(sorted((b.settlement_id, other.settlement_id)))
                if pair in seen:
                    continue
                seen.add(pair)
                flags.append(Flag("OVERLAPPING_REGIONS", b.person_ref,
                                  f"{b.treatment_pool} {b.begntime}..{b.endtime} overlaps "
                                  f"{other.treatment_pool} {other.begntime}..{other.endtime}", pair))
    return flags


def readmissions(rule: AnomalyRule, today: Sequence[Bill], history: Iterable[Bill]) -> list[Flag]:
    """Today's stays that begin within the rule's days after the same person's previous stay ended."""
    stays: dict[str, list[Bill]] = defaultdict(list)
    for b in history:
        if b.visit_type == "INPATIENT":
            stays[b.person_ref].append(b)
    flags = []
    for b in today:
        if b.visit_type != "INPATIENT":
            continue
        earlier = [s for s in stays.get(b.person_ref, ()) if s.settlement_id != b.settlement_id and s.endtime <= b.begntime]
        if not earlier:
            continue
        last = max(earlier, key=lambda s: (s.endtime, s.settlement_id))
        gap = (b.begntime - last.endtime).days
        if gap <= rule.readmission_days:
            flags.append(Flag("READMISSION", b.person_ref, f"admitted {gap} day(s) after a stay ended on {last.endtime}"
                                                           f" ({last.treatment_pool} → {b.treatment_pool})",
                              (last.settlement_id, b.settlement_id)))
    return flags


def just_under_threshold(rule: AnomalyRule, today: Sequence[Bill]) -> list[Flag]:
    """Hospitals with the rule's count of today's bills within under_pct % below a threshold."""
    hits: dict[tuple[str, int], list[str]] = defaultdict(list)
    for b in today:
        for t in rule.thresholds_fen:
            if t * (100 - rule.under_pct) <= b.medfee_fen * 100 < t * 100:
                hits[(b.hospital_code, t)].append(b.settlement_id)
    return [Flag("JUST_UNDER_THRESHOLD", hospital, f"{len(ids)} bills within {rule.under_pct}% under "
                                                  f"{t / 100:,.2f} yuan", tuple(sorted(ids)))
            for (hospital, t), ids in sorted(hits.items()) if len(ids) >= rule.under_count]


def jumped(rule: AnomalyRule, now: Mapping[str, tuple[int, int]], baseline: Mapping[str, tuple[int, int]]
           ) -> list[tuple[str, str]]:
    """(hospital, detail) for each hospital whose average bill today — `now`: hospital -> (bills,
    total fen) — is jump_pct % or more above its baseline average (the same, before today)."""
    out = []
    for hospital, (count, total) in sorted(now.items()):
        past_count, past_total = baseline.get(hospital, (0, 0))
        if count < rule.jump_min_bills or past_count < rule.jump_min_bills or past_total <= 0:
            continue
        if total * past_count * 100 >= past_total * count * (100 + rule.jump_pct):
            out.append((hospital, f"average bill {total / count / 100:,.2f} yuan today against "
                                  f"{past_total / past_count / 100:,.2f} over the previous {rule.baseline_days}"
                                  f" days ({count} bills)"))
    return out


def hospital_jumps(rule: AnomalyRule, today: Sequence[Bill], baseline: Mapping[str, tuple[int, int]]) -> list[Flag]:
    """Hospitals whose average bill today is jump_pct % or more above their baseline average;
    `baseline`: hospital -> (bills, total fen) over the previous days."""
    now: dict[str, list[Bill]] = defaultdict(list)
    for b in today:
        now[b.hospital_code].append(b)
    stats = {h: (len(bills), sum(b.medfee_fen for b in bills)) for h, bills in now.items()}
    return [Flag("HOSPITAL_JUMP", hospital, detail, tuple(sorted(b.settlement_id for b in now[hospital])))
            for hospital, detail in jumped(rule, stats, baseline)]


def flags_for(rule: AnomalyRule, today: Sequence[Bill], history: Sequence[Bill],
              baseline: Mapping[str, tuple[int, int]]) -> list[Flag]:
    """Every flag of a home bureau's day: `today` its insured's standing bills cleared today,
    `history` every standing bill of today's persons over the window (today's included),
    `baseline` each hospital's (bills, total fen) for the bureau's insured before today."""
    per_person: dict[str, list[Bill]] = defaultdict(list)
    for b in history:
        per_person[b.person_ref].append(b)
    crowded = {p for p, bills in per_person.items() if len(bills) >= rule.many_bills}
    flags = [Flag("MANY_BILLS", p, f"{len(per_person[p])} bills in {rule.baseline_days} days",
                  tuple(sorted(b.settlement_id for b in per_person[p] if b in today_set)))
             for today_set in [set(today)] for p in sorted(crowded)]
    plain_today = [b for b in today if b.person_ref not in crowded]
    plain_history = [b for b in history if b.person_ref not in crowded]
    return (flags + overlapping_regions(plain_today, plain_history) + readmissions(rule, plain_today, plain_history)
            + just_under_threshold(rule, today) + hospital_jumps(rule, today, baseline))
